"""A comparison run's folder: its units of work, its arguments, its lock; no pickles.

:func:`~sk_animals.evaluation.compare` computes; a :class:`RunStore` does the I/O of one
run (as scikit-learn's ``_fit_and_score`` writes nothing and a caller keeps the
results). Each finished unit of work (a fold, a final fit, a budget point, the label
audit) is written as it finishes, as JSON, and a fitted pipeline as a ``.skmodel`` file
(:func:`sk_animals.save`): restoring reads data and tensors, never code. The arguments
that change results are written once and every later run in the folder must have the
same ones; a lock keeps a second process out while a run is writing.
"""

import json
import os
import re
import shutil
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from ._files import write_text
from ._version import __version__
from .exceptions import ResumeError, RunInProgressError

__all__ = ["CHECKPOINT", "LOCK", "RunStore", "fingerprint", "folder_lock", "new_folders"]

#: The lock file a running command keeps in its folder.
LOCK = ".sk-animals.lock"
#: The folder of ``sk-animals compare --out`` where a running comparison keeps its units.
CHECKPOINT = "checkpoint"
#: Parameters that change no result: a resumed run may differ in these (display
#: callbacks among them; a callback that changes results is listed by its parameters).
IGNORED = {"verbose", "n_jobs", "cache_dir", "progress_bar", "print_log", "progress"}
_ARGUMENTS = "arguments.json"


def _jsonable(value):
    """A JSON value that stands for ``value`` (an estimator by its class; its parameters
    are listed beside it by ``get_params(deep=True)``)."""
    from sklearn.base import BaseEstimator

    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, BaseEstimator):
        return type(value).__name__
    if hasattr(value, "tolist"):  # numpy
        return value.tolist()
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))


def _approach(approach):
    params = {
        key: value
        for key, value in approach.pipeline.get_params(deep=True).items()
        if not IGNORED.intersection(key.split("__"))
        and key.rsplit("__", 1)[-1] not in ("memory", "steps", "callbacks")
        and not key.rsplit("__", 1)[-1].startswith("_")  # skorch's own bookkeeping
    }
    return {"per_class": approach.per_class, "params": params}


def fingerprint(data, approaches, **options):
    """The arguments of a run that change its results, as JSON values.

    ``data`` is a folder (its resolved path) or a Bunch of paths and labels; each
    approach contributes its budget and its pipeline's ``get_params(deep=True)`` without
    verbosity, ``n_jobs`` and ``cache_dir``; ``options`` are the other arguments.
    """
    if isinstance(data, str | os.PathLike):
        data = str(Path(data).resolve())
    elif hasattr(data, "columns"):  # a DataFrame of paths and labels
        data = data.to_dict(orient="list")
    else:
        data = {"data": [str(p) for p in data["data"]], "target": data["target"]}
    values = {"data": data, **options}
    values["approaches"] = {a.name: _approach(a) for a in approaches}
    return json.loads(json.dumps(_jsonable(values)))


def _flatten(value, prefix=""):
    if isinstance(value, dict) and value:
        out = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}.{key}" if prefix else key))
        return out
    return {prefix: value}


def _short(value, width=60):
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


@contextmanager
def new_folders(folder):
    """Create ``folder`` and its missing parents for the block; after it, remove the ones
    this call created that the block left empty.

    A folder that existed before, or that anybody wrote into, stays: a run refused or
    stopped before writing leaves no empty ``--out`` behind, and nothing of anyone else's
    is removed.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from sk_animals.runs import new_folders
    >>> root = Path(tempfile.mkdtemp())
    >>> with new_folders(root / "a" / "b") as folder:
    ...     folder.is_dir()
    True
    >>> (root / "a").exists()
    False
    """
    folder = Path(folder)
    created = [p for p in [folder, *folder.parents] if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    finally:
        for made in created:  # the deepest first
            try:
                made.rmdir()
            except OSError:  # not empty (or already gone): it and its parents stay
                break


@contextmanager
def folder_lock(folder, what="a run"):
    """Hold ``folder`` for this process; a second one fails at once, naming the first.

    The lock (``flock`` on :data:`LOCK` inside the folder) goes with the process: a run
    that was killed leaves no stale lock behind. The folder and its parents are created
    when missing, and removed again when the run leaves them empty (see
    :func:`new_folders`). Where ``fcntl`` is missing (Windows) nothing is locked.
    """
    with new_folders(folder) as held:
        with _flock(held, what):
            yield


@contextmanager
def _flock(folder, what):
    """:func:`folder_lock` on an existing ``folder``."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield
        return
    path = folder / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(path).st_ino:  # removed by its last holder
            raise BlockingIOError
    except OSError:
        os.close(fd)
        try:
            holder = path.read_text(encoding="utf-8").strip() or "another process"
        except OSError:
            holder = "another process"
        raise RunInProgressError(
            f"{str(folder)!r} is in use by {holder}: wait for it to finish, or choose "
            "another folder"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{what} (pid {os.getpid()}, started {time.strftime('%X')})".encode())
        yield
    finally:
        Path(path).unlink(missing_ok=True)
        os.close(fd)


class RunStore:
    """The folder of one run: restore a finished unit of work, or compute and save it.

    Use it as a context manager: the folder is created and locked for the run.

    Parameters
    ----------
    folder : str or path-like
        Where the units are written; created if missing.

    Examples
    --------
    >>> import tempfile
    >>> from sk_animals.runs import RunStore
    >>> with tempfile.TemporaryDirectory() as tmp, RunStore(tmp) as store:
    ...     store.check_arguments({"seed": 0})
    ...     first = store.unit("answer", lambda: 42)
    ...     again = store.unit("answer", lambda: 0)  # restored, not computed
    >>> first, again
    (42, 42)
    """

    def __init__(self, folder):
        self.folder = Path(folder)

    def __getstate__(self):  # to joblib's workers: the folder, not the lock
        return {"folder": self.folder}

    def __enter__(self):
        self._lock = folder_lock(self.folder, "a compare run")
        self._lock.__enter__()
        return self

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)

    def has_run(self):
        """Whether the folder holds the arguments of an earlier run."""
        return (self.folder / _ARGUMENTS).is_file()

    def has_units(self):
        """Whether any unit of work finished in the folder."""
        return any(p.name != _ARGUMENTS for p in self.folder.glob("*.json"))

    def clear(self):
        """Remove the folder and everything in it."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def check_arguments(self, arguments):
        """Write ``arguments`` for a new run; for an earlier one, refuse any that changed.

        Raises
        ------
        ResumeError
            The folder's run had other arguments; the message names each that changed.
        """
        path = self.folder / _ARGUMENTS
        if not path.is_file():
            self.folder.mkdir(parents=True, exist_ok=True)
            write_text(path, json.dumps({"sk_animals": __version__, "arguments": arguments}))
            return
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            version, before = saved["sk_animals"], saved["arguments"]
        except (ValueError, KeyError, TypeError):
            raise ResumeError(
                f"{str(path)!r} is not the arguments file of a run: start afresh in an "
                "empty folder"
            ) from None
        if version != __version__:
            raise ResumeError(
                f"the run in {str(self.folder)!r} was started by sk_animals {version}, this is "
                f"{__version__}: start the run afresh"
            )
        before, now = _flatten(before), _flatten(arguments)
        changed = sorted(k for k in {*before, *now} if before.get(k) != now.get(k))
        if changed:
            shown = ", ".join(
                f"{k} (was {_short(before.get(k))}, now {_short(now.get(k))})" for k in changed[:4]
            )
            more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
            raise ResumeError(
                f"the run in {str(self.folder)!r} had other arguments: {shown}{more}; give "
                "the same ones, or start afresh in an empty folder",
                [(k, before.get(k), now.get(k)) for k in changed],
            )

    def restore(self, name, *, load=None):
        """The unit ``name`` if it finished earlier (``load(json, store, name)`` turns its
        JSON back), else None. A unit whose files are unreadable or were changed is
        ignored, with a warning: its work is done again."""
        path = self.folder / f"{name}.json"
        if not path.is_file():
            return None
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            version = saved["sk_animals"]
        except Exception as exc:  # a damaged or foreign file is data, never code
            return self._ignore(path, exc)
        if version != __version__:
            raise ResumeError(
                f"the checkpoint {str(path)!r} was written by sk_animals {version}, this is "
                f"{__version__}: start the run afresh"
            )
        try:
            return saved["value"] if load is None else load(saved["value"], self, name)
        except Exception as exc:
            return self._ignore(path, exc)

    @staticmethod
    def _ignore(path, exc):
        warnings.warn(
            f"the checkpoint {str(path)!r} cannot be read ({type(exc).__name__}: {exc}); "
            "its work is done again",
            UserWarning,
            stacklevel=3,
        )
        path.unlink(missing_ok=True)

    def unit(self, name, compute, *, dump=None, load=None):
        """The unit ``name``: restored when it finished earlier, else computed and saved.

        ``dump(value, store, name)`` turns the value into JSON (default: as it is) and may
        save models with :meth:`save_model`; ``load(json, store, name)`` turns it back.
        """
        value = self.restore(name, load=load)
        if value is None:
            value = compute()
            dumped = value if dump is None else dump(value, self, name)
            write_text(
                self.folder / f"{name}.json",
                json.dumps({"sk_animals": __version__, "value": dumped}),
            )
        return value

    def finished(self, name):
        """Whether the unit ``name`` finished earlier."""
        return (self.folder / f"{name}.json").is_file()

    def save_model(self, name, estimator):
        """Write a fitted pipeline as ``<name>.skmodel`` (weights and settings only)."""
        from .persistence import SUFFIX, save

        with warnings.catch_warnings():  # callbacks and such are not saved: said at the start
            warnings.simplefilter("ignore", UserWarning)
            save(estimator, self.folder / f"{name}{SUFFIX}")

    def load_model(self, name):
        """The pipeline :meth:`save_model` wrote."""
        from .persistence import SUFFIX, load

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return load(self.folder / f"{name}{SUFFIX}")

    def path(self, name):
        """A path inside the run's folder, for data the run makes (the demo's images)."""
        return self.folder / name


class NoStore:
    """What :func:`~sk_animals.evaluation.compare` uses without a folder: computes."""

    folder = None

    def unit(self, name, compute, *, dump=None, load=None):
        return compute()

    def restore(self, name, *, load=None):
        return None

    def finished(self, name):
        return False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None
