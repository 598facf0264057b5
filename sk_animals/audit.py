"""A data audit: class counts, duplicate and near-duplicate images, likely label errors."""

import hashlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial

import imagehash
import numpy as np
from joblib import effective_n_jobs
from PIL import Image, ImageOps
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["AuditResult", "LabelIssues", "audit_images", "dedupe", "find_label_issues"]

_BLOCK = 1 << 22  # hash pairs compared at once
_BITS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1, dtype=np.uint8)


@dataclass(frozen=True)
class AuditResult:
    """What :func:`~sk_animals.audit.audit_images` found; ``to_dict()`` gives the JSON.

    Groups are lists of paths sorted by path, and the groups are sorted by their first path.

    Attributes
    ----------
    n_images : int
        Number of paths audited.
    class_counts : dict
        Label -> number of images.
    exact_duplicate_groups : list of list of str
        Files with identical bytes.
    near_duplicate_groups : list of list of str
        Images whose perceptual hashes are within ``near_threshold`` bits of each other
        (through a chain of such pairs), holding at least two different files.
    label_conflicts : list of list of (str, label)
        Exact or near groups whose members carry different labels.
    cross_split_duplicates : list of list of (str, str) or None
        Exact or near groups spanning more than one split; None without ``splits``.
    unreadable : list of (str, str)
        Files that could not be read or decoded, and why.
    """

    n_images: int
    class_counts: dict
    exact_duplicate_groups: list
    near_duplicate_groups: list
    label_conflicts: list
    cross_split_duplicates: list | None
    unreadable: list

    def to_dict(self):
        """The result as plain lists, dicts, strings and numbers."""
        return asdict(self)

    def clusters(self):
        """Every group of copies once: the near-duplicate groups, which hold the exact
        groups among their members, and the exact groups that no near group holds."""
        near = {p for g in self.near_duplicate_groups for p in g}
        alone = [g for g in self.exact_duplicate_groups if g[0] not in near]
        return self.near_duplicate_groups + alone

    def summary(self):
        """Number of groups of each kind, as a dict."""
        return {
            "exact_duplicate_groups": len(self.exact_duplicate_groups),
            "near_duplicate_groups": len(self.near_duplicate_groups),
            "cross_split_duplicates": len(self.cross_split_duplicates or []),
            "label_conflicts": len(self.label_conflicts),
        }


def _fingerprint(path, hash_size):
    """``(digest of the bytes, perceptual hash as bytes, error)``, None where it failed."""
    digest = None
    try:
        with open(path, "rb") as f:
            hasher = hashlib.blake2b()
            for chunk in iter(partial(f.read, 1 << 20), b""):
                hasher.update(chunk)
            digest = hasher.digest()
            f.seek(0)
            with Image.open(f) as img:
                img.draft("L", (4 * hash_size, 4 * hash_size))  # JPEG: decode at reduced size
                ImageOps.exif_transpose(img, in_place=True)
                bits = np.packbits(imagehash.phash(img, hash_size).hash.ravel())
        padded = -len(bits) % 8  # whole uint64 words
        return digest, np.pad(bits, (0, padded)).tobytes(), None
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none is fatal
        return digest, None, f"{type(exc).__name__}: {exc}"


def _fingerprint_all(paths, hash_size):
    return [_fingerprint(p, hash_size) for p in paths]


def _fingerprints(paths, hash_size, n_jobs):
    n_jobs = min(effective_n_jobs(n_jobs), max(len(paths), 1))
    work = partial(_fingerprint_all, hash_size=hash_size)
    if n_jobs == 1:
        return work(paths)
    chunks = [list(c) for c in np.array_split(np.asarray(paths, object), 4 * n_jobs)]
    with ThreadPoolExecutor(n_jobs) as pool:
        return [fp for part in pool.map(work, chunks) for fp in part]


def _by_key(keys):
    """Indices grouped by equal key, in order of first appearance; None keys are left out."""
    groups = {}
    for i, key in enumerate(keys):
        if key is not None:
            groups.setdefault(key, []).append(i)
    return list(groups.values())


def _popcount(x):
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return np.bitwise_count(x)
    return _BITS[x.view(np.uint8)].reshape(*x.shape, -1).sum(-1, dtype=np.uint8)


def _near_pairs(words, threshold):
    """Pairs ``i < j`` of rows of ``words`` (uint64) differing in at most ``threshold`` bits."""
    n = len(words)
    step = max(1, _BLOCK // max(n, 1))
    found = [np.empty((0, 2), np.intp)]
    for start in range(0, n, step):
        block = words[start : start + step]
        dist = np.zeros((len(block), n - start), np.uint16)
        for w in range(words.shape[1]):
            dist += _popcount(block[:, None, w] ^ words[None, start:, w])
        i, j = np.nonzero(dist <= threshold)
        keep = i < j  # both offset by start
        found.append(np.column_stack([i[keep], j[keep]]) + start)
    return np.concatenate(found)


def _components(n, edges):
    """Connected components of ``edges`` (pairs of indices) with at least two members."""
    graph = coo_matrix((np.ones(len(edges), bool), tuple(edges.T)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    order = np.argsort(comp, kind="stable")
    return [g.tolist() for g in np.split(order, np.cumsum(np.bincount(comp))[:-1]) if len(g) > 1]


def _spanning(groups, paths, values):
    """The groups whose members differ in ``values``, as ``(path, value)`` pairs."""
    return [[(paths[i], values[i]) for i in g] for g in groups if len({values[i] for i in g}) > 1]


def _as_paths(paths):
    return [str(os.fspath(p)) for p in paths]  # plain str, also from numpy arrays


def _column(values, name, n):
    values = np.asarray(values).tolist()  # plain Python labels, for the JSON
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries but paths has {n}")
    return values


#: :func:`audit_images`' defaults.
NEAR_THRESHOLD, HASH_SIZE = 4, 8


def audit_images(
    paths, labels, *, splits=None, near_threshold=NEAR_THRESHOLD, hash_size=HASH_SIZE, n_jobs=None
):
    """Find duplicate and near-duplicate images, label conflicts and leaks across splits.

    Each file is hashed twice: its bytes (BLAKE2b) for exact copies, and its decoded
    pixels (:func:`imagehash.phash`) for the same picture re-encoded, resized or saved
    in another format. Pairs are joined into groups through chains of matches.

    Parameters
    ----------
    paths : sequence of str or path-like
        The image files.
    labels : array-like of shape (n_paths,)
        The label of each image.
    splits : array-like of shape (n_paths,), default=None
        The split of each image (e.g. ``"train"``, ``"test"``), to find groups that
        cross splits.
    near_threshold : int, default=4
        Largest number of differing hash bits for two images to count as near duplicates.
    hash_size : int, default=8
        Side of the perceptual hash: ``hash_size ** 2`` bits.
    n_jobs : int, default=None
        Threads that read and hash the files; None means 1, -1 all processors.

    Returns
    -------
    result : AuditResult

    See Also
    --------
    dedupe : Keep one image of each group.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> rng, root = np.random.default_rng(0), Path(tempfile.mkdtemp())
    >>> for name in ["a.png", "b.png"]:
    ...     noise = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)  # a smooth texture
    ...     Image.fromarray(noise).resize((128, 128), Image.BICUBIC).save(root / name)
    >>> Image.open(root / "a.png").save(root / "a.jpg", quality=70)
    >>> _ = shutil.copy(root / "b.png", root / "b_copy.png")
    >>> paths = sorted(map(str, root.iterdir()))
    >>> result = audit_images(paths, ["cat", "cat", "cat", "dog"])
    >>> result.summary()["near_duplicate_groups"], result.label_conflicts[0][1][1]
    (1, 'dog')
    >>> result.class_counts
    {'cat': 3, 'dog': 1}
    """
    paths = _as_paths(paths)
    labels = _column(labels, "labels", len(paths))
    splits = None if splits is None else _column(splits, "splits", len(paths))
    for name, value, low in [("near_threshold", near_threshold, 0), ("hash_size", hash_size, 2)]:
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return _audit(paths, labels, splits, _fingerprints(paths, hash_size, n_jobs), near_threshold)


def _fingerprint_images(paths, n_jobs=-1):
    """The fingerprints :func:`audit_images` computes, with its defaults, for reuse."""
    return _fingerprints(_as_paths(paths), HASH_SIZE, n_jobs)


def _audit_fingerprinted(paths, labels, splits, fingerprints):
    """:func:`audit_images` with its defaults, on fingerprints already computed."""
    paths = _as_paths(paths)
    labels = _column(labels, "labels", len(paths))
    splits = None if splits is None else _column(splits, "splits", len(paths))
    return _audit(paths, labels, splits, fingerprints, NEAR_THRESHOLD)


def _audit(paths, labels, splits, fingerprints, near_threshold):
    """:func:`audit_images` on fingerprints already computed (a subset reuses them)."""
    digests = [d for d, _, _ in fingerprints]
    exact = _by_key(digests)
    same_hash = _by_key([h for _, h, _ in fingerprints])
    edges = [np.array([(g[0], i) for g in exact + same_hash for i in g[1:]], np.intp)]
    if same_hash:
        firsts = np.array([g[0] for g in same_hash])
        words = np.frombuffer(b"".join(fingerprints[i][1] for i in firsts), np.uint64)
        edges.append(firsts[_near_pairs(words.reshape(len(firsts), -1), near_threshold)])
    groups = _components(len(paths), np.concatenate([e.reshape(-1, 2) for e in edges]))
    groups = sorted((sorted(g, key=paths.__getitem__) for g in groups), key=lambda g: paths[g[0]])
    return AuditResult(
        n_images=len(paths),
        class_counts=dict(sorted(Counter(labels).items())),
        exact_duplicate_groups=sorted(sorted(paths[i] for i in g) for g in exact if len(g) > 1),
        near_duplicate_groups=[[p for p, _ in g] for g in _spanning(groups, paths, digests)],
        label_conflicts=_spanning(groups, paths, labels),
        cross_split_duplicates=None if splits is None else _spanning(groups, paths, splits),
        unreadable=[(p, err) for p, (_, _, err) in zip(paths, fingerprints, strict=True) if err],
    )


def dedupe(paths, labels, audit):
    """Mask that keeps one image of each exact and near duplicate group.

    The image kept is the group's first by path order; apply the mask before any split so
    that no picture lands on both sides. Members of a label conflict are treated alike:
    the first is kept with its label, so check ``audit.label_conflicts`` first.

    Parameters
    ----------
    paths : sequence of str or path-like
        The paths given to :func:`audit_images`.
    labels : array-like of shape (n_paths,)
        Their labels, checked for length only.
    audit : AuditResult
        The result of :func:`audit_images` on these paths.

    Returns
    -------
    keep : ndarray of bool of shape (n_paths,)
        False for every image but the first of each group, and for a path listed twice.

    Examples
    --------
    >>> result = AuditResult(3, {"cat": 3}, [["a.png", "c.png"]], [], [], None, [])
    >>> dedupe(["c.png", "b.png", "a.png"], ["cat"] * 3, result)
    array([False,  True,  True])
    """
    paths = _as_paths(paths)
    _column(labels, "labels", len(paths))
    keeper = {p: min(g) for g in audit.clusters() for p in g}
    seen = set()
    keep = np.zeros(len(paths), bool)
    for i, p in enumerate(paths):
        keep[i] = keeper.get(p, p) == p and p not in seen
        seen.add(p)
    return keep


@dataclass(frozen=True)
class LabelIssues:
    """Images whose given label is likely wrong, most suspicious first.

    What :func:`~sk_animals.audit.find_label_issues` returns; ``to_dict()`` gives the JSON.

    Attributes
    ----------
    indices : ndarray of int
        Positions in ``X`` of the flagged images only, most suspicious first.
    given : ndarray
        Their given labels.
    suggested : ndarray
        The label the out-of-fold model finds most likely for each.
    scores : ndarray of float
        The out-of-fold probability of the given label (cleanlab's self-confidence):
        the lower, the more suspicious.
    oof_proba : ndarray of shape (n_samples, n_classes)
        The out-of-fold probabilities of every image, columns in ``classes`` order.
    classes : ndarray
        The sorted labels.
    """

    indices: np.ndarray
    given: np.ndarray
    suggested: np.ndarray
    scores: np.ndarray
    oof_proba: np.ndarray
    classes: np.ndarray

    def __len__(self):
        return len(self.indices)

    def to_dict(self, paths=None):
        """The flagged images as a list of dicts (with their ``paths`` when given)."""
        rows = []
        for k, i in enumerate(self.indices):
            row = {"index": int(i), "given": self.given[k].item(), "score": float(self.scores[k])}
            row["suggested"] = self.suggested[k].item()
            if paths is not None:
                row["path"] = str(paths[i])
            rows.append(row)
        return rows


def find_label_issues(estimator, X, y, *, cv=5, random_state=0, n_jobs=None):
    """Find images whose label is likely wrong, by confident learning on out-of-fold scores.

    Each image's class probabilities come from a clone of ``estimator`` that did not see
    it (scikit-learn's :func:`~sklearn.model_selection.cross_val_predict` on stratified,
    shuffled folds); cleanlab's ``cleanlab.filter.find_label_issues`` then flags the
    images whose given label is unlikely given the noise rates it estimates between
    classes (Northcutt et al., "Confident Learning", JAIR 2021).

    Parameters
    ----------
    estimator : classifier with ``predict_proba``
        E.g. ``make_pipeline(ImageLoader(224), PretrainedFeatures(...), LinearProbe())``:
        frozen features make the folds cheap.
    X : array-like of shape (n_samples, ...)
        What ``estimator`` takes (paths for a pipeline starting with an ImageLoader).
    y : array-like of shape (n_samples,)
        The given labels.
    cv : int, default=5
        Number of stratified folds.
    random_state : int, default=0
        Seed of the fold assignment.
    n_jobs : int, default=None
        Folds fitted in parallel (``cross_val_predict``'s ``n_jobs``).

    Returns
    -------
    issues : LabelIssues

    Raises
    ------
    ValueError
        A class with fewer images than ``cv``, before any fitting.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(["a", "b"], 50)
    >>> X = rng.normal(size=(100, 2)) + 6 * (y == "b")[:, None]
    >>> y[[3, 60]] = ["b", "a"]  # two planted errors
    >>> issues = find_label_issues(LogisticRegression(), X, y)
    >>> sorted(zip(issues.indices.tolist(), issues.given.tolist(), issues.suggested.tolist()))
    [(3, 'b', 'a'), (60, 'a', 'b')]
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < cv:
        small = classes[counts.argmin()].item()
        raise ValueError(
            f"class {small!r} has {counts.min()} images, fewer than cv={cv} folds: "
            "use fewer folds or add images"
        )
    folds = StratifiedKFold(cv, shuffle=True, random_state=random_state)
    proba = cross_val_predict(estimator, X, y, cv=folds, method="predict_proba", n_jobs=n_jobs)
    return _confident_learning(y, proba, classes)


def _confident_learning(y, proba, classes):
    """:class:`LabelIssues` of labels ``y`` given held-out probabilities (``classes`` order)."""
    from cleanlab.filter import find_label_issues as confident_learning

    y = np.asarray(y)
    encoded = np.searchsorted(classes, y)
    flagged = confident_learning(
        encoded, proba, return_indices_ranked_by="self_confidence", n_jobs=1
    )
    flagged = np.asarray(flagged, dtype=int)
    return LabelIssues(
        indices=flagged,
        given=y[flagged],
        suggested=classes[proba[flagged].argmax(1)],
        scores=proba[flagged, encoded[flagged]],
        oof_proba=proba,
        classes=classes,
    )
