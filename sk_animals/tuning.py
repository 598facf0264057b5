"""Hyperparameter search with Optuna: default spaces, pruned studies, shared storages.

Optuna is optional (``pip install sk-animals[tune]``) and imported when first used.
A study lives in memory, in a SQLite file (it survives a crash and resumes), or in any
Optuna RDB (PostgreSQL, MySQL) or journal storage, so that several processes or machines
can work on one study at once: Optuna's storage is the distributed engine. Each worker
samples apart from the others, and fails (then retries) the trials of workers that died.
"""

import contextlib
import gc
import importlib
import threading
import time
import uuid
from functools import partial

import numpy as np
import torch
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from .preprocessing import ImageLoader, _as_size
from .scratch import ScratchCNNClassifier
from .transfer import TransferClassifier

__all__ = ["make_storage", "search_space", "trial_counts", "tune"]

_SCHEMA_ATTEMPTS = 5
_INSTALL = "hyperparameter search needs Optuna: pip install 'sk-animals[tune]'"
_ALIVE_UNTIL = "alive_until"  # user attribute: time.time() by which a running trial's worker beats
_RETRY_OF = "retry_of"  # user attribute: the number of the stale trial this one runs again


def _optuna():
    """Import optuna lazily, with a message that says what to install."""
    try:
        return importlib.import_module("optuna")
    except ImportError as exc:
        raise ImportError(_INSTALL) from exc


def search_space(estimator, prefix="", *, image_size=None):
    """The default Optuna search space for one of the package's classifiers.

    Parameters
    ----------
    estimator : ScratchCNNClassifier, TransferClassifier or Pipeline ending in one
        What is tuned; in a Pipeline, names get the last step's prefix
        (``scratchcnnclassifier__lr``) unless ``prefix`` is given.
    prefix : str, default=""
        Prepended to every name.
    image_size : int or (int, int), default=None
        The side (or height and width) of the images the classifier gets: a scratch
        network's depths are only those whose network takes them (each pooled block
        halves the image; see ``min_image_size``). ``None``: the size of a Pipeline's
        leading :class:`~sk_animals.preprocessing.ImageLoader`, else every depth.

    Returns
    -------
    space : dict of str to optuna.distributions.BaseDistribution
        Usable as ``param_distributions`` of ``optuna_integration.OptunaSearchCV``
        and by :func:`tune`: learning rate (log-uniform), momentum, weight decay,
        batch size, epochs; width, depth and dropout for scratch; the head's
        learning-rate factor and freeze policy for transfer. The backbone is not
        searched: it is the estimator's, with its weights and the loader's
        preprocessing made for it.

    Examples
    --------
    >>> from sk_animals.scratch import ScratchCNNClassifier
    >>> from sk_animals.tuning import search_space
    >>> sorted(search_space(ScratchCNNClassifier()))[:3]
    ['batch_size', 'depth', 'dropout']
    >>> search_space(ScratchCNNClassifier(), image_size=16)["depth"]  # 16 px: halved 4 times
    IntDistribution(high=4, log=False, low=2, step=1)
    """
    distributions = _optuna().distributions
    Float, Int, Cat = (
        distributions.FloatDistribution,
        distributions.IntDistribution,
        distributions.CategoricalDistribution,
    )
    if isinstance(estimator, Pipeline):
        if image_size is None and isinstance(estimator[0], ImageLoader):
            image_size = estimator[0].size
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
            }
        )
    elif isinstance(estimator, ScratchCNNClassifier):
        space.update(
            {
                "lr": Float(1e-3, 0.3, log=True),
                "batch_size": Cat([32, 64, 128]),
                "max_epochs": Int(5, 30),
                "width": Cat([8, 16, 32]),
                "depth": Int(*_depths(estimator, image_size)),
                "dropout": Float(0.0, 0.5),
            }
        )
    else:
        raise TypeError(f"no default search space for {type(estimator).__name__}")
    return {prefix + key: value for key, value in space.items()}


def _depths(estimator, image_size, offered=(2, 5)):
    """The lowest and highest of the ``offered`` depths whose network takes images of
    ``image_size`` (the network's own rule, ``min_image_size``)."""
    low, high = offered
    if image_size is None:
        return low, high
    side = min(_as_size(image_size))
    fits = [
        d
        for d in range(low, high + 1)
        if clone(estimator).set_params(depth=d).min_image_size() <= side
    ]
    if not fits:
        h, w = _as_size(image_size)
        raise ValueError(
            f"images of {h}x{w} are too small for every depth the search offers ({low} to "
            f"{high}): use larger images, or give param_distributions with a smaller depth"
        )
    return low, max(fits)


def make_storage(storage=None):
    """An Optuna storage from a URL or a file name.

    Parameters
    ----------
    storage : str, optuna storage or None, default=None
        ``None``: in memory. ``"study.db"`` or ``"sqlite:///study.db"``: a SQLite
        file. Any SQLAlchemy URL (``postgresql://user:pass@host/db`` through psycopg 3,
        which the ``postgres`` extra installs; ``postgresql+psycopg2://...`` where
        psycopg2 is installed; ``mysql+pymysql://...``): a shared database. A name
        ending in ``.log`` or ``.journal``: an append-only journal file (shared file
        systems with locks). A storage object is returned as it is.
        Workers started at the same moment on a new database may race to create its
        tables; the loser retries.

    Returns
    -------
    storage : optuna.storages.BaseStorage or None

    See Also
    --------
    tune : Its workers' heartbeats fail the trials of dead workers on any storage.
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
            return optuna.storages.RDBStorage(url)
        except SQLAlchemyError:  # workers started together race to create one new schema
            if attempt == _SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.5 * (attempt + 1))


def trial_counts(study):
    """How many trials of a study are in each state.

    Parameters
    ----------
    study : optuna.Study

    Returns
    -------
    counts : dict of str to int
        Keys ``"complete"``, ``"pruned"``, ``"fail"``, ``"running"`` and ``"waiting"``
        (queued, such as the retry of a dead worker's trial).

    Examples
    --------
    >>> import optuna
    >>> from sk_animals.tuning import trial_counts
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study()
    >>> study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    >>> trial_counts(study)
    {'complete': 2, 'pruned': 0, 'fail': 0, 'running': 0, 'waiting': 0}
    """
    states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
    return {s: states.count(s) for s in ("complete", "pruned", "fail", "running", "waiting")}


def _counted(study, states):
    """The trials in ``states`` that count toward ``n_trials``: not stale ones run again."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(_RETRY_OF) for t in trials}
    return sum(t.state in states and t.number not in retried for t in trials)


def _fail_stale_trials(study, grace_period):
    """Fail the running trials whose worker stopped beating, and queue each once more.

    A trial is stale once its ``alive_until`` lease has passed (or, before its first
    beat, ``grace_period`` seconds after it started). Of workers that find one stale
    trial together, one fails it (the storage refuses the others) and queues its
    parameters again; the reason goes in the trial's ``error`` user attribute.
    """
    optuna, now = _optuna(), time.time()
    storage, running = study._storage, optuna.trial.TrialState.RUNNING
    for trial in study.get_trials(deepcopy=False, states=(running,)):
        lease = trial.user_attrs.get(_ALIVE_UNTIL, trial.datetime_start.timestamp() + grace_period)
        if now <= lease:
            continue
        reason = f"worker lost (killed, crashed, cut off): heartbeat {now - lease:.0f} s overdue"
        try:
            storage.set_trial_user_attr(trial._trial_id, "error", reason)
            storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first
        if _RETRY_OF not in trial.user_attrs:  # run a lost trial again once, not forever
            study.enqueue_trial(trial.params, user_attrs={_RETRY_OF: trial.number})


def _between_trials(study, trial, *, n_trials, heartbeat_interval):
    """Fail dead workers' trials, and stop once the study has ``n_trials`` trials."""
    states = _optuna().trial.TrialState
    if heartbeat_interval is not None:
        _fail_stale_trials(study, 2 * heartbeat_interval)
    if _counted(study, (states.COMPLETE, states.PRUNED, states.FAIL, states.RUNNING)) >= n_trials:
        study.stop()


def _renew_lease(trial, heartbeat_interval, stop):
    """Push ``trial``'s lease two beats ahead every ``heartbeat_interval`` s until ``stop``."""
    while not stop.wait(heartbeat_interval):
        # A storage hiccup must not end the trial; the next beat tries again.
        with contextlib.suppress(Exception):
            trial.set_user_attr(_ALIVE_UNTIL, time.time() + 2 * heartbeat_interval)


@contextlib.contextmanager
def _heartbeat(trial, heartbeat_interval):
    """Keep ``trial``'s lease alive while the block runs (not at all when the interval is None)."""
    if heartbeat_interval is None:
        yield
        return
    trial.set_user_attr(_ALIVE_UNTIL, time.time() + 2 * heartbeat_interval)
    stop = threading.Event()
    beats = threading.Thread(
        target=_renew_lease, args=(trial, heartbeat_interval, stop), daemon=True
    )
    beats.start()
    try:
        yield
    finally:
        stop.set()
        beats.join()


def _suggest(trial, name, dist):
    """Suggest ``name`` from an Optuna distribution, through the public trial API."""
    kind = type(dist).__name__
    if kind == "CategoricalDistribution":
        return trial.suggest_categorical(name, dist.choices)
    suggest = trial.suggest_float if kind == "FloatDistribution" else trial.suggest_int
    return suggest(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _objective(trial, base, space, X, y, validation_fraction, random_state, heartbeat_interval):
    """Fit one candidate, report validation accuracy each epoch, free memory after."""
    from optuna_integration import SkorchPruningCallback

    with _heartbeat(trial, heartbeat_interval):
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
    heartbeat_interval=60,
    refit=True,
):
    """Tune a classifier (or a Pipeline ending in one) with a pruned Optuna study.

    Each trial fits a candidate on ``1 - validation_fraction`` of the data and reports
    its validation accuracy after every epoch; Optuna's median pruner stops trials
    that trail the others (skorch's pruning callback from optuna-integration). Trials
    that fail (bad hyperparameters, out of memory) are recorded with the reason in
    their ``error`` user attribute, and the study goes on.

    Several processes or machines can run ``tune`` at once on the same ``storage``:
    they share the study, and together stop once it has ``n_trials`` trials.
    Running ``tune`` again on a storage resumes the study where it stopped.

    Parameters
    ----------
    estimator : ImageClassifier or Pipeline
        With a Pipeline, the steps before the classifier (an ImageLoader) transform
        ``X`` once, and only the classifier is tuned.
    X, y : array-like
        Images (or paths, for a Pipeline) and labels.
    n_trials : int, default=20
        Finished trials (complete, pruned or failed) the study stops at, counted over
        all workers and runs. A trial failed because its worker was lost does not
        count: its retry does.
    param_distributions : dict, default=None
        Optuna distributions by parameter name of the classifier;
        :func:`search_space` by default.
    storage : str, optuna storage or None, default=None
        See :func:`make_storage`. In memory by default.
    study_name : str, default=None
        Name of the study to create or join. With a storage, ``None`` means
        ``"sk-animals-<classifier class>"`` (``"sk-animals-ScratchCNNClassifier"``),
        so that running again with the same storage resumes the same study; give
        another name for a separate study, such as one over another search space.
    validation_fraction : float, default=0.2
        Stratified hold-out each trial is scored on.
    timeout : float, default=None
        Stop starting new trials after this many seconds.
    n_jobs : int, default=1
        Trials run in parallel threads of this process. With one GPU keep 1: trials
        share it one at a time; run more processes (or machines) on a shared storage
        instead.
    random_state : int or None, default=0
        Seeds every trial's fit, so that a trial's parameters give the same model
        whichever worker fits it. In memory it also seeds the sampler, and the study
        is reproducible. With a storage, the sampler's seed is derived from it and a
        random id of this worker (see Notes).
    heartbeat_interval : float or None, default=60
        With a storage: seconds between the heartbeats of a running trial. A trial
        whose worker missed two beats (killed, crashed, lost its machine) is failed
        by the next worker between two trials, and its parameters run once more.
        ``None`` turns this off. Workers sharing a study need synchronised clocks.
    refit : bool, default=True
        Refit the best parameters on all the data.

    Returns
    -------
    best : estimator
        The estimator with the best parameters, refitted when ``refit``.
    study : optuna.Study
        :func:`trial_counts` says how many trials completed, were pruned, failed.

    Notes
    -----
    Sampling is set up for workers that run at once: a TPE sampler with
    ``constant_liar=True`` (Optuna's option for parallel workers: the trials others
    are running count as poor, so a worker samples away from them) and a seed of
    its own in every worker. Without a storage the seed is ``random_state``. With
    one it is drawn by :class:`numpy.random.SeedSequence` from ``random_state`` and
    a random id (:func:`uuid.uuid4`) of this call: neither a process id and host name
    (equal in containers) nor the number of trials already run (equal for workers
    started together) tells every worker apart, and workers sharing a study are not
    reproducible anyway, since their trials interleave by timing. So two workers,
    or a run and its resumption, never draw the same parameters in lockstep.

    Heartbeats are a lease in each running trial's ``alive_until`` user attribute (a
    ``time.time()``), the same on every storage, SQLite and journal files included:
    Optuna 5's own heartbeats exist for RDB storages only and record no reason.
    Every worker of a study should be a ``tune`` with heartbeats: the others' trials
    look lost after ``2 * heartbeat_interval``. A lost trial's ``error`` says why it
    failed, and its retry's ``retry_of`` gives its number. Workers stop once the
    trials that count, running ones included, reach ``n_trials``; one that starts a
    trial in the instant another finishes the last may add one more.

    Examples
    --------
    >>> from sk_animals.datasets import make_image_dataset
    >>> from sk_animals.scratch import ScratchCNNClassifier
    >>> from sk_animals.tuning import trial_counts, tune
    >>> from optuna.distributions import FloatDistribution
    >>> X, y = make_image_dataset(n_samples=40, n_classes=2, size=32, random_state=0)
    >>> clf = ScratchCNNClassifier(width=4, depth=2, max_epochs=1, verbose=0)
    >>> best, study = tune(clf, X, y, n_trials=2, refit=False,
    ...                    param_distributions={"lr": FloatDistribution(1e-3, 0.1, log=True)})
    >>> sum(trial_counts(study).values())
    2
    """
    optuna = _optuna()
    if isinstance(estimator, Pipeline):
        head, base = estimator[:-1], estimator.steps[-1][1]
        Xt = head.fit_transform(X, y)
    else:
        head, base, Xt = None, estimator, X
    space = param_distributions
    if space is None:  # only the depths that the images allow
        shape = getattr(Xt, "shape", None)
        space = search_space(base, image_size=None if shape is None else shape[1:3])
    seed, beats = random_state, None
    if storage is not None:
        study_name = study_name or f"sk-animals-{type(base).__name__}"
        beats = heartbeat_interval
        if random_state is not None:  # workers, and runs resuming a study, draw apart
            seed = int(
                np.random.SeedSequence([random_state, uuid.uuid4().int]).generate_state(1)[0]
            )
    study = optuna.create_study(
        study_name=study_name,
        storage=make_storage(storage),
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    if beats is not None:  # before counting: a dead worker's trial no longer counts
        _fail_stale_trials(study, 2 * beats)
    states = optuna.trial.TrialState
    remaining = n_trials - _counted(study, (states.COMPLETE, states.PRUNED, states.FAIL))
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
                heartbeat_interval=beats,
            ),
            n_trials=remaining,
            timeout=timeout,
            n_jobs=n_jobs,
            catch=(Exception,),
            callbacks=[partial(_between_trials, n_trials=n_trials, heartbeat_interval=beats)],
        )
    if not study.get_trials(deepcopy=False, states=(states.COMPLETE,)):
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
