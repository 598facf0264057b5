"""Transfer learning from ImageNet: the paper's AlexNet preset, other backbones, features.

Weights come from torchvision's weights API, which downloads once into the
``$TORCH_HOME/hub/checkpoints`` cache and then works offline, or from a state-dict file.
"""

import os
from dataclasses import dataclass
from urllib.error import URLError

import numpy as np
import torch
import torchvision
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, check_memory
from torch import nn

from ._base import ImageClassifier, check_images, resolve_device, to_network_input

__all__ = [
    "BACKBONES",
    "AlexNetTransferClassifier",
    "PretrainedFeatures",
    "TransferClassifier",
    "TransferNet",
    "load_backbone",
]


@dataclass(frozen=True)
class Backbone:
    """What the package needs to know about a torchvision classification model."""

    head: str  #: dotted path of the last layer, replaced by a new one per task
    blocks: str | None  #: module whose children are the blocks ``freeze=k`` counts
    size: int  #: input height and width the model is used at


#: The supported backbones. Normalisation and categories come from torchvision's
#: weights metadata (``torchvision.models.get_model_weights(name)``).
BACKBONES = {
    "alexnet": Backbone(head="classifier.6", blocks="features", size=227),
    "squeezenet1_1": Backbone(head="classifier.1", blocks="features", size=224),
    "resnet18": Backbone(head="fc", blocks=None, size=224),
    "mobilenet_v3_small": Backbone(head="classifier.3", blocks="features", size=224),
    "efficientnet_b0": Backbone(head="classifier.1", blocks="features", size=224),
}


def _spec(backbone):
    if backbone not in BACKBONES:
        raise ValueError(
            f"unknown backbone {backbone!r}; choose one of {', '.join(sorted(BACKBONES))}"
        )
    return BACKBONES[backbone]


def normalization(backbone):
    """(mean, std) the backbone's ImageNet weights expect, from torchvision's metadata."""
    _spec(backbone)
    transforms = torchvision.models.get_model_weights(backbone).DEFAULT.transforms()
    return np.asarray(transforms.mean), np.asarray(transforms.std)


def _is_path(weights):
    return isinstance(weights, os.PathLike) or (
        isinstance(weights, str) and (os.sep in weights or weights.endswith((".pth", ".pt")))
    )


def load_backbone(backbone, weights="DEFAULT"):
    """A torchvision ``backbone`` with ImageNet ``weights``, its 1000-class head intact.

    Parameters
    ----------
    backbone : str
        A key of :data:`BACKBONES`.
    weights : str, path-like, torchvision weights enum or None, default="DEFAULT"
        ``"DEFAULT"``, ``"IMAGENET1K_V1"`` (or an enum member): torchvision's weights,
        downloaded once into ``$TORCH_HOME/hub/checkpoints`` and loaded from there
        afterwards, offline too. A path: a state-dict file in torchvision's layout.
        ``None``: random initialisation.

    Returns
    -------
    model : torch.nn.Module

    Raises
    ------
    OSError
        The weights are neither cached nor downloadable; says which file to put where.
    """
    _spec(backbone)
    if weights is None:
        return torchvision.models.get_model(backbone, weights=None)
    if _is_path(weights):
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"weights file {os.fspath(weights)!r} does not exist")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        model = torchvision.models.get_model(backbone, weights=None)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(
                f"{os.fspath(weights)!r} is not a state dict of torchvision's {backbone}: {exc}"
            ) from None
        return model
    enum = torchvision.models.get_model_weights(backbone)
    try:
        weights = enum[weights] if isinstance(weights, str) else enum(weights)
    except (KeyError, ValueError):
        names = ", ".join(["DEFAULT", *enum.__members__])
        raise ValueError(
            f"unknown weights {weights!r} for {backbone}; use one of {names}, "
            "a state-dict path or None"
        ) from None
    try:
        return torchvision.models.get_model(backbone, weights=weights)
    except (URLError, OSError) as exc:
        target = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
        raise OSError(
            f"could not download the {backbone} weights ({exc}). Offline, download "
            f"{weights.url} elsewhere and put it at {target} (set TORCH_HOME to move the "
            "cache), or pass weights= the path of a state-dict file"
        ) from exc


def _replace(model, dotted, new):
    parent_name, _, child = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _new_head(old, n_classes):
    """A fresh last layer like ``old`` with ``n_classes`` outputs."""
    if isinstance(old, nn.Conv2d):  # SqueezeNet's 1x1 convolution classifier
        return nn.Conv2d(old.in_channels, n_classes, kernel_size=1)
    return nn.Linear(old.in_features, n_classes)


class TransferNet(nn.Module):
    """A pretrained backbone with a new head; frozen parts stay in eval mode.

    Parameters
    ----------
    n_classes : int or None
        Outputs of the new head; ``None`` removes the head (features out).
    backbone : str, default="alexnet"
    weights : str, path-like or None, default="DEFAULT"
        See :func:`load_backbone`.
    freeze : {"none", "body"} or int, default="none"
        ``"none"`` fine-tunes everything; ``"body"`` trains the new head only; an int
        ``k`` freezes the first ``k`` blocks (see :data:`BACKBONES`).
    """

    def __init__(self, n_classes, backbone="alexnet", weights="DEFAULT", freeze="none"):
        super().__init__()
        spec = _spec(backbone)
        self.model = load_backbone(backbone, weights)
        head = (
            nn.Identity()
            if n_classes is None
            else _new_head(self.model.get_submodule(spec.head), n_classes)
        )
        _replace(self.model, spec.head, head)
        self.head_prefix = f"model.{spec.head}."
        for module in _frozen_modules(self.model, spec, freeze, head):
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


def _frozen_modules(model, spec, freeze, head):
    """The modules whose parameters ``freeze`` keeps fixed."""
    if freeze == "none":
        return []
    if freeze == "body":
        return [model]  # the new head is unfrozen again by the caller
    if isinstance(freeze, int) and not isinstance(freeze, bool) and freeze >= 0:
        blocks = model.get_submodule(spec.blocks) if spec.blocks else model
        return [m for m in blocks.children() if m is not head][:freeze]
    raise ValueError(f"freeze must be 'none', 'body' or a number of blocks, got {freeze!r}")


class TransferClassifier(ImageClassifier):
    """Fine-tune an ImageNet-pretrained torchvision network on your classes.

    The backbone's last layer is replaced by a new one with as many outputs as
    classes, trained with ``head_lr_factor`` times the learning rate, as in MATLAB's
    transfer-learning recipe the paper followed. Inputs are normalised with the
    statistics of the backbone's ImageNet weights.

    Parameters
    ----------
    backbone : str, default="resnet18"
        One of :data:`BACKBONES`: ``alexnet``, ``squeezenet1_1``, ``resnet18``,
        ``mobilenet_v3_small``, ``efficientnet_b0``.
    weights : str, path-like or None, default="DEFAULT"
        ``"DEFAULT"``/``"IMAGENET1K_V1"`` (torchvision's weights API, cached in
        ``$TORCH_HOME``), a state-dict file, or ``None`` for random initialisation.
    freeze : {"none", "body"} or int, default="none"
        ``"none"`` fine-tunes everything (the paper); ``"body"`` trains the new head
        only; ``k`` freezes the first k blocks. Frozen batch-norm layers keep their
        ImageNet statistics.
    head_lr_factor : float, default=20
        The new head learns at ``head_lr_factor * lr`` (MATLAB's
        WeightLearnRateFactor/BiasLearnRateFactor); follows ``lr`` when it is tuned.
    lr : float, default=1e-4
    max_epochs : int, default=6
    batch_size : int, default=10
    **kwargs
        Every parameter of :class:`~sk_animals._base.ImageClassifier` and skorch;
        ``optimizer__momentum`` defaults to 0.9 and ``optimizer__weight_decay`` to 1e-4.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    mean_, std_ : ndarray of shape (3,)
        The normalisation of the backbone's weights.
    module_ : TransferNet
    history_ : skorch.History

    See Also
    --------
    AlexNetTransferClassifier : The paper's preset.
    PretrainedFeatures : Frozen backbone features for cheap searches over a head.

    Examples
    --------
    >>> from sk_animals.datasets import make_image_dataset
    >>> from sk_animals.transfer import TransferClassifier
    >>> X, y = make_image_dataset(n_samples=8, n_classes=2, size=32, random_state=0)
    >>> clf = TransferClassifier("squeezenet1_1", weights=None, max_epochs=1, verbose=0)
    >>> clf.fit(X, y).predict_proba(X).shape
    (8, 2)
    """

    def __init__(
        self,
        backbone="resnet18",
        *,
        weights="DEFAULT",
        freeze="none",
        head_lr_factor=20.0,
        module=TransferNet,
        lr=1e-4,
        max_epochs=6,
        batch_size=10,
        **kwargs,
    ):
        kwargs.setdefault("optimizer__weight_decay", 1e-4)
        super().__init__(module, lr=lr, max_epochs=max_epochs, batch_size=batch_size, **kwargs)
        self.backbone = backbone
        self.weights = weights
        self.freeze = freeze
        self.head_lr_factor = head_lr_factor

    def _normalization(self, X):
        return normalization(self.backbone)

    def _module_kwargs(self):
        return {
            **super()._module_kwargs(),
            "backbone": self.backbone,
            "weights": self.weights,
            "freeze": self.freeze,
        }

    def _param_groups(self):
        """Body and head parameter groups, with the head's learning rate derived from lr."""
        named = [(n, p) for n, p in self.module_.named_parameters() if p.requires_grad]
        prefix = self.module_.head_prefix
        groups = [
            {"params": [p for n, p in named if not n.startswith(prefix)], "lr": self.lr},
            {
                "params": [p for n, p in named if n.startswith(prefix)],
                "lr": self.lr * self.head_lr_factor,
            },
        ]
        return [g for g in groups if g["params"]]

    def initialize_optimizer(self, *args, **kwargs):
        optimizer_kwargs = self.get_params_for("optimizer")
        optimizer_kwargs.pop("param_groups", None)
        optimizer_kwargs.setdefault("lr", self.lr)
        self.optimizer_ = self.optimizer(self._param_groups(), **optimizer_kwargs)
        return self

    def set_params(self, **params):
        super().set_params(**params)
        if self.initialized_ and {"lr", "head_lr_factor"} & set(params):
            for group, derived in zip(
                self.optimizer_.param_groups, self._param_groups(), strict=True
            ):
                group["lr"] = derived["lr"]
        return self


class AlexNetTransferClassifier(TransferClassifier):
    """The paper's transfer learning: ImageNet AlexNet fine-tuned on 227x227 images.

    As MATLAB's AlexNet example the paper followed: every layer up to the last fully
    connected one is kept, that one is replaced by a new layer with as many outputs
    as classes and a learning-rate factor of 20; SGD with momentum 0.9, learning rate
    1e-4, weight decay 1e-4, 6 epochs, mini-batches of 10. Feed it 227x227 images
    (``ImageLoader(size=227)``). All parameters are those of
    :class:`TransferClassifier`, with ``backbone="alexnet"``.

    Examples
    --------
    >>> from sk_animals.transfer import AlexNetTransferClassifier
    >>> clf = AlexNetTransferClassifier()
    >>> clf.backbone, clf.lr, clf.max_epochs, clf.batch_size, clf.head_lr_factor
    ('alexnet', 0.0001, 6, 10, 20.0)
    """

    def __init__(self, backbone="alexnet", **kwargs):
        super().__init__(backbone, **kwargs)


class PretrainedFeatures(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """A frozen pretrained backbone as a transformer: one feature vector per image.

    The backbone's head is removed, so the output is what the head would see (512
    values for resnet18 and squeezenet1_1, 4096 for AlexNet). Put it after an
    :class:`~sk_animals.preprocessing.ImageLoader` in a Pipeline with ``memory=`` so
    that cross-validation and searches over the classifier on top compute the
    features once per fold, not once per candidate.

    Parameters
    ----------
    backbone : str, default="resnet18"
        One of :data:`BACKBONES`.
    weights : str, path-like or None, default="DEFAULT"
        As in :class:`TransferClassifier`.
    batch_size : int, default=64
        Images per forward pass.
    device : str, default="auto"
        ``"auto"`` uses CUDA when available.
    memory : str, joblib.Memory or None, default=None
        Cache the features of each distinct image array on disk (keyed by the images,
        the backbone and the weights' name or path), so that scoring many candidates on
        the same fold extracts its features once. A Pipeline's own ``memory=`` caches
        only the fitting side.

    Attributes
    ----------
    module_ : TransferNet
        The backbone without its head, in eval mode, on the CPU between calls.
    n_features_out_ : int
        Length of each feature vector.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_animals.transfer import PretrainedFeatures
    >>> X = np.zeros((2, 64, 64, 3), np.uint8)
    >>> PretrainedFeatures("squeezenet1_1", weights=None).fit_transform(X).shape
    (2, 512)
    """

    def __init__(
        self, backbone="resnet18", *, weights="DEFAULT", batch_size=64, device="auto", memory=None
    ):
        self.backbone = backbone
        self.weights = weights
        self.batch_size = batch_size
        self.device = device
        self.memory = memory

    def fit(self, X=None, y=None):
        """Load the backbone; nothing is learned from ``X``.

        Parameters
        ----------
        X, y : ignored

        Returns
        -------
        self
        """
        self.module_ = TransferNet(None, self.backbone, self.weights, freeze="body").eval()
        self.mean_, self.std_ = normalization(self.backbone)
        with torch.inference_mode():
            probe = self.module_(torch.zeros(1, 3, 64, 64))
        self.n_features_out_ = probe.flatten(1).shape[1]
        return self

    def transform(self, X):
        """Feature vectors of the images ``X``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, height, width, 3)
            uint8 images, as :class:`~sk_animals.preprocessing.ImageLoader` returns.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features), dtype float32
        """
        check_is_fitted(self, "module_")
        extract = check_memory(self.memory).cache(
            _extract, ignore=["module", "mean", "std", "batch_size", "device"]
        )
        weights = None if self.weights is None else str(self.weights)
        return extract(
            self.backbone,
            weights,
            check_images(X),
            self.module_,
            self.mean_,
            self.std_,
            self.batch_size,
            resolve_device(self.device),
        )

    @property
    def _n_features_out(self):
        return self.n_features_out_


@torch.inference_mode()
def _extract(backbone, weights, X, module, mean, std, batch_size, device):
    """Features of ``X`` in batches; ``backbone``, ``weights`` and ``X`` key the cache."""
    module.to(device)
    try:
        out = [
            module(to_network_input(X[i : i + batch_size], mean, std, device)).flatten(1).cpu()
            for i in range(0, len(X), batch_size)
        ]
    finally:
        module.to("cpu")
    return torch.cat(out).numpy()
