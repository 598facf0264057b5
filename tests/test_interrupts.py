"""Ctrl-C stops everything and says so; early stopping is recorded; nothing half-done is kept."""

import json
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
import torchvision
from sklearn.model_selection import cross_validate
from skorch.callbacks import Callback, EarlyStopping

from sk_animals.datasets import make_image_dataset, save_image_folder
from sk_animals.scratch import ScratchCNNClassifier


class CtrlC(Callback):
    """Raise KeyboardInterrupt at a given training iteration, as a real Ctrl-C would."""

    def __init__(self, at=5):
        self.at = at

    def on_train_begin(self, net, **kwargs):
        self.seen_ = 0

    def on_batch_end(self, net, training, **kwargs):
        self.seen_ += training
        if self.seen_ == self.at:
            raise KeyboardInterrupt


def tiny(**kw):
    params = {"width": 4, "depth": 2, "max_epochs": 4, "batch_size": 16, "verbose": 0}
    return ScratchCNNClassifier(**{**params, "random_state": 0, **kw})


def test_ctrl_c_in_fit_stops_and_is_recorded(shapes):
    X, y = shapes
    clf = tiny(callbacks=[("ctrl_c", CtrlC(at=10))], train_split=0.25)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    assert len(clf.history_) == 2 and clf.history_[-1, "stopped"] == "interrupted"
    assert dict(clf.callbacks_)["scores"].dataset_valid_ is None  # no data kept


def test_ctrl_c_inside_cross_validate_is_not_scored(shapes):
    X, y = shapes
    with pytest.raises(KeyboardInterrupt):
        cross_validate(tiny(callbacks=[("ctrl_c", CtrlC(at=3))]), X, y, cv=2)


def test_early_stopping_is_not_an_interrupt_and_is_recorded(shapes):
    X, y = shapes
    stopper = EarlyStopping(monitor="valid_loss", patience=1, threshold=10.0)
    clf = tiny(max_epochs=10, train_split=0.25, callbacks=[stopper]).fit(X, y)
    assert len(clf.history_) == 2 and clf.history_[-1, "stopped"] == "early_stopping"
    assert "stopped" not in tiny(max_epochs=1).fit(X, y).history_[-1]


def test_infinite_loss_stops_with_a_clear_error(shapes):
    X, y = shapes
    with pytest.raises(FloatingPointError, match="training loss became nan in epoch 1"):
        tiny(lr=1e30).fit(X, y)


def _start(*args, cwd):
    """``sk-animals ARGS`` in ``cwd``, its output in files there (a pipe nobody reads while
    the test waits could fill up and block it)."""
    with open(cwd / "stdout.txt", "w") as stdout, open(cwd / "stderr.txt", "w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "sk_animals", *map(str, args)],
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
        )


def _stderr(cwd):
    return (cwd / "stderr.txt").read_text()


def _wait_for(path, proc, cwd, timeout=300):
    start = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, _stderr(cwd)
        assert time.monotonic() - start < timeout, f"{path} never appeared"
        time.sleep(0.2)


@pytest.mark.slow  # a whole command or worker processes: the slow lane
def test_sigint_during_compare_keeps_finished_work_and_exits_130(tmp_path):
    X, y = make_image_dataset(n_samples=60, n_classes=3, size=32, random_state=0)
    data = save_image_folder(X, y, tmp_path / "data")
    weights = tmp_path / "squeezenet.pth"
    torch.save(torchvision.models.get_model("squeezenet1_1").state_dict(), weights)
    out = tmp_path / "out"
    proc = _start(
        "compare", data, "--out", out, "--cv", 0, "--epochs", 40,
        "--backbone", "squeezenet1_1", "--weights", weights, "--device", "cpu", cwd=tmp_path,
    )  # fmt: skip
    try:
        _wait_for(out / "metrics.json", proc, tmp_path)  # scratch (100 px) finished and was saved
        time.sleep(3)  # transfer (224 px, 40 epochs) is training now
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=300)  # a loaded machine is slow to stop
    finally:
        proc.kill()
    stderr = _stderr(tmp_path)
    assert proc.returncode == 130, stderr
    last = stderr.strip().splitlines()[-1]
    assert "interrupted" in last and "scratch" in last and "Traceback" not in stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert [a["name"] for a in metrics["approaches"]] == ["scratch"]
    assert metrics["approaches"][0]["epochs_run"] == 40
    assert (out / "scratch.skmodel").exists() and not (out / "transfer.skmodel").exists()
    assert "| transfer |" not in (out / "report.md").read_text(encoding="utf-8")


@pytest.mark.slow  # a whole command or worker processes: the slow lane
def test_sigint_during_tune_exits_130_and_fails_only_the_running_trial(tmp_path):
    optuna = pytest.importorskip("optuna")
    X, y = make_image_dataset(n_samples=48, n_classes=2, size=32, random_state=0)
    data = save_image_folder(X, y, tmp_path / "data")
    storage = tmp_path / "study.db"
    proc = _start(
        "tune", data, "--image-size", 32, "--n-trials", 50, "--storage", storage,
        "--device", "cpu", "--study-name", "s", cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, _stderr(tmp_path)
            assert time.monotonic() < deadline, "no trial finished"
            try:
                trials = optuna.load_study(study_name="s", storage=f"sqlite:///{storage}").trials
            except KeyError:  # the study is not created yet
                trials = []
            if any(t.state.is_finished() for t in trials) and trials[-1].state.name == "RUNNING":
                break
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=300)  # a loaded machine is slow to stop
    finally:
        proc.kill()
    stderr = _stderr(tmp_path)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr.strip().splitlines()[-1] and "KeyError" not in stderr
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{storage}")
    states = [t.state.name for t in study.trials]
    # the interrupted trial fails without an error of its own (trials that fail on their
    # own, a diverging lr say, record theirs)
    interrupted = [
        t for t in study.trials if t.state.name == "FAIL" and "error" not in t.user_attrs
    ]
    assert "RUNNING" not in states and len(interrupted) <= 1
    assert len(study.trials) < 50


def _without_timings(value):
    """metrics.json with the wall-clock figures left out (the only part a resume changes)."""
    if isinstance(value, dict):
        return {
            k: _without_timings(v)
            for k, v in value.items()
            if k
            not in (
                "fit_seconds",
                "predict_ms_per_image",
                "onnx_predict_ms_per_image",
                "dur",
                "seconds",
            )
        }
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


@pytest.mark.slow  # a whole command or worker processes: the slow lane
def test_a_killed_compare_resumes_and_gives_the_same_metrics(tmp_path):
    X, y = make_image_dataset(n_samples=48, n_classes=3, size=32, random_state=0)
    data = save_image_folder(X, y, tmp_path / "data")
    weights = tmp_path / "squeezenet.pth"
    torch.save(torchvision.models.get_model("squeezenet1_1").state_dict(), weights)
    common = [
        "compare", data, "--cv", 2, "--epochs", 3, "--budgets", "4,8", "--backbone",
        "squeezenet1_1", "--weights", weights, "--device", "cpu",
    ]  # fmt: skip
    whole = subprocess.run(
        [sys.executable, "-m", "sk_animals", *map(str, common), "--out", tmp_path / "whole"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert whole.returncode == 0, whole.stderr
    assert not (tmp_path / "whole" / "checkpoint").exists()  # finished: nothing to resume

    out = tmp_path / "out"
    proc = _start(*common, "--out", out, cwd=tmp_path)
    try:
        _wait_for(out / "checkpoint" / "transfer.fold0.json", proc, tmp_path)
        proc.send_signal(signal.SIGKILL)  # in transfer's second fold
        proc.wait(timeout=60)
    finally:
        proc.kill()
    units = {p.name.removesuffix(".json") for p in (out / "checkpoint").glob("*.json")}
    assert {"label-audit", "scratch.fold0", "scratch.final", "scratch.budget8"} <= units
    assert "transfer.final" not in units, "killed too late"

    def resume(*extra):
        argv = [*common, "--out", out, "--resume", *extra]
        return subprocess.run(
            [sys.executable, "-m", "sk_animals", *map(str, argv)],
            capture_output=True,
            text=True,
            timeout=600,
        )

    changed = resume("--seed", 1)
    assert changed.returncode == 2 and "--seed (was 0, now 1)" in changed.stderr
    assert len(changed.stderr.strip().splitlines()) == 1
    resumed = resume("--verbose")  # verbosity may differ
    assert resumed.returncode == 0, resumed.stderr
    restored = (
        "label audit finished",
        "scratch: cross-validation and final fit finished",
        "scratch: 2 of 2 budget points restored",
        "transfer: [12] of 2 folds finished",  # the kill came in its second fold
    )
    for line in restored:
        assert re.search(line, resumed.stdout), resumed.stdout
    a = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    b = json.loads((out / "metrics.json").read_text())
    assert _without_timings(a) == _without_timings(b)
    nothing = resume()
    assert nothing.returncode == 2 and "holds no interrupted run" in nothing.stderr
