"""Compare training from scratch with transfer learning, under the paper's protocol or yours.

One common test set is drawn first. Each approach is then cross-validated (stratified
folds, fixed seed) on its training part and fitted once more, watching a held-out
validation set, as the paper did, and scored on the common test set. The result holds the
paper's table, test accuracies with their intervals, each pair's paired comparison, the
optional data-budget curve, the data audit, confusion matrices, per-class rates, timings
and the per-iteration curves, as typed records (``sk_animals.results``); computing
writes no files.
"""

import warnings
from dataclasses import asdict
from functools import partial
from numbers import Integral

import numpy as np
from joblib import Parallel, delayed
from sklearn.model_selection import StratifiedKFold, cross_validate, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils import Bunch

from ._budgets import budget_curve, forecast
from ._featurecache import shared_features
from ._scoring import (
    _decoded,
    _final_fit,
    _label_audit,
    _onnx_predict_ms,
    _record,
    _shown,
    _test_overlays,
    _test_scores,
    per_class_rates,
    training_curves,
)
from ._text import terminal_text
from .datasets import check_labels, load_folder, sample_per_class
from .exceptions import BadInputError, NotEnoughImagesError
from .persistence import unsavable
from .protocols import (
    DEMO_DATA,
    PAPER,
    Approach,
    demo_protocol,
    paper_protocol,
    recommended_protocol,
)
from .results import (
    ApproachResult,
    BudgetPoint,
    ComparisonResult,
    CVScores,
    LabelAudit,
    PairDifference,
    compared_notes,
)
from .runs import NoStore, RunStore, fingerprint

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
    "recommended_protocol",
    "training_curves",
]


def _load(data):
    """A Bunch of paths and labels from a folder (Animals-10 recognised) or a Bunch."""
    if isinstance(data, Bunch | dict):
        return Bunch(
            data=np.asarray(data["data"]),
            target=np.asarray(data["target"]),
            skipped=list(data.get("skipped", [])),
        )
    return load_folder(data, verify=True, n_jobs=-1)


def _check_test_split(y, test_size):
    """Refuse, before any work, a class too small to share out between the common test
    set and the rest (scikit-learn's stratified split needs 2 images of each class, and
    as many test and other images as there are classes)."""
    if not test_size:
        return
    classes, counts = np.unique(y, return_counts=True)
    smallest = int(counts.argmin())
    if counts[smallest] < 2:
        raise NotEnoughImagesError(
            f"class {str(classes[smallest])!r} has {counts[smallest]} image: too few for the "
            "common test set and training (at least 2, and more for the folds); add images "
            "or leave the class out"
        )
    n_test = test_size if isinstance(test_size, Integral) else int(np.ceil(test_size * len(y)))
    if not len(classes) <= n_test <= len(y) - len(classes):
        raise NotEnoughImagesError(
            f"a test_size of {test_size} gives {n_test} test images of {len(y)}: each part "
            f"needs at least one image of each of the {len(classes)} classes; change "
            "test_size or add images",
            "test_size",
        )


def _check_enough(y, approaches, cv, validation_fraction, random_state):
    """Refuse, before any work, a class too small for the folds and the hold-out."""
    for approach in approaches:
        with warnings.catch_warnings():  # the run itself warns about short classes
            warnings.simplefilter("ignore", UserWarning)
            labels = y[sample_per_class(y, approach.per_class, random_state=random_state)]
        for label, count in zip(*np.unique(labels, return_counts=True), strict=True):
            n_valid = int(np.ceil(count * validation_fraction))
            if n_valid < 1 or count - n_valid < max(cv or 0, 2):
                needs = f"{cv} folds plus " if cv else "training and "
                raise NotEnoughImagesError(
                    f"class {str(label)!r} has {count} image(s) to train on: too few for "
                    f"{needs}a {validation_fraction:.0%} validation hold-out "
                    f"({approach.name}); {'use fewer folds or ' if cv else ''}add images"
                )


def _say(prefix, verbose, message):
    if verbose:
        print(terminal_text(f"{prefix}: {message}"), flush=True)


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


def _fold(model, X, y, split, store, name):
    """Test score, training score and fit time of one fold: a unit of the run's ``store``."""

    def fit():
        scores = cross_validate(
            model, X, y, cv=[split], return_train_score=True, error_score="raise"
        )
        return [float(scores[k][0]) for k in ("test_score", "train_score", "fit_time")]

    return store.unit(name, fit)


def _cross_validate(model, X, y, *, cv, random_state, label, say, verbose, n_jobs, store):
    """Stratified, seeded cross-validation of ``model`` on the decoded training images.

    Each fold is a unit of the run's ``store``, written as it finishes.
    """
    names = [f"{label}.fold{k}" for k in range(cv)]
    restored = sum(store.finished(n) for n in names)
    if restored:
        say(f"{restored} of {cv} folds finished in an earlier run: restored")
    folds = StratifiedKFold(cv, shuffle=True, random_state=random_state).split(X, y)
    model = _shown(model, f"{label}: cv fold", verbose, n_jobs)
    test, train, seconds = zip(
        *Parallel(n_jobs=n_jobs)(
            delayed(_fold)(model, X, y, split, store, name)
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


def _dump_final(value, store, name):
    record, pipeline = value
    store.save_model(name, pipeline)
    return asdict(record)


def _load_final(value, store, name):
    return ApproachResult.from_dict(value), store.load_model(name)


def _run(approach, paths, labels, *, test, cv, validation_fraction, overlays, store, **run):
    """Cross-validate one approach, fit it watching the validation set, score the test set.

    The folds and the final fit (its record and fitted pipeline) are units of the run's
    ``store``: a finished one is restored, not run again.
    """
    name = f"{approach.name}.final"
    if store.finished(name):
        run["say"]("cross-validation and final fit finished in an earlier run: restored")
    if unsavable(approach.pipeline):  # the model format cannot hold it: fitted again
        store = NoStore()

    def compute():
        return _fit_and_score(
            approach,
            paths,
            labels,
            test=test,
            cv=cv,
            validation_fraction=validation_fraction,
            overlays=overlays,
            store=store,
            **run,
        )

    return store.unit(name, compute, dump=_dump_final, load=_load_final)


def _fit_and_score(
    approach, paths, labels, *, test, cv, validation_fraction, overlays, random_state, say,
    verbose, n_jobs, store,
):  # fmt: skip
    """The unit of work behind :func:`_run`: its record and fitted pipeline."""
    data = _split(
        approach, paths, labels, validation_fraction=validation_fraction, random_state=random_state
    )
    loader, model = approach.decoder(), approach.model()
    say(f"loading {len(data.labels)} images at {approach.image_size}x{approach.image_size}")
    (X_train, train_features, _), (X_valid, valid_features, valid_images) = (
        _decoded(loader, data.paths[part]) for part in (data.train, data.valid)
    )
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
            store=store,
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
        if overlays:
            test_scores["test_overlays"] = _test_overlays(
                approach.name, pipeline, test, test_scores, say
            )
    record = _record(
        approach,
        data,
        final,
        X_train,
        X_valid,
        cv=cv_scores,
        fit_seconds=fit_seconds + train_features,  # a probe pays for its features
        predict_extra_seconds=valid_features,
        onnx_predict_ms_per_image=_onnx_predict_ms(approach.name, pipeline, valid_images, say),
        **test_scores,
    )
    return record, pipeline


def _dedupe(data, say):
    """Keep one image of each exact or near-duplicate group: the kept images, the paths
    left out, and the kept images' fingerprints (each file is hashed once)."""
    from .audit import _audit_fingerprinted, _fingerprint_images, dedupe

    fingerprints = _fingerprint_images(data.data)
    found = _audit_fingerprinted(data.data, data.target, None, fingerprints)
    keep = dedupe(data.data, data.target, found)
    say(f"kept {keep.sum()} of {len(keep)} images, one of each duplicate group")
    kept = Bunch(data=data.data[keep], target=data.target[keep], skipped=data.skipped)
    return kept, data.data[~keep].tolist(), [fingerprints[i] for i in np.flatnonzero(keep)]


def _check_arguments(approaches, *, cv, label_issues, drop_label_issues, test_size, budgets,
                     target_accuracy):  # fmt: skip
    """Refuse, before any loading, arguments that cannot go together; the probe or None."""
    if cv and (not isinstance(cv, Integral) or cv < 2):
        raise BadInputError(
            f"cv must be 0 or None (no cross-validation) or at least 2 folds, got {cv!r}", "cv"
        )
    if target_accuracy is not None and not 0 < target_accuracy < 1:
        raise BadInputError(f"target_accuracy must be a fraction in (0, 1), got {target_accuracy}")
    if target_accuracy is not None and not budgets:
        raise BadInputError(
            "target_accuracy forecasts from the budget curve: give budgets too", "target_accuracy"
        )
    if budgets and not test_size:
        raise BadInputError(
            "budgets are scored on the common test set: give test_size > 0", "budgets"
        )
    probe = next((a for a in approaches if a.features is not None), None)
    probe = probe if label_issues and test_size else None
    if probe is None and (label_issues is True or drop_label_issues):
        what = "label_issues=True" if label_issues is True else "drop_label_issues"
        raise BadInputError(
            f"{what} needs an approach on frozen features (the probe) and a test set "
            f"(test_size > 0); the approaches are {', '.join(a.name for a in approaches)}",
            "label_issues" if label_issues is True else "drop_label_issues",
        )
    return probe


def _check_overlays(overlays, test_size):
    """Whether the run computes the report's class-activation maps; refuses, before any
    work, ``overlays=True`` that cannot be done."""
    from .explanations import _cam_installed, _cam_library

    if overlays not in ("auto", True, False):
        raise BadInputError(
            f"overlays must be 'auto', True or False, got {overlays!r}", "overlays"
        )
    if overlays is True and not test_size:
        raise BadInputError(
            "overlays are drawn on the common test set's mistakes: give test_size > 0",
            "overlays",
        )
    if overlays is True:
        _cam_library()  # an ImportError that says what to install
    return bool(overlays and test_size and _cam_installed())


def compare(
    data,
    approaches=None,
    *,
    test_size=0.2,
    cv=PAPER.folds,
    validation_fraction=0.3,
    budgets=None,
    target_accuracy=None,
    audit=True,
    dedupe=False,
    label_issues="auto",
    drop_label_issues=False,
    overlays="auto",
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
        What to compare; by default the recommended recipes
        (:func:`~sk_animals.protocols.recommended_protocol`: scratch, transfer and the
        backbone's linear probe, each at its best); ``paper_protocol(approaches=APPROACHES)``
        reproduces the paper's recipes (with the probe). Any pipeline that
        starts with an :class:`~sk_animals.preprocessing.ImageLoader` is an approach;
        its leading loaders and :class:`~sk_animals.transfer.PretrainedFeatures` learn
        nothing from the images, so they transform each image once for all folds.
    test_size : float or None, default=0.2
        Stratified fraction of all images held out as the common test set, drawn first;
        None or 0 skips it (the paper's validation numbers only).
    cv : int or None, default=5
        Stratified folds for cross-validation on each training part (the paper's
        :data:`~sk_animals.protocols.PAPER` ``folds``), at least 2; 0 or None skips it.
    validation_fraction : float, default=0.3
        Stratified fraction of each approach's images held out for validation.
    budgets : list of int, default=None
        Images per class to train each approach on, for the data-budget curve (nested
        subsets of the non-test images, the same seed); scored on the test set.
    target_accuracy : float, default=None
        With ``budgets``: the forecast also says how many images per class each approach
        needs to reach this accuracy (a fraction in (0, 1)). A forecast that cannot be made
        says why in the result; it never fails a finished run.
    audit : bool, default=True
        Look for exact and near-duplicate images, label conflicts and duplicates that
        straddle the test set and the rest (see :func:`sk_animals.audit.audit_images`).
    dedupe : bool, default=False
        Keep one image of each duplicate group before any split.
    label_issues : {"auto", True, False}, default="auto"
        Look for likely label errors with the first approach built on frozen features
        (the linear probe): out-of-fold probabilities of every image an approach may
        train on (``cv`` folds, at least 2; the paper's 5 when ``cv`` is 0), probabilities of the
        test images from a fit on those, and confident learning
        (:func:`sk_animals.audit.find_label_issues`) on each. ``"auto"`` does it when
        there is such an approach; True requires one. Needs the common test set.
    drop_label_issues : bool, default=False
        Leave the flagged non-test images out of every approach's training, validation
        and budgets. The approaches then draw only from the audited images, so a class
        loses its flagged images rather than replacing them with ones nobody audited. The
        flagged test images stay: the result says how many there are.
    overlays : {"auto", True, False}, default="auto"
        Keep class-activation maps for the report: for each approach's most confident
        mistakes on the common test set (up to 8) and, for contrast, its most confident
        correct predictions (up to 4), where its network found the evidence for the class
        it predicted (:func:`~sk_animals.explain`'s defaults), computed while the fitted
        model is at hand and stored small in the record
        (:class:`~sk_animals.results.Overlays`); the report draws them beside the plain
        thumbnails. A few seconds a run (see the "Explain" guide). ``"auto"`` computes them
        when pytorch-grad-cam is installed (``pip install 'sk-animals[explain]'``); True
        requires it (an ``ImportError`` before any work otherwise). A model that
        :func:`~sk_animals.explain` cannot explain warns and has none. Needs the common
        test set.
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
        The run's folder (:class:`~sk_animals.runs.RunStore`): each finished unit of work
        is written there as it finishes (the label audit, each cross-validation fold, each
        approach's final fit with its record, each budget point), as JSON and ``.skmodel``
        files, never pickles. A later call with the same folder restores the finished
        units instead of running them again and gives the same result (timings aside:
        every fit is seeded); it must have the same arguments (``verbose``, ``n_jobs``,
        ``on_approach`` and the loaders' ``cache_dir`` may differ), else it is refused
        before any work with a :class:`~sk_animals.exceptions.ResumeError` naming each
        argument that changed. The folder is locked while the call runs: a second one
        fails at once (:class:`~sk_animals.exceptions.RunInProgressError`). An approach
        whose pipeline the model format cannot store has its final fit run again (a
        warning says so at the start).
    verbose : int, default=1
        Print each step.

    Returns
    -------
    result : ComparisonResult

    Raises
    ------
    NotEnoughImagesError
        A class has too few images for the test set, the folds and the hold-out (one
        image, say), or ``test_size`` leaves a part without every class (a
        ``ValueError``, checked before the audit and any training).
    BadInputError
        A ``ValueError`` found before any loading: ``cv=1``, ``label_issues=True`` or
        ``drop_label_issues`` without an approach on frozen features, ``budgets`` or
        ``overlays=True`` without a test set, ``target_accuracy`` out of (0, 1) or without
        ``budgets``, labels in ``data["target"]`` that mix strings and numbers; or a folder
        with no images.
    ResumeError, RunInProgressError
        ``checkpoint_dir`` holds a run with other arguments, or another process is using it.
    ImportError
        ``overlays=True`` without pytorch-grad-cam.
    """
    if approaches is None:
        approaches = recommended_protocol(random_state=random_state)
    options = dict(
        test_size=test_size,
        cv=cv,
        validation_fraction=validation_fraction,
        budgets=budgets,
        target_accuracy=target_accuracy,
        audit=audit,
        dedupe=dedupe,
        label_issues=label_issues,
        drop_label_issues=drop_label_issues,
        overlays=_check_overlays(overlays, test_size),
        random_state=random_state,
    )
    probe = _check_arguments(approaches, **{k: options[k] for k in _CHECKED})
    if isinstance(data, Bunch | dict):  # before numpy makes the label 1 into "1"
        check_labels(data["target"], "target")
    store = NoStore() if checkpoint_dir is None else RunStore(checkpoint_dir)
    with store, shared_features():  # each image's frozen features computed once
        if checkpoint_dir is not None:
            store.check_arguments(fingerprint(data, approaches, **options))
            for approach in approaches:
                if unsavable(approach.pipeline):
                    warnings.warn(
                        f"{approach.name}: {unsavable(approach.pipeline)}, so its final fit "
                        "is not checkpointed (a resumed run fits it again)",
                        UserWarning,
                        stacklevel=2,
                    )
        return _compare(
            data, approaches, probe=probe, store=store, n_jobs=n_jobs, on_approach=on_approach,
            verbose=verbose, **options,
        )  # fmt: skip


#: The arguments :func:`_check_arguments` checks.
_CHECKED = ("cv", "label_issues", "drop_label_issues", "test_size", "budgets", "target_accuracy")


def _compare(
    data, approaches, *, probe, store, test_size, cv, validation_fraction, budgets,
    target_accuracy, audit, dedupe, label_issues, drop_label_issues, overlays, random_state,
    n_jobs, on_approach, verbose,
):  # fmt: skip
    """:func:`compare` once its arguments are checked and its folder held."""
    from .audit import _audit_fingerprinted, audit_images

    data = _load(data)
    say = partial(_say, "data", verbose)
    deduplicated, found = [], None
    if dedupe:
        data, deduplicated, found = _dedupe(data, say)
    paths, labels = data.data, data.target
    result = ComparisonResult(
        classes=sorted(set(labels.tolist())), skipped=data.skipped, deduplicated=deduplicated
    )
    pool = np.arange(len(labels))
    test = None
    _check_test_split(labels, test_size)
    if test_size:
        pool, test_idx = train_test_split(
            pool, test_size=test_size, stratify=labels, random_state=random_state
        )
        test = Bunch(data=paths[test_idx], target=labels[test_idx])
        result.test_files, result.test_true = test.data.tolist(), test.target.tolist()
    _check_enough(labels[pool], approaches, cv, validation_fraction, random_state)
    if audit:
        say(f"auditing {len(labels)} images for duplicates")
        splits = np.full(len(labels), "train", dtype=object)
        if test is not None:
            splits[test_idx] = "test"
        if found is None:
            result.audit = audit_images(paths, labels, splits=splits, n_jobs=-1)
        else:  # the fingerprints deduplication computed
            result.audit = _audit_fingerprinted(paths, labels, splits, found)
    if probe is not None:
        used = pool[_trained_on(labels[pool], approaches, budgets, random_state)]
        if store.finished(_LABEL_AUDIT):
            say("label audit finished in an earlier run: restored")
        result.label_audit = store.unit(
            _LABEL_AUDIT,
            lambda: _label_audit(
                probe,
                paths,
                labels,
                test,
                used=used,
                cv=cv if cv and cv > 1 else PAPER.folds,
                random_state=random_state,
                say=say,
            ),
            dump=lambda value, *_: asdict(value),
            load=lambda value, *_: LabelAudit(**value),
        )
        if drop_label_issues:  # train only on audited images: the pool shrinks to them
            result.label_audit.dropped = True
            flagged = {row["path"] for row in result.label_audit.train}
            pool = used[~np.isin(paths[used], list(flagged))]
            say(f"left {len(flagged)} likely mislabelled images out of training")
            _check_enough(labels[pool], approaches, cv, validation_fraction, random_state)

    failed = {}
    for i, approach in enumerate(approaches, 1):
        say = partial(_say, f"[{i}/{len(approaches)}] {approach.name}", verbose)
        run = dict(random_state=random_state, say=say, verbose=verbose, n_jobs=n_jobs, store=store)
        record, pipeline = _run(
            approach,
            paths[pool],
            labels[pool],
            test=test,
            cv=cv,
            validation_fraction=validation_fraction,
            overlays=overlays,
            **run,
        )
        if budgets:
            result.budget_curve += budget_curve(
                approach, paths[pool], labels[pool], test=test, budgets=budgets, **run
            )
        result.approaches.append(record)
        result.pipelines[approach.name] = pipeline
        result.differences += _late(
            failed, "the paired comparison", [], _differences, result, random_state
        )
        if budgets and i == len(approaches):  # once, from every approach's points
            result.budget_forecast, result.crossover, result.crossover_reason = _late(
                failed,
                "the forecast",
                ([], None, "the forecast failed (see the notes)"),
                forecast,
                result.budget_curve,
                len(test.data),
                target_accuracy=target_accuracy,
                random_state=random_state,
            )
        result.notes = compared_notes(result, approaches) + list(failed.values())
        if on_approach is not None:
            on_approach(result, approach.name)
    return result


def _late(failed, step, fallback, function, *args, **kwargs):
    """``function(*args, **kwargs)`` for a step after the approaches finished: its failure
    becomes a note in ``failed`` and ``fallback``, never an error that loses the run."""
    try:
        return function(*args, **kwargs)
    except Exception as exc:  # the approaches' results stand without this step
        failed[step] = f"{step} failed ({type(exc).__name__}: {exc}); the other results stand"
        return fallback


#: The run's unit name of the label audit.
_LABEL_AUDIT = "label-audit"


def _trained_on(labels, approaches, budgets, random_state):
    """Positions in ``labels`` of every image an approach or a budget point may draw."""
    sizes = [a.per_class for a in approaches] + list(budgets or [])
    if None in sizes:
        return np.arange(len(labels))
    with warnings.catch_warnings():  # short classes are said by the runs themselves
        warnings.simplefilter("ignore", UserWarning)
        return sample_per_class(labels, max(sizes), random_state=random_state)


def _differences(result, random_state):
    """The newest approach against each earlier one on the common test set."""
    from .stats import compare_predictions

    *records, later = result.approaches
    if later.test_predicted is None:
        return []
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
        for earlier in records
        if earlier.test_predicted is not None
    ]
