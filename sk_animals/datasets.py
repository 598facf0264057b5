"""Labelled image sets: any folder per class, Kaggle's Animals-10, and a synthetic set."""

import csv
import io
import os
import tempfile
import warnings
from numbers import Number
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from sklearn.datasets import get_data_home
from sklearn.utils import Bunch, check_random_state

from .exceptions import BadInputError
from .preprocessing import find_bad_images

__all__ = [
    "ANIMALS10_CLASSES",
    "IMAGE_EXTENSIONS",
    "fetch_animals10",
    "load_animals10",
    "load_folder",
    "load_image_csv",
    "load_image_folder",
    "make_image_dataset",
    "make_image_folder",
    "sample_per_class",
    "save_image_folder",
]

IMAGE_EXTENSIONS = frozenset(".bmp .gif .jpeg .jpg .png .ppm .pgm .tif .tiff .webp".split())
#: Kaggle Animals-10 folder names (Italian) and their English labels.
ANIMALS10_CLASSES = {
    "cane": "dog",
    "cavallo": "horse",
    "elefante": "elephant",
    "farfalla": "butterfly",
    "gallina": "chicken",
    "gatto": "cat",
    "mucca": "cow",
    "pecora": "sheep",
    "ragno": "spider",
    "scoiattolo": "squirrel",
}
ANIMALS10_KAGGLE = "alessiocorrado99/animals10"


def check_labels(y, name="y"):
    """Refuse labels that mix strings and numbers, before anything sorts or converts them.

    numpy would turn ``["cat", 1]`` into ``["cat", "1"]`` (the label ``1`` silently
    becoming ``"1"``), and sorting an object array of both fails with ``TypeError: '<'
    not supported``; either way the caller gets no word about the labels. ``None`` is
    left for the caller to name.

    Parameters
    ----------
    y : array-like
        Labels.
    name : str, default="y"
        The argument named in the error.

    Raises
    ------
    BadInputError
        A ``ValueError`` naming one string and one number among the labels.

    Examples
    --------
    >>> from sk_animals.datasets import check_labels
    >>> try:
    ...     check_labels(["cat", 1])
    ... except ValueError as exc:
    ...     print(str(exc)[:60])
    y mixes strings and numbers as labels ('cat' and 1); give ev
    """
    if isinstance(y, np.ndarray) and y.dtype != object:
        return  # one dtype: all strings or all numbers
    try:
        values = np.asarray(y, dtype=object).ravel()
    except ValueError:  # ragged: the caller's own checks say what is wrong
        return
    first = {}
    for value in values:
        if isinstance(value, str):
            first.setdefault("string", value)
        elif isinstance(value, Number):
            first.setdefault("number", value)
        if len(first) == 2:
            raise BadInputError(
                f"{name} mixes strings and numbers as labels ({first['string']!r} and "
                f"{first['number']!r}); give every label as a string ({str(first['number'])!r} "
                f"for {first['number']!r}) or every label as a number",
                name,
            )


def sample_per_class(y, per_class, *, random_state=None):
    """Indices of at most ``per_class`` items of each class, drawn without replacement.

    A class with fewer items keeps all of them, and a warning names it. With the same
    seed, the draw for a smaller ``per_class`` is a subset of the draw for a larger one.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels.
    per_class : int or None
        Items to draw per class; ``None`` keeps everything.
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    indices : ndarray of int
        Sorted positions into ``y``.

    Examples
    --------
    >>> from sk_animals.datasets import sample_per_class
    >>> sample_per_class(["a", "a", "a", "b", "b"], 2, random_state=0).tolist()
    [1, 2, 3, 4]
    """
    y = np.asarray(y)
    if per_class is None:
        return np.arange(len(y))
    rng = check_random_state(random_state)
    chosen, short = [], []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        if len(members) < per_class:
            short.append(f"{label} ({len(members)})")
        # one permutation per class whatever the budget: smaller budgets are subsets
        chosen.append(rng.permutation(members)[:per_class])
    if short:
        warnings.warn(
            f"{len(short)} class(es) have fewer than per_class={per_class} images and keep all "
            f"of them: {', '.join(short)}",
            UserWarning,
            stacklevel=2,
        )
    return np.sort(np.concatenate(chosen))


def _check_class_folders(root, folders):
    """Refuse class folders that are the root or its ancestor, or the same folder twice."""
    real_root = root.resolve()
    seen = {}
    for folder in folders:
        real = folder.resolve()
        if real == real_root or real in real_root.parents:
            raise ValueError(
                f"class folder {str(folder)!r} is a link to {str(real)!r}, which contains "
                f"{str(root)!r} itself; remove the link"
            )
        if real in seen:
            raise ValueError(
                f"class folders {str(seen[real])!r} and {str(folder)!r} are the same folder "
                f"({str(real)!r}); their images would form two classes of duplicates. Remove one"
            )
        seen[real] = folder


def load_image_folder(
    root, *, per_class=None, random_state=None, verify=False, class_names=None, n_jobs=None
):
    """File paths and labels from a folder with one subfolder per class.

    Like torchvision's ``ImageFolder``: ``root/<class>/<image>`` (images may sit in
    nested folders below their class folder). Hidden files and folders and files whose
    extension is not an image's (see ``IMAGE_EXTENSIONS``) are skipped, with a warning
    that counts them.

    Parameters
    ----------
    root : str or path-like
        The folder holding one subfolder per class.
    per_class : int, default=None
        Draw at most this many images per class, uniformly without replacement.
        A class with fewer images keeps all of them, and a warning names it
        (Animals-10's elephant folder has 1446 images, fewer than the paper's 1500).
    random_state : int, RandomState instance or None, default=None
        Seed for the per-class draw.
    verify : bool, default=False
        Decode every selected image and drop the ones that cannot be loaded (listed in
        ``skipped`` with the reason, and warned about). Costs one pass over the data.
    class_names : dict, default=None
        Maps folder names to labels (e.g. Italian to English); other folders keep
        their own names.
    n_jobs : int, default=None
        Threads used by ``verify``.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data``: ndarray of str, the image paths, sorted by class then name;
        ``target``: ndarray of str, the label of each image;
        ``target_names``: list of str, the sorted labels;
        ``skipped``: list of (str, str), each skipped file and why.

    Raises
    ------
    FileNotFoundError
        ``root`` does not exist or is not a folder.
    ValueError
        ``root`` has no class folder with at least one image, a class folder links to
        ``root`` or above it, or two class folders are one folder.

    Examples
    --------
    >>> import tempfile
    >>> from sk_animals.datasets import make_image_dataset, save_image_folder
    >>> X, y = make_image_dataset(n_samples=6, n_classes=2, size=16, random_state=0)
    >>> root = save_image_folder(X, y, tempfile.mkdtemp())
    >>> data = load_image_folder(root)
    >>> data.target_names, len(data.data)
    (['circle', 'cross'], 6)
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder")
    class_names = class_names or {}
    paths, labels, skipped = [], [], []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    _check_class_folders(root, folders)
    for folder in folders:
        label = class_names.get(folder.name, folder.name)
        files = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if name.startswith("."):
                    skipped.append((path, "hidden file"))
                elif Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                    skipped.append((path, "not an image file extension"))
                else:
                    files.append(path)
        if not files:
            warnings.warn(
                f"class folder {str(folder)!r} holds no images and is left out",
                UserWarning,
                stacklevel=2,
            )
        paths += files
        labels += [label] * len(files)
    return _selected(
        paths, labels, skipped, str(root), per_class, random_state, verify, n_jobs,
        missing=f"expected one subfolder per class holding image files "
        f"({', '.join(sorted(IMAGE_EXTENSIONS))})",
    )  # fmt: skip


def _selected(paths, labels, skipped, where, per_class, random_state, verify, n_jobs, missing):
    """The loaders' common end: the per-class draw, the decode check and the Bunch."""
    keep = sample_per_class(labels, per_class, random_state=random_state)
    paths, labels = [paths[i] for i in keep], [labels[i] for i in keep]
    if verify and paths:
        bad = find_bad_images(paths, n_jobs=n_jobs)
        skipped += [(name, reason) for _, name, reason in bad]
        keep = np.ones(len(paths), bool)
        keep[[i for i, _, _ in bad]] = False
        paths = [p for p, k in zip(paths, keep, strict=True) if k]
        labels = [lab for lab, k in zip(labels, keep, strict=True) if k]
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} file(s) under {where!r} (see the 'skipped' field), "
            f"e.g. {skipped[0][0]}: {skipped[0][1]}",
            UserWarning,
            stacklevel=3,
        )
    if not paths:
        raise BadInputError(f"no images found under {where!r}; {missing}", "data")
    target = np.asarray(labels)
    return Bunch(
        data=np.asarray(paths),
        target=target,
        target_names=sorted(set(labels)),
        skipped=skipped,
    )


def _read_table(path, columns):
    """The rows of a CSV file as dicts of ``columns``, each with its line number.

    Reads what spreadsheets write: a UTF-8 byte-order mark, and ``,``, ``;`` or tab
    separators (sniffed from the header line).
    """
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = Path(path).read_bytes()[: exc.start].count(b"\n") + 1
        raise ValueError(
            f"{str(path)!r} is not UTF-8 text (line {line}): save it as CSV UTF-8"
        ) from None
    except OSError as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    header = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=header.count)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        _check_columns(reader.fieldnames or [], columns, path)
        return [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise ValueError(f"{str(path)!r} is not a readable CSV file: {exc}") from None


def _check_columns(found, columns, where):
    missing = [c for c in columns if c not in found]
    if missing:
        raise ValueError(
            f"{str(where)!r} has no column {', '.join(map(repr, missing))}; its columns are "
            f"{', '.join(map(repr, found)) or 'none'} (name them with path_column= and "
            "label_column=)"
        )


def load_image_csv(
    path, *, path_column="path", label_column="label", root=None, per_class=None,
    random_state=None, verify=False, n_jobs=None,
):  # fmt: skip
    """File paths and labels from a CSV file (or a pandas DataFrame) of labelled images.

    Parameters
    ----------
    path : str, path-like or pandas.DataFrame
        A CSV file with a header line, or a DataFrame with the same columns. Columns are
        found by name, in any order; other columns are ignored. A UTF-8 byte-order mark
        and ``;`` or tab separators (what spreadsheets write) are read.
    path_column, label_column : str, default="path", "label"
        The columns holding each image's path and its label.
    root : str or path-like, default=None
        The folder relative paths resolve against; by default the CSV file's folder
        (the working folder for a DataFrame).
    per_class, random_state, verify, n_jobs
        As in :func:`load_image_folder`.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        As :func:`load_image_folder`: ``data`` (paths, in the table's order),
        ``target``, ``target_names`` and ``skipped`` (repeated rows of one image with
        the same label, kept once).

    Raises
    ------
    ValueError
        Before anything is decoded, naming the file and the line (the DataFrame's index
        for a DataFrame): a missing column (the columns there are are listed), an image
        that does not exist, an empty label, one image with two labels, a file that is
        not UTF-8 or not CSV.

    See Also
    --------
    load_image_folder : The same from a folder per class.

    Examples
    --------
    >>> import csv, tempfile
    >>> from sk_animals.datasets import make_image_dataset, save_image_folder
    >>> X, y = make_image_dataset(n_samples=6, n_classes=2, size=16, random_state=0)
    >>> root = save_image_folder(X, y, tempfile.mkdtemp())
    >>> files = sorted(p.relative_to(root) for p in root.rglob("*.png"))
    >>> with open(root / "labels.csv", "w", newline="") as f:
    ...     writer = csv.writer(f)
    ...     _ = writer.writerow(["label", "path"])
    ...     writer.writerows([(p.parent.name, p) for p in files])
    >>> data = load_image_csv(root / "labels.csv")
    >>> data.target_names, len(data.data)
    (['circle', 'cross'], 6)
    """
    columns = (path_column, label_column)
    if hasattr(path, "columns"):  # a DataFrame
        where = "the DataFrame"
        _check_columns(list(map(str, path.columns)), columns, where)
        rows = [
            (f"index {i!r}", row)
            for i, row in zip(path.index, path.to_dict("records"), strict=True)
        ]
        base = Path(root) if root is not None else Path.cwd()
    else:
        where = str(path)
        if Path(path).is_dir():
            raise ValueError(f"{where!r} is a folder, not a CSV file: use load_image_folder")
        rows = [(f"line {n}", row) for n, row in _read_table(path, columns)]
        base = Path(root) if root is not None else Path(path).resolve().parent
    paths, labels, skipped, seen = [], [], [], {}
    for at, row in rows:
        raw, label = row[path_column], row[label_column]
        label = "" if label is None or label != label else str(label).strip()  # NaN: empty
        raw = "" if raw is None or raw != raw else str(raw).strip()
        if not label:
            raise ValueError(f"{where}, {at}: the label of {raw or 'this row'!r} is empty")
        if not raw:
            raise ValueError(f"{where}, {at}: the {path_column!r} column is empty")
        file = os.path.normpath(base / raw)
        if file in seen:
            first, first_label = seen[file]
            if first_label != label:
                raise ValueError(
                    f"{where}, {at}: {raw!r} is labelled {label!r} here and "
                    f"{first_label!r} at {first}; give each image one label"
                )
            skipped.append((file, f"repeated at {at} ({first} has it)"))
            continue
        if not os.path.isfile(file):
            raise ValueError(
                f"{where}, {at}: image {raw!r} does not exist (looked for {file!r}; "
                "relative paths resolve against the CSV's folder, or root=)"
            )
        seen[file] = (at, label)
        paths.append(file)
        labels.append(label)
    return _selected(
        paths, labels, skipped, where, per_class, random_state, verify, n_jobs,
        missing="the table has no rows",
    )  # fmt: skip


def _animals10_root(root):
    root = Path(root)
    return root / "raw-img" if (root / "raw-img").is_dir() else root


def load_animals10(root, *, per_class=None, random_state=None, verify=False, n_jobs=None):
    """Kaggle's Animals-10 with English labels.

    Parameters
    ----------
    root : str or path-like
        The dataset folder: the one holding ``raw-img/`` as Kaggle ships it, or
        ``raw-img/`` itself, with the Italian class folders
        (``cane``, ``gatto``, ``farfalla``, ...).
    per_class, random_state, verify, n_jobs
        As in :func:`load_image_folder`. The paper drew 1500 per class for training
        from scratch and 500 per class for transfer learning.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        As :func:`load_image_folder`, labels in English (``dog``, ``cat``, ...).

    See Also
    --------
    fetch_animals10 : Download the dataset once, then load it from the cache.
    """
    root = _animals10_root(root)
    found = {p.name for p in root.iterdir()} if root.is_dir() else set()
    if not found & set(ANIMALS10_CLASSES):
        raise FileNotFoundError(
            f"{str(root)!r} is not an Animals-10 folder: expected class folders "
            f"{', '.join(sorted(ANIMALS10_CLASSES))} (directly or under raw-img/)"
        )
    return load_image_folder(
        root,
        per_class=per_class,
        random_state=random_state,
        verify=verify,
        class_names=ANIMALS10_CLASSES,
        n_jobs=n_jobs,
    )


def load_folder(root, **kwargs):
    """:func:`~sk_animals.datasets.load_animals10` for a folder of Animals-10's class folders,
    :func:`~sk_animals.datasets.load_image_csv` for a ``.csv`` file or a DataFrame, else
    :func:`~sk_animals.datasets.load_image_folder`.

    Parameters
    ----------
    root : str, path-like or pandas.DataFrame
        A folder with one subfolder per class, or a CSV file (or DataFrame) with ``path``
        and ``label`` columns.
    **kwargs
        As in :func:`load_image_folder` (``per_class``, ``random_state``, ``verify``,
        ``n_jobs``).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
    """
    if hasattr(root, "columns") or str(root).lower().endswith(".csv"):
        return load_image_csv(root, **kwargs)
    raw = _animals10_root(root)
    animals = raw.is_dir() and {p.name for p in raw.iterdir()} & set(ANIMALS10_CLASSES)
    return (load_animals10 if animals else load_image_folder)(root, **kwargs)


def fetch_animals10(data_home=None, *, download_if_missing=True, **kwargs):
    """Load Animals-10, downloading it with the Kaggle client the first time.

    The dataset (about 600 MB, 26,179 images) is downloaded into
    ``<data_home>/animals10`` with the official ``kaggle`` package (``pip install
    sk-animals[kaggle]``), which reads your API token from ``~/.kaggle/kaggle.json``
    or the ``KAGGLE_USERNAME``/``KAGGLE_KEY`` environment variables. Later calls load
    it from there without any network.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Cache folder; by default scikit-learn's (``~/scikit_learn_data``, or the
        ``SCIKIT_LEARN_DATA`` environment variable).
    download_if_missing : bool, default=True
        If False, raise instead of downloading when the data is not cached.
    **kwargs
        Passed to :func:`load_animals10` (``per_class``, ``random_state``, ...).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        As :func:`load_animals10`.

    Raises
    ------
    OSError
        The data is not cached and cannot be downloaded (offline, no Kaggle token,
        ``download_if_missing=False``); the message says where to put the files.
    """
    folder = Path(get_data_home(data_home)) / "animals10"
    if not (_animals10_root(folder) / "cane").is_dir():
        manual = (
            f"download https://www.kaggle.com/datasets/{ANIMALS10_KAGGLE} by hand and "
            f"unzip it so that {folder / 'raw-img'} holds the class folders"
        )
        if not download_if_missing:
            raise OSError(f"Animals-10 is not in {str(folder)!r}; {manual}")
        try:
            from kaggle.api.kaggle_api_extended import KaggleApi
        except ImportError as exc:
            raise OSError(
                f"fetching Animals-10 needs the Kaggle client: pip install 'sk-animals[kaggle]'; "
                f"or {manual}"
            ) from exc
        try:
            api = KaggleApi()
            api.authenticate()
            api.dataset_download_files(ANIMALS10_KAGGLE, path=str(folder), unzip=True, quiet=False)
        except Exception as exc:  # offline, no token, quota: one clear message
            raise OSError(f"could not download Animals-10 from Kaggle ({exc}); {manual}") from exc
    return load_animals10(folder, **kwargs)


SHAPES = ("circle", "cross", "triangle", "bar", "ring", "square", "star", "diamond")


def _draw(draw, shape, cx, cy, r, angle, colour):
    """Draw one ``shape`` of radius ``r`` centred at (cx, cy), rotated by ``angle``."""
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "ring":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=max(2, r // 3))
    elif shape == "cross":
        w = max(2, r // 3)
        for a in (angle, angle + np.pi / 2):
            dx, dy = r * np.cos(a), r * np.sin(a)
            draw.line((cx - dx, cy - dy, cx + dx, cy + dy), fill=colour, width=w)
    elif shape == "bar":
        dx, dy = r * np.cos(angle), r * np.sin(angle)
        draw.line((cx - dx, cy - dy, cx + dx, cy + dy), fill=colour, width=max(2, r // 2))
    else:
        n, radii = {
            "square": (4, [r]),
            "triangle": (3, [r]),
            "diamond": (4, [r, r / 2]),
            "star": (5, [r, r / 2.5]),
        }[shape]
        if shape == "square":
            angle += np.pi / 4
        k = n * len(radii)
        draw.polygon(
            [
                (
                    cx + radii[j % len(radii)] * np.cos(angle + 2 * np.pi * j / k),
                    cy + radii[j % len(radii)] * np.sin(angle + 2 * np.pi * j / k),
                )
                for j in range(k)
            ],
            fill=colour,
        )


def make_image_dataset(n_samples=200, *, n_classes=4, size=32, noise=0.1, random_state=None):
    """Generate a labelled image set: one shape per class on a cluttered background.

    In the spirit of :func:`sklearn.datasets.make_classification`: deterministic for a
    given ``random_state``, learnable by a small CNN in a few epochs, but not trivially
    (the shape's colour, size, position and rotation vary, a patch of random texture
    is drawn in every image, and pixel noise is added), so accuracy separates
    good settings from bad ones.

    Parameters
    ----------
    n_samples : int, default=200
        Number of images, spread evenly over the classes.
    n_classes : int, default=4
        Number of classes, at most 8 (circle, cross, triangle, bar, ring, square,
        star, diamond).
    size : int, default=32
        Images are ``size`` x ``size`` pixels; at least 8.
    noise : float, default=0.1
        Standard deviation of the Gaussian pixel noise, as a fraction of 255.
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    X : ndarray of shape (n_samples, size, size, 3), dtype uint8
    y : ndarray of shape (n_samples,), dtype str
        The shape names.

    Examples
    --------
    >>> from sk_animals.datasets import make_image_dataset
    >>> X, y = make_image_dataset(n_samples=8, n_classes=4, size=24, random_state=0)
    >>> X.shape, X.dtype, sorted(set(y.tolist()))
    ((8, 24, 24, 3), dtype('uint8'), ['bar', 'circle', 'cross', 'triangle'])
    """
    if not 2 <= n_classes <= len(SHAPES):
        raise ValueError(f"n_classes must be between 2 and {len(SHAPES)}, got {n_classes}")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    rng = check_random_state(random_state)
    y = np.asarray(SHAPES[:n_classes])[np.arange(n_samples) % n_classes]
    rng.shuffle(y)
    X = np.empty((n_samples, size, size, 3), np.uint8)
    for i, shape in enumerate(y):
        background = tuple(int(v) for v in rng.randint(0, 256, 3))
        img = Image.new("RGB", (size, size), background)
        draw = ImageDraw.Draw(img)
        r = size * rng.uniform(0.22, 0.36)
        cx, cy = rng.uniform(r, size - r, 2)
        shift = rng.randint(-64, 64, 3)
        colour = tuple(int(v) for v in (np.asarray(background) + 128 + shift) % 256)
        _draw(draw, shape, cx, cy, int(r), rng.uniform(0, 2 * np.pi), colour)
        pixels = np.asarray(img, np.float32)
        # a distractor: a patch of random texture that belongs to no class
        k = max(2, size // 6)
        top, left = rng.randint(0, size - k + 1, 2)
        pixels[top : top + k, left : left + k] = rng.randint(0, 256, (k, k, 3))
        X[i] = np.clip(pixels + rng.normal(0, 255 * noise, (size, size, 3)), 0, 255)
    return X, y


def save_image_folder(X, y, root):
    """Write images as PNG files into ``root/<label>/<index>.png``; return ``root``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, height, width, 3), dtype uint8
    y : array-like of shape (n_samples,)
        Labels; each becomes a folder name.
    root : str or path-like
        Created if missing.

    Returns
    -------
    root : pathlib.Path
    """
    root = Path(root)
    for i, (image, label) in enumerate(zip(X, y, strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(image, np.uint8)).save(folder / f"{i:05d}.png")
    return root


def make_image_folder(root=None, **kwargs):
    """Write :func:`~sk_animals.datasets.make_image_dataset` images as PNGs, a folder per class.

    Parameters
    ----------
    root : str or path-like, default=None
        Where to write; a new temporary folder when None (the caller removes it).
    **kwargs
        Passed to :func:`make_image_dataset` (``n_samples``, ``n_classes``, ``size``,
        ``noise``, ``random_state``).

    Returns
    -------
    root : pathlib.Path

    Examples
    --------
    >>> from sk_animals.datasets import load_image_folder, make_image_folder
    >>> load_image_folder(make_image_folder(n_samples=4, n_classes=2)).target_names
    ['circle', 'cross']
    """
    root = tempfile.mkdtemp(prefix="sk-animals-images-") if root is None else root
    return save_image_folder(*make_image_dataset(**kwargs), root)
