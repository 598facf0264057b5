"""The options of the ``sk-animals`` command: its parser and the types that check them.

Every option is parsed and checked here before any work starts; the commands are in
:mod:`sk_animals.cli`. Importing this module imports neither torch nor scikit-learn, so
``--help`` is instant; the protocols' numbers in the help come from
:mod:`sk_animals.protocols`.
"""

import argparse

from ._backbones import BACKBONES
from .protocols import APPROACHES, DEMO, NETWORKS, PAPER, RECIPES, RECOMMENDED


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(minimum, maximum=None):
    """An argparse type: an integer of at least ``minimum`` (and at most ``maximum``)."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def _jobs(text):
    """An argparse type: joblib's ``n_jobs``, a positive count or -1 for all cores."""
    value = _count(-1)(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be a positive count or -1 (all cores), got 0")
    return value


def _folds(text):
    """An argparse type: cross-validation folds, 0 (none) or at least 2."""
    value = _count(0)(text)
    if value == 1:
        raise argparse.ArgumentTypeError("must be 0 (no cross-validation) or at least 2, got 1")
    return value


#: The seeds numpy and scikit-learn accept: 0 to 2**32 - 1.
_seed = _count(0, 2**32 - 1)


def _budgets(text):
    """An argparse type: comma-separated images-per-class budgets."""
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list like 10,25,50") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"budgets must be whole numbers >= 1, got {text!r}")
    return values


def _approach_list(text):
    """An argparse type: comma-separated approaches of ``APPROACHES``, in their order."""
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [n for n in names if n not in APPROACHES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: choose one or more of {','.join(APPROACHES)}, separated by commas"
        )
    return tuple(a for a in APPROACHES if a in names)


def _fraction(text):
    """An argparse type: a number in (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _add_common(p, *, data_help):
    p.add_argument("data_dir", nargs="?", help=data_help)
    p.add_argument("--demo", action="store_true", help="use the built-in synthetic image set")
    p.add_argument(
        "--device", default="auto", help="'auto' (CUDA if available), 'cpu', 'cuda', 'cuda:1' ..."
    )
    p.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help="seed for sampling, splits and training, 0 to 4294967295",
    )
    p.add_argument(
        "--per-class", type=_count(1), default=None, help="images per class (default: all)"
    )
    p.add_argument(
        "--image-size",
        type=_count(16),
        default=None,
        help="image side in pixels, for every approach",
    )
    p.add_argument(
        "--weights",
        default="DEFAULT",
        help="transfer weights: 'DEFAULT' (for the recommended recipe's and the demo's "
        "EfficientNet-Lite0 the weights that come with the package; else timm's through "
        "the Hugging Face cache in $HF_HOME, "
        "torchvision's in $TORCH_HOME), a torchvision name such as 'IMAGENET1K_V1', or the "
        "path of a state-dict file",
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="keep decoded images in this folder, so that the next run skips decoding "
        "(and torch.compile's kernels in its inductor/ folder, unless "
        "TORCHINDUCTOR_CACHE_DIR is set)",
    )
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def build_parser():
    """The argument parser of ``sk-animals``."""
    from ._version import __version__

    parser = _Parser(
        prog="sk-animals",
        description="Train a CNN from scratch or transfer an ImageNet network? "
        "Compare both on a folder of labelled photos.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser(
        "compare",
        help="run the approaches and write a report",
        description="Cross-validate and fit the from-scratch CNN, the fine-tuned transfer "
        "model and the backbone's linear probe on the same images (each at its best, or as "
        "the paper did with --recipe paper), then write report.html, report.md, "
        "metrics.json, figures and the fitted pipelines (.skmodel) into --out. "
        "Ctrl-C stops the run; approaches already finished stay in --out.",
    )
    _add_common(
        c,
        data_help="folder with one subfolder of images per class (Kaggle's Animals-10 "
        "layout is recognised), or a .csv file with path and label columns",
    )
    c.add_argument("--out", required=True, help="output folder for the report and models")
    c.add_argument(
        "--overwrite", action="store_true", help="replace the files of an earlier run in --out"
    )
    c.add_argument(
        "--resume",
        action="store_true",
        help="go on with an interrupted run in --out (Ctrl-C, a kill, a reboot): its finished "
        "approaches are restored, not run again; the other arguments must be the same",
    )
    c.add_argument(
        "--recipe",
        choices=tuple(RECIPES),
        default=next(iter(RECIPES)),
        help="how each approach trains and sees its images. recommended (default): "
        "scratch.RECOMMENDED (a residual network, one-cycle schedule, flips and shifts) at "
        f"{RECOMMENDED.scratch.image_size} px, transfer.RECOMMENDED (the head trained from "
        f"the linear probe on the frozen body) and the probe on {RECOMMENDED.backbone}, "
        "images as the weights expect, every image the test set leaves. paper: the study's "
        f"recipes: the paper's CNN and settings at {PAPER.scratch.image_size} px, "
        f"{PAPER.scratch.per_class} images per class, {PAPER.scratch.epochs} epochs; "
        f"{PAPER.backbone} fine-tuned with the paper's settings at "
        f"{BACKBONES[PAPER.backbone].size} px, stretched, {PAPER.transfer.per_class} per "
        f"class, {PAPER.transfer.epochs} epochs; {PAPER.folds} folds",
    )
    c.add_argument(
        "--cv",
        "--folds",
        type=_folds,
        default=None,
        help="stratified cross-validation folds, at least 2, or 0 to skip "
        f"(default: {PAPER.folds}; demo: {DEMO.folds})",
    )
    c.add_argument(
        "--approaches",
        type=_approach_list,
        default=APPROACHES,
        help=f"which to run, comma-separated (default: {','.join(APPROACHES)}; the paper's "
        "two: scratch,transfer); the probe is the transfer backbone's frozen features with "
        "a logistic regression",
    )
    c.add_argument(
        "--epochs",
        type=_count(1),
        default=None,
        help="epochs of the approaches that train a network (default: the recipe's; "
        f"paper: {PAPER.scratch.epochs} scratch, {PAPER.transfer.epochs} transfer)",
    )
    c.add_argument(
        "--backbone",
        default=None,
        help="pretrained network of the transfer approach: timm/<name> for any timm model "
        "(e.g. timm/tf_efficientnet_lite0), or any torchvision classification "
        f"model, e.g. {', '.join(sorted(BACKBONES))} (default: the recipe's, "
        f"{RECOMMENDED.backbone} or the paper's {PAPER.backbone})",
    )
    c.add_argument(
        "--test-size",
        type=_fraction,
        default=0.2,
        help="fraction of all images held out first as the common test set (default 0.2)",
    )
    c.add_argument(
        "--budgets",
        type=_budgets,
        default=None,
        help="images-per-class budgets for the data-budget curve, e.g. 10,25,50,100",
    )
    c.add_argument(
        "--target-accuracy",
        type=_fraction,
        default=None,
        help="with --budgets: forecast the images per class each approach needs to reach "
        "this accuracy, a fraction such as 0.9",
    )
    c.add_argument(
        "--n-jobs",
        type=_jobs,
        default=None,
        help="fits run at once: cross-validation folds and budget points (-1: all cores)",
    )
    c.add_argument(
        "--dedupe",
        action="store_true",
        help="keep one image of each exact or near-duplicate group before any split",
    )
    labels = c.add_mutually_exclusive_group()
    labels.add_argument(
        "--no-label-issues",
        dest="label_issues",
        action="store_false",
        help="do not look for likely label errors (by default the probe's frozen features "
        "flag them by confident learning, listed in the report)",
    )
    labels.add_argument(
        "--drop-label-issues",
        action="store_true",
        help="leave the likely mislabelled images out of training (needs the probe "
        "approach; flagged test images stay in the test set and are counted)",
    )
    c.add_argument(
        "--no-overlays",
        dest="overlays",
        action="store_false",
        help="leave the class-activation maps out of the report (by default, when "
        "pytorch-grad-cam is installed, each approach's most confident test mistakes and a "
        "few correct predictions are shown beside where its network found the evidence)",
    )
    verbosity = c.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-v", "--verbose", action="store_true", help="print every epoch, with a progress bar"
    )
    verbosity.add_argument("-q", "--quiet", action="store_true", help="print nothing")

    t = sub.add_parser(
        "tune",
        help="search hyperparameters with Optuna",
        description="Run (or join) an Optuna study over one approach's hyperparameters, "
        "pruning bad trials per epoch. The approach is built as 'compare' builds it: the "
        "protocol's image size, the backbone's preprocessing and weights (with --demo, the "
        "demo's images, budget and embedded weights); the backbone itself is not searched. "
        "Start the same command on several machines with one --storage database to share "
        "the study; run it again to resume.",
    )
    _add_common(
        t, data_help="folder with one subfolder per class, or a .csv with path and label columns"
    )
    t.add_argument(
        "--approach",
        choices=NETWORKS,
        default=NETWORKS[0],
        help="which classifier to tune (default: scratch)",
    )
    t.add_argument(
        "--n-trials",
        type=_count(1),
        default=20,
        help="trials the study stops at, counted over all workers",
    )
    t.add_argument(
        "--storage",
        default=None,
        help="study.db (SQLite), an RDB URL such as postgresql://user:pw@host/db, "
        "or a .log journal file; in memory by default",
    )
    t.add_argument(
        "--study-name",
        default=None,
        help="study to create or join (default with --storage: sk-animals-<classifier>, so "
        "running the same command again resumes it)",
    )
    t.add_argument(
        "--timeout", type=float, default=None, help="stop starting trials after this many seconds"
    )
    t.add_argument(
        "--backbone",
        default=None,
        help="the backbone the transfer approach fine-tunes (not searched): timm/<name> for "
        "any timm model, or any torchvision classification model "
        f"(default: the paper's {PAPER.backbone}; demo: {DEMO.backbone})",
    )
    t.add_argument(
        "--out",
        default=None,
        help="write the best pipeline, refitted on all the data, to this .skmodel file",
    )
    t.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    p = sub.add_parser(
        "predict",
        help="label images with a saved pipeline",
        description="Predict labels and probabilities with a .skmodel pipeline written by "
        "'compare' or 'tune' (weights and settings only: loading runs no code), or an .onnx "
        "file written by 'export' (then torch is not imported). Files are "
        "decoded on every core and predicted in batches; a file that cannot be read gets an "
        "error row and the others go on. Exit status 0 when any file was predicted, 1 when "
        "none was.",
    )
    p.add_argument(
        "model",
        help="a .skmodel file written by 'sk-animals compare' or 'tune', or an .onnx file "
        "written by 'sk-animals export' (run without torch)",
    )
    p.add_argument(
        "--engine",
        choices=("auto", "onnxruntime", "torch"),
        default="auto",
        help="what runs a .skmodel: 'onnxruntime' exports it in memory (its probabilities "
        "checked against torch's) and runs ONNX Runtime, faster on a CPU; 'torch' runs it as "
        "saved; 'auto' (the default) is onnxruntime where sk-animals[onnx] is installed and "
        "the model exports exactly, else torch",
    )
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="also load a .joblib pickle; only for files you made: a pickle runs code",
    )
    p.add_argument(
        "images",
        nargs="+",
        metavar="PATH",
        help="image files, folders (searched recursively) or a .csv with a path column",
    )
    p.add_argument(
        "--out",
        default=None,
        help="write path, label, confidence, proba_<class>... and error columns to this CSV",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--top-k", type=_count(1), default=0, help="also give the K most likely labels")
    p.add_argument(
        "--batch-size", type=_count(1), default=256, help="images decoded and predicted together"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary line")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")

    e = sub.add_parser(
        "export",
        help="write a saved pipeline as one ONNX file",
        description="Export a .skmodel pipeline to one self-contained ONNX file: uint8 images "
        "(n, height, width, 3) at the model's size in, class probabilities out, with the "
        "normalisation, the network, test-time flips and softmax inside. Its metadata names the "
        "classes, the input size, the loader's resize rule and the sha256 of MODEL; the "
        "probabilities are checked against the model's before the file is written. Needs "
        "pip install 'sk-animals[onnx]'.",
    )
    e.add_argument(
        "model", metavar="MODEL", help="a .skmodel file written by 'sk-animals compare' or 'tune'"
    )
    e.add_argument("out", metavar="OUT", help="the .onnx file to write")
    e.add_argument("--overwrite", action="store_true", help="replace an existing OUT file")
    e.add_argument("--debug", action="store_true", help="show the full traceback of an error")

    k = sub.add_parser(
        "card",
        help="write the model card of a saved pipeline",
        description="Write the Hugging Face model card (YAML metadata, then Markdown) of a "
        ".skmodel file: what the model is, its weights' source and licence, the file's "
        "sha256, its classes and limits, how to run it and the versions that wrote it. A "
        "model fitted in Python carries no evaluation, and its card says so; 'compare' writes "
        "each model's card with its scores on the common test set.",
    )
    k.add_argument(
        "model", metavar="MODEL", help="a .skmodel file written by 'sk-animals compare' or 'tune'"
    )
    k.add_argument(
        "--out", default=None, help="the Markdown file to write (default: MODEL with suffix .md)"
    )
    k.add_argument("--overwrite", action="store_true", help="replace an existing card")
    k.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    _add_explain(sub)
    return parser


def _add_explain(sub):
    """The ``explain`` command's options."""
    from .explanations import DEFAULT_METHOD, METHODS

    x = sub.add_parser(
        "explain",
        help="show where a saved pipeline looks: a heatmap over each image",
        description="Write, for each image, an overlay PNG of the image the network saw beside "
        "a class-activation map of the evidence for its predicted class, titled with that class "
        "and its probability, and an index.html that lists them (files that cannot be read are "
        "rows with their error). Ctrl-C keeps the overlays done and their index. Needs pip "
        "install 'sk-animals[explain]'. Exit status 0 when any file was explained, 1 when none "
        "was.",
    )
    x.add_argument(
        "model", metavar="MODEL", help="a .skmodel file written by 'sk-animals compare' or 'tune'"
    )
    x.add_argument(
        "images",
        nargs="+",
        metavar="PATH",
        help="image files, folders (searched recursively) or a .csv with a path column",
    )
    x.add_argument("--out", required=True, help="folder for the overlay PNGs and index.html")
    x.add_argument(
        "--overwrite", action="store_true", help="write into an --out folder that is not empty"
    )
    x.add_argument(
        "--method",
        choices=tuple(METHODS),
        default=DEFAULT_METHOD,
        help=f"the class-activation map (default: {DEFAULT_METHOD})",
    )
    x.add_argument(
        "--batch-size", type=_count(1), default=32, help="images decoded and explained together"
    )
    x.add_argument("--quiet", action="store_true", help="no progress bar or summary line")
    x.add_argument("--debug", action="store_true", help="show the full traceback of an error")
