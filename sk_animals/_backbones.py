"""The pretrained backbones: a table, their weights and the preprocessing the weights expect.

Importing this module does not import torch or torchvision (the command line lists the
backbones in ``--help``); the functions do. Weights carry their preprocessing, as
torchvision's do: the mean and std come from the weights actually chosen.
"""

import os
from dataclasses import dataclass

__all__ = ["BACKBONES", "Backbone", "load_backbone", "resolve_weights", "weights_normalization"]


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


def backbone_spec(backbone):
    """The :class:`Backbone` of a name, or a ValueError listing the names."""
    if backbone not in BACKBONES:
        raise ValueError(
            f"unknown backbone {backbone!r}; choose one of {', '.join(sorted(BACKBONES))}"
        )
    return BACKBONES[backbone]


def resolve_weights(backbone, weights):
    """What ``weights`` means for ``backbone``: a torchvision enum member, a path or None.

    Parameters
    ----------
    backbone : str
        A key of :data:`BACKBONES`.
    weights : torchvision weights enum member, str, path-like or None
        An enum member; its name (``"IMAGENET1K_V1"``) or ``"DEFAULT"``; a
        :class:`pathlib.Path`, or any other string, the path of a state-dict file in
        torchvision's layout; ``None`` for random initialisation.

    Returns
    -------
    weights : torchvision.models.WeightsEnum, str or None
        The enum member, or the path as a string, or None.
    """
    from torchvision.models import WeightsEnum, get_model_weights

    backbone_spec(backbone)
    if weights is None:
        return None
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


def weights_normalization(backbone, weights="DEFAULT"):
    """(mean, std) of the input the weights expect, in [0, 1] units.

    From the chosen weights' ``transforms()``; a state-dict file or no weights uses the
    backbone's default weights' (a state dict in torchvision's layout expects
    torchvision's input).
    """
    import numpy as np
    from torchvision.models import WeightsEnum, get_model_weights

    chosen = resolve_weights(backbone, weights)
    if not isinstance(chosen, WeightsEnum):
        chosen = get_model_weights(backbone).DEFAULT
    transforms = chosen.transforms()
    return np.asarray(transforms.mean), np.asarray(transforms.std)


def load_backbone(backbone, weights="DEFAULT"):
    """A torchvision ``backbone`` with ImageNet ``weights``, its 1000-class head intact.

    Parameters
    ----------
    backbone : str
        A key of :data:`BACKBONES`.
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
    import torchvision

    weights = resolve_weights(backbone, weights)
    if weights is None or isinstance(weights, str):
        model = torchvision.models.get_model(backbone, weights=None)
        if weights is not None:
            try:
                state = torch.load(weights, map_location="cpu", weights_only=True)
                model.load_state_dict(state.get("state_dict", state))
            except Exception as exc:
                reason = (str(exc).splitlines() or [type(exc).__name__])[0]
                raise ValueError(
                    f"{weights!r} is not a state dict of torchvision's {backbone}: {reason}"
                ) from None
        return model
    try:
        return torchvision.models.get_model(backbone, weights=weights)
    except (URLError, OSError) as exc:
        target = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
        raise OSError(
            f"could not download the {backbone} weights ({exc}). Offline, download "
            f"{weights.url} elsewhere and put it at {target} (set TORCH_HOME to move the "
            "cache), or pass weights= the path of a state-dict file"
        ) from exc
