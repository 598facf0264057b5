import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

optuna = pytest.importorskip("optuna")
from optuna.distributions import CategoricalDistribution, IntDistribution  # noqa: E402
from optuna.trial import TrialState  # noqa: E402
from optuna_integration import OptunaSearchCV  # noqa: E402
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from sk_animals.preprocessing import ImageLoader  # noqa: E402
from sk_animals.scratch import ScratchCNNClassifier  # noqa: E402
from sk_animals.transfer import TransferClassifier  # noqa: E402
from sk_animals.tuning import make_storage, search_space, tune  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


def small_space(epochs=(3, 6)):
    """The default scratch space, narrowed to sizes that fit 32 px images and a few seconds."""
    space = search_space(ScratchCNNClassifier())
    space.update(
        max_epochs=IntDistribution(*epochs),
        width=CategoricalDistribution([4, 8]),
        depth=IntDistribution(2, 3),
        batch_size=CategoricalDistribution([16, 32]),
    )
    return space


def test_default_spaces():
    scratch = search_space(ScratchCNNClassifier())
    assert scratch["lr"].log and {"width", "depth", "dropout", "max_epochs"} <= set(scratch)
    transfer = search_space(make_pipeline(ImageLoader(), TransferClassifier()))
    assert {
        "transferclassifier__head_lr_factor",
        "transferclassifier__freeze",
        "transferclassifier__backbone",
    } <= set(transfer)
    with pytest.raises(TypeError):
        search_space(ImageLoader())


def test_short_study_prunes_and_refits(shapes):
    X, y = shapes
    best, study = tune(
        ScratchCNNClassifier(verbose=0), X, y, n_trials=8, param_distributions=small_space()
    )
    states = [t.state for t in study.trials]
    assert len(states) == 8 and TrialState.PRUNED in states and TrialState.COMPLETE in states
    assert all(len(t.intermediate_values) >= 1 for t in study.trials)
    assert best.get_params()["lr"] == study.best_params["lr"] and best.score(X, y) > 0.5


def test_failed_trials_are_recorded_and_the_study_goes_on(shapes):
    X, y = shapes
    space = {"depth": CategoricalDistribution([2, 6]), "max_epochs": IntDistribution(1, 2)}
    _, study = tune(
        ScratchCNNClassifier(width=4, verbose=0),
        X,
        y,
        n_trials=6,
        param_distributions=space,
        random_state=1,
    )
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed and all("too small for depth" in t.user_attrs["error"] for t in failed)
    assert any(t.state == TrialState.COMPLETE for t in study.trials)


def test_pipeline_search_and_optuna_search_cv(shapes):
    X, y = list(shapes[0]), shapes[1]
    pipe = make_pipeline(
        ImageLoader(32), ScratchCNNClassifier(width=4, depth=2, max_epochs=2, verbose=0)
    )
    best, study = tune(
        pipe,
        X,
        y,
        n_trials=2,
        param_distributions={"lr": optuna.distributions.FloatDistribution(0.01, 0.1, log=True)},
    )
    assert best.predict(X[:3]).shape == (3,) and len(study.trials) == 2
    search = OptunaSearchCV(
        pipe,
        {"scratchcnnclassifier__lr": optuna.distributions.FloatDistribution(1e-3, 0.1, log=True)},
        n_trials=2,
        cv=2,
        random_state=0,
    )
    search.fit(X, y)
    assert "scratchcnnclassifier__lr" in search.best_params_
    grid = GridSearchCV(pipe, {"scratchcnnclassifier__batch_size": [16, 32]}, cv=2).fit(X, y)
    assert grid.best_params_["scratchcnnclassifier__batch_size"] in (16, 32)
    rand = RandomizedSearchCV(
        pipe, {"scratchcnnclassifier__lr": [0.01, 0.05]}, n_iter=2, cv=2, random_state=0
    ).fit(X, y)
    assert rand.best_score_ >= 0


WORKER = textwrap.dedent("""
    import sys
    import optuna
    from optuna.distributions import CategoricalDistribution, IntDistribution
    from sk_animals.datasets import make_image_dataset
    from sk_animals.scratch import ScratchCNNClassifier
    from sk_animals.tuning import make_storage, tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, n_trials, epochs, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    X, y = make_image_dataset(n_samples=96, n_classes=2, size=32, random_state=0)
    space = {"max_epochs": IntDistribution(epochs, epochs), "width": CategoricalDistribution([4]),
             "depth": IntDistribution(2, 2)}
    tune(ScratchCNNClassifier(verbose=0), X, y, n_trials=n_trials, param_distributions=space,
         storage=make_storage(url, heartbeat_interval=1), study_name="shared",
         random_state=seed, refit=False)
""")


def _worker(tmp_path, url, n_trials, epochs, seed):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    return subprocess.Popen(
        [sys.executable, str(script), url, str(n_trials), str(epochs), str(seed)],
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_workers_share_one_study(tmp_path, kind):
    url = f"sqlite:///{tmp_path / 'study.db'}" if kind == "sqlite" else str(tmp_path / "s.log")
    workers = [_worker(tmp_path, url, 8, 2, seed) for seed in (1, 2)]
    for w in workers:
        assert w.wait(timeout=300) == 0, w.stderr.read()
    study = optuna.load_study(study_name="shared", storage=make_storage(url))
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(len(numbers)))  # none lost, none duplicated
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == len(study.trials)
    assert 8 <= len(finished) <= 9  # a race at the very end may start one more


def test_study_resumes_after_its_worker_was_killed(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    worker = _worker(tmp_path, url, 4, 400, 1)  # long trials, to be killed in one
    storage = make_storage(url, heartbeat_interval=1)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            trials = optuna.load_study(study_name="shared", storage=storage).trials
        except KeyError:
            trials = []
        if any(t.state == TrialState.RUNNING for t in trials):
            break
        time.sleep(0.5)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    time.sleep(3)  # two missed heartbeats: the trial is stale
    resumed = _worker(tmp_path, url, 4, 2, 3)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    study = optuna.load_study(study_name="shared", storage=storage)
    states = [t.state for t in study.trials]
    assert states[0] == TrialState.FAIL  # the killed worker's trial, failed by heartbeat
    assert sum(s.is_finished() for s in states) >= 4 and TrialState.RUNNING not in states
    assert study.trials[0].params == study.trials[1].params  # retried with the same params
