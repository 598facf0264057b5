"""A comparison run's folder (sk_animals.runs), its atomic files and what a run survives."""

import errno
import json
import pickle
import warnings

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline

import sk_animals._files
from sk_animals import _budgets
from sk_animals.cli import main
from sk_animals.datasets import make_image_dataset, save_image_folder
from sk_animals.evaluation import Approach, compare
from sk_animals.exceptions import FileWriteError, ResumeError, RunInProgressError
from sk_animals.preprocessing import ImageLoader
from sk_animals.runs import RunStore, folder_lock
from sk_animals.scratch import ScratchCNNClassifier
from sk_animals.stats import LearningCurveFit


def _scratch(name="scratch", **kw):
    params = {"width": 4, "depth": 2, "max_epochs": 1, "batch_size": 8, "verbose": 0}
    clf = ScratchCNNClassifier(**{**params, "random_state": 0, **kw})
    return Approach(name, make_pipeline(ImageLoader(32), clf))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    X, y = make_image_dataset(n_samples=30, n_classes=3, size=32, random_state=0)
    return save_image_folder(X, y, tmp_path_factory.mktemp("runs") / "data")


def test_a_library_resume_with_another_argument_is_refused_naming_it(folder, tmp_path):
    run = dict(cv=2, audit=False, checkpoint_dir=tmp_path, verbose=0)
    compare(folder, [_scratch()], **run)
    with pytest.raises(ResumeError, match=r"random_state \(was 0, now 1\)") as caught:
        compare(folder, [_scratch()], **run, random_state=1)
    assert ("random_state", 0, 1) in caught.value.changed
    with pytest.raises(ResumeError, match="max_epochs"):  # an approach's setting counts too
        compare(folder, [_scratch(max_epochs=2)], **run)
    compare(folder, [_scratch()], **{**run, "verbose": 1, "n_jobs": 1})  # these may differ


class _Payload:
    """What an attacker's pickle would do when loaded: write a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_tampered_checkpoint_is_never_executed(folder, tmp_path):
    run = dict(cv=2, audit=False, checkpoint_dir=tmp_path / "run", verbose=0)
    first = compare(folder, [_scratch()], **run)
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(str(marker)))
    for unit in ("scratch.final.json", "scratch.fold0.json"):  # units replaced
        (tmp_path / "run" / unit).write_bytes(payload)
    (tmp_path / "run" / "scratch.final.checkpoint").write_bytes(payload)  # the old format
    with pytest.warns(UserWarning, match="scratch.final.json' cannot be read"):
        again = compare(folder, [_scratch()], **run)
    assert not marker.exists()
    assert again.approaches[0].cv.scores == first.approaches[0].cv.scores  # fold 0 redone
    assert again.approaches[0].test_predicted == first.approaches[0].test_predicted


def test_a_second_run_on_the_same_folder_fails_at_once_naming_the_first(folder, tmp_path, capsys):
    with folder_lock(tmp_path / "out", "the first run"):
        with pytest.raises(RunInProgressError, match="in use by the first run"):
            compare(folder, [_scratch()], cv=0, checkpoint_dir=tmp_path / "out", verbose=0)
        code = main(["compare", str(folder), "--out", str(tmp_path / "out"), "--cv", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "in use by the first run" in err
    with folder_lock(tmp_path / "out"):  # released: free again
        pass
    assert not (tmp_path / "out").exists()  # the lock file goes, and the folder the lock made
    (tmp_path / "out").mkdir()
    with folder_lock(tmp_path / "out"):
        pass
    assert (tmp_path / "out").is_dir() and not any((tmp_path / "out").iterdir())  # theirs stays


def test_a_full_disk_leaves_no_file_under_a_final_name(folder, tmp_path, monkeypatch):
    result = compare(folder, [_scratch()], cv=0, audit=False, verbose=0)
    real_open = open

    def full_disk(path, *args, **kwargs):
        f = real_open(path, *args, **kwargs)
        if "report.html" in str(path):
            f.write = lambda data: (_ for _ in ()).throw(
                OSError(errno.ENOSPC, "No space left on device")
            )
        return f

    monkeypatch.setattr(sk_animals._files, "open", full_disk, raising=False)
    out = tmp_path / "report"
    with pytest.raises(FileWriteError) as caught:
        result.save(out)
    assert str(caught.value) == f"no space left on device writing {out / 'report.html'}"
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, OSError)
    names = {p.name for p in out.iterdir()}
    assert "report.html" not in names and not any(n.endswith(".partial") for n in names)
    assert "scratch.skmodel" in names  # written whole before the failure


def test_a_failing_forecast_leaves_a_finished_run_with_a_note(folder, monkeypatch):
    def broken(*args, **kwargs):
        raise TypeError("float() argument must be a string or a real number, not 'complex'")

    monkeypatch.setattr("sk_animals.evaluation.forecast", broken)
    result = compare(folder, [_scratch()], cv=0, budgets=[3, 5, 7], audit=False, verbose=0)
    assert len(result.budget_curve) == 3 and result.budget_forecast == []
    assert any(n.startswith("the forecast failed (TypeError") for n in result.notes)
    assert "the forecast failed" in result.crossover_reason


def test_the_budget_for_any_fitted_curve_is_a_number_or_infinite():
    """A ceiling below the target made Python take a fractional power of a negative
    number: ``budget_for`` raised TypeError (complex) and lost a finished run."""
    rng = np.random.default_rng(0)
    for _ in range(500):
        a, b, c = rng.uniform(0, 1), rng.uniform(0, 3), rng.uniform(0.01, 3)
        samples = np.c_[rng.uniform(0, 1, 50), rng.uniform(0, 3, 50), rng.uniform(0.01, 3, 50)]
        fit = LearningCurveFit({"a": a, "b": b, "c": c}, samples, 40, 1.0)
        target = float(rng.uniform(0, 1))
        needed, (low, high) = fit.budget_for(target)
        assert isinstance(needed, float) and not np.isnan([needed, low, high]).any()
        assert (needed == np.inf) == (a <= target)


@pytest.mark.parametrize("shape", ["rising", "flat", "noisy", "falling", "saturated"])
def test_the_forecast_answers_for_any_budget_curve(shape):
    """Random budget curves of every shape: a forecast or its reason, never an exception."""
    rng = np.random.default_rng(sum(map(ord, shape)))
    budgets = [4, 8, 16]  # three points: no backtest, the least work that fits a curve
    base = {
        "rising": np.sort(rng.uniform(0.2, 0.9, 3)),
        "flat": np.full(3, rng.uniform(0.2, 0.9)),
        "noisy": rng.uniform(0.1, 0.9, 3),
        "falling": np.sort(rng.uniform(0.2, 0.9, 3))[::-1],
        "saturated": np.minimum(1.0, np.sort(rng.uniform(0.8, 1.1, 3))),
    }[shape]
    points = [
        _budgets.BudgetPoint(name, n, 4 * n, False, float(a), (a - 0.1, a + 0.1))
        for name, shift in (("a", 0.0), ("b", rng.uniform(-0.3, 0.3)))
        for n, a in zip(budgets, np.clip(base + shift, 0, 1), strict=True)
    ]
    target = float(rng.uniform(0.05, 0.99))
    forecasts, crossover, reason = _budgets.forecast(points, 40, target_accuracy=target)
    assert len(forecasts) == 2 and all(f.accuracy or f.reason for f in forecasts)
    assert crossover is None or np.isfinite(crossover.per_class)


@pytest.mark.slow  # a whole command or worker processes: the slow lane
def test_the_demo_interrupted_then_resumed_finishes(tmp_path, monkeypatch, capsys):
    """Ctrl-C in the second approach, then --resume: the demo's images are in the run's
    folder, so the restored approach's files are still there when the report draws them."""
    import sk_animals.evaluation as evaluation

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    real = evaluation._fit_and_score

    def interrupt_the_probe(approach, *args, **kwargs):
        if approach.name == "probe":
            raise KeyboardInterrupt
        return real(approach, *args, **kwargs)

    out = tmp_path / "out"
    argv = ["compare", "--demo", "--out", str(out), "--cv", "0", "--budgets", "10,20"]
    argv += ["--approaches", "scratch,probe", "--device", "cpu", "-q"]
    monkeypatch.setattr(evaluation, "_fit_and_score", interrupt_the_probe)
    assert main(argv) == 130
    assert "--resume" in capsys.readouterr().err
    monkeypatch.setattr(evaluation, "_fit_and_score", real)
    assert main([*argv, "--resume"]) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert [a["name"] for a in metrics["approaches"]] == ["scratch", "probe"]
    assert not (out / "checkpoint").exists()  # finished: nothing left to resume


def test_the_backbone_is_found_by_type_not_position(tmp_path):
    """A step before the frozen features (a second loader) once hid the backbone."""
    import torch
    import torchvision

    from sk_animals.transfer import LinearProbe, PretrainedFeatures

    torch.save(torchvision.models.get_model("squeezenet1_1").state_dict(), tmp_path / "w.pth")
    features = PretrainedFeatures("squeezenet1_1", weights=tmp_path / "w.pth")
    pipeline = make_pipeline(ImageLoader(48), ImageLoader(32), features, LinearProbe())
    probe = Approach("probe", pipeline)
    assert probe.backbone_step is features and probe.features is features
    assert probe.n_fixed == 3 and isinstance(probe.model(), LinearProbe)
    X, y = make_image_dataset(n_samples=24, n_classes=2, size=32, random_state=0)
    data = save_image_folder(X, y, tmp_path / "data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        (record,) = compare(data, [probe], cv=0, audit=False, verbose=0).approaches
    assert (record.backbone, record.weights) == ("squeezenet1_1", str(tmp_path / "w.pth"))


def test_the_store_restores_what_it_computed_and_ignores_damage(tmp_path):
    with RunStore(tmp_path) as store:
        store.check_arguments({"seed": 0})
        assert store.unit("u", lambda: [1, 2]) == [1, 2]
        assert store.unit("u", lambda: pytest.fail("restored, not computed")) == [1, 2]
        (tmp_path / "u.json").write_text("{not json")
        with pytest.warns(UserWarning, match="cannot be read"):
            assert store.unit("u", lambda: [3]) == [3]
        with pytest.raises(ResumeError, match=r"seed \(was 0, now 1\)"):
            store.check_arguments({"seed": 1})
