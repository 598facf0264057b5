"""Run a model exported by :func:`~sk_animals.export.export_onnx` without torch.

The images are decoded and resized by :class:`~sk_animals.preprocessing.ImageLoader` with the
rule the file's metadata names, then ONNX Runtime runs the graph (float conversion,
normalisation, the network, test-time flips and softmax are inside it). This module imports
NumPy, Pillow, scikit-learn (through ``preprocessing``) and onnxruntime, never torch.
"""

import importlib
import importlib.util
import json
import math
import numbers
import os
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import make_pipeline
from sklearn.utils.validation import check_is_fitted

from .preprocessing import INTERPOLATIONS, MAX_IMAGE_SIDE, RESIZE_POLICIES, ImageLoader

__all__ = [
    "INPUT",
    "OUTPUT",
    "OnnxClassifier",
    "OnnxMetadata",
    "load_onnx",
    "onnx_metadata",
    "predict_onnx",
]

#: The names of the graph's input (uint8 images, ``(n, height, width, 3)``) and output.
INPUT, OUTPUT = "images", "probabilities"
_INSTALL = "pip install 'sk-animals[onnx]'"


def onnx_installed():
    """Whether onnx and onnxruntime can be imported, found without importing them."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))
    except ValueError:  # None in sys.modules: importing it fails
        return False


def import_optional(name):
    """Import ``name`` (onnx, onnxruntime), or fail in one line that says what to install."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(f"ONNX export and inference need {name}: {_INSTALL}") from exc


@dataclass(frozen=True)
class OnnxMetadata:
    """What an exported file tells its caller, stored as the ONNX ``metadata_props``.

    Attributes
    ----------
    classes : list
        The class labels, in the order of the output's columns.
    input_size : (int, int)
        ``(height, width)`` of the images the graph takes.
    resize, interpolation : str
        The :class:`~sk_animals.preprocessing.ImageLoader` rule that gives those images.
    crop_pct : float
        As in :class:`~sk_animals.preprocessing.ImageLoader`.
    sk_animals_version : str
        The version that exported the file.
    skmodel_sha256 : str or None
        The sha256 of the ``.skmodel`` file exported, or None for an in-memory pipeline.
    """

    classes: list
    input_size: tuple
    resize: str
    interpolation: str
    crop_pct: float
    sk_animals_version: str
    skmodel_sha256: str | None = None

    def to_props(self):
        """The string key-value pairs of ``metadata_props`` (JSON values)."""
        return {k: json.dumps(v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_props(cls, props, name="the model"):
        """The record in ``props``, each value checked; ValueError naming what is wrong."""
        missing = [k for k in ("classes", "input_size", "resize") if k not in props]
        if missing:
            raise ValueError(
                f"{name} is not an ONNX file exported by sk_animals (no {missing[0]!r} in its "
                "metadata)"
            )
        try:
            values = {k: json.loads(props[k]) for k in cls.__dataclass_fields__ if k in props}
            meta = cls(**{**values, "input_size": tuple(values["input_size"])})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} has invalid sk_animals metadata ({exc})") from None
        h, w = meta.input_size
        checks = {
            "classes": isinstance(meta.classes, list) and len(meta.classes) >= 2,
            "input_size": all(isinstance(v, int) and 1 <= v <= MAX_IMAGE_SIDE for v in (h, w)),
            "resize": meta.resize in RESIZE_POLICIES,
            "interpolation": meta.interpolation in INTERPOLATIONS,
            "crop_pct": isinstance(meta.crop_pct, int | float) and 0 < meta.crop_pct <= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"{name} has invalid sk_animals metadata: {bad[0]}")
        if isinstance(meta.crop_pct, float) and not math.isfinite(meta.crop_pct):
            raise ValueError(f"{name} has invalid sk_animals metadata: crop_pct")
        return meta

    def loader(self, **kwargs):
        """The :class:`~sk_animals.preprocessing.ImageLoader` that gives the graph's input."""
        return ImageLoader(
            tuple(self.input_size),
            resize=self.resize,
            interpolation=self.interpolation,
            crop_pct=self.crop_pct,
            **kwargs,
        )


def _open(model):
    """An onnxruntime session of ``model`` (a path, bytes, or a session already) and its
    metadata."""
    if hasattr(model, "get_modelmeta"):
        session, name = model, "the model"
    else:
        ort = import_optional("onnxruntime")
        data = model if isinstance(model, bytes) else os.fspath(model)
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        name = "the model" if isinstance(model, bytes) else repr(os.fspath(model))
    return session, OnnxMetadata.from_props(session.get_modelmeta().custom_metadata_map, name)


class OnnxClassifier(ClassifierMixin, BaseEstimator):
    """An exported model as a scikit-learn classifier of decoded images, without torch.

    It learns nothing: ``fit`` opens the file. Put it after the
    :class:`~sk_animals.preprocessing.ImageLoader` its metadata names, as
    :func:`load_onnx` does, to predict from files.

    Parameters
    ----------
    model : str, path-like, bytes or onnxruntime.InferenceSession
        A file written by :func:`~sk_animals.export.export_onnx`, its bytes, or a session
        of one.
    batch_size : int, default=32
        Images run through the graph at once. onnxruntime keeps the memory its largest
        batch needed: 160 photos at once made ``sk-animals predict`` peak at 2.7 GB
        against 1.1 GB on torch (``benchmarks/bench_predict.py``).

    Attributes
    ----------
    session_ : onnxruntime.InferenceSession
    metadata_ : OnnxMetadata
    classes_ : ndarray of shape (n_classes,)
        The class labels, in the order of the probabilities' columns.
    """

    def __init__(self, model, batch_size=32):
        self.model = model
        self.batch_size = batch_size

    def fit(self, X=None, y=None):
        """Open the model; nothing is learned from ``X`` and ``y``.

        Returns
        -------
        self
        """
        if not isinstance(self.batch_size, numbers.Integral) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        self.session_, self.metadata_ = _open(self.model)
        self.classes_ = np.asarray(self.metadata_.classes)
        return self

    def predict_proba(self, X):
        """Class probabilities of uint8 images ``(n, height, width, 3)`` at the model's size.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), dtype float32
        """
        check_is_fitted(self)
        X = np.ascontiguousarray(X)
        size = tuple(self.metadata_.input_size)
        if X.dtype != np.uint8 or X.ndim != 4 or X.shape[1:] != (*size, 3):
            raise ValueError(
                f"the model takes uint8 images of shape (n, {size[0]}, {size[1]}, 3), got "
                f"{X.dtype} {X.shape}; load them with the ImageLoader of load_onnx"
            )
        step = self.batch_size
        batches = [X[i : i + step] for i in range(0, len(X), step)] or [X]
        return np.concatenate([self.session_.run([OUTPUT], {INPUT: b})[0] for b in batches])

    def predict(self, X):
        """The most probable class of each image.

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        return self.classes_[self.predict_proba(X).argmax(1)]


def load_onnx(model, *, n_jobs=None):
    """An exported model as a pipeline from image files to labels, without torch.

    Parameters
    ----------
    model : str, path-like, bytes or onnxruntime.InferenceSession
        A file written by :func:`~sk_animals.export.export_onnx`, its bytes, or a session
        of one.
    n_jobs : int, default=None
        Threads decoding in parallel, as in ``ImageLoader``.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        The :class:`~sk_animals.preprocessing.ImageLoader` of the file's metadata, then an
        :class:`OnnxClassifier`; ``predict``, ``predict_proba`` and ``classes_`` as a
        pipeline that :func:`sk_animals.load` returns.
    """
    classifier = OnnxClassifier(model).fit()
    return make_pipeline(classifier.metadata_.loader(n_jobs=n_jobs), classifier)


def onnx_metadata(model):
    """The :class:`~sk_animals.deploy.OnnxMetadata` of an exported file.

    Parameters
    ----------
    model : str, path-like or onnxruntime.InferenceSession
        A file written by :func:`~sk_animals.export.export_onnx`, or a session of one.

    Returns
    -------
    OnnxMetadata
    """
    return _open(model)[1]


def predict_onnx(model, images, *, n_jobs=None):
    """Class probabilities of ``images`` from an exported model, without torch.

    Parameters
    ----------
    model : str, path-like or onnxruntime.InferenceSession
        A file written by :func:`~sk_animals.export.export_onnx`, or a session of one
        (pass a session to choose its providers, or to predict many times).
    images : sequence of str, path-like, bytes, PIL.Image.Image or ndarray
        What :meth:`ImageLoader.transform <sk_animals.preprocessing.ImageLoader.transform>`
        takes; decoded and resized by the rule in the file's metadata.
    n_jobs : int, default=None
        Threads decoding in parallel, as in ``ImageLoader``.

    Returns
    -------
    proba : ndarray of shape (n_images, n_classes), dtype float32
        Columns in the order of ``onnx_metadata(model).classes``.

    Raises
    ------
    sk_animals.exceptions.ImageLoadError
        Listing every image that could not be loaded.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sk_animals import ImageLoader, ScratchCNNClassifier, export_onnx
    >>> from sk_animals.deploy import onnx_metadata, predict_onnx
    >>> from sk_animals.datasets import make_image_dataset
    >>> X, y = make_image_dataset(n_samples=16, n_classes=2, size=16, random_state=0)
    >>> clf = ScratchCNNClassifier(width=2, depth=2, max_epochs=1, verbose=0)
    >>> model = make_pipeline(ImageLoader(16), clf).fit(list(X), y)
    >>> path = export_onnx(model, tempfile.mkdtemp() + "/shapes.onnx")
    >>> proba = predict_onnx(path, list(X[:3]))
    >>> proba.shape, onnx_metadata(path).classes
    ((3, 2), ['circle', 'cross'])
    >>> bool(np.abs(proba - model.predict_proba(list(X[:3]))).max() < 1e-4)
    True
    """
    return load_onnx(model, n_jobs=n_jobs).predict_proba(images)
