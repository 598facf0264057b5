"""What :func:`~sk_animals.evaluation.compare` measured, as typed records.

A :class:`ComparisonResult` holds one :class:`ApproachResult` per approach (with its
:class:`CVScores`), each pair's difference on the common test set, the data-budget curve
(:class:`BudgetPoint`) and the data audit. It renders the paper's table, the verdict
sentences and its JSON, and :meth:`ComparisonResult.save` writes the report files.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path

from .persistence import SUFFIX, save
from .report import METRICS

__all__ = [
    "ApproachResult",
    "BudgetForecast",
    "BudgetPoint",
    "CVScores",
    "ComparisonResult",
    "Crossover",
    "LabelAudit",
    "Overlays",
    "PairDifference",
]


@dataclass
class CVScores:
    """Cross-validation of one approach on its training part."""

    folds: int
    scores: list
    mean: float
    std: float
    train_mean: float
    fit_seconds: list


@dataclass
class Overlays:
    """Class-activation maps of the test images an approach's report shows.

    :func:`~sk_animals.evaluation.compare` computes them while the fitted model is at
    hand: for the approach's most confident mistakes on the common test set and, for
    contrast, its most confident correct predictions, the map of the evidence for the
    predicted class (:func:`~sk_animals.explain` with its defaults). Each map is kept
    small: downsampled to ``shape`` and stored as one byte a cell (the value times 255,
    rounded), row by row, in base64; :meth:`heatmaps` gives them back. ``view`` says how
    the network saw each file (the settings of its
    :class:`~sk_animals.preprocessing.ImageLoader` other than the size), so that the report
    draws each map over the same part of the image.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_animals.results import Overlays
    >>> maps = np.linspace(0, 1, 2 * 64 * 64, dtype=np.float32).reshape(2, 64, 64)
    >>> kept = Overlays.from_heatmaps(
    ...     maps, indices=[3, 0], method="layercam", view={"resize": "stretch"}, seconds=0.1
    ... )
    >>> kept.heatmaps().shape, kept.shape
    ((2, 32, 32), [32, 32])
    >>> bool(np.abs(kept.heatmaps() - maps[:, ::2, ::2]).max() < 0.02)
    True
    """

    method: str  #: :func:`~sk_animals.explain`'s method
    view: dict  #: the ImageLoader's ``resize``, ``crop_pct`` and ``interpolation``
    indices: list  #: each image's position in the common test set
    shape: list  #: rows and columns of each map
    maps: list  #: each map's bytes (value * 255, row by row) in base64
    seconds: float  #: what computing the maps cost

    @classmethod
    def from_heatmaps(cls, heatmaps, *, indices, method, view, seconds, shape=(32, 32)):
        """The record of ``heatmaps`` (n, height, width) in [0, 1], downsampled to ``shape``."""
        import base64

        import numpy as np
        from PIL import Image

        rows, cols = shape
        maps = []
        for heat in np.asarray(heatmaps, np.float32):
            small = Image.fromarray(np.clip(np.nan_to_num(heat), 0, 1), "F").resize(
                (cols, rows), Image.Resampling.BILINEAR
            )
            cells = np.round(np.clip(np.asarray(small), 0, 1) * 255).astype(np.uint8)
            maps.append(base64.b64encode(cells.tobytes()).decode("ascii"))
        return cls(method, dict(view), [int(i) for i in indices], [rows, cols], maps, seconds)

    def heatmaps(self):
        """The maps, an ndarray of shape (n, rows, columns), float32 in [0, 1]."""
        import base64

        import numpy as np

        cells = [np.frombuffer(base64.b64decode(m), np.uint8) for m in self.maps]
        shape = (len(cells), *self.shape)
        return (np.array(cells, np.float32).reshape(shape) / 255).astype(np.float32)


@dataclass
class ApproachResult:
    """What :func:`~sk_animals.evaluation.compare` measured for one approach.

    ``dataclasses.asdict`` gives its JSON.
    """

    name: str
    classifier: str
    backbone: str | None
    weights: str | None
    images_per_class: int
    n_train: int
    n_valid: int
    image_size: int
    lr: float | None  #: None for a model that is not a network (a linear probe)
    epochs: int | None  #: epochs asked for
    epochs_run: int | None  #: epochs the final fit ran
    stopped: str | None  #: ``"early_stopping"`` when the final fit stopped early
    batch_size: int | None
    cv: CVScores | None
    fit_seconds: float
    predict_ms_per_image: float
    validation_accuracy: float
    training_accuracy: float
    confusion_matrix: list
    per_class: dict
    curves: dict
    training_files: list
    validation_files: list
    validation_true: list
    validation_predicted: list
    test_accuracy: float | None = None
    test_ci95: tuple | None = None
    test_predicted: list | None = None  #: the label predicted for each test image
    test_confidence: list | None = None  #: the probability of that label
    test_report: dict | None = None  #: per-class precision, recall, F1 (classification_report)
    #: on the test set, rows the true classes and columns the predicted, in ``classes_`` order
    test_confusion_matrix: list | None = None
    calibration: dict | None = None  #: reliability curve and expected calibration error
    precision: str | None = None  #: what the network's fit ran ("fp32", "bf16"); None: no network
    recipe: str | None = None  #: the protocol's recipe ("paper", "recommended"); None: your own
    class_counts: dict | None = None  #: ``{label: {"train": n, "valid": n}}`` images per class
    #: class-activation maps of the test images the report shows; None: none computed
    test_overlays: Overlays | None = None
    #: ms per validation image of the pipeline exported to ONNX and run by onnxruntime,
    #: decoding aside; None: not measured (no onnx group, or not exportable)
    onnx_predict_ms_per_image: float | None = None

    @classmethod
    def from_dict(cls, values):
        """The record back from its ``asdict`` JSON (a run's checkpoint)."""
        values = dict(values)
        if values.get("cv") is not None:
            values["cv"] = CVScores(**values["cv"])
        if values.get("test_ci95") is not None:
            values["test_ci95"] = tuple(values["test_ci95"])
        if values.get("test_overlays") is not None:
            values["test_overlays"] = Overlays(**values["test_overlays"])
        return cls(**values)


@dataclass
class BudgetPoint:
    """One approach trained on ``per_class`` images of each class, scored on the test set."""

    approach: str
    per_class: int
    n_train: int
    capped: bool  #: some class had fewer images than ``per_class``
    test_accuracy: float
    test_ci95: tuple


@dataclass
class BudgetForecast:
    """One approach's learning curve fitted to its budget points, forecast up to 10x.

    ``per_class`` holds the measured budgets and round numbers up to ten times the
    largest; ``accuracy`` and ``ci95`` (95% prediction intervals of a measurement on the
    same test set) are empty, with ``reason`` saying why, when there is no forecast.
    ``backtest`` (four points or more): the fit without the largest budget, forecasting
    it. ``target``: the images per class needed for ``compare``'s ``target_accuracy``.
    """

    name: str
    per_class: list
    accuracy: list
    ci95: list
    params: dict | None
    reason: str | None = None
    backtest: dict | None = None
    target: dict | None = None


@dataclass
class Crossover:
    """The budget per class at which ``a``'s forecast reaches ``b`` at ``b``'s largest budget."""

    a: str
    b: str
    b_per_class: int
    b_accuracy: float
    per_class: float
    ci95: tuple


@dataclass
class LabelAudit:
    """Likely label errors among the compared images, found by confident learning.

    One approach's frozen-feature model (the linear probe) gives every non-test image
    an out-of-fold probability (``cv`` folds) and every test image a probability from
    a fit on the non-test images; :func:`~sk_animals.audit.find_label_issues` flags the
    images whose given label is unlikely. ``train`` and ``test`` list them, most
    suspicious first, as dicts of ``path``, ``given``, ``suggested`` and ``score`` (the
    held-out probability of the given label). ``dropped``: the flagged non-test images
    were left out of training; test images are never left out.
    """

    approach: str
    cv: int
    n_train: int  #: non-test images checked (those any approach or budget may train on)
    n_test: int
    train: list
    test: list
    dropped: bool = False

    def sentence(self):
        """What was found, in one sentence."""
        found = (
            f"the label audit ({self.approach}'s held-out probabilities, confident learning) "
            f"flags {len(self.train)} of {self.n_train} training images and {len(self.test)} "
            f"of {self.n_test} test images as likely mislabelled (listed in {METRICS} "
            "under audit.label_issues)"
        )
        if self.dropped:
            found += f"; the {len(self.train)} training images were left out of training"
        if self.test:
            found += (
                f"; the {len(self.test)} test images stay in the test set and are scored "
                "against their given labels"
            )
        return found


@dataclass
class ComparisonResult:
    """What :func:`~sk_animals.evaluation.compare` measured, per approach, on one common test set.

    Attributes
    ----------
    approaches : list of ApproachResult
        One record per approach: settings, cross-validation scores, validation, test
        and training accuracy, confusion matrix, per-class rates, timings and curves.
    pipelines : dict of str to Pipeline
        The fitted ``ImageLoader -> classifier`` pipelines, predicting from paths.
    classes : list of str
        The class labels.
    skipped : list of (str, str)
        Files left out of the data and why.
    test_files, test_true : list of str
        The common test set, drawn first and never trained, validated or tuned on.
    differences : list of PairDifference
        Each pair of approaches on the test set: the two names (``a``, ``b``) and their
        :class:`~sk_animals.stats.Difference` (``difference``): accuracy
        difference with its 95% paired-bootstrap interval and McNemar's exact p-value.
    budget_curve : list of BudgetPoint
        Test accuracy of each approach against images per class, when budgets are given.
    budget_forecast : list of BudgetForecast
        Each approach's learning curve (``acc(n) = a - b * n ** -c``) fitted to its budget
        points, forecast with 95% intervals up to ten times the largest budget.
    crossover : Crossover or None
        Where the least accurate approach at the largest budget catches up with the most
        accurate; None with ``crossover_reason`` when it does not within the forecast.
    audit : sk_animals.audit.AuditResult or None
        Duplicates, near duplicates, label conflicts and test/train leaks in the data.
    deduplicated : list of str
        Images that ``dedupe=True`` left out, one kept of each duplicate group.
    label_audit : LabelAudit or None
        Likely label errors in the training and the test images.
    notes : list of str
        What the reader must know: capped budgets, transfer without pretrained weights,
        duplicate images spanning an approach's training and validation images.
    """

    approaches: list = field(default_factory=list)
    pipelines: dict = field(default_factory=dict)
    classes: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    test_files: list = field(default_factory=list)
    test_true: list = field(default_factory=list)
    differences: list = field(default_factory=list)
    budget_curve: list = field(default_factory=list)
    budget_forecast: list = field(default_factory=list)
    crossover: Crossover | None = None
    crossover_reason: str | None = None
    audit: object = None
    deduplicated: list = field(default_factory=list)
    label_audit: LabelAudit | None = None
    notes: list = field(default_factory=list)

    COLUMNS = (
        "Approach",
        "Test accuracy (95% CI)",
        "Validation accuracy",
        "Training accuracy",
        "CV accuracy (mean ± std)",
        "Images per class",
        "Image size",
        "Learning rate",
        "Epochs",
        "Precision",
        "Fit time (s)",
        "Predict time (ms/image)",
        "ONNX predict time (ms/image)",
    )

    def table(self):
        """The side-by-side table: a row of formatted cells per approach."""
        rows = []
        for r in self.approaches:
            cv = r.cv
            epochs = f"{r.epochs_run} of {r.epochs} ({r.stopped})" if r.stopped else r.epochs
            test = (
                "-"
                if r.test_accuracy is None
                else f"{r.test_accuracy:.2%} ({r.test_ci95[0]:.1%}–{r.test_ci95[1]:.1%})"
            )
            rows.append(
                [
                    r.name,
                    test,
                    f"{r.validation_accuracy:.2%}",
                    f"{r.training_accuracy:.2%}",
                    "-" if cv is None else f"{cv.mean:.2%} ± {cv.std:.2%} ({cv.folds} folds)",
                    str(r.images_per_class),
                    f"{r.image_size}x{r.image_size}",
                    "-" if r.lr is None else f"{r.lr:g}",
                    "-" if epochs is None else str(epochs),
                    r.precision or "-",
                    _seconds(r.fit_seconds),
                    _seconds(r.predict_ms_per_image),
                    "-"
                    if r.onnx_predict_ms_per_image is None
                    else _seconds(r.onnx_predict_ms_per_image),
                ]
            )
        return rows

    def verdicts(self):
        """One sentence per pair of approaches, and what the reader must know."""
        from .stats import verdict

        sentences = [verdict(d.a, d.b, d.difference) for d in self.differences]
        return sentences + self.notes

    def budget_matches(self):
        """Sentences "A with N per class matches B with M per class" from the curve."""
        by = {}
        for p in self.budget_curve:
            by.setdefault(p.approach, []).append(p)
        out = []
        for a, points_a in by.items():
            for b, points_b in by.items():
                if a == b:
                    continue
                best_b = max(points_b, key=lambda p: p.per_class)
                smaller = [p for p in points_a if p.per_class < best_b.per_class]
                match = min(
                    (p for p in smaller if p.test_accuracy >= best_b.test_accuracy),
                    key=lambda p: p.per_class,
                    default=None,
                )
                if match:
                    out.append(
                        f"{a} with {match.per_class} per class ({match.test_accuracy:.1%}) "
                        f"matches {b} with {best_b.per_class} per class "
                        f"({best_b.test_accuracy:.1%})"
                    )
        return out

    def forecast_sentences(self):
        """The forecast in words: the crossover, the target budgets, and the assumptions."""
        if not self.budget_forecast:
            return []
        out = []
        if self.crossover is not None:
            c = self.crossover
            low, high = c.ci95
            out.append(
                f"{c.a} is forecast to reach {c.b}'s {c.b_accuracy:.1%} (at {c.b_per_class} "
                f"per class) with about {c.per_class:.0f} images per class (95% interval "
                f"{low:.0f} to {'more than 10x' if high == float('inf') else f'{high:.0f}'})"
            )
        elif self.crossover_reason:
            out.append(self.crossover_reason)
        for f in self.budget_forecast:
            if f.reason:
                out.append(f"no forecast for {f.name}: {f.reason}")
            elif f.target is not None:
                out.append(f"{f.name}: {f.target['sentence']}")
        out.append(
            "The forecast assumes the same protocol and epochs at every budget and a power "
            "law acc(n) = a - b n^-c fitted to the measured points; intervals are 95% "
            "(bootstrap refits plus the test set's noise)."
        )
        return out

    def to_markdown(self):
        """The table as Markdown."""
        from .report import markdown_table

        return markdown_table(self.COLUMNS, self.table())

    def to_dict(self):
        """Everything measured, JSON-serialisable."""
        return {
            "classes": self.classes,
            "skipped": [list(s) for s in self.skipped],
            "test": {"n": len(self.test_files), "files": self.test_files, "true": self.test_true},
            "verdict": self.verdicts(),
            "approaches": [asdict(r) for r in self.approaches],
            "differences": [_difference_json(d) for d in self.differences],
            "deduplicated": self.deduplicated,
            "budget_curve": [asdict(p) for p in self.budget_curve],
            "budget_matches": self.budget_matches(),
            "budget_forecast": [asdict(f) for f in self.budget_forecast],
            "crossover": None if self.crossover is None else asdict(self.crossover),
            "crossover_reason": self.crossover_reason,
            "audit": self._audit_json(),
            "notes": self.notes,
        }

    def _audit_json(self):
        audit = {}
        if self.audit is not None:
            audit = {**self.audit.to_dict(), "counts": self.audit.summary()}
        if self.label_audit is not None:
            audit["label_issues"] = asdict(self.label_audit)
        return audit or None

    def save(self, out_dir, names=None):
        """Write the report and the fitted pipelines of ``names`` (all) into ``out_dir``.

        Pipelines are written as ``<name>.skmodel`` files (:func:`sk_animals.save`):
        weights and settings, no pickle; :func:`sk_animals.load` reads them. Beside each,
        its model card ``<name>.md`` (:func:`sk_animals.cards.write_model_card`): what
        the model is, its data and its scores on the common test set.

        Parameters
        ----------
        out_dir : str or path-like
            Created if missing; files of the same names are replaced.
        names : list of str, default=None
            Approaches whose pipelines to write; all by default.

        Returns
        -------
        paths : dict of str to pathlib.Path
            The report files written.

        Raises
        ------
        ValueError
            An approach's model card would replace a report file (an approach named
            ``report``); nothing is written.
        """
        from .cards import write_model_card
        from .report import CARD_SUFFIX, REPORT_FILES, write_report

        names = list(self.pipelines if names is None else names)
        clash = [n for n in names if f"{n}{CARD_SUFFIX}" in REPORT_FILES]
        if clash:
            raise ValueError(
                f"approach {clash[0]!r}: its model card {clash[0]}{CARD_SUFFIX} would replace "
                "the report of the same name; rename the approach"
            )
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name in names:
            model = out / f"{name}{SUFFIX}"
            save(self.pipelines[name], model)
            write_model_card(
                self.pipelines[name],
                out / f"{name}{CARD_SUFFIX}",
                result=self,
                name=name,
                model_path=model,
            )
        return write_report(self, out)


def _seconds(value):
    """A duration for the table: three significant digits, so a small cost never reads 0."""
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _difference_json(pair):
    """A pair's comparison, named: McNemar's discordant counts get names of their own."""
    d = pair.difference
    return {
        "a": pair.a,
        "b": pair.b,
        "difference": d.difference,
        "ci95": d.ci95,
        "mcnemar_p": d.mcnemar_p,
        "a_accuracy": d.a_accuracy,
        "b_accuracy": d.b_accuracy,
        "only_a_correct": d.b,
        "only_b_correct": d.c,
        "n": d.n,
    }


@dataclass
class PairDifference:
    """Two approaches compared on the common test set."""

    a: str
    b: str
    difference: object  #: a :class:`sk_animals.stats.Difference`


def compared_notes(result, approaches):
    """What a reader of ``result``'s numbers must know, given the ``approaches`` it ran."""
    from .transfer import TransferClassifier

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
            f"split (listed in {METRICS})"
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
