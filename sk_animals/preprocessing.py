"""Turn image files, bytes, PIL images or arrays into one uint8 array.

:class:`ImageLoader` is the first step of every pipeline in this package. It is a thin,
stateless estimator over two functions: :func:`_decode` (any supported input to an RGB
PIL image, EXIF orientation applied) and :func:`_resize` (the resize policy), with an
optional on-disk cache of the decoded arrays (:class:`_DiskCache`).
"""

import hashlib
import io
import json
import math
import os
import stat
import uuid
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import PIL
from joblib import Parallel, delayed, effective_n_jobs
from PIL import Image, ImageOps
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions

from .exceptions import ImageLoadError

__all__ = ["ImageLoadError", "ImageLoader", "find_bad_images"]

INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
RESIZE_POLICIES = ("stretch", "crop", "pad")
#: The largest image side a saved model may ask for (the loader's ``size``, the size it
#: resizes to before a crop, a classifier's ``image_size_``): its file decides how large
#: the images it is given are made, and ``load`` refuses a file that would cost more.
MAX_IMAGE_SIDE = 4096
BACKGROUND = (255, 255, 255)  # transparent pixels and letterbox bars become white
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_HIGH_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def _as_size(size):
    """Validate ``size`` and return it as ``(height, width)``."""
    pair = (size, size) if isinstance(size, Integral) else size
    try:
        h, w = pair
        valid = all(isinstance(v, Integral) and not isinstance(v, bool) and v >= 1 for v in pair)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            f"size must be a positive int or a (height, width) pair of positive ints, got {size!r}"
        )
    return int(h), int(w)


def _name(item, position):
    if isinstance(item, str | os.PathLike):
        return os.fspath(item)
    return f"<{type(item).__name__} at position {position}>"


def _open(item):
    """Open ``item`` as a PIL image without decoding its pixels yet."""
    if isinstance(item, str | os.PathLike):
        if os.path.isdir(item):
            raise IsADirectoryError("is a folder, not an image file")
        return Image.open(item)
    if isinstance(item, bytes | bytearray | memoryview):
        return Image.open(io.BytesIO(item))
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8:
            raise TypeError(f"arrays must be uint8, got {item.dtype}; scale and cast them first")
        if item.ndim == 3 and item.shape[2] == 1:
            item = item[:, :, 0]
        if item.ndim not in (2, 3) or (item.ndim == 3 and item.shape[2] not in (3, 4)):
            raise ValueError(f"arrays must be (H, W), (H, W, 3) or (H, W, 4), got {item.shape}")
        return Image.fromarray(item)
    raise TypeError(
        f"unsupported input of type {type(item).__name__}; "
        "expected a path, bytes, a PIL image or a uint8 array"
    )


def _target_size(size, shape, policy):
    """The (width, height) an image of ``shape`` is scaled to before any crop or pad."""
    (th, tw), (w, h) = size, shape
    if policy == "stretch":
        return tw, th
    scale = (max if policy == "crop" else min)(tw / w, th / h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _to_rgb(img):
    """Any PIL mode to RGB: 16-bit scaled (not clipped), alpha composited on white."""
    if img.mode in _HIGH_BIT_MODES:
        values = np.asarray(img, dtype=np.float64)
        if img.mode != "F":
            values = values / 257.0  # 0..65535 -> 0..255
        img = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        img = Image.new("RGB", rgba.size, BACKGROUND)
        img.paste(rgba, mask=rgba.getchannel("A"))
    return img if img.mode == "RGB" else img.convert("RGB")


def _decode(img, size, policy, opened, draft=True):
    """An upright RGB version of ``img``; JPEG draft mode when shrinking a file we opened
    (unless ``draft`` is False: an evaluation transform is reproduced pixel for pixel)."""
    if draft and opened and img.format == "JPEG":
        transposed = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)
        upright = img.size[::-1] if transposed else img.size
        want = _target_size(size, upright, policy)
        img.draft(None, want[::-1] if transposed else want)
    if opened:  # our own image: turn it upright in place, without a copy
        ImageOps.exif_transpose(img, in_place=True)
        return _to_rgb(img)
    return _to_rgb(ImageOps.exif_transpose(img))


def _resize(img, size, policy, resample, crop_pct=1.0):
    """Resize to ``size`` = (height, width) by the given policy; with ``crop_pct`` below 1,
    to ``floor(size / crop_pct)`` first (for ``"crop"``, the shorter side only, as timm and
    torchvision's ``Resize`` then ``CenterCrop`` do), then cut the centre ``size``."""
    if crop_pct != 1:
        scaled = _scaled_size(size, crop_pct)
        if policy == "crop":
            resized = img.resize(_shorter_side(scaled, img.size), resample)
        else:
            resized = _resize(img, scaled, policy, resample)
        return _centre(resized, size)
    th, tw = size
    if policy == "stretch":
        return img if img.size == (tw, th) else img.resize((tw, th), resample)
    if policy == "crop":
        return ImageOps.fit(img, (tw, th), method=resample)
    return ImageOps.pad(img, (tw, th), method=resample, color=BACKGROUND)


def _shorter_side(size, shape):
    """The (width, height) torchvision's ``Resize(side)`` gives an image of ``shape`` for a
    square ``size``: the shorter side to ``side``, the longer truncated, as its
    ``_compute_resized_output_size`` does (rounding it moved the crop by a pixel)."""
    (th, tw), (w, h) = size, shape
    if th != tw:
        return _target_size(size, shape, "crop")
    short, long = min(w, h), max(w, h)
    longer = int(th * long / short)
    return (th, longer) if w <= h else (longer, th)


def _scaled_size(size, crop_pct):
    """The (height, width) resized to before the centre ``size`` is cut, as timm's
    ``transforms_factory`` computes it (``floor(size / crop_pct)``)."""
    return size if crop_pct == 1 else tuple(math.floor(s / crop_pct) for s in size)


def _centre(img, size):
    """The centre ``size`` = (height, width) of ``img`` (torchvision's ``center_crop``)."""
    (th, tw), (w, h) = size, img.size
    if (w, h) == (tw, th):
        return img
    top, left = round((h - th) / 2), round((w - tw) / 2)
    return img.crop((left, top, left + tw, top + th))


def _load_chunk(items, positions, out, policy, resample, crop_pct=1.0):
    """Load ``items[positions]`` into ``out``; return ``(position, name, reason)`` failures."""
    size = out.shape[1:3]
    scaled = _scaled_size(size, crop_pct)
    errors = []
    for i in positions:
        try:
            img = _open(items[i])
            try:
                upright = _decode(img, scaled, policy, img is not items[i], crop_pct == 1)
                out[i] = np.asarray(_resize(upright, size, policy, resample, crop_pct))
            finally:
                if img is not items[i]:
                    img.close()
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none is fatal
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, Image.DecompressionBombError):
                reason = f"decompression bomb refused ({reason})"
            errors.append((int(i), _name(items[i], i), f"{type(exc).__name__}: {reason}"))
    return errors


def _as_items(X):
    if isinstance(X, str | bytes | os.PathLike | Image.Image):
        raise TypeError("X must be a sequence of images; wrap a single image in a list: [X]")
    if isinstance(X, np.ndarray) and X.ndim == 0:
        raise TypeError("X must be a sequence of images, got a 0-d array")
    if isinstance(X, np.ndarray) and X.ndim == 3 and X.shape[2] in (1, 3, 4):
        raise TypeError(
            f"X is one image of shape {X.shape}, not a sequence of images; add a leading "
            "axis (X[None]) or wrap it in a list: [X] (a stack of grayscale images must "
            "be more than 4 pixels wide)"
        )
    try:
        return list(X)
    except TypeError:
        raise TypeError(
            f"X must be a sequence of images (paths, bytes, PIL images or arrays), "
            f"got {type(X).__name__}"
        ) from None


def _load_into(items, positions, out, policy, interpolation, n_jobs, crop_pct=1.0):
    """Load ``items[positions]`` into the rows of ``out``; return the sorted failures."""
    n_chunks = min(len(positions), 4 * effective_n_jobs(n_jobs))
    chunks = np.array_split(np.asarray(positions), n_chunks) if n_chunks else []
    resample = INTERPOLATIONS[interpolation]
    results = Parallel(n_jobs=n_jobs, require="sharedmem")(
        delayed(_load_chunk)(items, chunk, out, policy, resample, crop_pct) for chunk in chunks
    )
    return sorted(e for errs in results for e in errs)


def _load_all(X, size, policy, interpolation, n_jobs, crop_pct=1.0):
    items = _as_items(X)
    out = np.empty((len(items), *_as_size(size), 3), dtype=np.uint8)
    return out, _load_into(items, range(len(items)), out, policy, interpolation, n_jobs, crop_pct)


# -- the on-disk cache of decoded arrays
_CACHE_FORMAT = 1  # bump when the layout or the decoding changes the stored pixels


def _digest(*parts):
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _file_key(item):
    """``item``'s identity (resolved path, size, mtime_ns) as a digest; None if not a file."""
    if not isinstance(item, str | os.PathLike):
        return None
    try:
        path = os.path.realpath(item)
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return _digest(os.fsencode(path).hex(), str(st.st_size), str(st.st_mtime_ns))


class _DiskCache:
    """Decoded images of path lists, one ``.npy`` per list, opened as a memory map.

    Layout: ``cache_dir/sk_animals-v<format>/<settings digest>/<list digest>.npy``, with a
    ``.json`` sidecar holding the settings, the digest of every item (resolved path, size,
    mtime_ns) and the ``.npy``'s expected shape and length in bytes. An entry is used only
    when the sidecar names the same list and the ``.npy`` header and length agree with it
    (a truncated, foreign or half-written file is rebuilt). A changed source file has a
    new digest, hence a new entry. Rows of a list not seen before are copied from the
    entries of earlier lists that hold them; only the rest are decoded. Entries are
    written to a temporary file and renamed into place, so readers never see a partial
    one; concurrent writers of the same list write the same bytes.

    Entries are mapped copy-on-write (``mmap_mode="c"``): the file is opened read-only
    and never changes, while the array stays writable to its process, as torch expects
    of the arrays it wraps (a read-only array makes ``DataLoader`` warn).
    """

    def __init__(self, root, size, policy, interpolation, crop_pct=1.0):
        self.size, self.policy, self.interpolation = size, policy, interpolation
        self.crop_pct = crop_pct
        settings = {
            "format": _CACHE_FORMAT,
            "size": list(size),
            "resize": policy,
            "interpolation": interpolation,
            "pillow": PIL.__version__,  # resampling filters change between releases
        }
        if crop_pct != 1:  # absent otherwise: the entries written before it stay valid
            settings["crop_pct"] = crop_pct
            settings["exact"] = True  # entries written before the exact rule are stale
        self.settings = settings
        folder = _digest(json.dumps(settings, sort_keys=True))
        self.dir = Path(root) / f"sk_animals-v{_CACHE_FORMAT}" / folder

    def _paths(self, key):
        return self.dir / f"{key}.npy", self.dir / f"{key}.json"

    def _open(self, key, meta=None):
        """Entry ``key`` as a memmap, or None when absent or not trustworthy."""
        npy, sidecar = self._paths(key)
        try:
            if meta is None:
                meta = json.loads(sidecar.read_text())
            shape = (len(meta["items"]), *self.size, 3)
            if meta["key"] != key or meta["settings"] != self.settings:
                return None
            if tuple(meta["shape"]) != shape:
                return None
            with open(npy, "rb") as f:
                version = np.lib.format.read_magic(f)
                read_header = {
                    (1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0,
                }.get(version)
                if read_header is None:
                    return None
                header_shape, fortran, dtype = read_header(f)
                expected = f.tell() + int(np.prod(shape))
                length = os.fstat(f.fileno()).st_size
            if header_shape != shape or fortran or dtype != np.uint8:
                return None
            if length != expected or length != meta["bytes"]:
                return None
            return np.load(npy, mmap_mode="c")
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _donors(self, wanted):
        """``{item digest: (memmap, row)}`` for the wanted items held by valid entries."""
        found = {}
        for sidecar in sorted(self.dir.glob("*.json")):
            try:
                meta = json.loads(sidecar.read_text())
                rows = {d: r for r, d in enumerate(meta["items"]) if d in wanted}
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if rows.keys() - found.keys():
                entry = self._open(sidecar.stem, meta)
                if entry is not None:
                    found.update({d: (entry, r) for d, r in rows.items() if d not in found})
            if len(found) == len(wanted):
                break
        return found

    def load(self, items, keys, n_jobs):
        """All of ``items`` (files with digests ``keys``) as a copy-on-write memmap."""
        key = _digest(json.dumps(self.settings, sort_keys=True), *keys)
        entry = self._open(key)
        if entry is not None:
            return entry
        self.dir.mkdir(parents=True, exist_ok=True)
        npy, sidecar = self._paths(key)
        tmp = f".{os.getpid()}.{uuid.uuid4().hex}.tmp"
        tmp_npy, tmp_sidecar = npy.with_name(npy.name + tmp), sidecar.with_name(sidecar.name + tmp)
        try:
            out = np.lib.format.open_memmap(
                tmp_npy, mode="w+", dtype=np.uint8, shape=(len(items), *self.size, 3)
            )
            donors = self._donors(set(keys))
            missing = []
            for i, k in enumerate(keys):
                if k in donors:
                    source, row = donors[k]
                    out[i] = source[row]
                else:
                    missing.append(i)
            errors = _load_into(
                items, missing, out, self.policy, self.interpolation, n_jobs, self.crop_pct
            )
            if errors:
                raise ImageLoadError(errors)
            out.flush()
            del out, donors
            meta = {
                "key": key,
                "settings": self.settings,
                "shape": [len(items), *self.size, 3],
                "bytes": tmp_npy.stat().st_size,
                "items": list(keys),
            }
            tmp_sidecar.write_text(json.dumps(meta))
            os.replace(tmp_npy, npy)
            os.replace(tmp_sidecar, sidecar)
        finally:
            tmp_npy.unlink(missing_ok=True)
            tmp_sidecar.unlink(missing_ok=True)
        return np.load(npy, mmap_mode="c")


class ImageLoader(TransformerMixin, BaseEstimator):
    """Load and resize images into one ``(n, height, width, 3)`` uint8 array.

    Accepts what scikit-learn's splitters hand it: a list or 1-D array of file paths
    (``str`` or path-like), and also raw file bytes, PIL images and uint8 arrays, mixed.
    The result stays uint8 (3 bytes a pixel); conversion to float happens per batch in the
    classifiers, so 5000 images at 227x227 take 773 MB, not four times that.

    Every image is decoded to RGB: EXIF orientation is applied, grayscale and palette
    images are expanded, transparent pixels are composited onto white, 16-bit images are
    scaled to 8 bits, CMYK is converted and an animated image gives its first frame. JPEG
    files are decoded at reduced resolution (draft mode) when that is still at least the
    target size, which is what makes loading large photos fast.

    Parameters
    ----------
    size : int or (int, int), default=224
        Output size; an int gives square images, a pair is ``(height, width)``.
    resize : {"stretch", "crop", "pad"}, default="stretch"
        ``"stretch"`` scales both sides to ``size`` regardless of aspect ratio (as the
        paper did); ``"crop"`` scales the shorter side then crops the centre; ``"pad"``
        scales the longer side then letterboxes onto white.
    interpolation : {"bilinear", "bicubic", "lanczos", "box", "hamming", "nearest"}, \
            default="bilinear"
        PIL resampling filter (antialiased when shrinking).
    crop_pct : float in (0, 1], default=1.0
        The share of the resized image kept around its centre: the image is resized as
        ``resize`` says to ``floor(size / crop_pct)``, then its centre ``size`` is cut, as
        the evaluation transforms of timm and torchvision do (``crop_pct=0.875`` with
        ``resize="crop"``: the shorter side to 256, the centre 224x224). The approaches of
        :func:`~sk_animals.protocols.paper_protocol` on a ``timm/`` backbone take it, and
        ``interpolation``, from the model's ``pretrained_cfg``.
    n_jobs : int, default=None
        Threads decoding in parallel (Pillow releases the GIL while decoding and
        resizing). ``None`` means 1 unless in a :func:`joblib.parallel_config` context;
        ``-1`` uses all cores.
    cache_dir : str or path-like, default=None
        A folder for an on-disk cache of decoded images. When set, :meth:`transform` of a
        list of file paths stores the decoded array there and returns it as a memory
        map; transforming the same files again with the same settings reads it
        back instead of decoding. ``None`` caches nothing.

    See Also
    --------
    find_bad_images : List the inputs that cannot be loaded, before a long fit.
    sk_animals.datasets.load_image_folder : File paths and labels from a folder per class.

    Notes
    -----
    A transformer cannot drop rows inside a Pipeline, so an input that cannot be read is
    an error, not a skipped image: :meth:`transform` decodes everything it can and then
    raises one :class:`~sk_animals.exceptions.ImageLoadError` (a ``ValueError``) naming
    every bad input and why:
    a missing path, a folder, an empty, truncated or corrupt file, a format Pillow cannot
    read (SVG, say) or a decompression bomb (more than twice ``PIL.Image.MAX_IMAGE_PIXELS``
    pixels). Check a folder up front with ``load_image_folder(root, verify=True)``.

    ``fit`` learns nothing; ``transform`` works on an unfitted loader.

    With ``cache_dir``, an entry is keyed by every file's resolved path, size and
    modification time and by the settings that change the pixels (``size``, ``resize``,
    ``interpolation``, the Pillow version): editing a file or a setting makes a new entry,
    and a truncated or otherwise damaged entry is detected and rebuilt. Each list of paths
    is one ``.npy`` file, opened as a copy-on-write :class:`numpy.memmap` (writes stay in
    memory, the file never changes): its pages are read from disk as training touches
    them, so a set larger than memory can be trained on. Images a
    new list shares with earlier lists are copied from their entries rather than decoded
    (nested training budgets drawn from one folder decode each image once). Inputs that
    are not all file paths (bytes, PIL images, arrays) bypass the cache. Old entries are
    not removed; delete the folder at any time to reclaim the space.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_animals.preprocessing import ImageLoader
    >>> images = [np.zeros((40, 60, 3), np.uint8), np.full((10, 10), 255, np.uint8)]
    >>> X = ImageLoader(size=32).fit_transform(images)
    >>> X.shape, X.dtype
    ((2, 32, 32, 3), dtype('uint8'))
    >>> int(X[1].min())
    255

    With a cache, the second transform of the same files reads them back from disk:

    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> folder = Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (50, 40), "red").save(folder / "red.png")
    >>> loader = ImageLoader(size=32, cache_dir=folder / "cache")
    >>> first = loader.transform([folder / "red.png"])  # decoded, then stored
    >>> X = loader.transform([folder / "red.png"])  # read back, not decoded
    >>> type(X).__name__, X.mode, X[0, 0, 0].tolist()
    ('memmap', 'c', [255, 0, 0])
    >>> del first, X
    >>> shutil.rmtree(folder)
    """

    _parameter_constraints = {
        "size": ["array-like", Interval(Integral, 1, None, closed="left")],
        "resize": [StrOptions(set(RESIZE_POLICIES))],
        "interpolation": [StrOptions(set(INTERPOLATIONS))],
        "crop_pct": [Interval(Real, 0, 1, closed="right")],
        "n_jobs": [Integral, None],
        "cache_dir": [str, os.PathLike, None],
    }

    def __init__(
        self,
        size=224,
        *,
        resize="stretch",
        interpolation="bilinear",
        crop_pct=1.0,
        n_jobs=None,
        cache_dir=None,
    ):
        self.size = size
        self.resize = resize
        self.interpolation = interpolation
        self.crop_pct = crop_pct
        self.n_jobs = n_jobs
        self.cache_dir = cache_dir

    def __setstate__(self, state):
        # loaders pickled before crop_pct existed kept the whole resized image
        super().__setstate__({"crop_pct": 1.0, **state})

    def fit(self, X=None, y=None):
        """Validate the parameters; nothing is learned.

        Parameters
        ----------
        X : ignored
        y : ignored

        Returns
        -------
        self : ImageLoader
        """
        self._validate_params()
        _as_size(self.size)
        return self

    def transform(self, X):
        """Load and resize every image in ``X``.

        Parameters
        ----------
        X : sequence of str, path-like, bytes, PIL.Image.Image or ndarray
            The images, one per row.

        Returns
        -------
        images : ndarray of shape (n_samples, height, width, 3), dtype uint8
            C-contiguous; a copy-on-write :class:`numpy.memmap` of the cache entry when
            ``cache_dir`` is set and ``X`` is a list of file paths.

        Raises
        ------
        ImageLoadError
            Listing every input that could not be loaded.
        TypeError
            When ``X`` is not a sequence of images, e.g. one image as an array.
        """
        self._validate_params()
        if self.cache_dir is not None:
            items = _as_items(X)
            keys = [_file_key(item) for item in items]
            if items and None not in keys:  # only existing files; the rest as usual
                cache = _DiskCache(
                    self.cache_dir,
                    _as_size(self.size),
                    self.resize,
                    self.interpolation,
                    self.crop_pct,
                )
                return cache.load(items, keys, self.n_jobs)
            X = items
        out, errors = self._load_all(X, self.n_jobs)
        if errors:
            raise ImageLoadError(errors)
        return out

    def _load_all(self, X, n_jobs):
        """Every image of ``X`` decoded by these settings, uncached: ``(images, failures)``,
        the failures as ``(position, name, reason)`` (their rows of ``images`` are unset)."""
        return _load_all(X, self.size, self.resize, self.interpolation, n_jobs, self.crop_pct)

    def _fitted_state(self):
        """Nothing is learned: no values, no tensors (see ``sk_animals.persistence``)."""
        return {}, {}

    def _restore_fitted_state(self, values, tensors):
        """Nothing to restore: the settings from a file are checked, the sides (``size``
        and the size it resizes to before a crop) within :data:`MAX_IMAGE_SIDE`, so that a
        file cannot make ``transform`` allocate huge images; return self."""
        self._validate_params()
        scaled = _scaled_size(_as_size(self.size), self.crop_pct)
        if max(scaled) > MAX_IMAGE_SIDE:
            raise ValueError(
                f"size={self.size!r} with crop_pct={self.crop_pct!r} makes images of "
                f"{scaled[0]}x{scaled[1]} pixels, above the {MAX_IMAGE_SIDE} a model file may "
                "ask for"
            )
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.string = True
        tags.transformer_tags.preserves_dtype = ["uint8"]  # uint8 arrays in, uint8 images out
        return tags


def find_bad_images(X, *, n_jobs=None):
    """The images in ``X`` that :class:`~sk_animals.preprocessing.ImageLoader` cannot load.

    Decodes each image fully (at a small size), so it costs about one loading pass.

    Parameters
    ----------
    X : sequence of str, path-like, bytes, PIL.Image.Image or ndarray
        The images to check.
    n_jobs : int, default=None
        Threads decoding in parallel.

    Returns
    -------
    errors : list of (int, str, str)
        ``(position, name, reason)`` for each bad image; empty when all load.

    Examples
    --------
    >>> from sk_animals.preprocessing import find_bad_images
    >>> find_bad_images([b"not an image"])[0][2][:22]
    'UnidentifiedImageError'
    """
    return _load_all(X, 8, "stretch", "nearest", n_jobs)[1]


def split_loader(model):
    """(the ImageLoader that starts the Pipeline ``model``, the steps after it), or
    ``(None, model)`` for a model without one."""
    steps = getattr(model, "steps", None)
    if not steps or not isinstance(steps[0][1], ImageLoader):
        return None, model
    rest = model[1:] if len(steps) > 2 else steps[-1][1]
    return steps[0][1], rest
