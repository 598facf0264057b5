"""Predictions and their explanations for many image files: streamed in batches, one row per
file, errors kept."""

import csv
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ._text import csv_cell
from .datasets import IMAGE_EXTENSIONS, _read_table
from .explanations import DEFAULT_METHOD, explain
from .preprocessing import split_loader

__all__ = ["explain_files", "find_images", "predict_files", "write_predictions"]


def find_images(inputs, *, path_column="path"):
    """The image files that ``inputs`` name, in order.

    Parameters
    ----------
    inputs : sequence of str or path-like
        Image files (kept whatever their extension), folders (searched recursively for
        files with an image extension, see ``IMAGE_EXTENSIONS``; hidden files and folders
        skipped) and ``.csv`` files with a ``path_column`` (relative paths resolve against
        the CSV's folder; a row naming a missing file is kept, and predicting it gives an
        error row).
    path_column : str, default="path"
        The column of a CSV that holds the paths.

    Returns
    -------
    paths : list of str

    Raises
    ------
    FileNotFoundError
        An input that does not exist, naming it.
    ValueError
        A CSV without ``path_column``, or not UTF-8.

    Examples
    --------
    >>> import tempfile
    >>> from sk_animals.datasets import make_image_folder
    >>> root = make_image_folder(tempfile.mkdtemp(), n_samples=4, n_classes=2, size=8)
    >>> len(find_images([root]))
    4
    """
    paths = []
    for item in map(str, inputs):
        if os.path.isdir(item):
            for dirpath, dirnames, filenames in os.walk(item):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                paths += [
                    os.path.join(dirpath, name)
                    for name in sorted(filenames)
                    if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS
                ]
        elif item.lower().endswith(".csv") and os.path.isfile(item):
            base = Path(item).resolve().parent
            rows = _read_table(item, (path_column,))
            paths += [os.path.normpath(base / row[path_column].strip()) for _, row in rows]
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise FileNotFoundError(f"{item!r} is not a file, a folder or a CSV file")
    return paths


def _decode(loader, paths):
    """The decoded images of ``paths`` that could be read, and why the others could not.

    Each file is decoded once: the loader's decoding keeps going past a bad file and
    returns the failures, which ``ImageLoader.transform`` would raise instead.
    """
    if loader is None:
        return paths, {}
    out, failures = loader._load_all(paths, -1)
    errors = {i: reason for i, _, reason in failures}
    good = [i for i in range(len(paths)) if i not in errors]
    return (out[good] if good else None), errors


def predict_files(model, paths, *, batch_size=256):
    """Predict every file in ``paths``, a batch at a time; yield one row per file.

    Memory holds two batches of decoded images at most: the next batch is decoded, on
    every core, while the network predicts the current one. A file that cannot be read
    gets a row with its error and does not stop the others.

    Parameters
    ----------
    model : fitted Pipeline or classifier
        Usually ``make_pipeline(ImageLoader(...), classifier)`` as :func:`sk_animals.load`
        returns it. Its settings (test-time augmentation included) are used as saved.
    paths : sequence of str
        Image files, e.g. from :func:`find_images`.
    batch_size : int, default=256
        Files decoded and predicted together.

    Yields
    ------
    path : str
    proba : ndarray of shape (n_classes,) or None
        ``None`` when the file could not be read.
    error : str
        Empty, or why the file could not be read.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.pipeline import make_pipeline
    >>> from sk_animals import ImageLoader, ScratchCNNClassifier
    >>> from sk_animals.datasets import make_image_folder, load_image_folder
    >>> data = load_image_folder(make_image_folder(tempfile.mkdtemp(), n_samples=8, size=16))
    >>> model = make_pipeline(ImageLoader(16), ScratchCNNClassifier(max_epochs=1, verbose=0))
    >>> model = model.fit(data.data, data.target)
    >>> rows = list(predict_files(model, [*data.data[:2], "missing.png"], batch_size=2))
    >>> [proba is None for _, proba, _ in rows]
    [False, False, True]
    """
    loader, rest = split_loader(model)
    for batch, images, errors in _decoded_batches(loader, paths, batch_size):
        proba = iter(rest.predict_proba(images)) if images is not None else iter(())
        for i, path in enumerate(batch):
            if i in errors:
                yield path, None, errors[i]
            else:
                yield path, next(proba), ""


def _decoded_batches(loader, paths, batch_size):
    """Yield (paths, decoded images or None, errors by position) a batch at a time, the next
    batch decoded on every core while the caller works on this one."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    batches = [list(paths[i : i + batch_size]) for i in range(0, len(paths), batch_size)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_decode, loader, batches[0]) if batches else None
        for k, batch in enumerate(batches):
            images, errors = pending.result()
            if k + 1 < len(batches):
                pending = pool.submit(_decode, loader, batches[k + 1])
            yield batch, images, errors


def explain_files(model, paths, *, batch_size=32, method=DEFAULT_METHOD):
    """Explain every file in ``paths`` a batch at a time: yield one row per file.

    Each file's predicted class (as ``predict`` gives it) is explained by
    :func:`~sk_animals.explain`. Memory holds two batches of decoded images
    at most; a file that cannot be read gets a row with its error and does not stop the
    others.

    Parameters
    ----------
    model : fitted Pipeline
        An :class:`~sk_animals.preprocessing.ImageLoader`, then a classifier, as
        :func:`sk_animals.load` returns it.
    paths : sequence of str
        Image files, e.g. from :func:`find_images`.
    batch_size : int, default=32
        Files decoded and explained together.
    method : str, default="layercam"
        As in :func:`~sk_animals.explain`.

    Yields
    ------
    path : str
    image : ndarray of shape (height, width, 3) or None
        The uint8 image the network saw, or ``None`` when the file could not be read.
    proba : ndarray of shape (n_classes,) or None
    heatmap : ndarray of shape (height, width) or None
        The map of the predicted class, in [0, 1].
    error : str
        Why the file could not be read; empty for the others.

    Examples
    --------
    >>> import tempfile
    >>> from sk_animals import ImageLoader, ScratchCNNClassifier
    >>> from sk_animals.datasets import make_image_folder
    >>> from sklearn.pipeline import make_pipeline
    >>> folder = make_image_folder(tempfile.mkdtemp(), n_samples=8, size=24)
    >>> files = find_images([folder])
    >>> clf = ScratchCNNClassifier(width=4, max_epochs=1, verbose=0)
    >>> model = make_pipeline(ImageLoader(24), clf).fit(files, [f.split("/")[-2] for f in files])
    >>> path, image, proba, heatmap, error = next(explain_files(model, files))
    >>> image.shape, heatmap.shape, error
    ((24, 24, 3), (24, 24), '')
    """
    loader, rest = split_loader(model)
    for batch, images, errors in _decoded_batches(loader, paths, batch_size):
        good = iter(())
        if images is not None:
            proba = rest.predict_proba(images)
            classes = np.asarray(rest.classes_)[proba.argmax(1)]
            maps = explain(rest, images, classes, method=method)
            good = zip(images, proba, maps, strict=True)
        for i, path in enumerate(batch):
            if i in errors:
                yield path, None, None, None, errors[i]
            else:
                yield path, *next(good), ""


def write_predictions(rows, classes, out, *, top_k=0):
    """Write the rows of :func:`~sk_animals.prediction.predict_files` to a CSV file, flushed
    batch by batch.

    Columns: ``path``, ``label``, ``confidence``, ``proba_<class>`` for each class, with
    ``top_k``: ``top<k>`` and ``top<k>_confidence`` for k = 1..top_k, and ``error``.

    Parameters
    ----------
    rows : iterable of (str, ndarray or None, str)
    classes : sequence of str
    out : file object opened for text, with ``newline=""``
    top_k : int, default=0

    Returns
    -------
    counts : tuple of (int, int)
        Files predicted and files that could not be read.

    Notes
    -----
    The file is for spreadsheets too: a file name, class name or error that starts like a
    formula (``=``, ``+``, ``-``, ``@``, a tab or a carriage return), or with a quote, is
    written with a ``'`` in front, as OWASP recommends against CSV injection; remove one
    leading ``'`` where the rest starts with one of these to get the name back.

    A file name that is not valid UTF-8 (Python gives it with surrogate escapes, see
    :func:`os.fsdecode`) is written as its original bytes: ``out``'s error handler is set
    to ``"surrogateescape"`` when it has one, and reading the CSV with
    ``errors="surrogateescape"`` gives the name that ``open`` accepts.
    """
    if getattr(out, "errors", None) == "strict" and hasattr(out, "reconfigure"):
        out.reconfigure(errors="surrogateescape")  # odd file names never end the run
    classes = [str(c) for c in classes]
    cells = [csv_cell(c) for c in classes]
    top_k = min(top_k, len(classes))
    tops = [f"top{k}{s}" for k in range(1, top_k + 1) for s in ("", "_confidence")]
    header = ["path", "label", "confidence", *(f"proba_{c}" for c in classes), *tops, "error"]
    writer = csv.writer(out)
    writer.writerow(header)
    done = failed = 0
    for path, proba, error in rows:
        if proba is None:
            failed += 1
            empty = [""] * (2 + len(classes) + len(tops))
            writer.writerow([csv_cell(path), *empty, csv_cell(error)])
            continue
        done += 1
        order = np.argsort(-proba, kind="stable")[: max(top_k, 1)]
        top = [v for k in order[:top_k] for v in (cells[k], f"{proba[k]:.6f}")]
        writer.writerow(
            [csv_cell(path), cells[order[0]], f"{proba[order[0]]:.6f}"]
            + [f"{p:.6f}" for p in proba]
            + top
            + [""]
        )
        if done % 256 == 0:
            out.flush()
    out.flush()
    return done, failed
