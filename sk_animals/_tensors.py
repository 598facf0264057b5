"""Pure torch and numpy for image batches: device, checks, conversion, statistics, augmentation.

No scikit-learn and no skorch here: the estimators in :mod:`sk_animals._base` call these.
"""

import mmap
import os
import re
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from scipy import sparse

__all__ = [
    "augment",
    "channel_stats",
    "check_images",
    "check_module_state",
    "denormals_flushed",
    "flush_denormals",
    "inference_order",
    "MappedPages",
    "random_flips",
    "resolve_device",
    "to_network_input",
]


def denormals_flushed():
    """Whether this thread flushes denormal floats to zero (torch has no getter for it).

    A float32 denormal times one is itself, unless the thread treats denormals as zero.
    """
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # below float32's smallest normal
    return (tiny * 1.0).item() == 0.0


@contextmanager
def flush_denormals():
    """Flush denormal floats to zero on this thread for the block; restore the setting after.

    Denormal (subnormal) floats are up to 100x slower on x86 CPUs, and training produces
    them: tiny gradients and momentum buffers that decay towards zero. TensorFlow flushes
    them in its CPU thread pools; torch leaves it to the caller
    (:func:`torch.set_flush_denormal`, a per-thread setting with no getter). The
    caller's setting is detected with a tiny denormal computation and put back on exit,
    also after an error or a Ctrl-C. Only the calling thread is changed, the one where
    fit and predict run. A CPU without the instructions (``set_flush_denormal`` returns
    False) runs unchanged.
    """
    before = denormals_flushed()
    changed = not before and torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if changed:
            torch.set_flush_denormal(False)


def resolve_device(device):
    """``"auto"`` becomes ``"cuda"`` when CUDA is available, else ``"cpu"``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def inference_batch_size(batch_size, device):
    """Images per forward pass without gradients: ``"auto"`` is 256 on a GPU and 16 on the
    CPU, where larger batches outgrow the caches (EfficientNet-Lite0 and squeezenet1_1 take
    1.6x to 1.8x as long an image at 64 as at 8 to 16 on two cores; see performance)."""
    if batch_size != "auto":
        return batch_size
    return 256 if torch.device(resolve_device(device)).type == "cuda" else 16


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


def channel_stats(X, chunk=64, max_images=2048):
    """Per-channel mean and std of images, in [0, 1] units, without a float copy of X.

    Measured on at most ``max_images`` evenly spaced images (enough for three decimals),
    read ``chunk`` at a time; the pages of a large memory map are released after each
    chunk (:class:`MappedPages`), so a memory-mapped set does not become resident.
    """
    rows = np.unique(np.linspace(0, len(X) - 1, min(len(X), max_images)).astype(int))
    pages = MappedPages(X)
    if X.dtype != np.uint8:
        flat = X[rows].reshape(-1, 3)
        pages.release()
        return flat.mean(0, dtype=np.float64), np.maximum(flat.std(0, dtype=np.float64), 1e-3)
    counts = np.zeros((3, 256))
    for start in range(0, len(rows), chunk):
        block = X[rows[start : start + chunk]]
        pages.read(block.nbytes)
        for c in range(3):
            counts[c] += np.bincount(block[..., c].ravel(), minlength=256)
    pages.release()
    values = np.arange(256) / 255.0
    mean = counts @ values / counts.sum(1)
    std = np.sqrt(counts @ values**2 / counts.sum(1) - mean**2)
    return mean, np.maximum(std, 1e-3)


def is_channels_last(module):
    """Whether ``module``'s weights are laid out channels-last (judged by its first 4-d
    weight), so that its batches must be too: a network and its input in different
    orders is the mix oneDNN's convolution backward crashed on. Read from the weights, not
    from a setting, so that it holds after a model is loaded elsewhere or its
    ``channels_last`` is set again after fitting."""
    weight = next((p for p in module.parameters() if p.ndim == 4), None)
    return (
        weight is not None
        and not weight.is_contiguous()
        and weight.is_contiguous(memory_format=torch.channels_last)
    )


def like_weights(x, module):
    """``x`` laid out in the memory order of ``module``'s weights (:func:`is_channels_last`),
    for the blank or random batches that probe a network's shapes."""
    order = torch.channels_last if is_channels_last(module) else torch.contiguous_format
    return x.contiguous(memory_format=order)


@contextmanager
def inference_order(module, device):
    """Run the frozen ``module`` channels-last inside the block when ``device`` is a CPU.

    For a backbone's features computed without gradients (the probe's, the label audit's,
    a frozen body's), oneDNN's CPU convolutions are faster channels-last: 1.39x for
    EfficientNet-Lite0 and 2.14x for squeezenet1_1 at 224 px (``bench_layout.py``, idle
    machine; training them channels-last is faster too, but not safe for every network:
    see ``channels_last``). The weights are laid out channels-last for the
    block and put back in their order after it (the same parameter objects, so an
    optimizer holding them is unaffected). Yields whether the batches should be
    channels-last too (``to_network_input(..., channels_last=...)``): a network and its
    input in different orders is the mix oneDNN crashed on.
    """
    if torch.device(device).type != "cpu" or not any(p.ndim == 4 for p in module.parameters()):
        yield is_channels_last(module)
        return
    before = torch.channels_last if is_channels_last(module) else torch.contiguous_format
    with torch.inference_mode(False):  # weights made in inference mode could not train
        module.to(memory_format=torch.channels_last)
    try:
        yield True
    finally:
        with torch.inference_mode(False):
            module.to(memory_format=before)


def to_network_input(x, mean, std, device, channels_last=False):
    """A uint8 (or [0, 1] float) NHWC batch to a normalised float NCHW tensor on ``device``,
    contiguous in NCHW order, or in channels-last order with ``channels_last`` (the
    uint8 batch's own order: one conversion, no transpose).

    The batch travels to the device as uint8 (a quarter of float32's bytes), without
    waiting, and is converted there. ``mean`` and ``std`` are per-channel, in [0, 1]
    units; pass them as tensors already on ``device`` to copy nothing else per batch.
    """
    x = torch.as_tensor(x).to(device, non_blocking=True).permute(0, 3, 1, 2)
    scale = 255.0 if x.dtype == torch.uint8 else 1.0
    # the one float copy, laid out as NCHW: the permuted view is channels-last in memory,
    # which a network in NCHW layout got as is, and oneDNN's convolution backward on the
    # CPU crashed on that mix (SIGSEGV/SIGABRT with timm's repvgg_a1, 4 runs in 7)
    order = torch.channels_last if channels_last else torch.contiguous_format
    x = x.to(torch.float32, memory_format=order, copy=True)
    mean, std = (torch.as_tensor(v, dtype=x.dtype, device=x.device) for v in (mean, std))
    return x.sub_(mean.view(1, 3, 1, 1) * scale).div_(std.view(1, 3, 1, 1) * scale)


def random_flips(n, device):
    """Which of ``n`` images a training batch mirrors: each with probability 1/2, one draw
    of the torch RNG on ``device`` (the same draws whether images or their features flip)."""
    return torch.rand(n, device=device) < 0.5


def augment(x, *, flip=False, translate=0.0):
    """Random horizontal flips and whole-pixel translations of a normalised NCHW batch.

    ``translate`` is the largest shift as a fraction of the width and height; the
    uncovered border is filled with zeros, the mean colour after normalisation.
    """
    n, _, h, w = x.shape
    if flip:
        x = torch.where(random_flips(n, x.device).view(n, 1, 1, 1), x.flip(3), x)
    if translate:
        theta = torch.zeros(n, 2, 3, device=x.device)
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        unit = torch.rand(n, 2, device=x.device) * 2 - 1
        for i, size in enumerate((w, h)):  # Python numbers: nothing copied to the device
            theta[:, i, 2] = -2 * torch.round(unit[:, i] * size * translate) / size
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return x


class MappedPages:
    """Keep the resident memory of a large memory-mapped image array bounded while reading.

    Pages of a :class:`numpy.memmap` that have been read stay in the process's resident
    memory until the kernel needs them back, so a pass over a data set larger than
    memory looks like it holds all of it. :meth:`read` counts the bytes read and, every
    ``limit`` bytes (by default after every read), asks the kernel to page the mapping
    out (Linux's ``MADV_PAGEOUT``, about 13 ms for a 2.2 GB mapping):
    pages read from the file leave the process and are read again when next used, while
    pages written in a copy-on-write map are kept, never lost. Paged-out pages leave the
    page cache too and are read from disk again, so only arrays larger than
    ``LARGER_THAN`` bytes (by default half the memory free when training starts: arrays
    that could not stay in memory anyway) are paged out; smaller arrays, arrays that are
    not memory maps, and kernels without ``MADV_PAGEOUT`` (before Linux 5.4) are left
    alone.

    Parameters
    ----------
    X : array-like
        The data being read, e.g. the ``X`` of a skorch dataset.
    limit : int, default=None
        Bytes read between releases; ``MappedPages.LIMIT`` (0: release after every
        read) when None. Each image read can map far more than its bytes (a file just
        written sits in the page cache in folios of up to megabytes, mapped whole: 128
        images of 150 KB mapped 230 MB), so counting bytes does not bound what is
        resident; releasing after every batch does.
    """

    LIMIT = 0
    LARGER_THAN = None
    PAGEOUT = getattr(mmap, "MADV_PAGEOUT", 21)  # Linux's value; Python < 3.13 lacks it

    def __init__(self, X, limit=None):
        limit = self.LIMIT if limit is None else limit
        while X is not None and getattr(X, "_mmap", None) is None:
            X = getattr(X, "base", None)  # np.asarray(memmap) is a plain view of it
        larger_than = self.LARGER_THAN
        if X is not None and larger_than is None:
            larger_than = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
        big = X is not None and X.nbytes > max(limit, larger_than)
        self.mapping = X._mmap if big and hasattr(X._mmap, "madvise") else None
        self.limit = limit
        self.unreleased = 0

    def read(self, nbytes):
        if self.mapping is None:
            return
        self.unreleased += nbytes
        if self.unreleased >= self.limit:
            self.release()

    @staticmethod
    def resident_mb(path):
        """MB of this process's mappings of the file ``path`` now resident (Linux smaps)."""
        resident, inside = 0, False
        with open("/proc/self/smaps") as smaps:
            for line in smaps:
                if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):  # a mapping's header line
                    inside = line.rstrip("\n").endswith(str(path))
                elif inside and line.startswith("Rss:"):
                    resident += int(line.split()[1])
        return resident / 1024

    def release(self):
        if self.mapping is None:
            return
        try:
            self.mapping.madvise(self.PAGEOUT)
        except OSError:  # an older kernel: nothing to gain here
            self.mapping = None
        self.unreleased = 0


def state_tensors(module, **arrays):
    """A fitted estimator's tensors by name: ``module_.<key>`` for the module, then ``arrays``.

    ``arrays`` that are None are left out; all tensors are contiguous and on the CPU.
    """
    tensors = {
        f"module_.{k}": t.detach().cpu().contiguous() for k, t in module.state_dict().items()
    }
    for name, value in arrays.items():
        if value is not None:
            tensors[name] = torch.from_numpy(np.array(value))
    return tensors


def load_module_state(module, tensors):
    """Load the ``module_.*`` entries of :func:`state_tensors` into ``module``; return it."""
    prefix = "module_."
    module.load_state_dict(
        {k[len(prefix) :]: t for k, t in tensors.items() if k.startswith(prefix)}
    )
    return module


def _shape(shape):
    return "(" + ", ".join(map(str, shape)) + ")"


def check_module_state(module, kwargs, tensors):
    """Refuse ``tensors`` that ``module(**kwargs)`` would not take, allocating nothing.

    A saved model's settings are checked against its tensors before its network is built:
    a network class that has ``settings_from_state(shapes)`` (the settings that made a
    state dict of those shapes) names the setting that disagrees; then the network is
    built on PyTorch's meta device (shapes without memory) and every ``module_.*``
    tensor's name and shape compared with its state dict.

    Raises
    ------
    ValueError
        One line naming the setting, or the tensor and the settings, that disagree.
    """
    prefix = "module_."
    stored = {k[len(prefix) :]: tuple(t.shape) for k, t in tensors.items() if k.startswith(prefix)}
    depth = kwargs.get("depth")  # a bound before anything is built layer by layer
    if isinstance(depth, int) and not 0 <= depth <= len(stored):
        raise ValueError(f"depth={depth} does not fit its {len(stored)} stored tensors")
    try:
        implied = module.settings_from_state(stored)
    except (AttributeError, KeyError, IndexError):  # no such method, or tensors missing
        implied = {}
    for key, value in implied.items():
        given = kwargs.get(key)
        if given is not None and given != value:
            name = f"classes_ ({given} classes)" if key == "n_classes" else f"{key}={given!r}"
            raise ValueError(f"{name} disagrees with the stored tensors, made with {value}")
    settings = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    try:
        with torch.device("meta"):
            expected = {k: tuple(t.shape) for k, t in module(**kwargs).state_dict().items()}
    except Exception as exc:  # any failure to build from the file's settings
        raise ValueError(f"the network cannot be built from {settings}: {exc}") from None
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    wrong = [k for k in expected if k in stored and expected[k] != stored[k]]
    if missing or extra or wrong:
        if wrong:
            k = wrong[0]
            what = f"{prefix}{k} is {_shape(stored[k])}, the settings make {_shape(expected[k])}"
        elif missing:
            what = f"tensor {prefix}{missing[0]} is missing"
        else:
            what = f"tensor {prefix}{extra[0]} is not part of the network"
        raise ValueError(f"the stored tensors do not fit the settings ({settings}): {what}")
