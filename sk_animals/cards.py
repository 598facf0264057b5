"""Model cards: what a fitted model is, what it was trained on and how far to trust it.

A card is a Hugging Face model card (``huggingface_hub.ModelCard``): YAML metadata whose
``model-index`` holds the scores on the common test set, then Markdown. It says what the
model is (approach, network, backbone, the weights' source and licence, the model file's
sha256), its intended use and limits, its training data with what the data audit found,
its evaluation (accuracy with its interval, per-class precision, recall and F1, the
calibration error, the confusion matrix), how to run it and the environment it was fitted
in. ``ComparisonResult.save`` writes one beside each model; ``sk-animals card`` writes the
part that needs no evaluation. Nothing here computes a metric: the numbers are the
comparison's, as ``metrics.json`` holds them.

Names from the data (classes, files, approaches) are escaped for Markdown
(``sk_animals._text.markdown_text``) and written into the YAML by ``yaml.dump``.
"""

import os
import re
import shlex
from importlib.metadata import version
from pathlib import Path

import torch
from sklearn.pipeline import Pipeline

from ._backbones import weights_source
from ._base import ImageClassifier
from ._files import file_sha256, write_text
from ._tensors import resolve_device
from ._text import markdown_text
from ._timm import is_timm
from ._version import __version__
from .persistence import file_versions, load
from .preprocessing import ImageLoader
from .report import markdown_table
from .stats import verdict
from .transfer import LinearProbe, PretrainedFeatures, TransferClassifier

__all__ = ["model_card", "write_model_card"]

#: The packages whose versions a card names.
_PACKAGES = ("torch", "skorch", "scikit-learn", "safetensors")


def _fitted(model, model_path):
    """The fitted model and the path of its file (None for a model only in memory)."""
    if isinstance(model, str | os.PathLike):
        model_path = model if model_path is None else model_path
        model = load(model, device="cpu")
    if not hasattr(model, "classes_"):
        raise ValueError(
            f"model_card needs a fitted classifier or pipeline, got a {type(model).__name__}"
        )
    return model, model_path


def _approach(result, name):
    """The :class:`~sk_animals.results.ApproachResult` of ``name`` in ``result``, or None."""
    if result is None:
        return None
    names = [r.name for r in result.approaches]
    if name is None and len(names) == 1:
        name = names[0]
    if name not in names:
        raise ValueError(
            f"name={name!r}: give the approach of the result the model is, one of "
            f"{', '.join(map(repr, names))}"
        )
    return result.approaches[names.index(name)]


def _parts(model):
    """The loader, frozen features, and final step of ``model`` (None where absent)."""
    steps = [s for _, s in model.steps] if isinstance(model, Pipeline) else [model]
    loader = next((s for s in steps if isinstance(s, ImageLoader)), None)
    features = next((s for s in steps if isinstance(s, PretrainedFeatures)), None)
    return loader, features, steps[-1]


def _summary(obj):
    """The first paragraph of a class's docstring, without reStructuredText markup."""
    doc = (type(obj).__doc__ or "").strip().split("\n\n")[0]
    doc = re.sub(r":\w+:`~?([^`]+)`", r"\1", doc).replace("``", "")
    return " ".join(doc.split()).rstrip(".") or type(obj).__name__


def _md(text):
    return markdown_text(text)


def _code(language, lines):
    """A fenced code block: longer fences than any run of backticks inside, so that a
    file name cannot close it."""
    text = "\n".join(lines)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{language}", text, fence, ""]


def _what(features, final):
    """What the model is, in words (Markdown), and its backbone step."""
    backbone = final if isinstance(final, TransferClassifier) else features
    if isinstance(final, TransferClassifier):
        network = type(final.module_).__name__
        what = (
            f"{type(final).__name__}: the pretrained {_md(final.backbone)} with a new head of "
            f"{len(final.classes_)} outputs, fine-tuned ({network}, freeze={final.freeze!r}, "
            f"head initialised {final.init_head!r})"
        )
    elif isinstance(final, ImageClassifier):
        network = final.module_
        what = (
            f"{type(final).__name__}: a network trained from scratch, "
            f"{type(network).__name__} ({_md(_summary(network))})"
        )
    elif isinstance(final, LinearProbe) and features is not None:
        what = (
            f"{type(final).__name__} on the frozen features of the pretrained "
            f"{_md(features.backbone)} ({features.n_features_out_} values per image): "
            f"{_md(_summary(final))}"
        )
    else:
        what = f"{type(final).__name__} ({_md(_summary(final))})"
    return what, backbone


def _settings(final, record):
    """The training settings of the final step, as list items."""
    if isinstance(final, ImageClassifier):
        epochs = f"{final.max_epochs} epoch" + ("s" if final.max_epochs != 1 else "")
        if record is not None and record.epochs_run is not None:
            stopped = f", stopped by {record.stopped}" if record.stopped else ""
            epochs += f" asked for, {record.epochs_run} run{stopped}"
        return [
            f"optimizer {final.optimizer.__name__}, learning rate {final.lr:g}"
            + (f" ({final.lr_schedule} schedule)" if final.lr_schedule else "")
            + f", batch size {final.batch_size}, {epochs}",
            f"augmentation: random flips {final.random_flip}, random shifts up to "
            f"{final.random_translate:.0%}; test-time flips {final.tta}",
        ]
    if isinstance(final, LinearProbe):
        return [f"L2-regularised logistic regression, C={final.C:g}, max_iter={final.max_iter}"]
    return []


def _input(loader, final, features):
    """How the model sees an image, as items."""
    items = []
    if loader is not None:
        items.append(
            f"images decoded and resized to {loader.size} px by ImageLoader "
            f"(resize={loader.resize!r}, interpolation={loader.interpolation!r}, "
            f"crop_pct={loader.crop_pct:g})"
        )
    else:
        h, w = getattr(final, "image_size_", ("?", "?"))
        items.append(
            f"uint8 arrays of shape (n, {h}, {w}, 3): the model has no ImageLoader, so the "
            "caller decodes and resizes images as in training"
        )
    stats = final if isinstance(final, ImageClassifier) else features
    if stats is not None:
        mean = ", ".join(f"{v:.4g}" for v in stats.mean_)
        std = ", ".join(f"{v:.4g}" for v in stats.std_)
        scratch = isinstance(final, ImageClassifier) and not isinstance(final, TransferClassifier)
        origin = "the training images'" if scratch else "the pretrained weights'"
        items.append(f"normalised by RGB mean ({mean}) and std ({std}), {origin}")
    return items


def _details(model, model_path, record, parts):
    loader, features, final = parts
    what, backbone = _what(features, final)
    lines = ["## Model details", ""]
    items = [f"Model: {what}"]
    if record is not None:
        recipe = f"the {record.recipe} recipe" if record.recipe else "a pipeline of your own"
        items.insert(0, f"Approach: {_md(record.name)}, {_md(recipe)}")
    source = None
    if backbone is not None:
        source = weights_source(backbone.backbone, backbone.weights)
        items.append(f"Backbone: {_md(backbone.backbone)}; weights: {_md(source.description)}")
        if source.recipe:
            items.append(f"Weights' training recipe: <{source.recipe}>")
        if backbone.weights is not None:
            items.append(
                f"Weights' licence: {source.license}"
                if source.license
                else "Weights' licence: not stated by their source; check it before you "
                "distribute this model"
            )
    else:
        items.append(
            "Weights: trained from random initialisation on the training images below; no "
            "pretrained weights"
        )
    items += [f"Training: {s}" for s in _settings(final, record)]
    items += [f"Input: {s}" for s in _input(loader, final, features)]
    items.append(f"Classes: {len(model.classes_)}")
    if model_path is not None:
        path = Path(model_path)
        items.append(
            f"Model file: {_md(path.name)}, {path.stat().st_size} bytes, sha256 "
            f"{file_sha256(path)}"
        )
    lines += [f"- {item}" for item in items] + [""]
    return lines, source


def _use(model, record, result, loader):
    classes = [str(c) for c in model.classes_]
    lines = ["## Intended use and limits", ""]
    size = f" to {loader.size} px" if loader is not None else ""
    lines += [
        f"Sorting images into one of its {len(classes)} classes: "
        + ", ".join(f"**{_md(c)}**" for c in classes)
        + f". It saw its images resized{size}; use it on images like those it was trained "
        "on.",
        "",
        "Limits:",
        "",
        f"- It always answers one of its {len(classes)} classes: an image of anything else "
        "gets one of them, often with high confidence.",
        "- Not tested on images from other sources (cameras, lighting, framing, sizes) "
        "than its data, nor on edited or adversarial images; the scores are averages over "
        "the test images, not guarantees for a sub-group of a class.",
    ]
    if record is None:
        lines.append(
            "- Not evaluated: this card describes the model alone. Measure it on held-out "
            "images before you rely on it; `sk-animals compare` writes each model's card "
            "with its scores on a common test set."
        )
    elif record.test_accuracy is None:
        lines.append("- Not scored on a test set (the comparison ran without one).")
    if result is not None and result.notes:
        lines += ["", "What the comparison says its reader must know:", ""]
        lines += [f"- {_md(note[:1].upper() + note[1:])}" for note in result.notes]
    return lines + [""]


def _audit_items(result, record):
    items = []
    audit = result.audit
    if audit is not None:
        counts = audit.summary()
        items.append(
            f"The data audit of all {audit.n_images} images found "
            f"{counts['exact_duplicate_groups']} groups of exact duplicates, "
            f"{counts['near_duplicate_groups']} of near duplicates, "
            f"{counts['label_conflicts']} whose copies carry different labels, and "
            f"{counts['cross_split_duplicates']} that span the test set and the rest; "
            f"{len(audit.unreadable)} unreadable files"
        )
    if result.deduplicated:
        items.append(
            f"{len(result.deduplicated)} duplicate images were left out before any split "
            "(deduplication)"
        )
    labels = result.label_audit
    if labels is not None:
        seen = set(record.training_files) | set(record.validation_files)
        mine = sum(r["path"] in seen for r in labels.train)
        found = (
            f"Likely label errors (confident learning on {_md(labels.approach)}'s held-out "
            f"probabilities): {len(labels.train)} of {labels.n_train} training-pool images "
            f"and {len(labels.test)} of {labels.n_test} test images"
        )
        if labels.dropped:
            found += "; the flagged training-pool images were left out of training"
        else:
            found += f"; this model trained or validated on {mine} of them"
        items.append(found)
    return items


def _data(record, result):
    lines = ["## Training data", ""]
    if record is None:
        return lines + [
            "Not recorded in the model file: a model fitted in Python carries no list of "
            "its images.",
            "",
        ]
    lines += [
        f"{record.n_train} training and {record.n_valid} validation images (the validation "
        "images are watched during training and never trained on), at most "
        f"{record.images_per_class} per class, drawn from the images the common test set "
        "leaves.",
        "",
    ]
    if record.class_counts:
        total = result.audit.class_counts if result.audit is not None else {}
        columns = ["Class", "Training", "Validation"] + (["In the data"] if total else [])
        rows = []
        for label, n in record.class_counts.items():
            row = [label, str(n["train"]), str(n["valid"])]
            rows.append(row + ([str(total.get(label, "-"))] if total else []))
        lines += [markdown_table(columns, rows), ""]
    lines += [f"- {item}" for item in _audit_items(result, record)]
    return lines + [""]


def _evaluation(record, result, classes):
    lines = ["## Evaluation", ""]
    if record is None:
        return lines + ["Not evaluated.", ""]
    scores = [f"Validation accuracy: {record.validation_accuracy:.2%}"]
    scores.append(f"Training accuracy: {record.training_accuracy:.2%}")
    if record.cv is not None:
        cv = record.cv
        scores.append(
            f"Cross-validation accuracy: {cv.mean:.2%} ± {cv.std:.2%} ({cv.folds} folds)"
        )
    if record.test_accuracy is None:
        return lines + [f"- {s}" for s in scores] + [""]
    low, high = record.test_ci95
    lines += [
        f"On the common test set of {len(result.test_files)} images, drawn before anything "
        "else and never used for training, validation or early stopping:",
        "",
        f"- **Test accuracy: {record.test_accuracy:.2%}** (95% interval {low:.1%} to {high:.1%})",
    ]
    macro = record.test_report.get("macro avg", {})
    if macro:
        lines.append(
            f"- Macro-averaged precision {macro['precision']:.3f}, recall "
            f"{macro['recall']:.3f}, F1 {macro['f1-score']:.3f}"
        )
    if record.calibration is not None:
        lines.append(
            f"- Expected calibration error of the top-label confidence: "
            f"{record.calibration['ece']:.3f} (0 is perfectly calibrated)"
        )
    lines += [f"- {s}" for s in scores]
    lines += [
        f"- {_md(verdict(d.a, d.b, d.difference))}"
        for d in result.differences
        if record.name in (d.a, d.b)
    ]
    per_class = [
        [c, *(f"{record.test_report[c][k]:.3f}" for k in ("precision", "recall", "f1-score"))]
        + [str(int(record.test_report[c]["support"]))]
        for c in classes
        if c in record.test_report
    ]
    lines += ["", "Per class on the test set:", ""]
    lines += [markdown_table(["Class", "Precision", "Recall", "F1", "Test images"], per_class)]
    if record.test_confusion_matrix is not None:
        rows = [
            [c, *map(str, row)]
            for c, row in zip(classes, record.test_confusion_matrix, strict=True)
        ]
        lines += ["", "Confusion matrix on the test set (rows: true class, columns: predicted):"]
        lines += ["", markdown_table(["True \\ predicted", *classes], rows)]
    return lines + [""]


def _how_to(model, model_path, loader, final):
    file = Path(model_path).name if model_path is not None else "model.skmodel"
    onnx = f"{Path(file).stem}.onnx"
    lines = ["## How to use", "", "In Python (loading reads weights and settings, runs no code):"]
    lines += [""] + _code(
        "python",
        [
            "import sk_animals",
            "",
            f"model = sk_animals.load({file!r})",
            "labels = model.predict(['photo.jpg'])  # image paths, arrays or PIL images",
            "proba = model.predict_proba(['photo.jpg'])  # columns in model.classes_ order",
        ],
    )
    lines += ["On the command line (a CSV row per file, unreadable files kept as rows):", ""]
    lines += _code(
        "bash", [f"sk-animals predict {shlex.quote(file)} photos/ --out predictions.csv"]
    )
    precision = getattr(final, "precision_", "fp32")
    if isinstance(model, Pipeline) and loader is not None and precision != "fp32":
        lines += [f"Not exportable to ONNX: it predicts in {precision}, the graph in fp32.", ""]
    elif isinstance(model, Pipeline) and loader is not None:
        lines += [
            "As one ONNX file with the preprocessing inside, run without torch "
            "(`pip install 'sk-animals[onnx]'`):",
            "",
        ]
        lines += _code("bash", [f"sk-animals export {shlex.quote(file)} {shlex.quote(onnx)}"])
        lines += _code(
            "python",
            [
                "from sk_animals.deploy import predict_onnx",
                "",
                f"proba = predict_onnx({onnx!r}, ['photo.jpg'])",
            ],
        )
    return lines


def _environment(model_path, record, parts):
    _, features, final = parts
    lines = ["## Environment", ""]
    if model_path is not None:
        recorded = file_versions(model_path)
        versions = {k: recorded.get(k, "?") for k in ("sk_animals", *_PACKAGES)}
        said = f"recorded in the model file (format {recorded['format']})"
    else:
        versions = {"sk_animals": __version__, **{p: version(p) for p in _PACKAGES}}
        said = "of the process that wrote this card"
    items = [", ".join(f"{k} {_md(v)}" for k, v in versions.items()) + f": {said}"]
    network = final if isinstance(final, ImageClassifier) else features
    if network is not None:
        if record is not None:  # fitted in this process (or restored from its checkpoint)
            device = str(resolve_device(network.device))
            if device.startswith("cuda") and torch.cuda.is_available():
                device += f" ({torch.cuda.get_device_name(torch.device(device))})"
            items.append(f"Device: {device}")
        else:
            items.append("Device: not recorded in the model file")
    precision = getattr(final, "precision_", None)
    if precision is not None:
        items.append(f"Precision: {precision} (what the network's fit and predictions run)")
    elif features is not None:
        items.append("Precision: fp32 features, a float64 logistic regression on the host")
    return lines + [f"- {item}" for item in items] + [""]


def _eval_results(record, result):
    """The test scores for the card's ``model-index``, as huggingface_hub's EvalResult."""
    from huggingface_hub import EvalResult

    if record is None or record.test_accuracy is None:
        return None
    common = {
        "task_type": "image-classification",
        "task_name": "Image classification",
        "dataset_type": "imagefolder",
        "dataset_name": f"common test set ({len(result.test_files)} images)",
        "dataset_split": "test",
    }
    scores = [("accuracy", "Test accuracy", record.test_accuracy, None)]
    macro = record.test_report.get("macro avg", {})
    for key, metric, label in (
        ("precision", "precision", "Macro precision"),
        ("recall", "recall", "Macro recall"),
        ("f1-score", "f1", "Macro F1"),
    ):
        if key in macro:
            scores.append((metric, label, macro[key], {"average": "macro"}))
    if record.calibration is not None:
        ece = record.calibration["ece"]
        scores.append(("ece", "Expected calibration error", ece, None))
    return [
        EvalResult(metric_type=t, metric_name=n, metric_value=v, metric_args=a, **common)
        for t, n, v, a in scores
    ]


def model_card(model, *, result=None, name=None, model_path=None):
    """A Hugging Face model card of a fitted model: YAML metadata, then Markdown.

    The card says what the model is (approach, network, backbone, the weights' source and
    licence, its file's sha256), its intended use and limits, its training data with what
    the data audit found, its evaluation on the common test set, how to run it (Python,
    ``sk-animals predict``, ONNX) and the environment it was fitted in. With ``result``,
    the metadata's ``model-index`` holds the test accuracy, the macro-averaged precision,
    recall and F1 and the expected calibration error, exactly as ``metrics.json`` has
    them; without it, the card says that the model has not been evaluated.

    Parameters
    ----------
    model : Pipeline, estimator, str or path-like
        A fitted sk_animals pipeline or classifier, or the path of a ``.skmodel`` file
        (loaded on the CPU with :func:`sk_animals.load`).
    result : ComparisonResult, default=None
        The comparison that fitted and scored ``model``
        (:func:`~sk_animals.evaluation.compare`).
    name : str, default=None
        The approach of ``result`` that ``model`` is; may be left out when ``result``
        has one approach.
    model_path : str or path-like, default=None
        The ``.skmodel`` file of ``model``, for its sha256 and the versions it records;
        ``model`` itself when that is a path.

    Returns
    -------
    card : huggingface_hub.ModelCard
        ``str(card)`` is the file's text; ``card.data.to_dict()`` the metadata.

    Raises
    ------
    ValueError
        ``model`` is not fitted or not a model file, or ``name`` is not an approach
        of ``result``; one line.

    See Also
    --------
    write_model_card : Write it to a file.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sk_animals import ImageLoader, ScratchCNNClassifier
    >>> from sk_animals.cards import model_card
    >>> from sk_animals.datasets import make_image_dataset
    >>> X, y = make_image_dataset(n_samples=16, n_classes=2, size=16, random_state=0)
    >>> clf = ScratchCNNClassifier(width=2, depth=2, max_epochs=1, verbose=0)
    >>> card = model_card(make_pipeline(ImageLoader(16), clf).fit(list(X), y))
    >>> card.data.pipeline_tag, card.data.library_name
    ('image-classification', 'sk-animals')
    >>> "Not evaluated" in card.text
    True
    """
    model, model_path = _fitted(model, model_path)
    record = _approach(result, name)
    parts = _parts(model)
    loader, _, final = parts
    title = record.name if record is not None else None
    if title is None and model_path is not None:
        title = Path(model_path).stem
    title = title or "sk_animals model"
    details, source = _details(model, model_path, record, parts)
    body = [f"# {_md(title)}", ""]
    body += details + _use(model, record, result, loader) + _data(record, result)
    body += _evaluation(record, result, [str(c) for c in model.classes_]) + _how_to(
        model, model_path, loader, final
    )
    body += _environment(model_path, record, parts)
    tags = ["image-classification", "sk-animals", "skorch", "scikit-learn"]
    backbone = getattr(parts[2], "backbone", None) or getattr(parts[1], "backbone", None)
    if is_timm(backbone):
        tags.append("timm")
    return _card(title, tags, source, _eval_results(record, result), "\n".join(body))


def _card(title, tags, source, eval_results, body):
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        model_name=title,
        library_name="sk-animals",
        pipeline_tag="image-classification",
        tags=tags,
        license=None if source is None else source.license,
        base_model=None if source is None else source.hub_id,
        metrics=None if eval_results is None else sorted({e.metric_type for e in eval_results}),
        eval_results=eval_results,
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body.rstrip()}\n")


def write_model_card(model, path, **kwargs):
    """Write the :func:`~sk_animals.cards.model_card` of ``model`` to ``path``, atomically.

    Parameters
    ----------
    model : Pipeline, estimator, str or path-like
        As in :func:`model_card`.
    path : str or path-like
        The Markdown file to write, conventionally ``<model>.md`` beside the model.
    **kwargs
        ``result``, ``name`` and ``model_path``, as in :func:`model_card`.

    Returns
    -------
    path : str or path-like
        ``path``, as given.
    """
    write_text(path, str(model_card(model, **kwargs)))
    return path
