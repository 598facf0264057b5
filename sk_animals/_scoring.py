"""What one fitted approach measured, as an :class:`~sk_animals.results.ApproachResult`.

The final fit that watches its validation images, the network's settings and curves, the
validation and test scores with their intervals, per-class rates and calibration.
"""

import sys
import time
import warnings

import numpy as np
from joblib import effective_n_jobs
from sklearn.base import clone
from sklearn.calibration import calibration_curve
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix
from sklearn.pipeline import Pipeline

from ._base import ImageClassifier
from ._featurecache import costed
from ._text import first_line
from .preprocessing import ImageLoader, split_loader
from .report import OVERLAY_CORRECT, OVERLAY_MISTAKES, _most_confident
from .results import ApproachResult, LabelAudit, Overlays
from .stats import accuracy_interval

__all__ = ["per_class_rates", "training_curves"]


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


def _shown(clf, label, verbose, n_jobs=None):
    """A clone of ``clf`` that draws a live progress line when run here, in a terminal."""
    clf = clone(clf)
    network = isinstance(clf, ImageClassifier)  # a probe has no epochs to show
    if network and verbose and effective_n_jobs(n_jobs) == 1 and sys.stderr.isatty():
        from ._callbacks import ProgressLine

        clf.set_params(callbacks=[*(clf.callbacks or []), ("progress", ProgressLine(label))])
    return clf


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
    with costed() as cost:
        final.fit(X_train, y_train)
    fit_seconds = cost.seconds
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
    network = fitted[-1] if isinstance(fitted, Pipeline) else fitted
    history = network.history_
    return dict(
        lr=clf.lr,
        epochs=clf.max_epochs,
        epochs_run=len(history),
        stopped=history[-1].get("stopped") if len(history) else None,
        batch_size=clf.batch_size,
        precision=network.precision_,
        curves=training_curves(history),
    )


def _record(
    approach, data, final, X_train, X_valid, *, cv, fit_seconds, predict_extra_seconds=0.0,
    **test_scores,
):  # fmt: skip
    """The approach's result: settings, validation scores and timings, test scores given.

    ``predict_extra_seconds``: what the validation images cost before ``final`` saw them
    beyond decoding (frozen features), counted in the predict time.
    """
    y_train, y_valid = data.labels[data.train], data.labels[data.valid]
    with costed() as cost:
        predicted = final.predict(X_valid)
    seconds = cost.seconds + predict_extra_seconds
    predict_ms = 1000 * seconds / len(data.valid)
    classes = final.classes_.tolist()
    backbone = approach.backbone_step
    return ApproachResult(
        name=approach.name,
        recipe=approach.recipe,
        classifier=type(approach.classifier).__name__,
        backbone=None if backbone is None else backbone.backbone,
        weights=None if backbone is None or backbone.weights is None else str(backbone.weights),
        images_per_class=int(np.unique(data.labels, return_counts=True)[1].max()),
        n_train=len(data.train),
        n_valid=len(data.valid),
        image_size=approach.image_size,
        **_network_settings(approach.classifier, final),
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
        class_counts={
            str(c): {
                "train": int(np.sum(y_train == c)),
                "valid": int(np.sum(y_valid == c)),
            }
            for c in classes
        },
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
        "test_confusion_matrix": confusion_matrix(
            test.target, predicted, labels=pipeline.classes_
        ).tolist(),
        "calibration": {
            "prob_true": prob_true.tolist(),
            "prob_pred": prob_pred.tolist(),
            "ece": float(ece),
        },
    }


def _test_overlays(name, pipeline, test, scores, say):
    """The :class:`~sk_animals.results.Overlays` of the test images the report shows, or
    None when there are none; a model that cannot be explained warns and gives None (its
    scores stand).

    The maps are of the evidence for each image's reported prediction (its ``target``),
    so nothing is predicted again.
    """
    from .explanations import DEFAULT_METHOD, explain

    true, predicted = test.target.tolist(), scores["test_predicted"]
    confidence = scores["test_confidence"]
    shown = [
        *_most_confident(true, predicted, confidence, OVERLAY_MISTAKES),
        *_most_confident(true, predicted, confidence, OVERLAY_CORRECT, correct=True),
    ]
    if not shown:
        return None
    loader, _ = split_loader(pipeline)
    say(f"class-activation maps of {len(shown)} test images for the report")
    try:
        with costed() as cost:
            maps = explain(pipeline, test.data[shown], target=[predicted[i] for i in shown])
    except Exception as exc:  # the maps are for the reader; the scores stand without them
        warnings.warn(
            f"{name}: no class-activation maps in the report ({type(exc).__name__}: {exc})",
            UserWarning,
            stacklevel=2,
        )
        return None
    view = {k: getattr(loader, k) for k in ("resize", "crop_pct", "interpolation")}
    return Overlays.from_heatmaps(
        maps, indices=shown, method=DEFAULT_METHOD, view=view, seconds=cost.seconds
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
    loader, model = approach.decoder(), approach.model()
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


def _decoded(loader, paths):
    """The fixed steps' output for ``paths``, the seconds its steps after decoding (the
    frozen features) took, and the decoded images: decoding is shared by every approach,
    the features are the cost of the approach that uses them."""
    X, seconds, images = paths, 0.0, None
    for _, step in loader.steps:
        with costed() as cost:
            X = step.transform(X)
        if isinstance(step, ImageLoader):
            images = X
        else:
            seconds += cost.seconds
    return X, seconds, images


def _onnx_predict_ms(name, pipeline, images, say):
    """ms per image that ``pipeline``, exported to ONNX in memory, takes in onnxruntime on
    the decoded ``images`` (after one image that warms the session up, as the torch model
    is warm from its fit); None, said in one line, when it cannot be exported, and
    silently when the onnx group is not installed."""
    from .deploy import OnnxClassifier, onnx_installed

    if not onnx_installed():
        return None
    from .export import onnx_bytes

    try:  # an informative column: nothing that fails here stops the run
        graph = OnnxClassifier(onnx_bytes(pipeline)).fit()
    except Exception as exc:  # noqa: BLE001 - said in one line; the scores stand
        reason = first_line(exc)
        say(f"no ONNX predict time for {name}: {reason}")
        return None
    graph.predict_proba(images[:1])
    start = time.perf_counter()
    graph.predict_proba(images)
    return 1000 * (time.perf_counter() - start) / len(images)
