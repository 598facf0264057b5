"""Hyperparameter search with Optuna: default spaces, pruned studies, shared storages.

Optuna is optional (``pip install sk-animals[tune]``) and imported when first used.
A study lives in memory, in a SQLite file (it survives a crash and resumes), or in any
Optuna RDB (PostgreSQL, MySQL) or journal storage, so that several processes or machines
can work on one study at once: Optuna's storage is the distributed engine.
"""

import gc
import importlib
import time
from functools import partial

import numpy as np
import torch
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from .scratch import ScratchCNNClassifier
from .transfer import BACKBONES, TransferClassifier

__all__ = ["make_storage", "search_space", "tune"]

_SCHEMA_ATTEMPTS = 5
_INSTALL = "hyperparameter search needs Optuna: pip install 'sk-animals[tune]'"


def _optuna():
    """Import optuna lazily, with a message that says what to install."""
    try:
        return importlib.import_module("optuna")
    except ImportError as exc:
        raise ImportError(_INSTALL) from exc


def search_space(estimator, prefix=""):
    """The default Optuna search space for one of the package's classifiers.

    Parameters
    ----------
    estimator : ScratchCNNClassifier, TransferClassifier or Pipeline ending in one
        What is tuned; in a Pipeline, names get the last step's prefix
        (``scratchcnnclassifier__lr``) unless ``prefix`` is given.
    prefix : str, default=""
        Prepended to every name.

    Returns
    -------
    space : dict of str to optuna.distributions.BaseDistribution
        Usable as ``param_distributions`` of ``optuna_integration.OptunaSearchCV``
        and by :func:`tune`: learning rate (log-uniform), momentum, weight decay,
        batch size, epochs; width, depth and dropout for scratch; the head's
        learning-rate factor, freeze policy and backbone for transfer.

    Examples
    --------
    >>> from sk_animals.scratch import ScratchCNNClassifier
    >>> from sk_animals.tuning import search_space
    >>> sorted(search_space(ScratchCNNClassifier()))[:3]
    ['batch_size', 'depth', 'dropout']
    """
    distributions = _optuna().distributions
    Float, Int, Cat = (
        distributions.FloatDistribution,
        distributions.IntDistribution,
        distributions.CategoricalDistribution,
    )
    if isinstance(estimator, Pipeline):
        name, estimator = estimator.steps[-1]
        prefix = prefix or f"{name}__"
    space = {
        "optimizer__momentum": Float(0.8, 0.99),
        "optimizer__weight_decay": Float(1e-6, 1e-2, log=True),
    }
    if isinstance(estimator, TransferClassifier):
        space.update(
            {
                "lr": Float(1e-5, 1e-2, log=True),
                "batch_size": Cat([8, 16, 32]),
                "max_epochs": Int(2, 10),
                "head_lr_factor": Float(1.0, 50.0, log=True),
                "freeze": Cat(["none", "body", 2]),
                "backbone": Cat(sorted(BACKBONES)),
            }
        )
    elif isinstance(estimator, ScratchCNNClassifier):
        space.update(
            {
                "lr": Float(1e-3, 0.3, log=True),
                "batch_size": Cat([32, 64, 128]),
                "max_epochs": Int(5, 30),
                "width": Cat([8, 16, 32]),
                "depth": Int(2, 5),
                "dropout": Float(0.0, 0.5),
            }
        )
    else:
        raise TypeError(f"no default search space for {type(estimator).__name__}")
    return {prefix + key: value for key, value in space.items()}


def make_storage(storage=None, *, heartbeat_interval=60):
    """An Optuna storage from a URL or a file name.

    Parameters
    ----------
    storage : str, optuna storage or None, default=None
        ``None``: in memory. ``"study.db"`` or ``"sqlite:///study.db"``: a SQLite
        file. Any SQLAlchemy URL (``postgresql://user:pass@host/db``,
        ``mysql+pymysql://...``): a shared database. A name ending in ``.log`` or
        ``.journal``: an append-only journal file (shared file systems with locks).
        A storage object is returned as it is.
        Workers started at the same moment on a new database may race to create its
        tables; the loser retries.
    heartbeat_interval : int, default=60
        For databases: seconds between a running trial's heartbeats; a trial whose
        worker died is marked failed after two missed beats and run again by the
        next worker (Optuna's ``RetryHeartbeatStaleTrialCallback``).

    Returns
    -------
    storage : optuna.storages.BaseStorage or None
    """
    optuna = _optuna()
    if storage is None or not isinstance(storage, str):
        return storage
    if storage.endswith((".log", ".journal")):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(storage))
    from sqlalchemy.exc import SQLAlchemyError

    url = storage if "://" in storage else f"sqlite:///{storage}"
    for attempt in range(_SCHEMA_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=heartbeat_interval,
                grace_period=2 * heartbeat_interval,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=1
                ),
            )
        except SQLAlchemyError:  # workers started together race to create one new schema
            if attempt == _SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.5 * (attempt + 1))


def _suggest(trial, name, dist):
    """Suggest ``name`` from an Optuna distribution, through the public trial API."""
    kind = type(dist).__name__
    if kind == "CategoricalDistribution":
        return trial.suggest_categorical(name, dist.choices)
    suggest = trial.suggest_float if kind == "FloatDistribution" else trial.suggest_int
    return suggest(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _objective(trial, base, space, X, y, validation_fraction, random_state):
    """Fit one candidate, report validation accuracy each epoch, free memory after."""
    from optuna_integration import SkorchPruningCallback

    params = {name: _suggest(trial, name, dist) for name, dist in space.items()}
    callbacks = [
        *(base.callbacks or []),
        ("optuna_pruning", SkorchPruningCallback(trial, "valid_acc")),
    ]
    clf = clone(base).set_params(
        **params,
        train_split=validation_fraction,
        callbacks=callbacks,
        random_state=random_state,
        verbose=0,
    )
    try:
        clf.fit(X, y)
        return float(clf.history_[-1, "valid_acc"])
    except Exception as exc:
        if not isinstance(exc, _optuna().TrialPruned):
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        del clf
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def tune(
    estimator,
    X,
    y,
    *,
    n_trials=20,
    param_distributions=None,
    storage=None,
    study_name=None,
    validation_fraction=0.2,
    timeout=None,
    n_jobs=1,
    random_state=0,
    refit=True,
):
    """Tune a classifier (or a Pipeline ending in one) with a pruned Optuna study.

    Each trial fits a candidate on ``1 - validation_fraction`` of the data and reports
    its validation accuracy after every epoch; Optuna's median pruner stops trials
    that trail the others (skorch's pruning callback from optuna-integration). Trials
    that fail (bad hyperparameters, out of memory) are recorded with the reason in
    their ``error`` user attribute, and the study goes on.

    Several processes or machines can run ``tune`` at once with the same ``storage``
    and ``study_name``: they share the study, and together stop once ``n_trials``
    trials have finished (a worker that starts a trial in the instant another
    finishes the last one may add one more).

    Parameters
    ----------
    estimator : ImageClassifier or Pipeline
        With a Pipeline, the steps before the classifier (an ImageLoader) transform
        ``X`` once, and only the classifier is tuned.
    X, y : array-like
        Images (or paths, for a Pipeline) and labels.
    n_trials : int, default=20
        Finished trials (complete, pruned or failed) the study stops at.
    param_distributions : dict, default=None
        Optuna distributions by parameter name of the classifier;
        :func:`search_space` by default.
    storage : str, optuna storage or None, default=None
        See :func:`make_storage`. In memory by default.
    study_name : str, default=None
        Name of the study to create or join (required to share a storage).
    validation_fraction : float, default=0.2
        Stratified hold-out each trial is scored on.
    timeout : float, default=None
        Stop starting new trials after this many seconds.
    n_jobs : int, default=1
        Trials run in parallel threads of this process. With one GPU keep 1: trials
        share it one at a time; run more processes (or machines) on a shared storage
        instead.
    random_state : int, default=0
        Seeds the sampler and every trial's fit.
    refit : bool, default=True
        Refit the best parameters on all the data.

    Returns
    -------
    best : estimator
        The estimator with the best parameters, refitted when ``refit``.
    study : optuna.Study
    """
    optuna = _optuna()
    if isinstance(estimator, Pipeline):
        head, base = estimator[:-1], estimator.steps[-1][1]
        Xt = head.fit_transform(X, y)
    else:
        head, base, Xt = None, estimator, X
    space = search_space(base) if param_distributions is None else param_distributions
    study = optuna.create_study(
        study_name=study_name,
        storage=make_storage(storage),
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=random_state),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    finished = (
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.FAIL,
        optuna.trial.TrialState.RUNNING,
    )
    remaining = n_trials - len(study.get_trials(deepcopy=False, states=finished[:3]))
    if remaining > 0:
        study.optimize(
            partial(
                _objective,
                base=base,
                space=space,
                X=Xt,
                y=np.asarray(y),
                validation_fraction=validation_fraction,
                random_state=random_state,
            ),
            n_trials=remaining,
            timeout=timeout,
            n_jobs=n_jobs,
            catch=(Exception,),
            callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=finished)],
        )
    if not study.get_trials(deepcopy=False, states=finished[:1]):
        reasons = {t.user_attrs.get("error") for t in study.trials} - {None}
        raise RuntimeError(
            f"no trial of study {study.study_name!r} completed"
            + (f"; errors: {sorted(reasons)[:3]}" if reasons else "")
        )
    best = clone(base).set_params(**study.best_params, random_state=random_state)
    if refit:
        best.fit(Xt, y)
    if head is not None:
        best = Pipeline([*head.steps, (estimator.steps[-1][0], best)])
    return best, study
