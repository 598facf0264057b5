"""Compare training from scratch with transfer learning, under the paper's protocol or yours.

Each approach is cross-validated (stratified folds, fixed seed) on its training part and
then fitted once more, watching a held-out validation set, as the paper did. The result
holds the paper's table, mean and standard deviation over folds, confusion matrices,
per-class true- and false-positive rates, timings and the per-iteration curves.
"""

import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import joblib
import numpy as np
from sklearn.base import clone
from sklearn.metrics import accuracy_score, confusion_matrix
from sklearn.model_selection import StratifiedKFold, cross_validate, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.utils import Bunch

from .datasets import ANIMALS10_CLASSES, load_animals10, load_image_folder, sample_per_class
from .preprocessing import ImageLoader
from .scratch import ScratchCNNClassifier
from .transfer import BACKBONES, TransferClassifier

__all__ = [
    "Approach",
    "ComparisonResult",
    "compare",
    "paper_protocol",
    "per_class_rates",
    "training_curves",
]


@dataclass
class Approach:
    """One way to classify the images: a classifier and the data it is given.

    Parameters
    ----------
    name : str
        Label in the report and file names (``scratch``, ``transfer``).
    classifier : ImageClassifier
        An unfitted classifier; an :class:`~sk_animals.preprocessing.ImageLoader` of
        ``image_size`` is put in front of it.
    image_size : int
        Images are resized to ``image_size`` x ``image_size``.
    per_class : int or None, default=None
        Images drawn per class (all when None), as the paper's 1500 and 500.
    """

    name: str
    classifier: object
    image_size: int
    per_class: int | None = None


def paper_protocol(
    *,
    backbone="alexnet",
    weights="DEFAULT",
    per_class=None,
    epochs=None,
    device="auto",
    random_state=0,
    verbose=0,
):
    """The paper's two approaches, optionally with another backbone, budget or epochs.

    Scratch: the 25-layer CNN at 100x100, 1500 images per class, SGD with momentum,
    lr 0.01, 10 epochs. Transfer: ImageNet AlexNet at 227x227, 500 images per class,
    lr 1e-4 with the new head at 20x, 6 epochs.

    Parameters
    ----------
    backbone : str, default="alexnet"
        Transfer backbone (see :data:`sk_animals.transfer.BACKBONES`).
    weights : str, path-like or None, default="DEFAULT"
        Transfer weights (see :func:`sk_animals.transfer.load_backbone`).
    per_class : int, default=None
        Overrides both budgets (1500 and 500).
    epochs : int, default=None
        Overrides both epoch counts (10 and 6).
    device : str, default="auto"
    random_state : int, default=0
    verbose : int, default=0
        Passed to both classifiers.

    Returns
    -------
    approaches : list of Approach
    """
    common = {"device": device, "random_state": random_state, "verbose": verbose}
    if epochs is not None:
        common["max_epochs"] = epochs
    return [
        Approach("scratch", ScratchCNNClassifier(**common), 100, per_class or 1500),
        Approach(
            "transfer",
            TransferClassifier(backbone, weights=weights, **common),
            BACKBONES[backbone].size,
            per_class or 500,
        ),
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
        ``history_`` of a fitted :class:`~sk_animals._base.ImageClassifier`.

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
    root = Path(data)
    raw = root / "raw-img" if (root / "raw-img").is_dir() else root
    animals = raw.is_dir() and {p.name for p in raw.iterdir()} & set(ANIMALS10_CLASSES)
    loader = load_animals10 if animals else load_image_folder
    return loader(root, verify=True, n_jobs=-1)


def _check_enough(y, approaches, cv, validation_size, random_state):
    """Refuse, before any work, a class too small for the folds and the hold-out."""
    for approach in approaches:
        with warnings.catch_warnings():  # the run itself warns about short classes
            warnings.simplefilter("ignore", UserWarning)
            labels = y[sample_per_class(y, approach.per_class, random_state=random_state)]
        for label, count in zip(*np.unique(labels, return_counts=True), strict=True):
            n_valid = int(np.ceil(count * validation_size))
            if n_valid < 1 or count - n_valid < max(cv or 0, 2):
                raise ValueError(
                    f"class {str(label)!r} has {count} images: too few for {cv or 0} folds "
                    f"plus a {validation_size:.0%} validation hold-out ({approach.name}); "
                    "use fewer folds or add images"
                )


@dataclass
class ComparisonResult:
    """What :func:`compare` measured, per approach.

    Attributes
    ----------
    approaches : list of dict
        One record per approach: settings, cross-validation scores, validation and
        training accuracy, confusion matrix, per-class rates, timings and curves.
    pipelines : dict of str to Pipeline
        The fitted ``ImageLoader -> classifier`` pipelines, predicting from paths.
    classes : list of str
    skipped : list of (str, str)
        Files left out of the data and why.
    """

    approaches: list = field(default_factory=list)
    pipelines: dict = field(default_factory=dict)
    classes: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    TABLE = (
        ("approach", "Approach"),
        ("validation_accuracy", "Validation accuracy"),
        ("training_accuracy", "Training accuracy"),
        ("cv", "CV accuracy (mean ± std)"),
        ("images_per_class", "Images per class"),
        ("image_size", "Image size"),
        ("lr", "Learning rate"),
        ("epochs", "Epochs"),
        ("fit_seconds", "Fit time (s)"),
        ("predict_ms_per_image", "Predict time (ms/image)"),
    )

    def table(self):
        """The paper's side-by-side table: one dict per approach, formatted values."""
        rows = []
        for r in self.approaches:
            cv = r["cv"]
            rows.append(
                {
                    "approach": r["name"],
                    "validation_accuracy": f"{r['validation_accuracy']:.2%}",
                    "training_accuracy": f"{r['training_accuracy']:.2%}",
                    "cv": "-"
                    if cv is None
                    else f"{cv['mean']:.2%} ± {cv['std']:.2%} ({cv['folds']} folds)",
                    "images_per_class": r["images_per_class"],
                    "image_size": f"{r['image_size']}x{r['image_size']}",
                    "lr": f"{r['lr']:g}",
                    "epochs": r["epochs"],
                    "fit_seconds": f"{r['fit_seconds']:.1f}",
                    "predict_ms_per_image": f"{r['predict_ms_per_image']:.2f}",
                }
            )
        return rows

    def to_markdown(self):
        """The table as Markdown."""
        header = "| " + " | ".join(title for _, title in self.TABLE) + " |"
        rule = "|" + "---|" * len(self.TABLE)
        body = [
            "| " + " | ".join(str(row[k]) for k, _ in self.TABLE) + " |" for row in self.table()
        ]
        return "\n".join([header, rule, *body])

    def to_dict(self):
        """Everything measured, JSON-serialisable."""
        return {
            "classes": self.classes,
            "skipped": [list(s) for s in self.skipped],
            "approaches": self.approaches,
        }


def _say(prefix, verbose, message):
    if verbose:
        print(f"{prefix}: {message}", flush=True)


def _run(approach, paths, labels, cv, validation_size, random_state, say):
    """Cross-validate one approach, then fit it watching the validation set."""
    keep = sample_per_class(labels, approach.per_class, random_state=random_state)
    paths, labels = paths[keep], labels[keep]
    train, valid = train_test_split(
        np.arange(len(labels)),
        test_size=validation_size,
        stratify=labels,
        random_state=random_state,
    )
    loader = ImageLoader(approach.image_size, n_jobs=-1)
    say(f"loading {len(labels)} images at {approach.image_size}x{approach.image_size}")
    X_train, X_valid = loader.transform(paths[train]), loader.transform(paths[valid])
    y_train, y_valid = labels[train], labels[valid]
    clf = approach.classifier
    record = {
        "name": approach.name,
        "classifier": type(clf).__name__,
        "backbone": getattr(clf, "backbone", None),
        "weights": None if getattr(clf, "weights", None) is None else str(clf.weights),
        "images_per_class": int(np.unique(labels, return_counts=True)[1].max()),
        "n_train": len(train),
        "n_valid": len(valid),
        "image_size": approach.image_size,
        "lr": clf.lr,
        "epochs": clf.max_epochs,
        "batch_size": clf.batch_size,
        "cv": None,
    }
    if cv:
        say(f"cross-validating, {cv} stratified folds")
        folds = StratifiedKFold(cv, shuffle=True, random_state=random_state)
        scores = cross_validate(clone(clf), X_train, y_train, cv=folds, return_train_score=True)
        record["cv"] = {
            "folds": cv,
            "scores": scores["test_score"].tolist(),
            "mean": float(scores["test_score"].mean()),
            "std": float(scores["test_score"].std()),
            "train_mean": float(scores["train_score"].mean()),
            "fit_seconds": scores["fit_time"].tolist(),
        }
    say("fitting on the training part, scoring the validation set")
    iterations = int(np.ceil(len(train) / clf.batch_size))
    final = clone(clf).set_params(
        train_split=(X_valid, y_valid), validation_frequency=max(1, iterations // 2)
    )
    start = time.perf_counter()
    final.fit(X_train, y_train)
    record["fit_seconds"] = time.perf_counter() - start
    final.set_params(train_split=None)  # do not pickle the validation images
    start = time.perf_counter()
    predicted = final.predict(X_valid)
    record["predict_ms_per_image"] = 1000 * (time.perf_counter() - start) / len(valid)
    classes = final.classes_.tolist()
    record.update(
        {
            "validation_accuracy": float(accuracy_score(y_valid, predicted)),
            "training_accuracy": float(final.score(X_train, y_train)),
            "confusion_matrix": confusion_matrix(y_valid, predicted, labels=classes).tolist(),
            "per_class": per_class_rates(y_valid, predicted, classes),
            "curves": training_curves(final.history_),
            "validation_files": paths[valid].tolist(),
            "validation_true": y_valid.tolist(),
            "validation_predicted": predicted.tolist(),
        }
    )
    return record, make_pipeline(loader, final)


def compare(
    data, approaches=None, *, cv=5, validation_size=0.3, random_state=0, out_dir=None, verbose=1
):
    """Run each approach on the same images and measure it as the paper did.

    Parameters
    ----------
    data : str, path-like or Bunch
        A folder with one subfolder per class (Animals-10's Italian folders are
        recognised and translated), or a Bunch with ``data`` (paths) and ``target``.
        Unreadable images are left out and named in ``skipped``.
    approaches : list of Approach, default=None
        What to compare; :func:`paper_protocol` by default.
    cv : int or None, default=5
        Stratified folds for cross-validation on each training part; 0 or None skips it.
    validation_size : float, default=0.3
        Stratified fraction of each approach's images held out for validation.
    random_state : int, default=0
        Seeds sampling, splitting and folds.
    out_dir : str or path-like, default=None
        Where to write the report, metrics and fitted pipelines; each approach's files
        are written as soon as it finishes, so an interruption loses only the step in
        progress.
    verbose : int, default=1
        Print each step.

    Returns
    -------
    result : ComparisonResult

    Raises
    ------
    ValueError
        A class has too few images for the folds and the hold-out (checked first).
    """
    data = _load(data)
    approaches = paper_protocol(random_state=random_state) if approaches is None else approaches
    _check_enough(data.target, approaches, cv, validation_size, random_state)
    result = ComparisonResult(classes=sorted(set(data.target.tolist())), skipped=data.skipped)
    for i, approach in enumerate(approaches, 1):
        say = partial(_say, f"[{i}/{len(approaches)}] {approach.name}", verbose)
        record, pipeline = _run(
            approach, data.data, data.target, cv, validation_size, random_state, say
        )
        result.approaches.append(record)
        result.pipelines[approach.name] = pipeline
        if out_dir is not None:
            from .report import write_report

            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            joblib.dump(pipeline, out / f"{approach.name}.joblib")
            write_report(result, out)
            say(f"written to {out}")
    return result
