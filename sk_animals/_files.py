"""The one way sk_animals writes a file: beside it, fsync, rename.

A reader never sees half a file under its final name: a kill leaves at most
``<name>.partial`` beside it, and any error removes that too and says which file it was.
"""

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path

from .exceptions import FileWriteError

__all__ = ["atomic_path", "atomic_write", "file_sha256", "write_bytes", "write_text"]


def _partial(path):
    return path.with_name(f"{path.name}.partial")


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every system opens folders (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path, *, keep_on_interrupt=False):
    """A path to write ``path``'s content to; it becomes ``path`` when the block ends.

    For writers that take a file name (safetensors). The content is flushed to disk and
    renamed over ``path``; on any error the partial file is removed, and an ``OSError``
    becomes a :class:`~sk_animals.exceptions.FileWriteError` naming ``path``. With
    ``keep_on_interrupt``, Ctrl-C leaves the partial file (rows written so far) for the
    caller to name.
    """
    path = Path(path)
    partial = _partial(path)
    try:
        yield partial
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.replace(partial, path)
    except BaseException as exc:
        if not (keep_on_interrupt and isinstance(exc, KeyboardInterrupt)):
            partial.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, FileWriteError):
            raise FileWriteError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    _fsync_folder(path.parent)


@contextmanager
def atomic_write(path, mode="w", *, encoding="utf-8", newline=None, keep_on_interrupt=False):
    """Open ``path`` for writing, atomically (see :func:`atomic_path`).

    Examples
    --------
    >>> import os, tempfile
    >>> from sk_animals._files import atomic_write
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with atomic_write(os.path.join(tmp, "a.txt")) as f:
    ...         _ = f.write("hello")
    ...     sorted(os.listdir(tmp))
    ['a.txt']
    """
    with atomic_path(path, keep_on_interrupt=keep_on_interrupt) as partial:
        if "b" in mode:
            f = open(partial, mode)
        else:
            f = open(partial, mode, encoding=encoding, newline=newline)
        with f:
            yield f


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path) as f:
        f.write(text)


def write_bytes(path, data):
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def file_sha256(path):
    """The sha256 of ``path``'s bytes, in hex, read in blocks of 1 MiB."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
