"""A frozen body's features of each image, computed once within a run and shared.

Within one :func:`~sk_animals.evaluation.compare`, the same images go through the same
frozen backbone many times: the probe's fit, its test scoring, the label audit, the budget
points, and every cross-validation fold of a transfer classifier that trains its head on a
frozen body. Inside :func:`shared_features`, :class:`~sk_animals.transfer.PretrainedFeatures`
and :class:`~sk_animals.transfer.TransferClassifier` look each image up by its pixels and
by the body's weights before computing it, so each image's features (per view: the image
and its mirror) are computed once, whichever approach asks first, including approaches
built by hand. Outside it, nothing is kept.

What a hit saves is charged to whoever gets it (``FeatureCache.charged``): compare adds it
to the fit and predict times it reports, so that an approach's cost is what its pipeline
needs from the image files, as if it had computed its features alone.
"""

import hashlib
import time
from contextlib import contextmanager
from contextvars import ContextVar
from types import SimpleNamespace

import numpy as np

__all__ = [
    "FeatureCache",
    "active",
    "body_key",
    "cached_features",
    "costed",
    "shared_features",
]

#: The cache of the run in progress (see :func:`shared_features`), or None.
_ACTIVE = ContextVar("sk_animals_features", default=None)

#: Bytes of features a run keeps: 2 GiB, float32 (lite0's 1280 values and their mirror's
#: take 10 KB an image: 200,000 images). Past it, new features are computed, not kept.
MAX_BYTES = 2**31


class FeatureCache:
    """Feature vectors by (body, image, view), with the seconds each took to compute.

    Parameters
    ----------
    max_bytes : int
        Bytes of features kept; past it, nothing new is stored.

    Attributes
    ----------
    nbytes : int
        Bytes of features kept.
    charged : float
        Seconds that the hits saved: the time their features took when first computed.
    """

    def __init__(self, max_bytes=MAX_BYTES):
        self.max_bytes = max_bytes
        self.entries = {}
        self.nbytes = 0
        self.charged = 0.0


def active():
    """The :class:`FeatureCache` of the run in progress, or None."""
    return _ACTIVE.get()


@contextmanager
def shared_features(max_bytes=MAX_BYTES):
    """Share frozen features within the block (nested blocks share the outer cache)."""
    if _ACTIVE.get() is not None:
        yield _ACTIVE.get()
        return
    token = _ACTIVE.set(FeatureCache(max_bytes))
    try:
        yield _ACTIVE.get()
    finally:
        _ACTIVE.reset(token)


@contextmanager
def costed():
    """Time the block: its wall seconds plus what the cache's hits inside it saved.

    Yields an object whose ``seconds`` is set when the block ends.
    """
    cache = _ACTIVE.get()
    before = cache.charged if cache is not None else 0.0
    timer = SimpleNamespace(seconds=0.0)
    start = time.perf_counter()
    try:
        yield timer
    finally:
        saved = cache.charged - before if cache is not None else 0.0
        timer.seconds = time.perf_counter() - start + saved


def body_key(module, mean, std, skip=(), what="features/fp32"):
    """A digest of a frozen body: its tensors (less those whose names start with ``skip``),
    the input normalisation ``mean`` and ``std``, and ``what`` is computed from its output
    (which vector, in which precision): only equal computations share their results."""
    digest = hashlib.blake2b(what.encode(), digest_size=16)
    for name, tensor in module.state_dict().items():
        if not name.startswith(tuple(skip)):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for value in (mean, std):
        digest.update(np.asarray(value, np.float64).tobytes())
    return digest.digest()


def cached_features(compute, X, body, views=1, batch=1):
    """``compute(X)``'s rows, each image's computed once within :func:`shared_features`.

    Parameters
    ----------
    compute : callable
        ``compute(images)`` -> float32 array ``(n, views, n_features)``.
    X : ndarray of shape (n_samples, height, width, 3)
    body : callable
        Gives the :func:`body_key` of the network that ``compute`` runs (called only
        within :func:`shared_features`).
    views : int, default=1
        Views per image (2: the image and its mirror).
    batch : int, default=1
        Images per forward pass of ``compute``. A network's output for an image can
        depend, in its last bits, on the size of the batch it was computed in (oneDNN
        chooses its kernels by shape, on one thread most of all), so within
        :func:`shared_features` the images to compute are padded to whole batches and
        the batch size is part of the key: a run gives the same values whichever
        approach computed them first, and a resumed run the same as an uninterrupted one.

    Returns
    -------
    features : ndarray of shape (n_samples, views, n_features), float32
    """
    cache = _ACTIVE.get()
    if cache is None:
        return compute(X)
    body = (body(), batch)
    keys = [(body, hashlib.blake2b(image.tobytes(), digest_size=16).digest()) for image in X]
    # a hit has at least the views asked for (the image's own comes first)
    missing = [i for i, k in enumerate(keys) if len(cache.entries.get(k, ((),))[0]) < views]
    fresh, seconds = {}, 0.0
    if missing:
        start = time.perf_counter()
        todo = X[missing]
        padding = -len(todo) % batch
        if padding:  # whole batches: see ``batch``
            todo = np.concatenate([todo, np.zeros((padding, *todo.shape[1:]), todo.dtype)])
        fresh = dict(zip(missing, compute(todo)[: len(missing)], strict=True))
        seconds = (time.perf_counter() - start) / len(missing)
    out = None
    for i, k in enumerate(keys):
        if i in fresh:
            row = fresh[i]
            old = cache.entries.pop(k, (np.empty(0, np.float32), 0.0))[0]
            cache.nbytes -= old.nbytes
            if cache.nbytes + row.nbytes <= cache.max_bytes:
                cache.entries[k] = (row.copy(), seconds)
                cache.nbytes += row.nbytes
        else:
            vectors, took = cache.entries[k]
            row = vectors[:views]
            cache.charged += took * views / len(vectors)
        if out is None:
            out = np.empty((len(X), *row.shape), np.float32)
        out[i] = row
    return out
