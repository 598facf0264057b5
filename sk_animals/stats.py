"""Intervals, paired bootstrap and McNemar's test for two classifiers on one common test set."""

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest
from sklearn.utils import check_random_state

__all__ = [
    "Difference",
    "McNemarResult",
    "PairedDifference",
    "accuracy_interval",
    "compare_predictions",
    "mcnemar_test",
    "paired_bootstrap",
    "verdict",
    "wilson_interval",
]

_CHUNK = 1 << 22  # bootstrap indices drawn at once: 32 MiB of int64


@dataclass(frozen=True)
class McNemarResult:
    """Discordant pairs and the exact McNemar p-value.

    ``b``: test images that ``a`` gets right and ``b`` wrong; ``c``: the reverse.
    """

    b: int
    c: int
    pvalue: float


@dataclass(frozen=True)
class PairedDifference:
    """``accuracy(a) - accuracy(b)`` on ``n`` images, with its percentile bootstrap interval.

    ``ci95`` is the interval at ``confidence`` (0.95 by default, hence the name).
    """

    difference: float
    ci95: tuple[float, float]
    n: int
    confidence: float


@dataclass(frozen=True)
class Difference:
    """Two classifiers compared on the same ``n`` test images; ``asdict`` gives the JSON."""

    a_accuracy: float
    b_accuracy: float
    difference: float
    ci95: tuple[float, float]
    mcnemar_p: float
    b: int
    c: int
    n: int
    confidence: float


def _check_confidence(confidence):
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _correct(y_true, **predictions):
    """Boolean arrays ``prediction == y_true``, one per keyword, after checking the shapes."""
    y_true = np.asarray(y_true)
    if y_true.ndim != 1 or len(y_true) == 0:
        raise ValueError(f"y_true must be a non-empty 1-d array, got shape {y_true.shape}")
    out = []
    for name, pred in predictions.items():
        pred = np.asarray(pred)
        if pred.shape != y_true.shape:
            raise ValueError(f"{name} has shape {pred.shape} but y_true has {y_true.shape}")
        out.append(pred == y_true)
    return out


def wilson_interval(n_correct, n, confidence=0.95):
    """Wilson score interval for a proportion of ``n_correct`` out of ``n``.

    Parameters
    ----------
    n_correct : int
        Number of successes, ``0 <= n_correct <= n``.
    n : int
        Number of trials, at least 1.
    confidence : float, default=0.95
        Confidence level of the interval.

    Returns
    -------
    low, high : float
        The interval's bounds, within [0, 1].

    Examples
    --------
    >>> low, high = wilson_interval(40, 50)
    >>> round(low, 4), round(high, 4)
    (0.6696, 0.8876)
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if int(n_correct) != n_correct or not 0 <= n_correct <= n:
        raise ValueError(f"n_correct must be an integer in [0, n={n}], got {n_correct!r}")
    _check_confidence(confidence)
    ci = binomtest(int(n_correct), int(n)).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def accuracy_interval(y_true, y_pred, confidence=0.95):
    """Accuracy and its Wilson score interval.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        True and predicted labels.
    confidence : float, default=0.95
        Confidence level of the interval.

    Returns
    -------
    accuracy : float
    interval : tuple of float
        ``(low, high)``, see :func:`wilson_interval`.

    Examples
    --------
    >>> acc, (low, high) = accuracy_interval([0, 1, 1, 0], [0, 1, 0, 0])
    >>> acc, round(low, 3), round(high, 3)
    (0.75, 0.301, 0.954)
    """
    (correct,) = _correct(y_true, y_pred=y_pred)
    k = int(correct.sum())
    return k / len(correct), wilson_interval(k, len(correct), confidence)


def _mcnemar(correct_a, correct_b):
    b = int(np.sum(correct_a & ~correct_b))
    c = int(np.sum(~correct_a & correct_b))
    return McNemarResult(b, c, float(binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0)


def mcnemar_test(y_true, pred_a, pred_b):
    """Exact McNemar test: do two classifiers err on the same images at the same rate?

    A two-sided binomial test of the discordant pairs ``b`` against ``b + c`` trials
    at 1/2; the p-value is 1 when the two never disagree on correctness.

    Parameters
    ----------
    y_true, pred_a, pred_b : array-like of shape (n_samples,)
        True labels of the common test images, and two classifiers' predictions for them.

    Returns
    -------
    result : McNemarResult
        ``b`` (a right, b wrong), ``c`` (a wrong, b right) and ``pvalue``.

    Examples
    --------
    >>> mcnemar_test([1] * 10, [1] + [0] * 9, [0] + [1] * 9)
    McNemarResult(b=1, c=9, pvalue=0.021484375)
    """
    return _mcnemar(*_correct(y_true, pred_a=pred_a, pred_b=pred_b))


def _bootstrap(correct_a, correct_b, n_resamples, confidence, random_state):
    _check_confidence(confidence)
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be an integer >= 1, got {n_resamples!r}")
    rng = check_random_state(random_state)
    per_image = correct_a.astype(np.int8) - correct_b.astype(np.int8)  # -1, 0 or 1
    n = len(per_image)
    step = max(1, _CHUNK // n)
    means = np.concatenate(
        [
            per_image[rng.randint(0, n, size=(min(step, n_resamples - start), n))].mean(axis=1)
            for start in range(0, n_resamples, step)
        ]
    )
    tail = 50 * (1 - confidence)
    low, high = np.percentile(means, [tail, 100 - tail])
    return PairedDifference(float(per_image.mean()), (float(low), float(high)), n, confidence)


def paired_bootstrap(
    y_true, pred_a, pred_b, n_resamples=10000, confidence=0.95, random_state=None
):
    """Accuracy difference ``a - b`` with a percentile paired bootstrap interval.

    Each resample draws test images with replacement and scores both classifiers on the
    same draw, so the interval accounts for the images being shared.

    Parameters
    ----------
    y_true, pred_a, pred_b : array-like of shape (n_samples,)
        True labels of the common test images, and two classifiers' predictions for them.
    n_resamples : int, default=10000
        Number of bootstrap resamples.
    confidence : float, default=0.95
        Confidence level of the interval.
    random_state : int, RandomState instance or None, default=None
        Seed for the resampling.

    Returns
    -------
    result : PairedDifference
        ``difference`` (a fraction, not percent), ``ci95``, ``n`` and ``confidence``.

    Examples
    --------
    >>> y = [0, 1] * 10
    >>> res = paired_bootstrap(y, y, [0, 0] * 10, n_resamples=2000, random_state=0)
    >>> res.difference, res.ci95[0] > 0.2
    (0.5, True)
    """
    correct = _correct(y_true, pred_a=pred_a, pred_b=pred_b)
    return _bootstrap(*correct, n_resamples, confidence, random_state)


def compare_predictions(
    y_true, pred_a, pred_b, *, n_resamples=10000, confidence=0.95, random_state=None
):
    """Both accuracies, their paired difference with its interval, and McNemar's p-value.

    Parameters
    ----------
    y_true, pred_a, pred_b, n_resamples, confidence, random_state
        As in :func:`paired_bootstrap`.

    Returns
    -------
    result : Difference
        A typed record; :func:`dataclasses.asdict` gives plain floats, ints and tuples.

    See Also
    --------
    verdict : The comparison in one sentence.

    Examples
    --------
    >>> y = [0, 1] * 10
    >>> d = compare_predictions(y, y, [0, 0] * 10, n_resamples=2000, random_state=0)
    >>> d.a_accuracy, d.b_accuracy, d.b, d.c, round(d.mcnemar_p, 4)
    (1.0, 0.5, 10, 0, 0.002)
    """
    correct_a, correct_b = _correct(y_true, pred_a=pred_a, pred_b=pred_b)
    boot = _bootstrap(correct_a, correct_b, n_resamples, confidence, random_state)
    test = _mcnemar(correct_a, correct_b)
    return Difference(
        a_accuracy=float(correct_a.mean()),
        b_accuracy=float(correct_b.mean()),
        difference=boot.difference,
        ci95=boot.ci95,
        mcnemar_p=test.pvalue,
        b=test.b,
        c=test.c,
        n=boot.n,
        confidence=confidence,
    )


def verdict(name_a, name_b, diff, alpha=0.05):
    """One English sentence that states the comparison and its uncertainty.

    Parameters
    ----------
    name_a, name_b : str
        Names of the classifiers behind ``pred_a`` and ``pred_b``.
    diff : Difference
        The result of :func:`compare_predictions`.
    alpha : float, default=0.05
        Significance level for McNemar's p-value.

    Returns
    -------
    sentence : str
        Differences in percentage points.

    Examples
    --------
    >>> d = Difference(0.9, 0.475, 0.425, (0.281, 0.563), 0.0001, 21, 1, 48, 0.95)
    >>> print(verdict("transfer", "scratch", d))  # doctest: +NORMALIZE_WHITESPACE
    transfer is 42.5 points more accurate than scratch on the 48 common test images
    (95% CI 28.1 to 56.3; McNemar p = 0.0001).
    >>> d = Difference(0.8125, 0.77, 0.0425, (-0.05, 0.125), 0.41, 6, 4, 48, 0.95)
    >>> print(verdict("transfer", "scratch", d))  # doctest: +NORMALIZE_WHITESPACE
    No significant difference between transfer and scratch on the 48 common test images:
    81.2% vs 77.0% (difference +4.2 points, 95% CI -5.0 to 12.5; McNemar p = 0.41).
    """
    p, delta = diff.mcnemar_p, 100 * diff.difference
    low, high = 100 * diff.ci95[0], 100 * diff.ci95[1]
    significant = p < alpha
    if significant and delta < 0:  # name the better classifier first
        name_a, name_b, delta, low, high = name_b, name_a, -delta, -high, -low
    p_text = "p < 0.0001" if p < 1e-4 else f"p = {p:.2g}"
    stats = f"{100 * diff.confidence:g}% CI {low:.1f} to {high:.1f}; McNemar {p_text}"
    images = f"on the {diff.n} common test images"
    if significant:
        return f"{name_a} is {delta:.1f} points more accurate than {name_b} {images} ({stats})."
    return (
        f"No significant difference between {name_a} and {name_b} {images}: "
        f"{diff.a_accuracy:.1%} vs {diff.b_accuracy:.1%} "
        f"(difference {delta:+.1f} points, {stats})."
    )
