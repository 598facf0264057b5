"""Pure torch and numpy for image batches: device, checks, conversion, statistics, augmentation.

No scikit-learn and no skorch here: the estimators in :mod:`sk_animals._base` call these.
"""

import mmap

import numpy as np
import torch
import torch.nn.functional as F
from scipy import sparse

__all__ = [
    "augment",
    "channel_stats",
    "check_images",
    "MappedPages",
    "resolve_device",
    "to_network_input",
]


def resolve_device(device):
    """``"auto"`` becomes ``"cuda"`` when CUDA is available, else ``"cpu"``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_images(X, name="X"):
    """Validate an image batch: ``(n, height, width, 3)``, uint8 or float in [0, 1].

    Returns ``X`` as an ndarray, without copying when it already is one.
    """
    if sparse.issparse(X):
        raise TypeError(
            f"{name} is a sparse matrix, but images must be a dense array of shape "
            "(n_samples, height, width, 3)"
        )
    X = np.asarray(X)
    if X.ndim != 4 or X.shape[-1] != 3:
        raise ValueError(
            f"{name} must be images of shape (n_samples, height, width, 3), got shape "
            f"{X.shape}; load files with sk_animals.preprocessing.ImageLoader first"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty: found 0 images")
    if X.dtype != np.uint8:
        if not np.issubdtype(X.dtype, np.floating):
            raise ValueError(f"{name} must be uint8 or float in [0, 1], got dtype {X.dtype}")
        if not np.isfinite(X).all():
            raise ValueError(f"{name} contains NaN or infinity")
        low, high = float(X.min()), float(X.max())
        if low < 0 or high > 1:
            raise ValueError(
                f"{name} is float with values from {low:g} to {high:g}, outside [0, 1]; "
                "pass uint8 images (0-255) as they are, or divide float images by 255"
            )
    return X


def channel_stats(X, chunk=256, max_images=2048):
    """Per-channel mean and std of images, in [0, 1] units, without a float copy of X.

    Measured on at most ``max_images`` evenly spaced images: enough for three decimals.
    """
    X = X[:: max(1, len(X) // max_images)]
    if X.dtype != np.uint8:
        flat = X.reshape(-1, 3)
        return flat.mean(0, dtype=np.float64), np.maximum(flat.std(0, dtype=np.float64), 1e-3)
    counts = np.zeros((3, 256))
    for start in range(0, len(X), chunk):
        block = X[start : start + chunk]
        for c in range(3):
            counts[c] += np.bincount(block[..., c].ravel(), minlength=256)
    values = np.arange(256) / 255.0
    mean = counts @ values / counts.sum(1)
    std = np.sqrt(counts @ values**2 / counts.sum(1) - mean**2)
    return mean, np.maximum(std, 1e-3)


def to_network_input(x, mean, std, device):
    """A uint8 (or [0, 1] float) NHWC batch to a normalised float NCHW tensor on ``device``.

    The batch travels to the device as uint8 (a quarter of float32's bytes) and is
    converted there.
    """
    x = torch.as_tensor(x).to(device, non_blocking=True).permute(0, 3, 1, 2)
    scale = 255.0 if x.dtype == torch.uint8 else 1.0
    x = x.to(torch.float32, copy=True)  # the one float copy; the rest is in place
    mean = torch.as_tensor(np.asarray(mean) * scale, dtype=x.dtype, device=x.device)
    std = torch.as_tensor(np.asarray(std) * scale, dtype=x.dtype, device=x.device)
    return x.sub_(mean.view(1, 3, 1, 1)).div_(std.view(1, 3, 1, 1))


def augment(x, *, flip=False, translate=0.0):
    """Random horizontal flips and whole-pixel translations of a normalised NCHW batch.

    ``translate`` is the largest shift as a fraction of the width and height; the
    uncovered border is filled with zeros, the mean colour after normalisation.
    """
    n, _, h, w = x.shape
    if flip:
        flipped = torch.rand(n, device=x.device) < 0.5
        x = torch.where(flipped.view(n, 1, 1, 1), x.flip(3), x)
    if translate:
        theta = torch.zeros(n, 2, 3, device=x.device)
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        size = torch.tensor([w, h], device=x.device)
        shift = torch.round((torch.rand(n, 2, device=x.device) * 2 - 1) * size * translate)
        theta[:, :, 2] = -2 * shift / size
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return x


class MappedPages:
    """Keep the resident memory of a memory-mapped image array bounded while reading it.

    Pages of a :class:`numpy.memmap` that have been read stay in the process's resident
    memory until the kernel needs them back, so a pass over a data set larger than
    memory looks like it holds all of it. :meth:`read` counts the bytes read and, every
    ``limit`` bytes, tells the kernel that the mapped pages are not needed
    (``MADV_DONTNEED``): they are dropped from the process and read again from the
    file (or the page cache) when next used. For anything but a memmap it does nothing.

    Parameters
    ----------
    X : array-like
        The data being read, e.g. the ``X`` of a skorch dataset.
    limit : int, default=256 MiB
        Bytes read between releases: the bound on the mapped pages kept resident.
    """

    def __init__(self, X, limit=256 * 2**20):
        while X is not None and getattr(X, "_mmap", None) is None:
            X = getattr(X, "base", None)  # np.asarray(memmap) is a plain view of it
        self.mapping = None if X is None else X._mmap
        self.limit = limit
        self.unreleased = 0

    def read(self, nbytes):
        if self.mapping is None:
            return
        self.unreleased += nbytes
        if self.unreleased >= self.limit:
            self.release()

    def release(self):
        if self.mapping is not None and hasattr(self.mapping, "madvise"):
            self.mapping.madvise(mmap.MADV_DONTNEED)
        self.unreleased = 0
