"""Class-activation maps: where in an image a fitted classifier found the evidence for a class.

pytorch-grad-cam computes the maps (:data:`METHODS`); this module gives it what it needs from
each model of the package: the network from a normalised batch to logits (a classifier's
``module_``; for the probe, the frozen backbone followed by a linear layer that holds the
probe's weights), the model's own normalisation, and the layers to explain, found from each
network's own description as ``freeze`` finds its blocks
(:func:`~sk_animals.explanations.stages`). :func:`~sk_animals.explanations.overlay`
colours a map over its image; :func:`write_explanations` writes the overlays and the index
page of ``sk-animals explain``.

torch, scikit-learn, matplotlib and pytorch-grad-cam are imported by the functions that need
them: the command line's ``--help`` reads :data:`METHODS` from here.
"""

import importlib
import importlib.util
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "explain",
    "overlay",
    "overlay_png",
    "stages",
    "write_explanations",
]

#: The methods of pytorch-grad-cam that :func:`explain` offers, by the name it takes.
METHODS = {
    "layercam": "LayerCAM",
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "hirescam": "HiResCAM",
    "xgradcam": "XGradCAM",
    "eigencam": "EigenCAM",
}
#: :func:`explain`'s method, chosen by the localisation tests of ``tests/test_explanations.py``.
DEFAULT_METHOD = "layercam"
_INSTALL = "pip install 'sk-animals[explain]'"


def _cam_installed():
    """Whether pytorch-grad-cam can be imported, found without importing it."""
    try:
        return importlib.util.find_spec("pytorch_grad_cam") is not None
    except ValueError:  # None in sys.modules: importing it fails
        return False


def _cam_library():
    """pytorch-grad-cam, or an ImportError in one line that says what to install."""
    try:
        return importlib.import_module("pytorch_grad_cam")
    except ImportError as exc:
        raise ImportError(f"class-activation maps need pytorch-grad-cam: {_INSTALL}") from exc


@dataclass
class _Network:
    """What a fitted model's maps are computed from."""

    module: object  #: torch module: a normalised NCHW batch to logits
    prefix: str  #: what the names of ``stages()`` lack of the names in ``module``
    candidates: list  #: (name in ``module``, channels or None): the layers a map may come from
    mean: object
    std: object
    device: str
    classes: object
    check: object  #: validates a batch of images for the model
    predict_proba: object  #: the model's own, on checked images
    size: tuple  #: the input size the model records, or ()
    park: str = ""  #: where the module waits between calls (the probe's CPU), or ""


def _network(model):
    """The :class:`_Network` of a fitted classifier, or of steps after the loader."""
    from sklearn.pipeline import Pipeline

    from ._base import ImageClassifier
    from ._tensors import check_images
    from .transfer import LinearProbe, PretrainedFeatures

    steps = [s for _, s in model.steps] if isinstance(model, Pipeline) else [model]
    if len(steps) == 1 and isinstance(steps[0], ImageClassifier):
        clf = steps[0]
        clf.check_is_fitted()
        return _Network(
            module=clf.module_,
            prefix="",
            candidates=_candidates(clf.module_),
            mean=clf.mean_,
            std=clf.std_,
            device=clf.device,
            classes=clf.classes_,
            check=clf._check_predict_images,
            predict_proba=clf.predict_proba,
            size=tuple(clf.image_size_),
        )
    if [type(s) for s in steps] == [PretrainedFeatures, LinearProbe]:
        return _probe_network(*steps, check_images, model.predict_proba)
    raise ValueError(
        "explain takes a fitted ScratchCNNClassifier or TransferClassifier, or "
        "PretrainedFeatures followed by LinearProbe, each after an optional ImageLoader; got "
        + " -> ".join(type(s).__name__ for s in steps)
    )


def _probe_network(features, probe, check, predict_proba):
    """The frozen backbone followed by a linear layer that holds the probe's weights."""
    import numpy as np
    import torch
    from sklearn.utils.validation import check_is_fitted
    from torch import nn

    from ._tensors import resolve_device

    check_is_fitted(features, "module_")
    check_is_fitted(probe)
    # centred logits: the same probabilities, and a binary probe's first class, whose row of
    # coef_ is zero, gets the opposite of the second class's evidence instead of none
    coef, intercept = np.asarray(probe.coef_), np.asarray(probe.intercept_)
    with torch.random.fork_rng(devices=[]):  # its initial weights are replaced: the
        head = nn.Linear(coef.shape[1], coef.shape[0])  # global RNG is left as it was
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(coef - coef.mean(0), dtype=torch.float32))
        head.bias.copy_(torch.as_tensor(intercept - intercept.mean(), dtype=torch.float32))
    return _Network(
        module=nn.Sequential(features.module_, nn.Flatten(), head),
        prefix="0.",
        candidates=[(f"0.{name}", chs) for name, chs in _candidates(features.module_)],
        mean=features.mean_,
        std=features.std_,
        device=resolve_device(features.device),
        classes=probe.classes_,
        check=check,
        predict_proba=predict_proba,
        size=(),
        park="cpu",
    )


def _candidates(module):
    """(dotted name, channels or None) of the layers a map may come from, input to output.

    From each network's own description, as ``freeze`` counts its blocks: a timm model's
    ``feature_info`` (each stage's output and its channels); a torchvision model's feature
    blocks (:func:`~sk_animals._backbones.feature_blocks`); the scratch networks' ``blocks``;
    any other network's convolutions.
    """
    from torch import nn

    from ._backbones import feature_blocks
    from ._networks import TransferNet

    if isinstance(module, TransferNet):
        info = getattr(module.model, "feature_info", None)
        if isinstance(info, list) and info and isinstance(info[0], dict):  # timm's
            return [(f"model.{f['module']}", f.get("num_chs")) for f in info]
        path, blocks = feature_blocks(module.model, module.head)
        path = f"model.{path}." if path else "model."
        return [(path + name, None) for name, _ in blocks]
    if isinstance(getattr(module, "blocks", None), nn.Sequential):
        return [(f"blocks.{name}", None) for name, _ in module.blocks.named_children()]
    return [(name, None) for name, m in module.named_modules() if isinstance(m, nn.Conv2d)]


@dataclass(frozen=True)
class _Stage:
    """A layer whose output is a map (a stage: the last candidate at its resolution)."""

    name: str  #: dotted name in the network
    stride: int  #: input rows over map rows
    layout: str  #: "nchw", "nhwc" or "tokens"
    shape: tuple  #: the output's shape without the batch
    grid: tuple  #: (rows, columns) of its map


def _maps(net, size, channels):
    """The :class:`_Stage` of each layer named in ``channels`` (name to channels or None)
    whose output is a map, in their order.

    One forward pass of a blank image records each layer's output shape.
    """
    import torch

    from ._tensors import like_weights

    modules = dict(net.module.named_modules())
    shapes = {}

    def record(name):
        def hook(module, args, out):
            shapes.setdefault(name, tuple(getattr(out, "shape", ())))

        return hook

    hooks = [modules[name].register_forward_hook(record(name)) for name in channels]
    device = next(net.module.parameters()).device
    try:
        with torch.no_grad(), _prepared(net.module):
            net.module(like_weights(torch.zeros(1, 3, *size, device=device), net.module))
    finally:
        for hook in hooks:
            hook.remove()
    found = []
    for name, chs in channels.items():
        layout = _layout(shapes.get(name, ()), size, chs)
        grid = _grid(shapes[name], layout, size) if layout else (1, 1)
        if grid[0] * grid[1] >= 2:  # else pooled (no map left), or no map at all
            found.append(_Stage(name, round(size[0] / grid[0]), layout, shapes[name][1:], grid))
    return found


def _stages(net, size):
    """The :class:`_Stage` of each resolution among ``net``'s candidates, input to output:
    the last candidate at that resolution."""
    found, same = [], []  # same: the candidates at the last stage's resolution
    for stage in _maps(net, size, dict(net.candidates)):
        same = [*same, stage] if found and found[-1].stride == stage.stride else [stage]
        found[len(found) - (len(same) > 1) :] = [stage]
    if found and found[-1].layout == "tokens" and len(same) > 1:
        # a vision transformer's last block passes its patch tokens on to the class token
        # only through its attention: the patch tokens of its output reach no class
        found[-1] = same[-2]
    return found


def _layout(shape, size, channels):
    """How a layer's output holds its map: "nchw", "nhwc", "tokens", or None (no map)."""
    if len(shape) == 3:
        return "tokens"  # (n, tokens, channels): a vision transformer's
    if len(shape) != 4:
        return None
    if channels is not None:
        return (
            {shape[1]: "nchw", shape[3]: "nhwc"}.get(channels) if shape[1] != shape[3] else "nchw"
        )
    if channels is not None:
        return "nchw"
    h, w = size
    like_input = abs(shape[2] * w - shape[3] * h) <= max(h, w)
    return "nchw" if like_input or shape[1] == 1 else "nhwc"


def _grid(shape, layout, size):
    """(rows, columns) of a layer's map."""
    if layout == "nchw":
        return shape[2], shape[3]
    if layout == "nhwc":
        return shape[1], shape[2]
    h, w = size
    for prefix in range(9):  # class, distillation and register tokens come first
        n = shape[1] - prefix
        rows = round((n * h / w) ** 0.5)
        if rows and rows * (n // rows) == n:
            return rows, n // rows
    return 1, shape[1]


class _ToMaps:
    """pytorch-grad-cam's ``reshape_transform``: each layer's output as (n, c, rows, cols)."""

    def __init__(self, stages):
        self.layouts = {s.shape: s for s in stages}

    def __call__(self, x):
        stage = self.layouts.get(tuple(x.shape[1:]))
        if stage is None or stage.layout == "nchw":
            return x
        if stage.layout == "nhwc":
            return x.permute(0, 3, 1, 2)
        rows, cols = stage.grid
        x = x[:, x.shape[1] - rows * cols :]  # the patch tokens
        return x.reshape(x.shape[0], rows, cols, x.shape[2]).permute(0, 3, 1, 2)


@contextmanager
def _prepared(module):
    """Eval mode, parameters without gradients, in-place activations off; each restored
    on exit. (An in-place activation would change a layer's saved output.)"""
    modes = [(m, m.training) for m in module.modules()]
    grads = [(p, p.requires_grad) for p in module.parameters()]
    inplace = [m for m in module.modules() if getattr(m, "inplace", None) is True]
    try:
        module.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        for m in inplace:
            m.inplace = False
        yield
    finally:
        for m in inplace:
            m.inplace = True
        for p, flag in grads:
            p.requires_grad_(flag)
        for m, mode in modes:
            m.training = mode


def _target_indices(net, target, images):
    """The class index to explain for each image: ``target``'s, or the predicted one."""
    import numpy as np

    n = len(images)
    if target is None:
        return net.predict_proba(images).argmax(1)
    labels = np.asarray(target, dtype=object)
    labels = np.full(n, labels.item(), object) if labels.ndim == 0 else labels
    if labels.shape != (n,):
        raise ValueError(
            f"target has {len(labels)} labels for {n} images; give one label, or one per image"
        )
    index = {c: i for i, c in enumerate(np.asarray(net.classes).tolist())}
    unknown = [t for t in labels.tolist() if t not in index]
    if unknown:
        raise ValueError(
            f"target {unknown[0]!r} is not a class of the model; its classes are "
            f"{np.asarray(net.classes).tolist()}"
        )
    return np.array([index[t] for t in labels.tolist()])


def _named(net, layers):
    """The full names of the layers ``layers`` names, or None for a choice of stages."""
    if isinstance(layers, int) and not isinstance(layers, bool):
        if layers < 1:
            raise ValueError(f"layers={layers}: give at least 1 (the last stage)")
        return None
    if layers in ("auto", "last"):
        return None
    names = [layers] if isinstance(layers, str) else list(layers)
    modules = dict(net.module.named_modules())
    for name in names:
        if not name or net.prefix + str(name) not in modules:
            raise ValueError(
                f"layers: the network has no layer {name!r}; stages() lists its stages"
            )
    return [net.prefix + str(name) for name in names]


def _chosen(net, size, layers):
    """The stages, or named layers, that ``layers`` asks for."""
    names = _named(net, layers)
    if names is None:
        found = _stages(net, size)
        if layers == "auto":
            return found
        return found[-1:] if layers == "last" else found[-layers:]
    chosen = _maps(net, size, dict.fromkeys(names))
    if len(chosen) < len(names):
        missing = sorted(set(names) - {s.name for s in chosen})[0][len(net.prefix) :]
        raise ValueError(f"layers: {missing!r} gives no map (its output is not a grid)")
    return chosen


def stages(model, size=None):
    """The stages of a fitted model's network: the last layer at each resolution.

    The layers :func:`~sk_animals.explain` may combine, found from each network's own description:
    the outputs of a timm model's ``feature_info``; the feature blocks of a torchvision
    model (those ``freeze`` counts); the ``blocks`` of the scratch networks. Of these, the
    last at each resolution (found by one pass of a blank image) is its stage; layers
    whose output is pooled to one value per channel are left out.

    Parameters
    ----------
    model : fitted Pipeline or classifier
        As :func:`~sk_animals.explain` takes it.
    size : int or (int, int), default=None
        Input height and width; by default the model's (its ImageLoader's, or the
        classifier's ``image_size_``).

    Returns
    -------
    stages : list of (str, int)
        Each stage's dotted name in the network (a classifier's ``module_``, the
        ``module_`` of a probe's PretrainedFeatures) and its stride (input height over the
        map's), input to output.

    Examples
    --------
    >>> from sk_animals import ScratchCNNClassifier
    >>> from sk_animals.datasets import make_image_dataset
    >>> X, y = make_image_dataset(n_samples=8, n_classes=2, size=32, random_state=0)
    >>> clf = ScratchCNNClassifier(max_epochs=1, verbose=0).fit(X, y)
    >>> stages(clf)
    [('blocks.0', 2), ('blocks.1', 4), ('blocks.2', 8), ('blocks.4', 16)]
    """
    from .preprocessing import split_loader

    size = _model_size(model) if size is None else size
    _, rest = split_loader(model)
    net = _network(rest)
    size = (size, size) if isinstance(size, int) else tuple(size)
    found = _on_device(net, lambda: _stages(net, size))
    return [(s.name[len(net.prefix) :], s.stride) for s in found]


def _model_size(model):
    from .preprocessing import _as_size, split_loader

    loader, rest = split_loader(model)
    if loader is not None:
        return _as_size(loader.size)
    net = _network(rest)
    if not net.size:
        raise ValueError("give size=: the model records no input size")
    return net.size


def _on_device(net, work):
    """``work()`` with the network on its device (the probe's returns to the CPU after)."""
    if not net.park:
        return work()
    net.module.to(net.device)
    try:
        return work()
    finally:
        net.module.to(net.park)


def explain(model, X, target=None, *, method=DEFAULT_METHOD, layers="auto", batch_size=32):
    """Class-activation maps: where in each image a fitted model found its evidence.

    For each image, a heatmap of the evidence for its predicted class (or ``target``), at
    the size the network saw the image, each scaled to [0, 1] (1: the most). The maps are
    computed by pytorch-grad-cam's ``method`` on the model's own network and
    normalisation, at full precision and without test-time flips, from the layers
    ``layers`` names (see :func:`~sk_animals.explanations.stages`); maps of several layers
    are averaged.

    Parameters
    ----------
    model : fitted Pipeline or classifier
        A :class:`~sk_animals.scratch.ScratchCNNClassifier` or
        :class:`~sk_animals.transfer.TransferClassifier` (any torchvision or timm backbone),
        or :class:`~sk_animals.transfer.PretrainedFeatures` followed by
        :class:`~sk_animals.transfer.LinearProbe` (the probe: its backbone, weighted by
        the linear head), each after an optional
        :class:`~sk_animals.preprocessing.ImageLoader`; as :func:`sk_animals.load`
        returns it.
    X : list of image files, or ndarray of shape (n_samples, height, width, 3)
        What ``model.predict`` takes: files (or images of any size) for a pipeline that
        starts with an ImageLoader; uint8 images at the network's size otherwise.
    target : label, array-like of shape (n_samples,) or None, default=None
        The class whose evidence is shown, one for all images or one per image; None: the
        class ``model.predict`` gives each image.
    method : str, default="layercam"
        A name of :data:`~sk_animals.explanations.METHODS`: ``"layercam"`` (LayerCAM,
        Jiang et al. 2021: each position's activations weighted by their own positive
        gradients), ``"gradcam"`` (Grad-CAM, Selvaraju et al. 2017: by each channel's
        mean gradient), ``"gradcam++"``, ``"hirescam"``, ``"xgradcam"``, or
        ``"eigencam"`` (the activations' first principal component; the same for every
        class).
    layers : "auto", "last", int or list of str, default="auto"
        ``"auto"``: every stage of :func:`~sk_animals.explanations.stages`, their maps
        averaged, so that early, fine stages place the evidence that later, coarse ones
        recognise (the paper's CNN at 64 px ends in 4x4 maps). ``"last"``: the last stage
        only (classic Grad-CAM's layer). An int ``k``: the last ``k`` stages. Or the dotted
        names of layers of the network.
    batch_size : int, default=32
        Images per forward and backward pass.

    Returns
    -------
    maps : ndarray of shape (n_samples, height, width), dtype float32
        In [0, 1]; a map with no positive evidence is all zeros.

    Raises
    ------
    ImportError
        pytorch-grad-cam is not installed (``pip install 'sk-animals[explain]'``).
    ValueError
        A model, method, layer or target that cannot be explained, in one line.

    See Also
    --------
    sk_animals.explanations.overlay : A map coloured over its image.
    sk_animals.prediction.explain_files : Maps for many files, a batch at a time.

    Notes
    -----
    A probe's logits are centred (the mean over classes subtracted; the probabilities are
    the same), so that the first class of a binary probe, whose row of ``coef_`` is zero,
    shows the opposite of the second class's evidence rather than none.

    Examples
    --------
    >>> from sk_animals import ScratchCNNClassifier, explain
    >>> from sk_animals.datasets import make_image_dataset
    >>> X, y = make_image_dataset(n_samples=16, n_classes=2, size=32, random_state=0)
    >>> clf = ScratchCNNClassifier(max_epochs=1, verbose=0, random_state=0).fit(X, y)
    >>> maps = explain(clf, X[:3])
    >>> maps.shape, bool(maps.min() >= 0), bool(maps.max() <= 1)
    ((3, 32, 32), True, True)
    >>> explain(clf, X[:3], target="circle").shape
    (3, 32, 32)
    """
    cam_library = _cam_library()  # before any work: say what to install
    import numpy as np

    from ._tensors import is_channels_last, to_network_input
    from .preprocessing import split_loader

    if method not in METHODS:
        raise ValueError(f"method={method!r}: choose one of {', '.join(METHODS)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
    loader, rest = split_loader(model)
    net = _network(rest)
    _named(net, layers)  # a layer the network lacks, before the images are decoded
    images = net.check(loader.transform(X) if loader is not None else X)
    targets = _target_indices(net, target, images)
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    def compute():
        chosen = _chosen(net, images.shape[1:3], layers)
        modules = dict(net.module.named_modules())
        maps = []
        with _prepared(net.module):  # the CAM sets eval mode: undone with the rest
            cam = getattr(cam_library, METHODS[method])(
                model=net.module,
                target_layers=[modules[s.name] for s in chosen],
                reshape_transform=_ToMaps(chosen),
            )
            try:
                order = is_channels_last(net.module)  # the backward runs in one order
                for i in range(0, len(images), batch_size):
                    batch = images[i : i + batch_size]
                    x = to_network_input(batch, net.mean, net.std, net.device, order)
                    wanted = [ClassifierOutputTarget(int(k)) for k in targets[i : i + batch_size]]
                    maps.append(cam(x.requires_grad_(True), wanted))
            finally:
                cam.activations_and_grads.release()  # its hooks leave the network
        return np.concatenate(maps)

    return np.clip(_on_device(net, compute), 0, 1).astype(np.float32)


def overlay(image, heatmap, *, alpha=0.5, colormap="jet"):
    """``image`` with ``heatmap`` coloured over it: float RGB in [0, 1], at the image's size.

    Parameters
    ----------
    image : ndarray of shape (height, width, 3)
        uint8, or float in [0, 1].
    heatmap : ndarray of shape (rows, cols)
        In [0, 1], e.g. one of :func:`~sk_animals.explain`'s maps; resized (bilinear) to
        the image's size when it differs.
    alpha : float, default=0.5
        Weight of the coloured map.
    colormap : str, default="jet"
        A matplotlib colormap.

    Returns
    -------
    overlay : ndarray of shape (height, width, 3), dtype float64

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((40, 60, 3), np.uint8)
    >>> overlay(image, np.eye(8)).shape
    (40, 60, 3)
    """
    import numpy as np
    from matplotlib import colormaps
    from PIL import Image

    image = np.asarray(image)
    image = image / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)
    h, w = image.shape[:2]
    heat = np.asarray(heatmap, np.float32)
    if heat.shape != (h, w):
        heat = np.asarray(Image.fromarray(heat, "F").resize((w, h), Image.Resampling.BILINEAR))
    colour = colormaps[colormap](np.clip(np.nan_to_num(heat), 0, 1))[..., :3]
    return np.clip((1 - alpha) * image + alpha * colour, 0, 1)


def overlay_png(image, heatmap, title):
    """PNG bytes of a figure: ``image`` beside its ``heatmap`` coloured over it
    (:func:`~sk_animals.explanations.overlay`), and ``title`` above them (as text: no
    mathtext, control characters escaped)."""
    import io

    from matplotlib.figure import Figure  # no pyplot, no backend switch

    from ._text import terminal_text

    fig = Figure(figsize=(5.2, 2.9), layout="constrained")
    left, right = fig.subplots(1, 2)
    for ax, picture in ((left, image), (right, overlay(image, heatmap))):
        ax.imshow(picture)
        ax.axis("off")
    fig.suptitle(terminal_text(title), parse_math=False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _file_name(number, path):
    """``00001-<stem>.png``: the row's number, then the file's stem in safe characters."""
    import re
    from pathlib import PurePath

    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePath(str(path)).stem).strip("._")[:40]
    return f"{number:05d}-{stem or 'image'}.png"


def _index_page(rows, total, interrupted):
    """The HTML index of ``rows`` (file, PNG name or None, label, probability, error)."""
    from html import escape

    from ._text import terminal_text

    def cell(text):
        return f"<td>{escape(terminal_text(text))}</td>"

    lines = []
    for number, (path, png, label, probability, error) in enumerate(rows, 1):
        picture = (
            f'<td><a href="{png}"><img src="{png}" alt="overlay {number}" width="260"></a></td>'
            if png
            else "<td></td>"
        )
        result = cell(label) + f"<td>{probability:.3f}</td>" if png else cell("") + "<td></td>"
        lines.append(f"<tr><td>{number}</td>{picture}{cell(path)}{result}{cell(error)}</tr>")
    status = (
        f"interrupted: {len(rows)} of {total} files done" if interrupted else f"{len(rows)} files"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>sk-animals explain</title><style>body{font-family:sans-serif}"
        "td,th{padding:4px 8px;text-align:left;vertical-align:middle}"
        "tr:nth-child(even){background:#f4f4f4}</style></head><body>"
        f"<h1>Class-activation maps</h1><p>{escape(status)}; each image as the network saw "
        "it, and where it found the evidence for the predicted class (red: most)</p>"
        "<table><tr><th>#</th><th>overlay</th><th>file</th><th>predicted</th>"
        "<th>probability</th><th>error</th></tr>\n"
        + "\n".join(lines)
        + "\n</table></body></html>\n"
    )


def write_explanations(rows, classes, out, *, total=None):
    """Write an overlay PNG per row of :func:`~sk_animals.prediction.explain_files` and an
    ``index.html`` that lists them, into the folder ``out``.

    Each PNG (:func:`~sk_animals.explanations.overlay_png`) shows the image the network saw
    beside its heatmap, titled with the predicted class and its probability; a file that
    could not be read is a row of the index with its error. Every file is written
    atomically; after Ctrl-C the index lists the files done so far, and the interrupt goes
    on.

    Parameters
    ----------
    rows : iterable of (str, ndarray or None, ndarray or None, ndarray or None, str)
        ``(path, image, proba, heatmap, error)``.
    classes : sequence
        The class labels, in the order of ``proba``.
    out : str or path-like
        The folder; created if missing.
    total : int, default=None
        How many rows there are, for the index of an interrupted run.

    Returns
    -------
    counts : tuple of (int, int)
        Files explained and files that could not be read.
    """
    from pathlib import Path

    from ._files import write_bytes, write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    done, interrupted = [], True
    try:
        for path, image, proba, heatmap, error in rows:
            if image is None:
                done.append((path, None, "", 0.0, error))
                continue
            k = int(proba.argmax())
            label, probability = str(classes[k]), float(proba[k])
            png = _file_name(len(done) + 1, path)
            write_bytes(out / png, overlay_png(image, heatmap, f"{label}  {probability:.1%}"))
            done.append((path, png, label, probability, ""))
        interrupted = False
    finally:
        write_text(out / "index.html", _index_page(done, total or len(done), interrupted))
    failed = sum(png is None for _, png, *_ in done)
    return len(done) - failed, failed
