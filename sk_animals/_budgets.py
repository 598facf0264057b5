"""The data-budget curve and its forecast.

Each approach trained on nested per-class budgets and scored on the common test set
(:class:`~sk_animals.results.BudgetPoint`), then a learning curve per approach with its
backtest, target and the crossover (:class:`~sk_animals.results.BudgetForecast`,
:class:`~sk_animals.results.Crossover`); the curve fitting itself is
:func:`sk_animals.stats.fit_learning_curve`.
"""

import warnings

import numpy as np
from joblib import Parallel, delayed

from ._scoring import _shown
from .datasets import sample_per_class
from .results import BudgetForecast, BudgetPoint, Crossover
from .stats import accuracy_interval

__all__ = ["budget_curve", "forecast"]


def _interval(value, *_):
    """A budget point's ``(accuracy, (low, high))`` from its JSON."""
    accuracy, (low, high) = value
    return float(accuracy), (float(low), float(high))


def _fit_score(clf, X, y, X_test, y_test, store, name):
    """Fit ``clf``, the accuracy interval of its test predictions: one unit (a joblib task)."""
    return store.unit(
        name,
        lambda: accuracy_interval(y_test, clf.fit(X, y).predict(X_test)),
        load=_interval,
    )


def budget_curve(approach, paths, labels, *, test, budgets, random_state, say, verbose, n_jobs,
                  store):  # fmt: skip
    """Test accuracy of ``approach`` trained on nested per-class budgets of the pool.

    Each budget point is a unit of the run's ``store``: a finished one is restored.
    """
    smallest = int(np.unique(labels, return_counts=True)[1].min())
    with warnings.catch_warnings():  # capping is said in the result instead
        warnings.simplefilter("ignore", UserWarning)
        keeps = {b: sample_per_class(labels, b, random_state=random_state) for b in budgets}
    names = {b: f"{approach.name}.budget{b}" for b in keeps}
    scores = {b: store.restore(name, load=_interval) for b, name in names.items()}
    todo = sorted(b for b, done in scores.items() if done is None)
    if len(todo) < len(keeps):
        say(f"{len(keeps) - len(todo)} of {len(keeps)} budget points restored from a checkpoint")
    if todo:
        used = np.unique(np.concatenate([keeps[b] for b in todo]))  # nested: the largest
        say(f"budgets {', '.join(map(str, todo))} per class: loading {len(used)} images")
        loader = approach.decoder()
        X, X_test = loader.transform(paths[used]), loader.transform(test.data)
        rows = {b: np.searchsorted(used, keeps[b]) for b in todo}
        scores.update(
            zip(
                todo,
                Parallel(n_jobs=n_jobs)(
                    delayed(_fit_score)(
                        _shown(
                            approach.model(), f"{approach.name}: budget {b}/class", verbose, n_jobs
                        ),
                        X[rows[b]],
                        labels[used][rows[b]],
                        X_test,
                        test.target,
                        store,
                        names[b],
                    )
                    for b in todo
                ),
                strict=True,
            )
        )
    return [
        BudgetPoint(approach.name, b, len(keeps[b]), b > smallest, *scores[b])
        for b in sorted(keeps)
    ]


def forecast(points, n_test, *, target_accuracy=None, horizon=10, random_state=0):
    """Each approach's :class:`BudgetForecast` from its budget points, and the crossover."""
    from .stats import fit_learning_curve, forecast_grid

    by = {}
    for p in points:
        by.setdefault(p.approach, []).append(p)
    forecasts, fits = [], {}
    for name, mine in by.items():
        mine = sorted(mine, key=lambda p: p.per_class)
        n, acc = [p.per_class for p in mine], [p.test_accuracy for p in mine]
        grid = forecast_grid(n, horizon)
        fit = fit_learning_curve(n, acc, n_test, random_state=random_state)
        if isinstance(fit, str):
            forecasts.append(BudgetForecast(name, grid, [], [], None, reason=fit))
            continue
        fits[name] = fit
        low, high = fit.interval(grid, random_state=random_state)
        forecasts.append(
            BudgetForecast(
                name,
                grid,
                fit.predict(grid).tolist(),
                np.c_[low, high].tolist(),
                fit.params,
                backtest=_backtest(n, acc, n_test, random_state) if len(n) >= 4 else None,
                target=None if target_accuracy is None else _target(fit, target_accuracy, n),
            )
        )
    crossover, reason = _crossover(by, fits, horizon)
    return forecasts, crossover, reason


def _backtest(n, acc, n_test, random_state):
    """Fit without the largest budget and forecast it: how far to trust the forecast."""
    from .stats import fit_learning_curve

    fit = fit_learning_curve(n[:-1], acc[:-1], n_test, random_state=random_state)
    if isinstance(fit, str):
        return {"per_class": n[-1], "measured": acc[-1], "reason": fit}
    forecast = float(fit.predict(n[-1]))
    (low,), (high,) = fit.interval([n[-1]], random_state=random_state)
    return {
        "per_class": n[-1],
        "measured": acc[-1],
        "forecast": forecast,
        "ci95": [float(low), float(high)],
        "error": forecast - acc[-1],
        "covered": bool(low <= acc[-1] <= high),
    }


def _target(fit, accuracy, n):
    """The images per class the curve needs to reach ``accuracy``, as a record and a sentence."""
    needed, (low, high) = fit.budget_for(accuracy)
    if not np.isfinite(needed):
        sentence = (
            f"{accuracy:.0%} is above the fitted ceiling ({fit.params['a']:.1%}): not "
            "reachable by more data alone"
        )
        return {"accuracy": accuracy, "per_class": None, "ci95": None, "sentence": sentence}
    upper = "more than 100x the largest budget" if high > 100 * max(n) else f"{high:.0f}"
    sentence = (
        f"to reach {accuracy:.0%} you need about {needed:.0f} images per class (95% interval "
        f"{low:.0f} to {upper})"
    )
    ci95 = [float(low), None if not np.isfinite(high) else float(high)]
    return {"accuracy": accuracy, "per_class": needed, "ci95": ci95, "sentence": sentence}


def _crossover(by, fits, horizon):
    """Where the least accurate approach at its largest budget reaches the most accurate."""
    if len(by) < 2:
        return None, None
    best = {name: max(points, key=lambda p: p.per_class) for name, points in by.items()}
    low = min(best, key=lambda name: best[name].test_accuracy)
    high = max(best, key=lambda name: best[name].test_accuracy)
    if low == high or low not in fits:
        return None, None if low == high else f"no forecast for {low}, so no crossover"
    target, largest = best[high], max(p.per_class for p in by[low])
    needed, ci95 = fits[low].budget_for(target.test_accuracy)
    if needed > horizon * largest:
        return None, (
            f"{low} is not forecast to reach {high}'s {target.test_accuracy:.1%} (at "
            f"{target.per_class} per class) within {horizon}x its largest budget "
            f"({horizon * largest} per class)"
        )
    crossover = Crossover(
        low, high, target.per_class, target.test_accuracy, needed, tuple(map(float, ci95))
    )
    return crossover, None
