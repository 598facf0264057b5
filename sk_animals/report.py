"""Figures and report files for a :class:`~sk_animals.evaluation.ComparisonResult`.

The paper's figures: iteration vs accuracy and loss (Figs. 8-9), predicted validation
images (Figs. 10-11), confusion matrices in counts and row-normalised (Figs. 12-13).
"""

import html
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # figures for files: no pyplot, no backend switch
from sklearn.metrics import ConfusionMatrixDisplay

from .preprocessing import ImageLoader

__all__ = ["plot_confusion", "plot_curves", "plot_predictions", "write_report"]


def plot_curves(record, path):
    """Iteration vs accuracy and vs loss, training and validation, for one approach."""
    curves = record["curves"]
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, key, title in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        train, valid = curves["train"], curves["valid"]
        ax.plot(train["iteration"], train[key], lw=0.8, alpha=0.7, label="training (mini-batch)")
        if valid["iteration"]:
            ax.plot(valid["iteration"], valid[key], "o--", ms=3, color="k", label="validation")
        ax.set(xlabel="Iteration", ylabel=title, title=f"{record['name']}: {title.lower()}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(path, dpi=100)


def plot_confusion(record, classes, path):
    """Confusion matrix in counts and row-normalised, side by side."""
    cm = np.asarray(record["confusion_matrix"])
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
        ax.set_title(f"{record['name']}: {title}")
    fig.savefig(path, dpi=100)


def plot_predictions(record, path, n=16, random_state=0):
    """A grid of validation images titled predicted (true); mistakes in red."""
    files = np.asarray(record["validation_files"])
    rng = np.random.default_rng(random_state)
    pick = np.sort(rng.choice(len(files), size=min(n, len(files)), replace=False))
    images = ImageLoader(96, resize="pad").transform(files[pick])
    cols = 4
    rows = int(np.ceil(len(pick) / cols))
    fig = Figure(figsize=(2.4 * cols, 2.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, i in zip(axes.flat, images, pick, strict=False):
        true, pred = record["validation_true"][i], record["validation_predicted"][i]
        ax.imshow(image)
        wrong = true != pred
        ax.set_title(
            f"{pred}" + (f" (true: {true})" if wrong else ""),
            fontsize=9,
            color="red" if wrong else "black",
        )
    fig.suptitle(f"{record['name']}: validation predictions (mistakes in red)")
    fig.savefig(path, dpi=100)


def _rates_markdown(result):
    names = [r["name"] for r in result.approaches]
    header = "| Class | " + " | ".join(f"{n} TPR | {n} FPR" for n in names) + " |"
    rule = "|---|" + "---|---|" * len(names)
    rows = [
        f"| {c} | "
        + " | ".join(
            f"{r['per_class'][c]['tpr']:.2%} | {r['per_class'][c]['fpr']:.2%}"
            for r in result.approaches
        )
        + " |"
        for c in result.classes
    ]
    return "\n".join([header, rule, *rows])


def _markdown_table_to_html(markdown):
    lines = [line.strip("|").split("|") for line in markdown.splitlines()]
    head = "".join(f"<th>{html.escape(c.strip())}</th>" for c in lines[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in row) + "</tr>"
        for row in lines[2:]
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(result, out_dir):
    """Write figures, ``report.md``, ``report.html`` and ``metrics.json`` into ``out_dir``.

    Parameters
    ----------
    result : ComparisonResult
    out_dir : str or path-like
        Created if missing; files of the same names are replaced.

    Returns
    -------
    paths : dict of str to pathlib.Path
        ``report.md``, ``report.html`` and ``metrics.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = []
    for record in result.approaches:
        name = record["name"]
        figures = {
            "curves": f"{name}_curves.png",
            "confusion": f"{name}_confusion.png",
            "predictions": f"{name}_predictions.png",
        }
        plot_curves(record, out / figures["curves"])
        plot_confusion(record, result.classes, out / figures["confusion"])
        plot_predictions(record, out / figures["predictions"])
        settings = (
            f"{record['classifier']}"
            + (
                f", backbone {record['backbone']}, weights {record['weights']}"
                if record["backbone"]
                else ""
            )
            + f"; {record['n_train']} training and {record['n_valid']} validation "
            f"images; batch size {record['batch_size']}"
        )
        sections.append((name, settings, figures))
    table, rates = result.to_markdown(), _rates_markdown(result)
    skipped = "".join(f"\n- `{f}`: {why}" for f, why in result.skipped)
    md = [
        "# Scratch vs transfer: comparison report",
        "",
        table,
        "",
        "## Per-class rates on the validation set",
        "",
        rates,
        "",
    ]
    for name, settings, figures in sections:
        md += [f"## {name}", "", settings, ""]
        md += [f"![{name} {kind}]({file})" for kind, file in figures.items()]
        md.append("")
    if skipped:
        md += ["## Files left out", skipped, ""]
    paths = {
        "report.md": out / "report.md",
        "report.html": out / "report.html",
        "metrics.json": out / "metrics.json",
    }
    paths["report.md"].write_text("\n".join(md))
    body = [
        f"<h1>Scratch vs transfer: comparison report</h1>{_markdown_table_to_html(table)}",
        f"<h2>Per-class rates on the validation set</h2>{_markdown_table_to_html(rates)}",
    ]
    for name, settings, figures in sections:
        body.append(
            f"<h2>{html.escape(name)}</h2><p>{html.escape(settings)}</p>"
            + "".join(f'<img src="{f}" alt="{html.escape(name)} {k}">' for k, f in figures.items())
        )
    if skipped:
        body.append(
            "<h2>Files left out</h2><ul>"
            + "".join(
                f"<li><code>{html.escape(f)}</code>: {html.escape(w)}</li>"
                for f, w in result.skipped
            )
            + "</ul>"
        )
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
        "img{max-width:100%;display:block;margin:8px 0}"
    )
    paths["report.html"].write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>sk_animals report</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )
    paths["metrics.json"].write_text(json.dumps(result.to_dict(), indent=1))
    return paths
