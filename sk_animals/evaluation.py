"""Compare training from scratch with transfer learning, under the paper's protocol or yours.

One common test set is drawn first. Each approach is then cross-validated (stratified
folds, fixed seed) on its training part and fitted once more, watching a held-out
validation set, as the paper did, and scored on the common test set. The result holds the
paper's table, test accuracies with their intervals, each pair's paired comparison, the
optional data-budget curve, the data audit, confusion matrices, per-class rates, timings
and the per-iteration curves, as typed records (``sk_animals.results``); computing
writes no files.
"""

import os
import sys
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import clone
from sklearn.calibration import calibration_curve
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix
from sklearn.model_selection import StratifiedKFold, cross_validate, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils import Bunch

from ._base import ImageClassifier
from ._version import __version__
from .datasets import load_folder, sample_per_class
from .preprocessing import ImageLoader
from .protocols import APPROACHES, DEMO_DATA, Approach, demo_protocol, paper_protocol
from .results import (
    ApproachResult,
    BudgetForecast,
    BudgetPoint,
    ComparisonResult,
    Crossover,
    CVScores,
    LabelAudit,
    PairDifference,
)
from .stats import accuracy_interval
from .transfer import PretrainedFeatures, TransferClassifier

__all__ = [
    "DEMO_DATA",
    "Approach",
    "ApproachResult",
    "BudgetPoint",
    "CVScores",
    "ComparisonResult",
    "PairDifference",
    "compare",
    "demo_protocol",
    "paper_protocol",
    "per_class_rates",
    "training_curves",
]


def per_class_rates(y_true, y_pred, labels):
    """True-positive and false-positive rate of each class (one against the rest).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
    labels : array-like of shape (n_classes,)

    Returns
    -------
    rates : dict
        ``{label: {"tpr": float, "fpr": float}}``.

    Examples
    --------
    >>> from sk_animals.evaluation import per_class_rates
    >>> per_class_rates(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"])
    {'a': {'tpr': 0.5, 'fpr': 0.0}, 'b': {'tpr': 1.0, 'fpr': 0.5}}
    """
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    tp = np.diag(cm)
    fn, fp = cm.sum(1) - tp, cm.sum(0) - tp
    tn = cm.sum() - tp - fn - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr, fpr = tp / (tp + fn), fp / (fp + tn)
    return {
        str(label): {"tpr": float(np.nan_to_num(t)), "fpr": float(np.nan_to_num(f))}
        for label, t, f in zip(labels, tpr, fpr, strict=True)
    }


def training_curves(history):
    """Per-iteration training and validation loss and accuracy from a skorch history.

    Parameters
    ----------
    history : skorch.History
        ``history_`` of a fitted :class:`~sk_animals.ImageClassifier`.

    Returns
    -------
    curves : dict
        ``train`` and ``valid``, each a dict of equal-length lists ``iteration``,
        ``loss`` and ``accuracy``; validation points are where the validation set was
        scored (every ``validation_frequency`` iterations and at each epoch's end).
    """
    curves = {k: {"iteration": [], "loss": [], "accuracy": []} for k in ("train", "valid")}

    def add(kind, iteration, loss, accuracy):
        curves[kind]["iteration"].append(iteration)
        curves[kind]["loss"].append(loss)
        curves[kind]["accuracy"].append(accuracy)

    iteration = 0
    for epoch in history:
        for batch in epoch["batches"]:
            if "train_loss" in batch:
                iteration += 1
                add("train", iteration, batch["train_loss"], batch["train_acc"])
                if "valid_loss" in batch:
                    add("valid", iteration, batch["valid_loss"], batch["valid_acc"])
        valid = curves["valid"]["iteration"]
        if "valid_loss" in epoch and (not valid or valid[-1] != iteration):
            add("valid", iteration, epoch["valid_loss"], epoch["valid_acc"])
    return curves


def _load(data):
    """A Bunch of paths and labels from a folder (Animals-10 recognised) or a Bunch."""
    if isinstance(data, Bunch | dict):
        return Bunch(
            data=np.asarray(data["data"]),
            target=np.asarray(data["target"]),
            skipped=list(data.get("skipped", [])),
        )
    return load_folder(data, verify=True, n_jobs=-1)


class NotEnoughImagesError(ValueError):
    """A class has too few images for the folds and the hold-out (found before training)."""


def _check_enough(y, approaches, cv, validation_fraction, random_state):
    """Refuse, before any work, a class too small for the folds and the hold-out."""
    for approach in approaches:
        with warnings.catch_warnings():  # the run itself warns about short classes
            warnings.simplefilter("ignore", UserWarning)
            labels = y[sample_per_class(y, approach.per_class, random_state=random_state)]
        for label, count in zip(*np.unique(labels, return_counts=True), strict=True):
            n_valid = int(np.ceil(count * validation_fraction))
            if n_valid < 1 or count - n_valid < max(cv or 0, 2):
                raise NotEnoughImagesError(
                    f"class {str(label)!r} has {count} images: too few for {cv or 0} folds "
                    f"plus a {validation_fraction:.0%} validation hold-out ({approach.name}); "
                    "use fewer folds or add images"
                )


def _say(prefix, verbose, message):
    if verbose:
        print(f"{prefix}: {message}", flush=True)


def _shown(clf, label, verbose, n_jobs=None):
    """A clone of ``clf`` that draws a live progress line when run here, in a terminal."""
    clf = clone(clf)
    network = isinstance(clf, ImageClassifier)  # a probe has no epochs to show
    if network and verbose and effective_n_jobs(n_jobs) == 1 and sys.stderr.isatty():
        from ._callbacks import ProgressLine

        clf.set_params(callbacks=[*(clf.callbacks or []), ("progress", ProgressLine(label))])
    return clf


def _split(approach, paths, labels, *, validation_fraction, random_state):
    """The approach's budget drawn from the pool, split into training and validation."""
    keep = sample_per_class(labels, approach.per_class, random_state=random_state)
    paths, labels = paths[keep], labels[keep]
    train, valid = train_test_split(
        np.arange(len(labels)),
        test_size=validation_fraction,
        stratify=labels,
        random_state=random_state,
    )
    return Bunch(paths=paths, labels=labels, train=train, valid=valid)


def _n_fixed(pipeline):
    """How many leading steps learn nothing from the images: loaders and frozen features.

    They are fitted once and transform every image once, for all folds and budgets.
    """
    fixed = 0
    while fixed < len(pipeline) - 1 and isinstance(
        pipeline[fixed], ImageLoader | PretrainedFeatures
    ):
        fixed += 1
    return fixed


def _decoder(approach):
    """A fitted copy of the approach's fixed leading steps (the images go through them once)."""
    decoder = clone(approach.pipeline[: _n_fixed(approach.pipeline)])
    for _, step in decoder.steps:
        step.fit()  # they learn nothing from the images
    return decoder


def _model(approach):
    """What is fitted on the decoded images: the classifier, or the steps up to it."""
    rest = approach.pipeline[_n_fixed(approach.pipeline) :]
    return rest if len(rest) > 1 else rest[0]


def _fold(model, X, y, split, folder, name):
    """Test score, training score and fit time of one fold; restored when ``folder`` has it."""
    finished = _restore(folder, name)
    if finished is None:
        scores = cross_validate(
            model, X, y, cv=[split], return_train_score=True, error_score="raise"
        )
        finished = tuple(float(scores[k][0]) for k in ("test_score", "train_score", "fit_time"))
        _checkpoint(folder, name, finished)
    return finished


def _cross_validate(model, X, y, *, cv, random_state, label, say, verbose, n_jobs, folder):
    """Stratified, seeded cross-validation of ``model`` on the decoded training images.

    Each fold is a unit of its own in the checkpoint ``folder``, written as it finishes.
    """
    names = [f"{label}.fold{k}" for k in range(cv)]
    restored = sum(folder is not None and _checkpoint_file(folder, n).exists() for n in names)
    if restored:
        say(f"{restored} of {cv} folds finished in an earlier run: restored")
    folds = StratifiedKFold(cv, shuffle=True, random_state=random_state).split(X, y)
    model = _shown(model, f"{label}: cv fold", verbose, n_jobs)
    test, train, seconds = zip(
        *Parallel(n_jobs=n_jobs)(
            delayed(_fold)(model, X, y, split, folder, name)
            for split, name in zip(folds, names, strict=True)
        ),
        strict=True,
    )
    return CVScores(
        folds=cv,
        scores=list(test),
        mean=float(np.mean(test)),
        std=float(np.std(test)),
        train_mean=float(np.mean(train)),
        fit_seconds=list(seconds),
    )


def _final_fit(model, X_train, y_train, X_valid, y_valid, *, label, verbose):
    """``model`` fitted on the training part; a network watches the validation part.

    Returns the fitted model and its fit time. A network's validation set and progress
    line are dropped after the fit: a fitted model holds no images.
    """
    final = _shown(model, f"{label}: final fit", verbose)
    if isinstance(final, ImageClassifier):
        iterations = int(np.ceil(len(y_train) / final.batch_size))
        final.set_params(
            train_split=(X_valid, y_valid), validation_frequency=max(1, iterations // 2)
        )
    start = time.perf_counter()
    final.fit(X_train, y_train)
    fit_seconds = time.perf_counter() - start
    if isinstance(final, ImageClassifier):
        final.set_params(train_split=None, callbacks=model.callbacks)
        final.initialize_callbacks()
    return final, fit_seconds


def _network_settings(clf, fitted):
    """The training settings and history of a network (None for other models)."""
    if not isinstance(clf, ImageClassifier):
        return dict(
            lr=None,
            epochs=None,
            epochs_run=None,
            stopped=None,
            batch_size=None,
            precision=None,
            curves=training_curves([]),
        )
    history = fitted[-1].history_ if isinstance(fitted, Pipeline) else fitted.history_
    return dict(
        lr=clf.lr,
        epochs=clf.max_epochs,
        epochs_run=len(history),
        stopped=history[-1].get("stopped") if len(history) else None,
        batch_size=clf.batch_size,
        precision=(fitted[-1] if isinstance(fitted, Pipeline) else fitted).precision_,
        curves=training_curves(history),
    )


def _run(
    approach,
    paths,
    labels,
    *,
    test,
    cv,
    validation_fraction,
    random_state,
    say,
    verbose,
    n_jobs,
    folder,
):
    """Cross-validate one approach, fit it watching the validation set, score the test set.

    The folds and the final fit (with its test scores) are units of the checkpoint
    ``folder``: a finished one is restored, not run again.
    """
    finished = _restore(folder, f"{approach.name}.final")
    if finished is not None:
        say("cross-validation and final fit finished in an earlier run: restored")
        return finished
    data = _split(
        approach, paths, labels, validation_fraction=validation_fraction, random_state=random_state
    )
    loader, model = _decoder(approach), _model(approach)
    say(f"loading {len(data.labels)} images at {approach.image_size}x{approach.image_size}")
    X_train, X_valid = (loader.transform(data.paths[part]) for part in (data.train, data.valid))
    y_train, y_valid = data.labels[data.train], data.labels[data.valid]
    cv_scores = None
    if cv:
        say(f"cross-validating, {cv} stratified folds")
        cv_scores = _cross_validate(
            model,
            X_train,
            y_train,
            cv=cv,
            random_state=random_state,
            label=approach.name,
            say=say,
            verbose=verbose,
            n_jobs=n_jobs,
            folder=folder,
        )
    say("fitting on the training part, scoring the validation set")
    final, fit_seconds = _final_fit(
        model, X_train, y_train, X_valid, y_valid, label=approach.name, verbose=verbose
    )
    steps = (
        final.steps if isinstance(final, Pipeline) else [(approach.pipeline.steps[-1][0], final)]
    )
    pipeline = Pipeline([*loader.steps, *steps])
    test_scores = {}
    if test is not None:
        say(f"scoring the {len(test.data)} common test images")
        test_scores = _test_scores(pipeline, test)
    record = _record(
        approach,
        data,
        final,
        X_train,
        X_valid,
        cv=cv_scores,
        fit_seconds=fit_seconds,
        **test_scores,
    )
    _checkpoint(folder, f"{approach.name}.final", (record, pipeline))
    return record, pipeline


def _record(approach, data, final, X_train, X_valid, *, cv, fit_seconds, **test_scores):
    """The approach's result: settings, validation scores and timings, test scores given."""
    y_train, y_valid = data.labels[data.train], data.labels[data.valid]
    start = time.perf_counter()
    predicted = final.predict(X_valid)
    predict_ms = 1000 * (time.perf_counter() - start) / len(data.valid)
    classes = final.classes_.tolist()
    clf, first = approach.classifier, approach.pipeline[1]  # the backbone may be a step before
    weights = getattr(clf, "weights", getattr(first, "weights", None))
    return ApproachResult(
        name=approach.name,
        classifier=type(clf).__name__,
        backbone=getattr(clf, "backbone", getattr(first, "backbone", None)),
        weights=None if weights is None else str(weights),
        images_per_class=int(np.unique(data.labels, return_counts=True)[1].max()),
        n_train=len(data.train),
        n_valid=len(data.valid),
        image_size=approach.image_size,
        **_network_settings(clf, final),
        cv=cv,
        fit_seconds=fit_seconds,
        predict_ms_per_image=predict_ms,
        validation_accuracy=float(accuracy_score(y_valid, predicted)),
        training_accuracy=float(final.score(X_train, y_train)),
        **test_scores,
        confusion_matrix=confusion_matrix(y_valid, predicted, labels=classes).tolist(),
        per_class=per_class_rates(y_valid, predicted, classes),
        training_files=data.paths[data.train].tolist(),
        validation_files=data.paths[data.valid].tolist(),
        validation_true=y_valid.tolist(),
        validation_predicted=predicted.tolist(),
    )


def _test_scores(pipeline, test, n_bins=10):
    """Accuracy with its interval, per-class report and calibration on the test set."""
    proba = pipeline.predict_proba(test.data)
    predicted = pipeline.classes_[proba.argmax(1)]
    confidence = proba.max(1)
    correct = predicted == test.target
    accuracy, ci95 = accuracy_interval(test.target, predicted)
    prob_true, prob_pred = calibration_curve(
        correct.astype(int), confidence, n_bins=n_bins, pos_label=1
    )
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = sum(
        abs(correct[bins == k].mean() - confidence[bins == k].mean()) * (bins == k).mean()
        for k in np.unique(bins)
    )
    return {
        "test_accuracy": accuracy,
        "test_ci95": ci95,
        "test_predicted": predicted.tolist(),
        "test_confidence": confidence.tolist(),
        "test_report": classification_report(
            test.target, predicted, output_dict=True, zero_division=0
        ),
        "calibration": {
            "prob_true": prob_true.tolist(),
            "prob_pred": prob_pred.tolist(),
            "ece": float(ece),
        },
    }


def _fit_score(clf, X, y, X_test, y_test, folder, name):
    """Fit ``clf`` and the accuracy interval of its test predictions (one joblib task),
    written into the checkpoint ``folder`` as it finishes."""
    scores = accuracy_interval(y_test, clf.fit(X, y).predict(X_test))
    _checkpoint(folder, name, scores)
    return scores


def _budget_curve(
    approach, paths, labels, *, test, budgets, random_state, say, verbose, n_jobs, folder
):
    """Test accuracy of ``approach`` trained on nested per-class budgets of the pool.

    Each budget point is a unit of the checkpoint ``folder``: a finished one is restored.
    """
    smallest = int(np.unique(labels, return_counts=True)[1].min())
    with warnings.catch_warnings():  # capping is said in the result instead
        warnings.simplefilter("ignore", UserWarning)
        keeps = {b: sample_per_class(labels, b, random_state=random_state) for b in budgets}
    names = {b: f"{approach.name}.budget{b}" for b in keeps}
    scores = {b: _restore(folder, name) for b, name in names.items()}
    todo = sorted(b for b, done in scores.items() if done is None)
    if len(todo) < len(keeps):
        say(f"{len(keeps) - len(todo)} of {len(keeps)} budget points restored from a checkpoint")
    if todo:
        used = np.unique(np.concatenate([keeps[b] for b in todo]))  # nested: the largest
        say(f"budgets {', '.join(map(str, todo))} per class: loading {len(used)} images")
        loader = _decoder(approach)
        X, X_test = loader.transform(paths[used]), loader.transform(test.data)
        rows = {b: np.searchsorted(used, keeps[b]) for b in todo}
        scores.update(
            zip(
                todo,
                Parallel(n_jobs=n_jobs)(
                    delayed(_fit_score)(
                        _shown(
                            _model(approach), f"{approach.name}: budget {b}/class", verbose, n_jobs
                        ),
                        X[rows[b]],
                        labels[used][rows[b]],
                        X_test,
                        test.target,
                        folder,
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


def _forecast(points, n_test, *, target_accuracy=None, horizon=10, random_state=0):
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


def _probe(approaches):
    """The first approach whose fixed steps hold frozen features (cheap folds), or None."""
    return next(
        (
            a
            for a in approaches
            if any(isinstance(s, PretrainedFeatures) for s in a.pipeline[: _n_fixed(a.pipeline)])
        ),
        None,
    )


def _label_audit(approach, paths, labels, test, *, used, cv, random_state, say):
    """Likely label errors: held-out probabilities of ``approach``, then confident learning.

    The non-test images any approach may train on (``used``, positions into ``paths``)
    get out-of-fold probabilities, and confident learning on them alone flags the
    training images (what ``drop_label_issues`` leaves out does not depend on the test
    labels). The test images get the probabilities of a fit on all of those, and are
    flagged by confident learning on both sets together, whose noise rates a small test
    set could not estimate alone.
    """
    from .audit import LabelIssues, _confident_learning, find_label_issues

    say(f"label audit: {approach.name}'s features of {len(used) + len(test.data)} images")
    loader, model = _decoder(approach), _model(approach)
    X, y = loader.transform(paths[used]), labels[used]
    train = find_label_issues(model, X, y, cv=cv, random_state=random_state)
    fitted = clone(model).fit(X, y)
    proba = fitted.predict_proba(loader.transform(test.data))
    both = _confident_learning(np.r_[y, test.target], np.r_[train.oof_proba, proba], train.classes)
    in_test = both.indices >= len(y)
    tested = LabelIssues(
        both.indices[in_test] - len(y),
        *(a[in_test] for a in (both.given, both.suggested, both.scores)),
        proba,
        train.classes,
    )

    def rows(issues, files):  # positions into a subset mean nothing in the report
        return [{k: v for k, v in r.items() if k != "index"} for r in issues.to_dict(files)]

    return LabelAudit(
        approach=approach.name,
        cv=cv,
        n_train=len(used),
        n_test=len(test.data),
        train=rows(train, paths[used]),
        test=rows(tested, test.data),
    )


def _dedupe(data, say):
    """Keep one image of each exact or near-duplicate group; the paths left out."""
    from .audit import audit_images, dedupe

    keep = dedupe(data.data, data.target, audit_images(data.data, data.target, n_jobs=-1))
    say(f"kept {keep.sum()} of {len(keep)} images, one of each duplicate group")
    kept = Bunch(data=data.data[keep], target=data.target[keep], skipped=data.skipped)
    return kept, data.data[~keep].tolist()


def compare(
    data,
    approaches=None,
    *,
    test_size=0.2,
    cv=5,
    validation_fraction=0.3,
    budgets=None,
    target_accuracy=None,
    audit=True,
    dedupe=False,
    label_issues="auto",
    drop_label_issues=False,
    random_state=0,
    n_jobs=None,
    on_approach=None,
    checkpoint_dir=None,
    verbose=1,
):
    """Run each approach on the same images and score all of them on one common test set.

    First a stratified test set is drawn (``test_size``); no approach trains,
    cross-validates, validates or stops early on it. Each approach then draws its own
    budget from the rest, as the paper's protocol says: it is cross-validated on its
    training part, fitted once more watching its validation part (the paper's
    validation accuracy), and scored on the common test set with a 95% Wilson interval.
    Each pair of approaches is compared on the same test images: the accuracy difference
    with a 95% paired-bootstrap interval and McNemar's exact test. Computing does no
    file I/O: write the result with :meth:`ComparisonResult.save
    <sk_animals.results.ComparisonResult.save>`, or pass
    ``on_approach`` to save each approach as soon as it finishes.

    Parameters
    ----------
    data : str, path-like or Bunch
        A folder with one subfolder per class (Animals-10's Italian folders are
        recognised and translated), or a Bunch with ``data`` (paths) and ``target``.
        Unreadable images are left out and named in ``skipped``.
    approaches : list of Approach, default=None
        What to compare; by default the paper's two (:func:`paper_protocol`) and the
        transfer backbone's linear probe: scratch, transfer, probe. Any pipeline that
        starts with an :class:`~sk_animals.preprocessing.ImageLoader` is an approach;
        its leading loaders and :class:`~sk_animals.transfer.PretrainedFeatures` learn
        nothing from the images, so they transform each image once for all folds.
    test_size : float or None, default=0.2
        Stratified fraction of all images held out as the common test set, drawn first;
        None or 0 skips it (the paper's validation numbers only).
    cv : int or None, default=5
        Stratified folds for cross-validation on each training part; 0 or None skips it.
    validation_fraction : float, default=0.3
        Stratified fraction of each approach's images held out for validation.
    budgets : list of int, default=None
        Images per class to train each approach on, for the data-budget curve (nested
        subsets of the non-test images, the same seed); scored on the test set.
    target_accuracy : float, default=None
        With ``budgets``: the forecast also says how many images per class each approach
        needs to reach this accuracy (a fraction in (0, 1)).
    audit : bool, default=True
        Look for exact and near-duplicate images, label conflicts and duplicates that
        straddle the test set and the rest (see :func:`sk_animals.audit.audit_images`).
    dedupe : bool, default=False
        Keep one image of each duplicate group before any split.
    label_issues : {"auto", True, False}, default="auto"
        Look for likely label errors with the first approach built on frozen features
        (the linear probe): out-of-fold probabilities of every image an approach may
        train on (``cv`` folds, at least 2; 5 when ``cv`` is 0), probabilities of the
        test images from a fit on those, and confident learning
        (:func:`sk_animals.audit.find_label_issues`) on each. ``"auto"`` does it when
        there is such an approach; True requires one. Needs the common test set.
    drop_label_issues : bool, default=False
        Leave the flagged non-test images out of every approach's training, validation
        and budgets. The approaches then draw only from the audited images, so a class
        loses its flagged images rather than replacing them with ones nobody audited. The
        flagged test images stay: the result says how many there are.
    random_state : int, default=0
        Seeds the test split, sampling, splitting and folds.
    n_jobs : int, default=None
        Fits run at once: the folds of each cross-validation and the points of the
        budget curve are independent fits, run through joblib. Under
        ``joblib.parallel_config(backend="dask")`` with a ``dask.distributed`` client they
        spread over the cluster's workers (see the "Scaling up" guide). Every fit is
        seeded, so the results do not depend on ``n_jobs``.
    on_approach : callable, default=None
        Called as ``on_approach(result, name)`` after each approach finishes, e.g.
        ``lambda result, name: result.save(out, [name])``, so that an interruption
        loses only the approach in progress.
    checkpoint_dir : str or path-like, default=None
        Write each finished unit of work into this folder, atomically, as it finishes:
        the label audit, each cross-validation fold, each approach's final fit (its
        fitted pipeline and its record) and each budget point. A later call with the
        same arguments and the same folder restores the finished units instead of
        running them again and gives the same result (timings aside: every fit is
        seeded). The caller keeps the arguments the same (``sk-animals compare
        --resume`` checks them); the files are pickles of this run, for this package
        version only.
    verbose : int, default=1
        Print each step.

    Returns
    -------
    result : ComparisonResult

    Raises
    ------
    NotEnoughImagesError
        A class has too few images for the test set, the folds and the hold-out
        (a ``ValueError``, checked before any training).
    ValueError
        ``label_issues=True`` or ``drop_label_issues`` without an approach on frozen
        features (checked before any loading).
    """
    from .audit import audit_images

    if target_accuracy is not None and not 0 < target_accuracy < 1:
        raise ValueError(f"target_accuracy must be a fraction in (0, 1), got {target_accuracy}")
    if approaches is None:
        approaches = paper_protocol(approaches=APPROACHES, random_state=random_state)
    probe = _probe(approaches) if label_issues and test_size else None
    if probe is None and (label_issues is True or drop_label_issues):
        what = "label_issues=True" if label_issues is True else "drop_label_issues"
        raise ValueError(
            f"{what} needs an approach on frozen features (the probe) and a test set "
            f"(test_size > 0); the approaches are {', '.join(a.name for a in approaches)}"
        )
    data = _load(data)
    say = partial(_say, "data", verbose)
    deduplicated = []
    if dedupe:
        data, deduplicated = _dedupe(data, say)
    paths, labels = data.data, data.target
    result = ComparisonResult(
        classes=sorted(set(labels.tolist())), skipped=data.skipped, deduplicated=deduplicated
    )
    pool = np.arange(len(labels))
    test = None
    if test_size:
        pool, test_idx = train_test_split(
            pool, test_size=test_size, stratify=labels, random_state=random_state
        )
        test = Bunch(data=paths[test_idx], target=labels[test_idx])
        result.test_files, result.test_true = test.data.tolist(), test.target.tolist()
    if audit:
        say(f"auditing {len(labels)} images for duplicates")
        splits = np.full(len(labels), "train", dtype=object)
        if test is not None:
            splits[test_idx] = "test"
        result.audit = audit_images(paths, labels, splits=splits, n_jobs=-1)
    _check_enough(labels[pool], approaches, cv, validation_fraction, random_state)
    if budgets and test is None:
        raise ValueError("budgets are scored on the common test set: give test_size > 0")
    if probe is not None:
        used = pool[_trained_on(labels[pool], approaches, budgets, random_state)]
        result.label_audit = _restore(checkpoint_dir, _LABEL_AUDIT)
        if result.label_audit is not None:
            say("label audit finished in an earlier run: restored")
        else:
            result.label_audit = _label_audit(
                probe,
                paths,
                labels,
                test,
                used=used,
                cv=cv if cv and cv > 1 else 5,
                random_state=random_state,
                say=say,
            )
            _checkpoint(checkpoint_dir, _LABEL_AUDIT, result.label_audit)
        if drop_label_issues:  # train only on audited images: the pool shrinks to them
            result.label_audit.dropped = True
            flagged = {row["path"] for row in result.label_audit.train}
            pool = used[~np.isin(paths[used], list(flagged))]
            say(f"left {len(flagged)} likely mislabelled images out of training")
            _check_enough(labels[pool], approaches, cv, validation_fraction, random_state)

    for i, approach in enumerate(approaches, 1):
        say = partial(_say, f"[{i}/{len(approaches)}] {approach.name}", verbose)
        run = dict(
            random_state=random_state,
            say=say,
            verbose=verbose,
            n_jobs=n_jobs,
            folder=checkpoint_dir,
        )
        record, pipeline = _run(
            approach,
            paths[pool],
            labels[pool],
            test=test,
            cv=cv,
            validation_fraction=validation_fraction,
            **run,
        )
        if budgets:
            result.budget_curve += _budget_curve(
                approach, paths[pool], labels[pool], test=test, budgets=budgets, **run
            )
            result.budget_forecast, result.crossover, result.crossover_reason = _forecast(
                result.budget_curve,
                len(test.data),
                target_accuracy=target_accuracy,
                random_state=random_state,
            )
        result.approaches.append(record)
        result.pipelines[approach.name] = pipeline
        result.differences = _differences(result, random_state)
        result.notes = _notes(result, approaches)
        if on_approach is not None:
            on_approach(result, approach.name)
    return result


#: The checkpoint name of the label audit.
_LABEL_AUDIT = "label-audit"


def _trained_on(labels, approaches, budgets, random_state):
    """Positions in ``labels`` of every image an approach or a budget point may draw."""
    sizes = [a.per_class for a in approaches] + list(budgets or [])
    if None in sizes:
        return np.arange(len(labels))
    with warnings.catch_warnings():  # short classes are said by the runs themselves
        warnings.simplefilter("ignore", UserWarning)
        return sample_per_class(labels, max(sizes), random_state=random_state)


def _checkpoint_file(folder, name):
    return Path(folder) / f"{name}.checkpoint"


def _checkpoint(folder, name, finished):
    """Write one finished approach into ``folder`` atomically (a kill leaves no half file)."""
    if folder is None:
        return
    import joblib

    path = _checkpoint_file(folder, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    joblib.dump({"version": __version__, "finished": finished}, partial)
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, path)


def _restore(folder, name):
    """The finished approach ``name`` from ``folder``, or None."""
    if folder is None or not _checkpoint_file(folder, name).exists():
        return None
    import joblib

    saved = joblib.load(_checkpoint_file(folder, name))
    if saved["version"] != __version__:
        raise ValueError(
            f"the checkpoint {str(_checkpoint_file(folder, name))!r} was written by "
            f"sk_animals {saved['version']}, this is {__version__}: start the run afresh"
        )
    return saved["finished"]


def _notes(result, approaches):
    """What a reader of the numbers must know."""
    notes = [
        f"{a.name} ran without pretrained weights (random initialisation), so its numbers "
        "say nothing about transfer learning"
        for a in approaches
        if a.name in result.pipelines
        and isinstance(a.classifier, TransferClassifier)
        and a.classifier.weights is None
    ]
    if result.label_audit is not None and (result.label_audit.train or result.label_audit.test):
        notes.append(result.label_audit.sentence())
    if result.deduplicated:
        notes.append(
            f"deduplication left out {len(result.deduplicated)} duplicate images before any "
            "split (listed in metrics.json)"
        )
    groups = [] if result.audit is None else result.audit.clusters()
    for record in result.approaches:
        train, valid = set(record.training_files), set(record.validation_files)
        crossing = sum(bool(train.intersection(g)) and bool(valid.intersection(g)) for g in groups)
        if crossing:
            notes.append(
                f"{crossing} group(s) of duplicate images span {record.name}'s training and "
                "validation images, so its validation accuracy may be optimistic (the "
                "audit lists the groups; deduplicating keeps one of each)"
            )
    capped = sorted({p.per_class for p in result.budget_curve if p.capped})
    if capped:
        notes.append(
            f"budgets {', '.join(map(str, capped))} per class are more than the smallest class "
            "has; such classes gave all their images"
        )
    return notes


def _differences(result, random_state):
    """Each pair of finished approaches on the common test set."""
    from .stats import compare_predictions

    records = [r for r in result.approaches if r.test_predicted is not None]
    return [  # the later approach first: "transfer vs scratch"
        PairDifference(
            later.name,
            earlier.name,
            compare_predictions(
                result.test_true,
                later.test_predicted,
                earlier.test_predicted,
                random_state=random_state,
            ),
        )
        for i, earlier in enumerate(records)
        for later in records[i + 1 :]
    ]
