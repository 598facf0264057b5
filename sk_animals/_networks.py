"""Plain torch modules and surgery: the paper's CNN, new heads, freezing. No scikit-learn here.

What a backbone is made of (its head, its blocks) is found by :mod:`sk_animals._backbones`.
"""

import torch
from torch import nn

from . import _timm
from ._backbones import (
    feature_blocks,  # noqa: F401  (its home in earlier releases)
    find_head,
    freezable_blocks,
    load_backbone,
)
from ._tensors import like_weights

__all__ = ["PaperCNN", "ResidualCNN", "TransferNet"]


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

    @staticmethod
    def min_size(depth=4):
        """The smallest image side the network takes at ``depth``: it halves it ``depth``
        times."""
        return 2**depth

    @staticmethod
    def settings_from_state(shapes):
        """The settings that made a state dict of these ``shapes`` (name to shape)."""
        blocks = {k.split(".")[1] for k in shapes if k.startswith("blocks.")}
        return {
            "n_classes": shapes["head.5.weight"][0],
            "width": shapes["blocks.0.0.weight"][0],
            "depth": len(blocks) - 1,
            "hidden": shapes["head.2.weight"][0],
        }

    def __init__(self, n_classes, image_size, *, width=8, depth=4, dropout=0.0, hidden=256):
        super().__init__()
        h, w = image_size
        _too_small(h, w, depth, self.min_size(depth))
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


def _too_small(h, w, depth, minimum):
    if min(h, w) < minimum:
        raise ValueError(
            f"images of {h}x{w} are too small for depth={depth} (the network halves them "
            f"{minimum.bit_length() - 1} times): use images of at least {minimum} pixels or "
            "a smaller depth"
        )


def _conv_bn_relu(c_in, c_out, stride=1):
    return [
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


class _Residual(nn.Sequential):
    """``x + f(x)`` with ``f`` two conv/batch-norm/ReLU layers."""

    def __init__(self, channels):
        super().__init__(*_conv_bn_relu(channels, channels), *_conv_bn_relu(channels, channels))

    def forward(self, x):
        return x + super().forward(x)


class ResidualCNN(nn.Module):
    """A compact residual CNN that learns fast from scratch: the recommended network.

    A ResNet-9-like design (the fast CIFAR-10 networks of the DAWNBench era and airbench)
    for images of about 100 pixels. A stride-2 stem of ``stem_width`` filters halves the
    image first, where a plain CNN spends most of its time; then ``depth`` stages, each a
    convolution of ``width``, 2x, 4x, ... filters, 2x2 max pooling, batch norm and ReLU
    (pooling before normalising, as airbench does, so that the normalisation and its
    gradient work on a quarter of the pixels), every second stage followed by a residual
    block of two conv/batch-norm/ReLU layers; global max pooling, dropout and one linear
    layer whose logits are scaled by ``scale`` (1/8 keeps the first, large learning-rate
    steps stable). At 100x100 with width 32 and a stem of 24 (the
    :data:`~sk_animals.scratch.RECOMMENDED` preset) it has 1.65 M parameters and 73 M
    multiply-adds per image; the paper's network has 1.28 M and 14 M. Use it as
    ``ScratchCNNClassifier(module=ResidualCNN, width=32)`` or through the preset.

    Parameters
    ----------
    n_classes : int
        Number of outputs (logits).
    image_size : (int, int)
        Input height and width; at least ``2 ** (depth + 1)`` pixels.
    width : int, default=32
        Filters of the first stage; each stage doubles them.
    depth : int, default=4
        Pooled stages after the stem.
    dropout : float, default=0.0
        Dropout probability before the linear layer.
    scale : float, default=0.125
        Factor on the logits.
    stem_width : int, default=None
        Filters of the stem; ``None`` means three quarters of ``width``. The stem's output
        at half the input size costs more than its filters' share suggests.
    """

    @staticmethod
    def min_size(depth=4):
        """The smallest image side the network takes at ``depth``: its stem and each
        stage halve it, ``depth + 1`` times."""
        return 2 ** (depth + 1)

    @staticmethod
    def settings_from_state(shapes):
        """The settings that made a state dict of these ``shapes`` (name to shape)."""
        stages = [k for k, v in shapes.items() if k.count(".") == 2 and len(v) == 4][1:]
        return {
            "n_classes": shapes["head.3.weight"][0],
            "width": shapes["blocks.3.weight"][0],
            "depth": len(stages),
            "stem_width": shapes["blocks.0.weight"][0],
        }

    def __init__(
        self,
        n_classes,
        image_size,
        *,
        width=32,
        depth=4,
        dropout=0.0,
        scale=0.125,
        stem_width=None,
    ):
        super().__init__()
        _too_small(*image_size, depth, self.min_size(depth))
        c_in = stem_width or max(1, 3 * width // 4)
        layers = _conv_bn_relu(3, c_in, stride=2)
        for i in range(depth):
            c_out = width * 2**i
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.MaxPool2d(2),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            layers += [_Residual(c_out)] if i % 2 else []
            c_in = c_out
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, n_classes)
        )
        self.scale = scale

    def forward(self, x):
        """Logits of shape (n, n_classes) for images of shape (n, 3, h, w)."""
        return self.head(self.blocks(x)) * self.scale


def _replace(model, dotted, new):
    parent_name, _, child = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _new_head(old, n_classes):
    """A fresh last layer like ``old`` with ``n_classes`` outputs."""
    if isinstance(old, nn.Conv2d):  # SqueezeNet's 1x1 convolution classifier
        return nn.Conv2d(old.in_channels, n_classes, kernel_size=1)
    return nn.Linear(old.in_features, n_classes)


def _unclip(model, dotted):
    """Replace a ReLU right after the head by an identity: logits must go negative too.

    SqueezeNet's classifier applies a ReLU to its class scores; on a new head it clips
    every logit at 0, and a class whose logits are all 0 gets no gradient.
    """
    parent_name, _, child = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    names = list(parent._modules) if isinstance(parent, nn.Sequential) else []
    following = names[names.index(child) + 1] if child in names[:-1] else None
    if following is not None and isinstance(parent[names.index(following)], nn.ReLU):
        _replace(model, f"{parent_name}.{following}".lstrip("."), nn.Identity())


def _frozen_parameters(model, head, freeze, backbone):
    """The parameters ``freeze`` keeps fixed (the new head is unfrozen after).

    ``freeze=k`` freezes the first ``k`` blocks and, for ``k >= 1``, the stem: every
    parameter registered before the first block's (ViT's patch embedding, class token
    and position embedding; RegNet's stem).
    """
    if freeze == "none":
        return []
    if freeze == "body":
        return list(model.parameters())
    blocks = freezable_blocks(model, head)
    if freeze > len(blocks):
        raise ValueError(
            f"freeze={freeze} but {backbone} has {len(blocks)} blocks; use at most "
            f"{len(blocks)}, 'body' or 'none'"
        )
    if freeze == 0:
        return []
    in_blocks = {id(p) for block in blocks for p in block.parameters()}
    stem = []
    for p in model.parameters():
        if id(p) in in_blocks:
            break
        stem.append(p)
    return stem + [p for block in blocks[:freeze] for p in block.parameters()]


def _frozen_timm_parameters(model, freeze, backbone):
    """The parameters of a timm model that ``freeze`` keeps fixed: timm's coarse groups.

    ``freeze=k`` freezes the first ``k`` of :func:`sk_animals._timm.blocks` (the stem is
    the first); ``"body"`` every parameter outside the head.
    """
    if freeze == "none" or freeze == 0:
        return []
    blocks = _timm.blocks(model)
    if freeze != "body" and freeze > len(blocks):
        raise ValueError(
            f"freeze={freeze} but {backbone} has {len(blocks)} blocks (timm's coarse parameter "
            f"groups); use at most {len(blocks)}, 'body' or 'none'"
        )
    names = {n for block in (blocks if freeze == "body" else blocks[:freeze]) for n in block}
    return [p for n, p in model.named_parameters() if n in names]


def _close(a, b):
    """Equal up to float rounding, at the scale of ``b`` (untrained bodies give tiny values)."""
    return torch.allclose(a, b, rtol=1e-5, atol=1e-6 * float(b.abs().max()))


class TransferNet(nn.Module):
    """A pretrained backbone with a new head; frozen parts stay in eval mode.

    Any torchvision classification model: its head is the layer that produces the
    1000 ImageNet classes (``find_head``), its blocks are those of ``feature_blocks``. Any
    timm model (``"timm/<name>"``): its head is what ``reset_classifier`` replaces, its
    blocks are timm's coarse parameter groups (``group_matcher(coarse=True)``), and
    without a head it returns its pooled features.

    Parameters
    ----------
    n_classes : int or None
        Outputs of the new head; ``None`` removes the head (features out).
    backbone : str, default="alexnet"
        A name of :func:`~sk_animals.transfer.list_backbones`.
    weights : str, path-like, torchvision weights enum or None, default="DEFAULT"
        As in :class:`~sk_animals.transfer.TransferClassifier`.
    freeze : {"none", "body"} or int, default="none"
        ``"none"`` fine-tunes everything; ``"body"`` trains the new head only; an int
        ``k`` freezes the first ``k`` blocks and the stem before them (see
        ``backbone_spec``).
    batch_norm : {"train", "frozen"}, default="train"
        ``"frozen"`` keeps every batch-norm layer in eval mode (its pretrained running
        statistics) in training too, while its scale and shift still learn.

    Attributes
    ----------
    head : str
        Dotted path of the replaced layer in ``model`` (for a timm model, the paths of
        its classifier modules, joined by commas).
    head_prefix : tuple of str
        Prefixes of the new head's parameter names in this module (one for a
        torchvision model).
    """

    def __init__(
        self, n_classes, backbone="alexnet", weights="DEFAULT", freeze="none", batch_norm="train"
    ):
        super().__init__()
        if _timm.is_timm(backbone):
            self.model = _timm.create(backbone, weights, n_classes)
            heads = _timm.head(self.model)
            self.head = ",".join(heads)
            frozen = _frozen_timm_parameters(self.model, freeze, backbone)
        else:
            self.model = load_backbone(backbone, weights)
            self.head = find_head(self.model)
            heads = (self.head,)
            old = self.model.get_submodule(self.head)
            new = nn.Identity() if n_classes is None else _new_head(old, n_classes)
            frozen = _frozen_parameters(self.model, self.head, freeze, backbone)
            _replace(self.model, self.head, new)
            if n_classes is not None:
                _unclip(self.model, self.head)
        self.head_prefix = tuple(f"model.{h}." for h in heads)
        for p in frozen:
            p.requires_grad_(False)
        for h in heads:  # the new head always trains
            self.model.get_submodule(h).requires_grad_(True)
        # leaves whose weights are all frozen keep eval-mode behaviour (batch-norm statistics)
        self.frozen = [
            m
            for m in self.model.modules()
            if (m._parameters and not any(p.requires_grad for p in m.parameters(recurse=False)))
            or (batch_norm == "frozen" and isinstance(m, nn.modules.batchnorm._BatchNorm))
        ]

    def train(self, mode=True):
        """Set train mode, keeping frozen layers in eval mode."""
        super().train(mode)
        for module in self.frozen:
            module.training = False  # not eval(): a container's children may still train
        return self

    def forward(self, x):
        """Logits (or features, without a head) for normalised images (n, 3, h, w)."""
        return self.model(x)

    @torch.no_grad()
    def frozen_features(self, image_size):
        """Whether the head can train on features of the body computed once, and how.

        The body (every layer before the head) is frozen and in eval mode after
        ``freeze="body"``, so the head's input is a function of the image alone, up to
        a dropout right before the head (timm's ``drop_rate``, torchvision's
        ``Dropout`` in front of the last layer). Then training the head on those
        features, computed once in eval mode and passed through the same dropout, is
        the same computation as running the whole network every epoch, with the same
        random draws. This is checked, not assumed: on two random images of
        ``image_size``, the network's output must be the head of its head's input in
        eval mode, that input a vector per image, and in train mode (with a forked RNG)
        exactly ``F.dropout(eval_input, p)`` of the same draws. A body with stochastic
        depth, a dropout further from the head, batch statistics or anything else that
        depends on the mode fails the check.

        Parameters
        ----------
        image_size : (int, int)
            Height and width of the images the network is given.

        Returns
        -------
        p : float or None
            The dropout probability in front of the head (0.0 when there is none);
            None when the body is not frozen or the check fails.
        """
        trainable = [n for n, p in self.named_parameters() if p.requires_grad]
        if "," in self.head or not all(n.startswith(self.head_prefix) for n in trainable):
            return None
        head = self.model.get_submodule(self.head)
        device = next(self.parameters()).device
        captured = []
        hook = head.register_forward_hook(lambda m, args, out: captured.append(args[0]))
        was_training = self.training
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(0)
                x = like_weights(torch.rand(2, 3, *image_size, device=device), self)
                out = self.eval()(x)
                torch.manual_seed(1)
                self.train()(x)
                features, trained = captured
                if features.ndim != 2 or not _close(head(features), out):
                    return None
                kept = trained != 0
                scale = float((trained[kept] / features[kept]).median()) if kept.any() else 1.0
                p = round(1 - 1 / scale, 6) if scale > 0 else -1.0
                if not 0 <= p < 1:
                    return None
                torch.manual_seed(1)
                same = nn.functional.dropout(features, p, training=True) if p else features
                return p if _close(same, trained) else None
        finally:
            hook.remove()
            self.train(was_training)
