"""Figures and report files for a :class:`~sk_animals.results.ComparisonResult`.

The paper's figures: iteration vs accuracy and loss (Figs. 8-9), predicted validation
images (Figs. 10-11), confusion matrices in counts and row-normalised (Figs. 12-13); and
beyond it: the data-budget curve, the most confident mistakes on the common test set (beside
where the network found its evidence, when the result holds class-activation maps), a
reliability diagram per approach and the images most likely mislabelled. ``report.html``
is one self-contained file (figures inline); ``report.md`` links the same figures as PNG
files. Nothing here computes a metric.
"""

import base64
import glob
import hashlib
import html
import io
import json
from dataclasses import asdict
from pathlib import Path
from urllib.parse import quote

import numpy as np
from matplotlib.figure import Figure  # figures for files: no pyplot, no backend switch
from sklearn.metrics import ConfusionMatrixDisplay

from ._files import write_bytes, write_text
from ._text import markdown_text, readable_text
from .explanations import overlay
from .preprocessing import ImageLoader

#: The files :func:`write_report` writes: these, and per approach ``<name>_<figure>.png``
#: for each of ``FIGURES``.
REPORT_MD, REPORT_HTML, METRICS = "report.md", "report.html", "metrics.json"
BUDGET_CURVE, LABEL_ISSUES = "budget_curve.png", "label_issues.png"
REPORT_FILES = (REPORT_MD, REPORT_HTML, METRICS, BUDGET_CURVE, LABEL_ISSUES)
FIGURES = ("curves", "confusion", "predictions", "mistakes", "reliability")
#: Glob patterns of every file :func:`write_report` may write.
REPORT_PATTERNS = (*REPORT_FILES, *(f"*_{figure}.png" for figure in FIGURES))
#: Beside each model ``<approach>.skmodel`` that ``ComparisonResult.save`` writes, its model
#: card ``<approach>.md`` (:mod:`sk_animals.cards`).
CARD_SUFFIX = ".md"
#: The test images whose class-activation maps ``compare`` keeps for the report: each
#: approach's most confident mistakes, and for contrast its most confident correct
#: predictions, at most this many of each.
OVERLAY_MISTAKES, OVERLAY_CORRECT = 8, 4
#: Pixels of a thumbnail's side.
_THUMBNAIL = 96

__all__ = [
    "html_table",
    "markdown_table",
    "plot_budget_curve",
    "plot_confusion",
    "plot_curves",
    "plot_label_issues",
    "plot_mistakes",
    "plot_overlays",
    "plot_predictions",
    "plot_reliability",
    "write_report",
]


def plot_curves(record):
    """Iteration vs accuracy and vs loss, training and validation, for one approach."""
    curves = record.curves
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, key, title in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        train, valid = curves["train"], curves["valid"]
        ax.plot(train["iteration"], train[key], lw=0.8, alpha=0.7, label="training (mini-batch)")
        if valid["iteration"]:
            ax.plot(valid["iteration"], valid[key], "o--", ms=3, color="k", label="validation")
        ax.set(xlabel="Iteration", ylabel=title, title=f"{record.name}: {title.lower()}")
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def plot_confusion(record, classes):
    """Confusion matrix on the validation set in counts and row-normalised, side by side."""
    cm = np.asarray(record.confusion_matrix)
    side = 2.0 + 0.6 * len(classes)  # inches per matrix
    fig = Figure(figsize=(2 * side, side), layout="constrained")
    axes = fig.subplots(1, 2)
    with np.errstate(invalid="ignore"):
        normalised = np.nan_to_num(cm / cm.sum(1, keepdims=True))
    for ax, matrix, fmt, title in (
        (axes[0], cm, "d", "counts"),
        (axes[1], normalised, ".2f", "row-normalised"),
    ):
        ConfusionMatrixDisplay(matrix, display_labels=classes).plot(
            ax=ax, values_format=fmt, colorbar=False, xticks_rotation=45
        )
        ax.set_title(f"{record.name}: {title}")
    return fig


def _image_grid(files, titles, colours, suptitle):
    """Thumbnails of ``files`` (or of uint8 images at the thumbnails' size) titled, 4 a row."""
    images = ImageLoader(_THUMBNAIL, resize="pad").transform(files)
    cols = 4
    rows = max(1, int(np.ceil(len(files) / cols)))
    fig = Figure(figsize=(2.4 * cols, 2.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title, colour in zip(axes.flat, images, titles, colours, strict=False):
        ax.imshow(image)
        ax.set_title(title, fontsize=9, color=colour)
    fig.suptitle(suptitle)
    return fig


def plot_predictions(record, n=16, random_state=0):
    """A grid of validation images titled predicted (true); mistakes in red."""
    files = np.asarray(record.validation_files)
    rng = np.random.default_rng(random_state)
    pick = np.sort(rng.choice(len(files), size=min(n, len(files)), replace=False))
    true = [record.validation_true[i] for i in pick]
    pred = [record.validation_predicted[i] for i in pick]
    return _image_grid(
        files[pick],
        [f"{p}" + (f" (true: {t})" if t != p else "") for t, p in zip(true, pred, strict=True)],
        ["red" if t != p else "black" for t, p in zip(true, pred, strict=True)],
        f"{record.name}: validation predictions (mistakes in red)",
    )


def _most_confident(true, predicted, confidence, n, *, correct=False):
    """Positions of the ``n`` wrong (or ``correct``) predictions with the highest
    confidence, the most confident first (ties in test-set order)."""
    pairs = enumerate(zip(true, predicted, strict=True))
    chosen = [i for i, (t, p) in pairs if bool(t == p) is correct]
    return sorted(chosen, key=lambda i: -confidence[i])[:n]


def plot_mistakes(record, test_files, test_true, n=OVERLAY_MISTAKES):
    """The test images the approach got wrong with the highest confidence (top losses)."""
    worst = _most_confident(test_true, record.test_predicted, record.test_confidence, n)
    if not worst:
        return None
    return _image_grid(
        [test_files[i] for i in worst],
        [
            f"{record.test_predicted[i]} {record.test_confidence[i]:.0%}\n(true: {test_true[i]})"
            for i in worst
        ],
        ["red"] * len(worst),
        f"{record.name}: most confident mistakes on the test set",
    )


def plot_overlays(record, test_files, test_true):
    """The test images of ``record.test_overlays``, each as the network saw it beside where it
    found the evidence for its predicted class: the most confident mistakes (red), then
    correct predictions for contrast (green)."""
    shown = record.test_overlays
    view = ImageLoader(_THUMBNAIL, **shown.view).transform([test_files[i] for i in shown.indices])
    images, titles, colours = [], [], []
    for i, image, heat in zip(shown.indices, view, shown.heatmaps(), strict=True):
        predicted, confidence = record.test_predicted[i], record.test_confidence[i]
        wrong = predicted != test_true[i]
        images += [image, np.round(overlay(image, heat) * 255).astype(np.uint8)]
        titles += [
            f"{'mistake' if wrong else 'correct'}: {predicted} {confidence:.0%}"
            + (f"\n(true: {test_true[i]})" if wrong else ""),
            f"evidence for {predicted}",
        ]
        colours += ["red" if wrong else "green"] * 2
    return _image_grid(
        images,
        titles,
        colours,
        f"{record.name}: most confident test mistakes (red) and correct predictions (green),\n"
        f"each beside where the network found the evidence for its prediction ({shown.method})",
    )


def _overlays_sentence(result):
    """What the mistakes' figures show of the network's evidence, in one sentence."""
    tested = [r for r in result.approaches if r.test_predicted is not None]
    missing = [r.name for r in tested if r.test_overlays is None]
    if not tested:
        return None
    if not missing:
        return (
            "Each approach's most confident mistakes on them, and a few correct predictions "
            "for contrast, are shown beside a class-activation map: where its network found "
            "the evidence for the class it predicted (red: most)."
        )
    whom = "this run" if len(missing) == len(tested) else ", ".join(missing)
    return (
        f"No class-activation maps for {whom}: they need pytorch-grad-cam (pip install "
        "'sk-animals[explain]'), and compare(overlays=False) or --no-overlays leaves them out."
    )


def _suspects(label_audit):
    """The flagged images of both sets, most suspicious first, with their set's name."""
    rows = [dict(r, split=s) for s in ("train", "test") for r in getattr(label_audit, s)]
    return sorted(rows, key=lambda r: r["score"])


def _short(name, width=22):
    """A file name cut in the middle to fit under a thumbnail (the table has the paths)."""
    return name if len(name) <= width else f"{name[: width // 2 - 1]}…{name[-(width // 2) :]}"


def plot_label_issues(label_audit, n=16):
    """The images most likely mislabelled, titled given and suggested label, and path."""
    worst = _suspects(label_audit)[:n]
    if not worst:
        return None
    return _image_grid(
        [r["path"] for r in worst],
        [
            f"given {r['given']}, likely {r['suggested']}\n{_short(Path(r['path']).name)} "
            f"({r['split']})"
            for r in worst
        ],
        ["darkred"] * len(worst),
        f"Most likely label errors ({label_audit.approach}'s held-out probabilities)",
    )


def _label_issues_table(label_audit, n=30):
    rows = [
        [r["path"], r["split"], str(r["given"]), str(r["suggested"]), f"{r['score']:.3f}"]
        for r in _suspects(label_audit)[:n]
    ]
    return ["Path", "Set", "Given label", "Suggested label", "P(given label)"], rows


def plot_reliability(record):
    """Reliability diagram of the top-label confidence on the test set, with its ECE."""
    cal = record.calibration
    fig = Figure(figsize=(4.5, 4), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    ax.plot(cal["prob_pred"], cal["prob_true"], "o-", label=record.name)
    ax.set(
        xlabel="Confidence (top-label probability)",
        ylabel="Accuracy",
        title=f"{record.name}: calibration, ECE {cal['ece']:.3f}",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    return fig


def plot_budget_curve(points, forecasts=()):
    """Test accuracy (95% intervals) against images per class, a line per approach.

    Each approach's forecast (:class:`~sk_animals.results.BudgetForecast`) is drawn as a
    dashed line in a band (its 95% interval) beyond the measured points.
    """
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    forecasts = {f.name: f for f in forecasts if f.accuracy}
    for name in dict.fromkeys(p.approach for p in points):
        mine = sorted((p for p in points if p.approach == name), key=lambda p: p.per_class)
        x = [p.per_class for p in mine]
        y = np.array([p.test_accuracy for p in mine])
        low, high = np.array([p.test_ci95 for p in mine]).T
        line = ax.errorbar(x, y, yerr=[y - low, high - y], marker="o", capsize=3, label=name)
        if name in forecasts:
            f = forecasts[name]
            beyond = [i for i, n in enumerate(f.per_class) if n >= x[-1]]
            n = np.array(f.per_class)[beyond]
            band = np.array(f.ci95)[beyond]
            color = line[0].get_color()
            ax.plot(n, np.array(f.accuracy)[beyond], "--", color=color)
            ax.fill_between(n, band[:, 0], band[:, 1], color=color, alpha=0.15)
    ax.set_xscale("log")
    ax.set(
        xlabel="Images per class (log scale)",
        ylabel="Test accuracy (95% CI)",
        title="Data budget: test accuracy against training images per class",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return fig


def markdown_table(columns, rows):
    """A Markdown table of cells shown as written: markup, ``|`` and line breaks escaped.

    Examples
    --------
    >>> print(markdown_table(["Class", "n"], [["cat|dog", "3"]]))
    | Class | n |
    | --- | --- |
    | cat\\|dog | 3 |
    """
    cells = [[markdown_text(c, block=False) for c in line] for line in [columns, *rows]]
    lines = [cells[0], ["---"] * len(columns), *cells[1:]]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def _html(text):
    """``text`` as HTML text: escaped, the bytes of a name that is not UTF-8 as ``\\xNN``."""
    return html.escape(readable_text(text))


def html_table(columns, rows):
    """The same table as HTML."""
    head = "".join(f"<th>{_html(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_html(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _rates_table(result):
    names = [r.name for r in result.approaches]
    columns = ["Class"] + [f"{n} {k}" for n in names for k in ("TPR", "FPR")]
    rows = [
        [c] + [f"{r.per_class[str(c)][k]:.2%}" for r in result.approaches for k in ("tpr", "fpr")]
        for c in result.classes
    ]
    return columns, rows


def _test_report_table(result):
    records = [r for r in result.approaches if r.test_report]
    columns = ["Class"] + [f"{r.name} {k}" for r in records for k in ("precision", "recall", "F1")]
    keys = ("precision", "recall", "f1-score")
    rows = [
        [c] + [f"{r.test_report[str(c)][k]:.2f}" for r in records for k in keys]
        for c in result.classes
    ]
    return columns, rows


def _audit_table(audit):
    rows = [[kind.replace("_", " "), str(n)] for kind, n in audit.summary().items()]
    rows.append(["unreadable files", str(len(audit.unreadable))])
    return ["Finding", "Groups"], rows


class _Document:
    """Markdown and HTML written side by side from the same pieces."""

    def __init__(self, out):
        self.out, self.md, self.html = out, [], []

    def heading(self, text, level=2):
        self.md += [f"{'#' * level} {markdown_text(text)}", ""]
        self.html.append(f"<h{level}>{_html(text)}</h{level}>")

    def paragraph(self, text, css=None):
        self.md += [markdown_text(text), ""]
        attr = f' class="{css}"' if css else ""
        self.html.append(f"<p{attr}>{_html(text)}</p>")

    def items(self, lines):
        self.md += [*(f"- {markdown_text(line)}" for line in lines), ""]
        self.html.append("<ul>" + "".join(f"<li>{_html(x)}</li>" for x in lines) + "</ul>")

    def table(self, columns, rows):
        self.md += [markdown_table(columns, rows), ""]
        self.html.append(html_table(columns, rows))

    def figure(self, draw, name, alt, shown):
        """The figure that ``draw()`` returns (None: none), saved as ``name``; ``shown``
        (JSON-able) is what it is drawn from, so that it is drawn once per process."""
        data = _png(draw, name, shown)
        if data is None:
            return False
        write_bytes(self.out / name, data)
        self.md += [f"![{markdown_text(alt, block=False)}]({quote(name)})", ""]
        encoded = base64.b64encode(data).decode("ascii")
        self.html.append(f'<img src="data:image/png;base64,{encoded}" alt="{_html(alt)}">')
        return True


#: PNG bytes of the figures drawn in this process, by a digest of the figure's name and of
#: what it shows: ``compare`` writes the report again after each approach (so that an
#: interrupted run keeps one), and the figures of the approaches already reported have
#: not changed. Bounded: the oldest go first.
_DRAWN = {}
_DRAWN_MAX = 64


def _png(draw, name, shown):
    text = json.dumps([name, shown], default=str, sort_keys=True)
    key = hashlib.sha256(text.encode()).hexdigest()
    if key not in _DRAWN:
        fig = draw()
        buffer = io.BytesIO()
        if fig is not None:
            fig.savefig(buffer, format="png", dpi=100)
        _DRAWN[key] = buffer.getvalue() if fig is not None else None
        while len(_DRAWN) > _DRAWN_MAX:
            del _DRAWN[next(iter(_DRAWN))]
    return _DRAWN[key]


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:auto;padding:0 16px;"
    "line-height:1.45;color:#222}"
    ".verdict{font-size:1.15em;background:#f3f6fa;border-left:4px solid #3465a4;"
    "padding:10px 14px}"
    # the comparison table's 13 columns fit a 1280-px window without scrolling sideways
    ".scroll{overflow-x:auto}table{border-collapse:collapse;margin:8px 0;font-size:.9em}"
    "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f6f6f6}"
    "img{max-width:100%;height:auto;display:block;margin:8px 0}"
    "p,li{overflow-wrap:anywhere}"  # long file paths wrap instead of widening the page
)


def remove_report(out_dir):
    """Remove what an earlier :func:`write_report` and ``ComparisonResult.save`` wrote into
    ``out_dir``, so that a report never mixes runs: the report files
    (:data:`REPORT_PATTERNS`) and the models and model cards of the approaches its
    metrics.json names; nothing else.
    """
    from .persistence import SUFFIX

    out = Path(out_dir)
    names = []
    try:
        names = [a["name"] for a in json.loads((out / METRICS).read_text())["approaches"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no earlier run, or not one of ours: only the report files go
    names = [n for n in names if isinstance(n, str) and n and Path(n).name == n]  # no paths
    models = [f"{glob.escape(n)}{suffix}" for n in names for suffix in (SUFFIX, CARD_SUFFIX)]
    for pattern in (*REPORT_PATTERNS, *models):
        for path in out.glob(pattern):
            path.unlink()


def write_report(result, out_dir):
    """Write figures, ``report.md``, ``report.html`` and ``metrics.json`` into ``out_dir``.

    Parameters
    ----------
    result : ComparisonResult
        What to report.
    out_dir : str or path-like
        Created if missing; files of the same names are replaced.

    Returns
    -------
    paths : dict of str to pathlib.Path
        ``report.md``, ``report.html`` and ``metrics.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = _Document(out)
    compared = " vs ".join(r.name for r in result.approaches) or "no approach"
    doc.heading(f"{compared[0].upper()}{compared[1:]}: comparison report", level=1)
    for sentence in result.verdicts():
        doc.paragraph(sentence, css="verdict")
    if result.budget_forecast:  # the forecast in one sentence after the verdict
        doc.paragraph(result.forecast_sentences()[0], css="verdict")
    if result.test_files:
        doc.paragraph(
            f"Every approach is scored on the same {len(result.test_files)} test images, drawn "
            "before anything else and never used for training, validation or early stopping; "
            "intervals are 95%."
        )
        if _overlays_sentence(result):
            doc.paragraph(_overlays_sentence(result))
    doc.table(result.COLUMNS, result.table())
    if result.budget_curve:
        doc.heading("Data budget")
        doc.items(result.budget_matches() or ["no approach matched another with fewer images"])
        doc.items(result.forecast_sentences())
        doc.figure(
            lambda: plot_budget_curve(result.budget_curve, result.budget_forecast),
            BUDGET_CURVE,
            "budget curve",
            [result.budget_curve, result.budget_forecast],
        )
    if any(r.test_report for r in result.approaches):
        doc.heading("Per-class precision, recall and F1 on the test set")
        doc.table(*_test_report_table(result))
    doc.heading("Per-class rates on the validation set")
    doc.table(*_rates_table(result))
    for r in result.approaches:
        doc.heading(r.name)
        doc.paragraph(
            (f"The {r.recipe} recipe: " if r.recipe else "")
            + r.classifier
            + (f", backbone {r.backbone}, weights {r.weights}" if r.backbone else "")
            + f"; {r.n_train} training and {r.n_valid} validation images; batch size "
            f"{r.batch_size}"
        )
        figures = {
            "curves": lambda r=r: plot_curves(r),
            "confusion": lambda r=r: plot_confusion(r, result.classes),
            "predictions": lambda r=r: plot_predictions(r),
        }
        if r.test_predicted is not None:
            plot = plot_overlays if r.test_overlays is not None else plot_mistakes
            figures["mistakes"] = lambda r=r, plot=plot: plot(
                r, result.test_files, result.test_true
            )
            figures["reliability"] = lambda r=r: plot_reliability(r)
        alt = {"mistakes": "mistakes beside class-activation maps"} if r.test_overlays else {}
        shown = [asdict(r), result.classes, result.test_files, result.test_true]
        for figure in FIGURES:
            if figure in figures:
                name = f"{r.name} {alt.get(figure, figure)}"
                doc.figure(figures[figure], f"{r.name}_{figure}.png", name, shown)
    if result.audit is not None:
        doc.heading("Data audit")
        doc.table(*_audit_table(result.audit))
        leaks = result.audit.cross_split_duplicates or []
        doc.items([" = ".join(f"{p} ({s})" for p, s in g) for g in leaks[:20]])
    if result.label_audit is not None:
        doc.heading("Likely label errors")
        sentence = result.label_audit.sentence()
        doc.paragraph(sentence[0].upper() + sentence[1:])
        drawn = doc.figure(
            lambda: plot_label_issues(result.label_audit),
            LABEL_ISSUES,
            "likely label errors",
            asdict(result.label_audit),
        )
        if drawn:
            doc.table(*_label_issues_table(result.label_audit))
    if result.skipped:
        doc.heading("Files left out")
        doc.items([f"{f}: {why}" for f, why in result.skipped])
    paths = {name: out / name for name in (REPORT_MD, REPORT_HTML, METRICS)}
    write_text(paths[REPORT_MD], "\n".join(doc.md))
    body = "".join(
        f'<div class="scroll">{part}</div>' if part.startswith("<table") else part
        for part in doc.html
    )
    write_text(
        paths[REPORT_HTML],
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>sk_animals report</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>",
    )
    write_text(paths[METRICS], json.dumps(result.to_dict(), indent=1))
    return paths
