"""Plain torch modules and surgery: the paper's CNN, new heads, freezing. No scikit-learn here."""

from torch import nn

from ._backbones import backbone_spec, load_backbone

__all__ = ["PaperCNN", "TransferNet"]


class PaperCNN(nn.Module):
    """The paper's 25-layer MATLAB CNN, for any input of at least ``2**depth`` pixels.

    With the defaults and 100x100x3 input, MATLAB's layer array and its torch
    counterparts are:

    ===== ==================================  =====================================
    #     MATLAB layer                        torch
    ===== ==================================  =====================================
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
    ===== ==================================  =====================================

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


def _replace(model, dotted, new):
    parent_name, _, child = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _new_head(old, n_classes):
    """A fresh last layer like ``old`` with ``n_classes`` outputs."""
    if isinstance(old, nn.Conv2d):  # SqueezeNet's 1x1 convolution classifier
        return nn.Conv2d(old.in_channels, n_classes, kernel_size=1)
    return nn.Linear(old.in_features, n_classes)


def freezable_blocks(model, backbone):
    """The blocks that ``freeze=k`` counts, in input-to-output order."""
    spec = backbone_spec(backbone)
    blocks = model.get_submodule(spec.blocks) if spec.blocks else model
    prefix = f"{spec.blocks}." if spec.blocks else ""
    return [m for name, m in blocks.named_children() if prefix + name != spec.head]


def _frozen_modules(model, backbone, freeze):
    """The modules whose parameters ``freeze`` keeps fixed (the new head is unfrozen after)."""
    if freeze == "none":
        return []
    if freeze == "body":
        return [model]
    blocks = freezable_blocks(model, backbone)
    if freeze > len(blocks):
        raise ValueError(
            f"freeze={freeze} but {backbone} has {len(blocks)} blocks; use at most "
            f"{len(blocks)}, 'body' or 'none'"
        )
    return blocks[:freeze]


class TransferNet(nn.Module):
    """A pretrained backbone with a new head; frozen parts stay in eval mode.

    Parameters
    ----------
    n_classes : int or None
        Outputs of the new head; ``None`` removes the head (features out).
    backbone : str, default="alexnet"
    weights : str, path-like, torchvision weights enum or None, default="DEFAULT"
        As in :class:`~sk_animals.transfer.TransferClassifier`.
    freeze : {"none", "body"} or int, default="none"
        ``"none"`` fine-tunes everything; ``"body"`` trains the new head only; an int
        ``k`` freezes the first ``k`` blocks (see :data:`~sk_animals.transfer.BACKBONES`).
    """

    def __init__(self, n_classes, backbone="alexnet", weights="DEFAULT", freeze="none"):
        super().__init__()
        spec = backbone_spec(backbone)
        self.model = load_backbone(backbone, weights)
        old = self.model.get_submodule(spec.head)
        head = nn.Identity() if n_classes is None else _new_head(old, n_classes)
        _replace(self.model, spec.head, head)
        self.head_prefix = f"model.{spec.head}."
        for module in _frozen_modules(self.model, backbone, freeze):
            module.requires_grad_(False)
        head.requires_grad_(True)  # the new head always trains
        # leaves whose weights are all frozen keep eval-mode behaviour (batch-norm statistics)
        self.frozen = [
            m
            for m in self.model.modules()
            if m._parameters and not any(p.requires_grad for p in m.parameters(recurse=False))
        ]

    def train(self, mode=True):
        """Set train mode, keeping frozen layers in eval mode."""
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def forward(self, x):
        """Logits (or features, without a head) for normalised images (n, 3, h, w)."""
        return self.model(x)
