"""Intervals, paired bootstrap and McNemar's test on one common test set; learning curves."""

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest
from sklearn.utils import check_random_state

__all__ = [
    "Difference",
    "LearningCurveFit",
    "McNemarResult",
    "PairedDifference",
    "accuracy_interval",
    "compare_predictions",
    "fit_learning_curve",
    "forecast_grid",
    "learning_curve",
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


# -- learning curves: how accuracy grows with the images per class


def learning_curve(n, a, b, c):
    """The power law with an offset, ``a - b * n ** -c`` (Hestness et al. 2017)."""
    return a - b * np.asarray(n, float) ** -c


@dataclass(frozen=True)
class LearningCurveFit:
    """A power law fitted to measured budget points, with bootstrap parameters.

    ``params`` is ``{"a", "b", "c"}`` of :func:`learning_curve` (``a``, at most 1, the
    ceiling more data approaches); ``samples`` the parameters refitted on each bootstrap
    resample (rows of a, b, c); ``noise`` the standard deviation of a measured point at a
    given accuracy (binomial on ``n_test`` images, times ``inflation`` where the points
    scatter more than that about the curve, as training noise makes them).
    """

    params: dict
    samples: np.ndarray
    n_test: int
    inflation: float

    def predict(self, n):
        """Forecast accuracy at ``n`` images per class."""
        return learning_curve(n, **self.params)

    def interval(self, n, confidence=0.95, random_state=0):
        """Prediction interval of the accuracy measured at ``n`` images per class.

        Curve uncertainty (the bootstrap refits) plus the noise of one measurement on the
        same number of test images.
        """
        rng = check_random_state(random_state)
        curves = learning_curve(np.asarray(n, float)[None], *self.samples.T[..., None])
        p = np.clip(curves, 0, 1)
        noise = self.inflation * np.sqrt(p * (1 - p) / self.n_test)
        measured = np.clip(curves + rng.standard_normal(curves.shape) * noise, 0, 1)
        tail = 100 * (1 - confidence) / 2
        low, high = np.percentile(measured, [tail, 100 - tail], axis=0)
        return low, high

    def budget_for(self, accuracy, confidence=0.95):
        """Images per class at which the curve reaches ``accuracy``, with an interval.

        ``inf`` where the ceiling ``a`` is at most ``accuracy``.
        """

        def solve(a, b, c):  # floats, never Python's complex power of a negative base
            a, b, c = (np.asarray(v, float) for v in (a, b, c))
            reachable = (a > accuracy) & (b >= 0) & (c > 0)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                n = np.power(b / np.where(reachable, a - accuracy, 1.0), 1 / c)
            return np.where(reachable & np.isfinite(n), n, np.inf)

        tail = 100 * (1 - confidence) / 2
        boot = np.minimum(solve(*self.samples.T), 1e12)  # never reached: "infinitely many"
        low, high = np.percentile(boot, [tail, 100 - tail])
        return float(solve(**self.params)), tuple(v if v < 1e12 else np.inf for v in (low, high))


def _fit_power_law(n, acc, sigma):
    """Least-squares ``(a, b, c)`` with ``a <= 1``, ``b, c >= 0``; None if it fails."""
    import warnings

    from scipy.optimize import OptimizeWarning, curve_fit

    start = (min(1.0, acc.max() + 0.05), max(acc.max() - acc.min(), 1e-3) * n.min() ** 0.5, 0.5)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)  # no covariance: we bootstrap
            params, _ = curve_fit(
                learning_curve,
                n,
                acc,
                p0=start,
                sigma=sigma,
                bounds=([0.0, 0.0, 0.01], [1.0, np.inf, 3.0]),
                maxfev=5000,
            )
    except (RuntimeError, ValueError):
        return None
    return params


def fit_learning_curve(per_class, accuracy, n_test, *, n_resamples=400, random_state=0):
    """Fit ``acc(n) = a - b * n ** -c`` to measured budgets, with a bootstrap.

    Each point's accuracy is binomial on the ``n_test`` common test images; the fit is
    weighted by that noise, and each bootstrap resample redraws every point from it
    (inflated where the points scatter about the curve more than the test set explains)
    and refits.

    Parameters
    ----------
    per_class : array-like of int
        Images per class of each measured point.
    accuracy : array-like of float
        The test accuracy measured at each.
    n_test : int
        Test images each accuracy was measured on.
    n_resamples : int, default=400
    random_state : int, default=0

    Returns
    -------
    fit : LearningCurveFit or str
        The fit, or the reason why there is none (fewer than three budgets, an accuracy
        that falls as the budget grows, a fit that does not converge).

    Examples
    --------
    >>> from sk_animals.stats import fit_learning_curve
    >>> n = [25, 50, 100, 200]
    >>> fit = fit_learning_curve(n, [0.62, 0.70, 0.76, 0.80], n_test=1800)
    >>> round(float(fit.predict(1000)), 2) > 0.80
    True
    >>> fit_learning_curve([25, 50], [0.6, 0.7], n_test=100)
    'fewer than three budgets were measured'
    """
    n, acc = np.asarray(per_class, float), np.asarray(accuracy, float)
    order = np.argsort(n)
    n, acc = n[order], acc[order]
    if len(np.unique(n)) < 3:
        return "fewer than three budgets were measured"
    sigma = np.sqrt(np.clip(acc * (1 - acc), 0.25 / n_test, None) / n_test)
    slope = np.polyfit(np.log(n), acc, 1)[0]
    if slope < 0 and (acc[0] - acc[-1]) > 2 * np.hypot(sigma[0], sigma[-1]):
        return "accuracy falls as the budget grows, which no rising learning curve describes"
    params = _fit_power_law(n, acc, sigma)
    if params is None:
        return "the learning curve did not converge on these points"
    dof = len(n) - 3
    chi2 = float(np.sum(((acc - learning_curve(n, *params)) / sigma) ** 2))
    inflation = max(1.0, np.sqrt(chi2 / dof)) if dof > 0 else 2.0  # 3 points: no check
    rng = check_random_state(random_state)
    samples = []
    for _ in range(n_resamples):
        redrawn = np.clip(acc + rng.standard_normal(len(acc)) * sigma * inflation, 0, 1)
        refit = _fit_power_law(n, redrawn, sigma * inflation)
        if refit is not None:
            samples.append(refit)
    if len(samples) < n_resamples / 2:
        return "the learning curve is unstable: most bootstrap refits did not converge"
    a, b, c = (float(v) for v in params)
    return LearningCurveFit({"a": a, "b": b, "c": c}, np.array(samples), int(n_test), inflation)


def forecast_grid(per_class, horizon=10):
    """Budgets to forecast at: those measured, round numbers beyond, up to ``horizon`` x.

    Examples
    --------
    >>> from sk_animals.stats import forecast_grid
    >>> forecast_grid([25, 50, 100, 200])
    [25, 50, 100, 200, 500, 1000, 2000]
    """
    largest = max(per_class)
    rounds = [m * 10**k for k in range(7) for m in (1, 2, 5)]
    beyond = [r for r in rounds if largest < r <= horizon * largest]
    return sorted({*map(int, per_class), *beyond})
