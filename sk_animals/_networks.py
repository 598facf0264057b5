"""Plain torch modules: the paper's from-scratch CNN. No scikit-learn here."""

from torch import nn

__all__ = ["PaperCNN"]


class PaperCNN(nn.Module):
    """The paper's 25-layer MATLAB CNN, for any input of at least ``2**depth`` pixels.

    With the defaults and 100x100x3 input, MATLAB's layer array and its torch
    counterparts are:

    ====  ==================================  =====================================
    #     MATLAB layer                        torch
    ====  ==================================  =====================================
    1     imageInputLayer([100 100 3])        per-batch uint8 -> float and per-channel
                                              normalisation in the estimator
    2-5   conv 3x3 (8) / BN / ReLU / maxpool  ``blocks[0]``: Conv2d, BatchNorm2d,
                                              ReLU, MaxPool2d(2)
    6-9   same with 16 filters                ``blocks[1]``
    10-13 same with 32 filters                ``blocks[2]``
    14-17 same with 64 filters                ``blocks[3]``
    18-20 conv 3x3 (128) / BN / ReLU          ``blocks[4]`` (no pooling)
    21    fullyConnectedLayer(256)            ``head[2]``: Linear (after Flatten)
    22    reluLayer                           ``head[3]``
    23    fullyConnectedLayer(n_classes)      ``head[5]``: Linear
    24    softmaxLayer                        ``CrossEntropyLoss`` in training,
                                              softmax in ``predict_proba``
    25    classificationLayer                 ``CrossEntropyLoss``; ``predict``
    ====  ==================================  =====================================

    ``width`` scales every convolution (8, 16, 32, ... filters by default), ``depth``
    is the number of pooled blocks (4), and ``dropout`` is the probability of the
    Dropout layers before both fully connected layers (``head[1]`` and ``head[4]``;
    0 in the paper, where they are identities).

    Parameters
    ----------
    n_classes : int
        Number of outputs (logits).
    image_size : (int, int)
        Input height and width, to size the first fully connected layer.
    width : int, default=8
        Filters in the first convolution; each block doubles it.
    depth : int, default=4
        Pooled conv/BN/ReLU/max-pool blocks; one unpooled block follows.
    dropout : float, default=0.0
        Dropout probability before each fully connected layer.
    hidden : int, default=256
        Units in the first fully connected layer.
    """

    def __init__(self, n_classes, image_size, *, width=8, depth=4, dropout=0.0, hidden=256):
        super().__init__()
        h, w = image_size
        if min(h, w) < 2**depth:
            raise ValueError(
                f"images of {h}x{w} are too small for depth={depth} "
                f"(each of the {depth} blocks halves them): use images of at least "
                f"{2**depth} pixels or a smaller depth"
            )
        channels = [3] + [width * 2**i for i in range(depth + 1)]
        self.blocks = nn.Sequential(
            *(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(inplace=True),
                    *([nn.MaxPool2d(2)] if i < depth else []),
                )
                for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:], strict=True))
            )
        )
        features = channels[-1] * (h // 2**depth) * (w // 2**depth)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(features, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x):
        """Logits of shape (n, n_classes) for images of shape (n, 3, h, w)."""
        return self.head(self.blocks(x))
