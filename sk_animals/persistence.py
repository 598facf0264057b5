"""Save and load fitted models without pickle: safetensors weights plus a JSON description.

A model file (suffix ``.skmodel`` by convention) is one safetensors file. Its tensors are the
state dict of each step's network (``<step>.module_.<key>``) and its normalisation
(``<step>.mean_``, ``<step>.std_``, ``<step>.class_weight_``); its string metadata holds, under
``"sk_animals"``, a JSON document with everything else needed to rebuild the fitted estimator or
Pipeline: each step's class and parameters, the classes, the image size, the format version and
the versions of sk_animals, torch, skorch, scikit-learn and safetensors that wrote it.

Loading reads that JSON and the tensors only: nothing is unpickled, ``torch.load`` is never
called and no pretrained weights are read or downloaded. Estimator classes, and the classes that
parameters name, are rebuilt from an allow-list.
"""

import importlib
import json
import os
import warnings
from enum import Enum
from importlib.metadata import version

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from sklearn.pipeline import Pipeline

from ._files import atomic_path
from ._networks import PaperCNN, ResidualCNN, TransferNet
from ._version import __version__
from .preprocessing import ImageLoader
from .scratch import ScratchCNNClassifier
from .transfer import (
    AlexNetTransferClassifier,
    LinearProbe,
    PretrainedFeatures,
    TransferClassifier,
)

__all__ = ["FORMAT_VERSION", "SUFFIX", "file_versions", "load", "save", "unsavable"]

#: Bumped when a file of this version could not be read by older code. Version 2 names
#: sk_animals' classes by their registry name; version 1 files (dotted module paths) load.
FORMAT_VERSION = 2
SUFFIX = ".skmodel"
_KEY = "sk_animals"  # the safetensors metadata entry that holds the JSON

#: The classes a file may name, by stable registry name: where a class lives may change,
#: its name in files does not. Each estimator returns and restores its own fitted state
#: (``_fitted_state`` / ``_restore_fitted_state``); this module only stores it.
REGISTRY = {
    cls.__name__: cls
    for cls in (
        ImageLoader,
        PretrainedFeatures,
        LinearProbe,
        ScratchCNNClassifier,
        TransferClassifier,
        AlexNetTransferClassifier,
        PaperCNN,
        ResidualCNN,
        TransferNet,
    )
}
_ESTIMATORS = {name for name, cls in REGISTRY.items() if not issubclass(cls, torch.nn.Module)}
#: The names that version 1 files gave the networks.
_LEGACY_NAMES = {
    f"sk_animals._networks.{name}": name for name in ("PaperCNN", "ResidualCNN", "TransferNet")
}
#: The parameters that may name a class: the dotted-name prefix of a class outside
#: sk_animals (``None``: registry names only), and the base every class must have.
_CALLABLES = {
    "module": (None, torch.nn.Module),
    "criterion": ("torch.nn.", torch.nn.Module),
    "optimizer": ("torch.optim.", torch.optim.Optimizer),
    "iterator_train": ("torch.utils.data.", torch.utils.data.DataLoader),
    "iterator_valid": ("torch.utils.data.", torch.utils.data.DataLoader),
    "dataset": ("skorch.dataset.", torch.utils.data.Dataset),
}


def _dotted(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _class_name(key, cls):
    """How a file names ``cls`` given as parameter ``key``: its registry or dotted name."""
    prefix, base = _CALLABLES.get(key, ("-", None))
    if not (isinstance(cls, type) and base is not None and issubclass(cls, base)):
        return None
    if REGISTRY.get(cls.__name__) is cls:
        return cls.__name__
    if prefix is not None and _dotted(cls).startswith(prefix):
        return _dotted(cls)
    return None


def _class_of(key, name):
    """The class a file names for parameter ``key``; ValueError when it is not allowed."""
    prefix, base = _CALLABLES.get(key, ("-", None))
    name = _LEGACY_NAMES.get(name, name)
    cls = REGISTRY.get(name)
    if cls is None and prefix is not None and name.startswith(prefix):
        module, _, attr = name.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), attr, None)
        except ImportError:
            cls = None
        cls = cls if isinstance(cls, type) and _dotted(cls) == name else None
    if base is None or cls is None or not issubclass(cls, base):
        raise ValueError(f"{key}=class {name!r} is not on the allow-list")
    return cls


def _encode(value, key=None):
    """Parameter ``key`` as JSON; TypeError when it is neither plain data nor allow-listed."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, dict):  # keys may be labels (ints), so a list of pairs
        return {"dict": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, torch.device):
        return {"device": str(value)}
    name = _class_name(key, value)
    if name is not None:
        return {"class": name}
    raise TypeError(f"cannot save a {type(value).__name__}")


def _decode(value, key=None):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    ((kind, data),) = value.items()
    if kind == "tuple":
        return tuple(_decode(v) for v in data)
    if kind == "dict":
        return {_decode(k): _decode(v) for k, v in data}
    if kind == "device":
        return torch.device(data)
    if kind == "class":
        return _class_of(key, data)
    raise ValueError(f"{key}={kind} {data!r} is not on the allow-list")


def _params(est):
    """The parameters as JSON, and the names of those that cannot be saved."""
    params, dropped = {}, []
    for key, value in est.get_params(deep=False).items():
        if key.startswith("_") or key == "steps":
            continue
        if key == "weights" and isinstance(value, Enum | os.PathLike):
            value = value.name if isinstance(value, Enum) else os.fspath(value)
        try:
            params[key] = _encode(value, key)
        except TypeError:
            if key == "module":
                raise TypeError(
                    f"cannot save module={value!r}: the safe format rebuilds only the network "
                    "classes of the registry (PaperCNN, ResidualCNN, TransferNet); save "
                    "other models with joblib"
                ) from None
            dropped.append(key)
    # a dropped callbacks or optimizer takes its keyword parameters with it
    dropped += [k for k in params if k.split("__")[0] in dropped]
    return {k: v for k, v in params.items() if k not in dropped}, dropped


def _state(name, est):
    """What ``fit`` learned, as the estimator hands it: JSON values and prefixed tensors."""
    values, tensors = est._fitted_state()
    return values, {f"{name}.{key}": tensor for key, tensor in tensors.items()}


def unsavable(estimator):
    """Why the format cannot store ``estimator`` (a step of another class), or None.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sk_animals.persistence import unsavable
    >>> unsavable(LogisticRegression())[:49]
    "cannot save step 'estimator' (LogisticRegression)"
    """
    steps = estimator.steps if isinstance(estimator, Pipeline) else [("estimator", estimator)]
    for name, est in steps:
        kind = type(est).__name__
        if REGISTRY.get(kind) is not type(est) or kind not in _ESTIMATORS:
            return (
                f"cannot save step {name!r} ({kind}): the safe format knows "
                f"{', '.join(sorted(_ESTIMATORS))}"
            )
    return None


def save(estimator, path):
    """Save a fitted model as safetensors plus JSON, to be read back by :func:`load`.

    Parameters
    ----------
    estimator : Pipeline or estimator
        A fitted :class:`~sklearn.pipeline.Pipeline` of
        :class:`~sk_animals.preprocessing.ImageLoader`,
        :class:`~sk_animals.transfer.PretrainedFeatures`,
        :class:`~sk_animals.scratch.ScratchCNNClassifier`,
        :class:`~sk_animals.transfer.TransferClassifier` or
        :class:`~sk_animals.transfer.AlexNetTransferClassifier` steps, or one of them alone.
    path : str or path-like
        The file to write; ``.skmodel`` is the conventional suffix.

    Raises
    ------
    TypeError
        A step is of another class, or its ``module`` is not one of sk_animals' networks.
    sklearn.exceptions.NotFittedError
        A step is not fitted.

    Warns
    -----
    UserWarning
        Parameters that are neither plain data nor allow-listed classes (``callbacks``, a
        ``train_split`` of arrays or a callable) are not saved; they get their defaults when
        loaded. The file lists them under ``"dropped"``.

    See Also
    --------
    load : Rebuild the fitted model.

    Examples
    --------
    >>> import os, tempfile
    >>> from sk_animals import load, save
    >>> from sk_animals.datasets import make_image_dataset
    >>> from sk_animals.scratch import ScratchCNNClassifier
    >>> X, y = make_image_dataset(n_samples=16, n_classes=2, size=32, random_state=0)
    >>> clf = ScratchCNNClassifier(max_epochs=1, random_state=0, verbose=0).fit(X, y)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     save(clf, os.path.join(tmp, "shapes.skmodel"))
    ...     loaded = load(os.path.join(tmp, "shapes.skmodel"))
    >>> loaded.classes_.tolist(), loaded.get_params()["max_epochs"]
    (['circle', 'cross'], 1)
    >>> bool((loaded.predict_proba(X) == clf.predict_proba(X)).all())
    True
    """
    reason = unsavable(estimator)
    if reason is not None:
        raise TypeError(f"{reason}; save other models with joblib")
    pipeline = isinstance(estimator, Pipeline)
    steps, tensors, dropped = [], {}, {}
    for name, est in estimator.steps if pipeline else [("estimator", estimator)]:
        params, dropped[name] = _params(est)
        fitted, step_tensors = _state(name, est)
        tensors.update(step_tensors)
        steps.append(
            {"name": name, "class": type(est).__name__, "params": params, "fitted": fitted}
        )
        steps[-1]["dropped"] = dropped[name]
    pipeline_params, dropped["Pipeline"] = _params(estimator) if pipeline else (None, [])
    versions = {p: version(p) for p in ("torch", "skorch", "scikit-learn", "safetensors")}
    doc = {
        "format": FORMAT_VERSION,
        "versions": {"sk_animals": __version__, **versions},
        "pipeline": pipeline_params,
        "steps": steps,
    }
    if any(dropped.values()):
        listed = "; ".join(f"{n}: {', '.join(keys)}" for n, keys in dropped.items() if keys)
        warnings.warn(
            f"not saved, as neither plain data nor allow-listed classes ({listed}); "
            "the loaded model gets their defaults",
            UserWarning,
            stacklevel=2,
        )
    _write(path, doc, tensors)


def _write(path, doc, tensors):
    with atomic_path(path) as partial:  # a crash never leaves a truncated model behind
        save_file(tensors, partial, metadata={_KEY: json.dumps(doc)})


def _read(path, *, tensors=True):
    """The JSON and the tensors (on the CPU; None without ``tensors``) of a model file;
    ValueError if it is not one."""
    path = os.fspath(path)

    def invalid(reason):
        return ValueError(f"{path} is not an sk_animals model file ({reason})")

    if os.path.isdir(path):
        raise invalid("it is a folder")
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            if _KEY not in meta:
                raise invalid("a safetensors file without sk_animals metadata")
            try:
                doc = json.loads(meta[_KEY])
                fmt, saved = doc["format"], doc["versions"]["sk_animals"]
                if not isinstance(fmt, int):
                    raise TypeError
            except (ValueError, TypeError, KeyError):
                raise invalid("its sk_animals metadata is not a model description") from None
            if fmt > FORMAT_VERSION:
                raise ValueError(
                    f"{path} is in model format {fmt} (written by sk_animals {saved}), but "
                    f"sk_animals {__version__} reads format {FORMAT_VERSION} and older: upgrade "
                    "sk_animals to load it"
                )
            return doc, {k: f.get_tensor(k) for k in f.keys()} if tensors else None
    except SafetensorError as exc:
        raise invalid(str(exc).replace("\n", " ")) from None


def file_versions(path):
    """The format of the model file ``path`` and the versions of the packages that wrote it.

    Reads the file's description only, not its tensors.

    Returns
    -------
    versions : dict of str to str
        ``"format"``, then ``"sk_animals"``, ``"torch"``, ``"skorch"``, ``"scikit-learn"``
        and ``"safetensors"`` as the file records them.

    Raises
    ------
    ValueError
        ``path`` is not a model file, in one line naming it.
    """
    doc, _ = _read(path, tensors=False)
    versions = doc["versions"] if isinstance(doc["versions"], dict) else {}
    return {"format": str(doc["format"]), **{str(k): str(v) for k, v in versions.items()}}


def _device(saved, requested, path):
    """The device a step gets: ``requested``, else the saved one (the CPU if CUDA is gone)."""
    if requested is not None:
        return requested
    if saved not in (None, "auto") and torch.device(saved).type == "cuda":
        if not torch.cuda.is_available():
            warnings.warn(
                f"{path} asks for device {str(saved)!r} but CUDA is not available; "
                "loading it on the CPU (device='cpu')",
                UserWarning,
                stacklevel=4,
            )
            return "cpu"
    return saved


def _caller_chooses(key):
    """Whether parameter ``key`` starts processes or picks folders: the caller's choice at
    run time, never a file's. ``compile`` and ``compile__*`` are among them (torch's
    compiler starts worker processes and writes its cache folder): a loaded model runs
    eagerly until its caller sets ``compile=True``."""
    compile_ = key == "compile" or key.startswith("compile__")
    return compile_ or key.endswith(("num_workers", "n_jobs", "cache_dir")) or key == "memory"


def _check_layout(doc):
    """What is wrong with the shape of a model description, or None."""
    steps = doc.get("steps")
    if not isinstance(steps, list) or not steps:
        return "'steps' is not a list of steps"
    for i, step in enumerate(steps):
        kinds = {"name": str, "class": str, "params": dict, "fitted": dict}
        if not isinstance(step, dict) or not all(
            isinstance(step.get(k), t) for k, t in kinds.items()
        ):
            return f"step {i} is not a name, a class, params and fitted values"
    if not isinstance(doc.get("pipeline"), dict | None) or (
        doc.get("pipeline") is None and len(steps) != 1
    ):
        return "'pipeline' is neither a Pipeline's parameters nor null for one step"
    return None


def _rebuild(step, tensors, device, path, saved):
    """One fitted step from its JSON and its tensors; the estimator restores its own state
    and checks that its settings fit its tensors before it builds anything."""
    cls = REGISTRY.get(step["class"]) if step["class"] in _ESTIMATORS else None
    if cls is None:
        raise ValueError(
            f"{path} names estimator {step['class']!r}, not on the allow-list of sk_animals "
            f"{__version__} (the file was written by sk_animals {saved})"
        )
    try:
        params = {k: _decode(v, k) for k, v in step["params"].items() if not _caller_chooses(k)}
    except ValueError as exc:
        raise ValueError(
            f"{path}: {exc} of sk_animals {__version__} (the file was written by "
            f"sk_animals {saved})"
        ) from None
    if "device" in params:
        params["device"] = _device(params["device"], device, path)
    prefix = f"{step['name']}."
    arrays = {k[len(prefix) :]: t for k, t in tensors.items() if k.startswith(prefix)}
    try:
        return cls(**params)._restore_fitted_state(step["fitted"], arrays)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError) as exc:
        what = f"no {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        raise ValueError(f"{path}: step {step['name']!r} ({step['class']}): {what}") from None


def load(path, *, device=None):
    """Load a model written by :func:`save`, without unpickling anything.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.
    device : str or torch.device, default=None
        The ``device`` of every step that has one. ``None`` keeps the saved parameters
        (``"auto"`` stays ``"auto"``), except that a CUDA device falls back to ``"cpu"``,
        with a warning, where CUDA is not available.

    Returns
    -------
    estimator : Pipeline or estimator
        Fitted, as it was saved; training history and optimizer state are not saved.
        Settings that start processes or choose folders (``iterator_train__num_workers``,
        ``iterator_valid__num_workers``, ``cache_dir``, a Pipeline's ``memory``, anything
        ending in ``n_jobs``, ``compile`` and ``compile__*``) are not taken from the file:
        they get their defaults (a model saved with ``compile=True`` loads eager), and
        the caller sets them with ``set_params``.

    Raises
    ------
    ValueError
        One line naming the file and what is wrong: ``path`` is not a model file (an
        image, an empty, truncated or joblib file); it is in a newer format than this
        sk_animals reads (the message names both versions); it is malformed (no steps, a
        tensor missing or of the wrong shape, classes that disagree with the network);
        or a setting disagrees with its tensors (``width=512`` for tensors of width 8)
        or is out of bounds (an image side above 4096 pixels). Each is found before the
        network is built: a file allocates no more than its tensors.

    Notes
    -----
    A model file is data: loading it writes nothing, starts nothing and runs none of its
    content. docs/security.rst says what a file from someone else can and cannot do.

    Warns
    -----
    UserWarning
        The file was written by another sk_animals version (the message names both).

    See Also
    --------
    save : Examples of both.
    """
    doc, tensors = _read(path)
    saved = doc["versions"]["sk_animals"]
    wrong = _check_layout(doc)
    if wrong is not None:
        raise ValueError(f"{os.fspath(path)} is not an sk_animals model file ({wrong})")
    if saved != __version__:
        warnings.warn(
            f"{os.fspath(path)} was saved with sk_animals {saved} and is loaded with "
            f"sk_animals {__version__}",
            UserWarning,
            stacklevel=2,
        )
    steps = []
    for step in doc["steps"]:  # a loop, not a comprehension, for the warnings' stacklevel
        steps.append((step["name"], _rebuild(step, tensors, device, os.fspath(path), saved)))
    if doc["pipeline"] is None:
        return steps[0][1]
    if len({name for name, _ in steps}) != len(steps):
        raise ValueError(f"{os.fspath(path)}: two steps have the same name")
    params = {k: _decode(v, k) for k, v in doc["pipeline"].items() if not _caller_chooses(k)}
    return Pipeline(steps, **params)
