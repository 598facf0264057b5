import dataclasses
import json
import math

import numpy as np
import pytest

from sk_animals.stats import (
    Difference,
    accuracy_interval,
    compare_predictions,
    mcnemar_test,
    paired_bootstrap,
    verdict,
    wilson_interval,
)


def predictions(b, c, both_right, both_wrong):
    """Labels and two prediction vectors with a given 2x2 table of correctness."""
    n = b + c + both_right + both_wrong
    y = np.zeros(n, int)
    a_right = np.r_[np.ones(b), np.zeros(c), np.ones(both_right), np.zeros(both_wrong)]
    b_right = np.r_[np.zeros(b), np.ones(c), np.ones(both_right), np.zeros(both_wrong)]
    return y, np.where(a_right, 0, 1), np.where(b_right, 0, 2)


def wilson_by_hand(k, n, z=1.959963984540054):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k, n", [(0, 10), (7, 10), (10, 10), (41, 48), (1, 1)])
def test_wilson_matches_the_formula(k, n):
    np.testing.assert_allclose(wilson_interval(k, n), wilson_by_hand(k, n), atol=1e-12)


def test_wilson_narrows_with_n_and_widens_with_confidence():
    width = [np.diff(wilson_interval(8 * m, 10 * m)).item() for m in (1, 10, 100)]
    assert width[0] > width[1] > width[2]
    assert np.diff(wilson_interval(8, 10, 0.99)) > np.diff(wilson_interval(8, 10, 0.9))


@pytest.mark.parametrize(
    "args, name",
    [((1, 0), "n"), ((-1, 5), "n_correct"), ((6, 5), "n_correct"), ((1.5, 5), "n_correct")],
)
def test_wilson_rejects_bad_counts(args, name):
    with pytest.raises(ValueError, match=f"^{name} must"):
        wilson_interval(*args)


def test_mcnemar_exact_p_on_a_hand_made_table():
    y, a, b = predictions(b=1, c=9, both_right=30, both_wrong=8)
    result = mcnemar_test(y, a, b)
    assert (result.b, result.c) == (1, 9)
    expected = 2 * (math.comb(10, 0) + math.comb(10, 1)) / 2**10
    assert result.pvalue == expected == 0.021484375
    assert mcnemar_test(y, b, a).pvalue == expected  # symmetric


def test_mcnemar_balanced_disagreement_is_not_significant():
    assert mcnemar_test(*predictions(b=5, c=5, both_right=10, both_wrong=0)).pvalue == 1.0


def test_identical_predictions():
    y = np.array(["cat", "dog", "cat", "dog", "cow"])
    pred = np.array(["cat", "cat", "cat", "dog", "dog"])
    d = compare_predictions(y, pred, pred, n_resamples=500, random_state=0)
    assert (d.difference, d.ci95, d.mcnemar_p, d.b, d.c) == (0.0, (0.0, 0.0), 1.0, 0, 0)
    assert d.a_accuracy == d.b_accuracy == 0.6 and d.n == 5
    assert verdict("x", "y", d).startswith("No significant difference between x and y")


def test_bootstrap_contains_the_difference_and_shrinks_with_n():
    widths = []
    for m in (1, 10):
        y, a, b = predictions(b=12 * m, c=4 * m, both_right=20 * m, both_wrong=4 * m)
        res = paired_bootstrap(y, a, b, n_resamples=2000, random_state=0)
        assert res.difference == pytest.approx(0.2) and res.n == 40 * m
        assert res.ci95[0] < res.difference < res.ci95[1]
        widths.append(res.ci95[1] - res.ci95[0])
    assert widths[1] < widths[0] / 2  # ~ 1/sqrt(10)


def test_bootstrap_is_deterministic_with_random_state():
    y, a, b = predictions(b=7, c=3, both_right=20, both_wrong=5)
    runs = [paired_bootstrap(y, a, b, n_resamples=9, random_state=s) for s in (1, 1, 2)]
    assert runs[0] == runs[1]
    assert runs[0].ci95 != runs[2].ci95  # few resamples: the percentiles move with the seed
    rng = np.random.RandomState(3)  # a shared RandomState advances between calls
    first, second = (paired_bootstrap(y, a, b, n_resamples=9, random_state=rng) for _ in "12")
    assert first.ci95 != second.ci95


def test_bootstrap_chunking_gives_the_same_draws(monkeypatch):
    import sk_animals.stats as stats

    y, a, b = predictions(b=7, c=3, both_right=20, both_wrong=5)
    whole = paired_bootstrap(y, a, b, n_resamples=1000, random_state=0)
    monkeypatch.setattr(stats, "_CHUNK", 35 * 7)  # 7 resamples per chunk, last one short
    assert paired_bootstrap(y, a, b, n_resamples=1000, random_state=0) == whole


def test_compare_predictions_is_json_able_and_consistent():
    y, a, b = predictions(b=22, c=2, both_right=20, both_wrong=4)
    d = compare_predictions(y, a, b, n_resamples=1000, random_state=0)
    record = dataclasses.asdict(d)
    assert json.loads(json.dumps(record))["b"] == 22
    assert all(type(v) in (int, float, tuple) for v in record.values())
    assert all(type(v) is float for v in d.ci95)
    assert d.difference == pytest.approx(d.a_accuracy - d.b_accuracy)
    assert (d.b, d.c) == (22, 2) and d.mcnemar_p < 1e-4
    sentence = verdict("transfer", "scratch", d)
    assert sentence.startswith("transfer is 41.7 points more accurate than scratch on the 48")
    assert sentence.endswith("McNemar p < 0.0001).")


def test_verdict_names_the_better_classifier_first():
    d = Difference(0.5, 0.9, -0.4, (-0.55, -0.25), 0.001, 2, 21, 48, 0.95)
    assert verdict("a", "b", d) == (
        "b is 40.0 points more accurate than a on the 48 common test images "
        "(95% CI 25.0 to 55.0; McNemar p = 0.001)."
    )


def test_accuracy_interval():
    acc, ci = accuracy_interval([1, 1, 1, 0], [1, 1, 0, 0])
    assert acc == 0.75 and ci == wilson_interval(3, 4)


@pytest.mark.parametrize(
    "args, name",
    [
        (([0, 1, 1], [0, 1], [0, 1, 1]), "pred_a"),
        (([0, 1, 1], [0, 1, 1], [[0, 1, 1]]), "pred_b"),
        (([], [], []), "y_true"),
    ],
)
def test_bad_input_names_the_argument(args, name):
    for fn in (mcnemar_test, paired_bootstrap, compare_predictions):
        with pytest.raises(ValueError, match=f"^{name}"):
            fn(*args)


def test_bad_options_raise():
    y = [0, 1]
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap(y, y, y, confidence=95)
    with pytest.raises(ValueError, match="n_resamples"):
        paired_bootstrap(y, y, y, n_resamples=0)
    with pytest.raises(ValueError, match="y_pred"):
        accuracy_interval(y, [0])


# -- learning curves and the data-budget forecast

from sk_animals._budgets import forecast as _forecast  # noqa: E402
from sk_animals.results import BudgetPoint  # noqa: E402
from sk_animals.stats import fit_learning_curve, forecast_grid, learning_curve  # noqa: E402

BUDGETS = [25, 50, 100, 200]


def _points(name, per_class, accuracy, n_test=1800):
    return [
        BudgetPoint(name, n, n * 6, False, a, (a - 0.02, a + 0.02))
        for n, a in zip(per_class, accuracy, strict=True)
    ]


def test_a_known_curve_is_recovered_within_its_intervals():
    truth = {"a": 0.9, "b": 1.5, "c": 0.5}
    rng = np.random.default_rng(0)
    n_test, covered, trials = 1800, 0, 20
    for seed in range(trials):
        measured = rng.binomial(n_test, learning_curve(BUDGETS, **truth)) / n_test
        fit = fit_learning_curve(BUDGETS, measured, n_test, n_resamples=100, random_state=seed)
        (low,), (high,) = fit.interval([1000], random_state=seed)
        covered += low <= learning_curve(1000, **truth) <= high
        assert high - low < 0.2
    assert covered >= 0.85 * trials  # a 95% interval, up to the noise of 20 trials
    exact = fit_learning_curve(BUDGETS, learning_curve(BUDGETS, **truth), 10**6)
    assert exact.params == pytest.approx(truth, rel=0.05)
    needed, (low, high) = exact.budget_for(0.85)
    assert needed == pytest.approx((1.5 / 0.05) ** 2, rel=0.05) and low <= needed <= high


def test_too_few_points_and_falling_curves_are_refused_with_a_reason():
    assert (
        fit_learning_curve([25, 50], [0.6, 0.7], 500) == "fewer than three budgets were measured"
    )
    reason = fit_learning_curve(BUDGETS, [0.8, 0.7, 0.6, 0.5], 1800)
    assert reason.startswith("accuracy falls as the budget grows")


def test_a_flat_curve_forecasts_flat_and_noisy_points_widen_the_interval():
    flat = fit_learning_curve(BUDGETS, [0.7, 0.71, 0.7, 0.705], 1800)
    assert abs(float(flat.predict(2000)) - 0.705) < 0.03
    smooth = fit_learning_curve(BUDGETS, learning_curve(BUDGETS, 0.9, 1.5, 0.5), 1800)
    noisy = fit_learning_curve(BUDGETS, [0.62, 0.74, 0.72, 0.82], 1800)
    assert noisy.inflation > 1 == smooth.inflation
    width = [np.subtract(*f.interval([2000])[::-1])[0] for f in (smooth, noisy)]
    assert width[1] > width[0]


@pytest.mark.slow  # a whole command or worker processes: the slow lane
def test_forecast_records_the_grid_backtest_target_and_crossover():
    scratch = _points("scratch", BUDGETS, learning_curve(BUDGETS, 0.97, 2.0, 0.5))
    transfer = _points("transfer", BUDGETS, learning_curve(BUDGETS, 0.93, 0.3, 0.5))
    forecasts, crossover, reason = _forecast(scratch + transfer, 1800, target_accuracy=0.85)
    assert forecast_grid(BUDGETS) == forecasts[0].per_class == [25, 50, 100, 200, 500, 1000, 2000]
    f = forecasts[0]
    assert all(low <= acc <= high for acc, (low, high) in zip(f.accuracy, f.ci95, strict=True))
    assert f.backtest["per_class"] == 200 and f.backtest["covered"] in (True, False)
    assert f.target["per_class"] == pytest.approx((2.0 / 0.12) ** 2, rel=0.15)
    assert "to reach 85% you need about" in f.target["sentence"]
    assert reason is None and (crossover.a, crossover.b, crossover.b_per_class) == (
        "scratch",
        "transfer",
        200,
    )
    _, none, reason = _forecast(_points("slow", BUDGETS, [0.3, 0.31, 0.32, 0.33]) + transfer, 1800)
    assert none is None and "not forecast to reach transfer's" in reason
    few = _forecast(_points("x", [10, 20], [0.5, 0.6]), 100)[0][0]
    assert few.accuracy == [] and few.reason == "fewer than three budgets were measured"
