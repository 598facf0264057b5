"""Export a fitted pipeline to one ONNX file with its preprocessing inside the graph.

The graph takes what a deployment has after decoding and resizing, uint8 images
``(n, height, width, 3)`` at the model's size, and does the rest as ``predict_proba`` does:
float conversion and normalisation (``_tensors.to_network_input``), the network, test-time
flips where the classifier averages them (its own ``infer``), softmax. The loader's rule
travels in the file's metadata (:class:`~sk_animals.deploy.OnnxMetadata`); run the file
without torch with :func:`~sk_animals.deploy.predict_onnx`.
"""

import os

import numpy as np
import torch
from sklearn.pipeline import Pipeline
from torch import nn

from ._base import ImageClassifier
from ._files import file_sha256, write_bytes
from ._onnxgraph import TOLERANCE, _Features, _trace
from ._version import __version__
from .deploy import INPUT, OUTPUT, OnnxMetadata, import_optional
from .persistence import load
from .preprocessing import ImageLoader, _as_size
from .transfer import LinearProbe, PretrainedFeatures

__all__ = ["TOLERANCE", "export_onnx"]

_KNOWN = (
    "ImageLoader followed by a ScratchCNNClassifier or TransferClassifier, or by "
    "PretrainedFeatures and LinearProbe"
)


class _Classifier(nn.Module):
    """uint8 NHWC images to probabilities through the classifier's own ``infer``."""

    def __init__(self, clf):
        super().__init__()
        self.network = clf.module_  # registered, so that its weights are the graph's
        self.clf = clf
        self.nonlinearity = clf._get_predict_nonlinearity()

    def forward(self, images):
        return self.nonlinearity(self.clf.infer(images))


class _Probe(_Features):
    """uint8 NHWC images to probabilities: frozen features, then the probe's logits."""

    def __init__(self, features, probe):
        super().__init__(features.module_, features.mean_, features.std_)
        for name, value in [("coef", probe.coef_), ("intercept", probe.intercept_)]:
            self.register_buffer(name, torch.as_tensor(np.asarray(value), dtype=torch.float32))

    def forward(self, images):
        return torch.softmax(super().forward(images) @ self.coef.T + self.intercept, dim=1)


def _graph_module(model):
    """The nn.Module that the graph is traced from, and the pipeline's classes."""
    if not isinstance(model, Pipeline) or not isinstance(model.steps[0][1], ImageLoader):
        raise ValueError(
            f"export needs a fitted Pipeline whose first step is an ImageLoader, got a "
            f"{type(model).__name__}: the loader's resize rule goes into the file"
        )
    rest = model.steps[1:]
    kinds = [type(step) for _, step in rest]
    if len(rest) == 1 and isinstance(rest[0][1], ImageClassifier):
        name, clf = rest[0]
        clf.check_is_fitted()
        if clf.precision_ != "fp32":
            raise ValueError(
                f"cannot export step {name!r}: it predicts in {clf.precision_} "
                f"(precision_={clf.precision_!r}), and the ONNX graph computes in fp32"
            )
        if torch.device(clf.device).type != "cpu":
            raise ValueError(
                f"cannot export step {name!r} from device {clf.device!r}: export a model "
                "on the CPU (sk_animals.load(path, device='cpu'))"
            )
        if _as_size(model.steps[0][1].size) != tuple(clf.image_size_):
            raise ValueError(
                f"cannot export: the ImageLoader's size {model.steps[0][1].size!r} is not "
                f"the {clf.image_size_} that step {name!r} was fitted on"
            )
        return _Classifier(clf), clf.classes_
    if kinds == [PretrainedFeatures, LinearProbe]:
        (_, features), (_, probe) = rest
        probe_features = probe.n_features_in_
        if probe_features != features.n_features_out_:
            raise ValueError(
                f"cannot export: the probe takes {probe_features} features, the backbone "
                f"gives {features.n_features_out_}"
            )
        return _Probe(features, probe), probe.classes_
    for name, step in rest:
        if not isinstance(step, ImageClassifier | PretrainedFeatures | LinearProbe):
            raise ValueError(f"cannot export step {name!r} ({type(step).__name__}): {_KNOWN}")
    raise ValueError(f"cannot export steps {[n for n, _ in rest]}: ONNX export knows {_KNOWN}")


def _check_parity(data, model, size):
    """Refuse a graph whose probabilities differ from ``predict_proba`` by more than
    ``TOLERANCE`` on a few random images (3: not the traced batch of 2)."""
    ort = import_optional("onnxruntime")
    images = np.random.default_rng(0).integers(0, 256, (3, *size, 3), dtype=np.uint8)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT], {INPUT: images})[0]
    want = model[1:].predict_proba(images)
    gap = float(np.abs(got - want).max())
    if not gap <= TOLERANCE:
        raise ValueError(
            f"cannot export exactly: the graph's probabilities differ from predict_proba by "
            f"{gap:.2g} (more than {TOLERANCE:g}); nothing was written"
        )
    return gap


def onnx_bytes(model, *, skmodel_sha256=None):
    """The exported file's bytes (see :func:`export_onnx`); ``model`` a fitted pipeline."""
    onnx = import_optional("onnx")
    import_optional("onnxruntime")  # the parity check's, before any work
    module, classes = _graph_module(model)
    loader = model.steps[0][1]
    size = _as_size(loader.size)
    training = module.network.training
    module.eval()  # the wrapper too: the exporter restores the mode it found, recursively
    try:
        graph = onnx.load_from_string(_trace(module, size))
        meta = OnnxMetadata(
            classes=np.asarray(classes).tolist(),
            input_size=size,
            resize=loader.resize,
            interpolation=loader.interpolation,
            crop_pct=float(loader.crop_pct),
            sk_animals_version=__version__,
            skmodel_sha256=skmodel_sha256,
        )
        for key, value in meta.to_props().items():
            graph.metadata_props.add(key=key, value=value)
        data = graph.SerializeToString()
        _check_parity(data, model, size)
    finally:
        module.network.train(training)
    return data


def export_onnx(model, path):
    """Write a fitted pipeline as one ONNX file, its preprocessing inside the graph.

    The graph's input ``images`` is uint8 ``(n, height, width, 3)`` RGB at the model's size
    (any ``n``); its output ``probabilities`` is ``(n, n_classes)``, equal to
    ``predict_proba`` within ``TOLERANCE`` (checked on random images before the file
    is written). Float conversion, the weights' normalisation, the network, test-time
    flips (where the classifier's ``tta`` is on) and softmax are inside. The file's
    ``metadata_props`` (:class:`~sk_animals.deploy.OnnxMetadata`) hold the class names
    in order, the input size, the loader's ``resize``, ``interpolation`` and ``crop_pct``,
    the sk_animals version and, exported from a file, that file's sha256.

    Parameters
    ----------
    model : Pipeline, str or path-like
        A fitted Pipeline: an :class:`~sk_animals.preprocessing.ImageLoader`, then a
        :class:`~sk_animals.scratch.ScratchCNNClassifier` or
        :class:`~sk_animals.transfer.TransferClassifier`, or
        :class:`~sk_animals.transfer.PretrainedFeatures` and
        :class:`~sk_animals.transfer.LinearProbe`; or the path of a ``.skmodel`` file of
        one (loaded on the CPU with :func:`sk_animals.load`).
    path : str or path-like
        The ``.onnx`` file to write (atomically; one self-contained file).

    Returns
    -------
    path : str or path-like
        ``path``, as given.

    Raises
    ------
    ValueError
        What cannot be exported exactly, in one line naming the step or option: another
        pipeline, a classifier that predicts in bf16 or fp16, a layer the exporter does
        not know, or a graph that disagrees with ``predict_proba``.
    ImportError
        onnx or onnxruntime is not installed (``pip install 'sk-animals[onnx]'``).

    See Also
    --------
    sk_animals.deploy.predict_onnx : Run the file without torch.

    Examples
    --------
    >>> import tempfile
    >>> import onnxruntime as ort
    >>> from sklearn.pipeline import make_pipeline
    >>> from sk_animals import ImageLoader, ScratchCNNClassifier, export_onnx
    >>> from sk_animals.datasets import make_image_dataset
    >>> X, y = make_image_dataset(n_samples=16, n_classes=2, size=16, random_state=0)
    >>> clf = ScratchCNNClassifier(width=2, depth=2, max_epochs=1, tta=True, verbose=0)
    >>> model = make_pipeline(ImageLoader(16), clf).fit(list(X), y)
    >>> path = export_onnx(model, tempfile.mkdtemp() + "/shapes.onnx")
    >>> session = ort.InferenceSession(path)
    >>> session.run(None, {"images": X[:5]})[0].shape
    (5, 2)
    >>> session.get_modelmeta().custom_metadata_map["classes"]
    '["circle", "cross"]'
    """
    sha = None
    if isinstance(model, str | os.PathLike):
        for name in ("onnx", "onnxruntime"):  # before loading: a missing package first
            import_optional(name)
        sha = file_sha256(model) if os.path.isfile(model) else None
        model = load(model, device="cpu")
    write_bytes(path, onnx_bytes(model, skmodel_sha256=sha))
    return path
