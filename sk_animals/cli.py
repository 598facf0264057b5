"""The ``sk-animals`` command: compare the two approaches, predict with a saved model."""

import argparse
import json
import shutil
import sys
import warnings
from pathlib import Path

from . import __version__
from .preprocessing import ImageLoadError
from .transfer import BACKBONES

DEMO = {"n_samples": 600, "n_classes": 4, "size": 64}
DEMO_DEFAULTS = {"backbone": "squeezenet1_1", "folds": 3, "per_class": 150}
PAPER_DEFAULTS = {"backbone": "alexnet", "folds": 5, "per_class": None}


def _compare(args):
    from .datasets import make_image_folder
    from .evaluation import compare, paper_protocol
    from .transfer import load_backbone

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise SystemExit(
            f"sk-animals: output folder {str(out)!r} exists and is not empty; "
            "choose another --out or pass --overwrite to replace its files"
        )
    if args.demo == (args.data_dir is not None):
        raise SystemExit("sk-animals: give either DATA_DIR or --demo")
    for name, default in (DEMO_DEFAULTS if args.demo else PAPER_DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    weights, workdir = args.weights, None
    if args.demo:
        try:
            load_backbone(args.backbone, weights)
        except OSError:  # offline without the cached file: say so, run anyway
            weights = None
            warnings.warn(
                f"no cached ImageNet weights for {args.backbone}; the demo's "
                "transfer model starts from random weights",
                stacklevel=1,
            )
        workdir = args.data_dir = make_image_folder(**DEMO, random_state=args.seed)
    approaches = paper_protocol(
        backbone=args.backbone,
        weights=weights,
        device=args.device,
        per_class=args.per_class,
        epochs=args.epochs,
        random_state=args.seed,
        verbose=2 * args.verbose,
    )
    if args.demo:  # small and fast: both models on the 64 px shapes
        for approach in approaches:
            approach.image_size = DEMO["size"]
        approaches[0].classifier.set_params(batch_size=32)
    try:
        result = compare(
            args.data_dir,
            approaches,
            cv=args.folds,
            random_state=args.seed,
            out_dir=out,
            verbose=1,
        )
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(result.to_markdown())
    print(f"\nreport: {out / 'report.html'}")
    return 0


def _tune(args):
    import joblib
    from sklearn.pipeline import make_pipeline

    from .datasets import load_image_folder, make_image_dataset
    from .preprocessing import ImageLoader
    from .scratch import ScratchCNNClassifier
    from .tuning import tune

    if args.demo == (args.data_dir is not None):
        raise SystemExit("sk-animals: give either DATA_DIR or --demo")
    if args.demo:
        X, y = make_image_dataset(**DEMO, random_state=args.seed)
        size = DEMO["size"]
    else:
        data = load_image_folder(
            args.data_dir, per_class=args.per_class, random_state=args.seed, verify=True, n_jobs=-1
        )
        size = args.image_size or (
            100 if args.approach == "scratch" else BACKBONES[args.backbone or "alexnet"].size
        )
        X, y = ImageLoader(size, n_jobs=-1).transform(data.data), data.target
    if args.approach == "scratch":
        clf = ScratchCNNClassifier(device=args.device, verbose=0)
    else:
        from .transfer import TransferClassifier

        clf = TransferClassifier(
            args.backbone or "alexnet", weights=args.weights, device=args.device, verbose=0
        )
    best, study = tune(
        clf,
        X,
        y,
        n_trials=args.n_trials,
        storage=args.storage,
        study_name=args.study_name,
        timeout=args.timeout,
        random_state=args.seed,
        refit=args.out is not None,
    )
    states = {}
    for trial in study.trials:
        states[trial.state.name.lower()] = states.get(trial.state.name.lower(), 0) + 1
    print(
        f"study {study.study_name!r}: {len(study.trials)} trials "
        f"({', '.join(f'{n} {s}' for s, n in sorted(states.items()))})"
    )
    print(f"best validation accuracy {study.best_value:.4f} with {study.best_params}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(make_pipeline(ImageLoader(size), best), args.out)
        print(f"best pipeline refitted on all the data: {args.out}")
    return 0


def _predict(args):
    import joblib
    import numpy as np

    model = joblib.load(args.model)
    try:
        proba = model.predict_proba(args.images)
    except ImageLoadError as exc:
        raise SystemExit(f"sk-animals: {exc}") from None
    classes = [str(c) for c in model.classes_]
    best = proba.argmax(1)
    rows = [
        {
            "image": image,
            "label": classes[k],
            "probability": float(p[k]),
            "probabilities": dict(zip(classes, np.round(p, 6).tolist(), strict=True)),
        }
        for image, k, p in zip(args.images, best, proba, strict=True)
    ]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        width = max(len(r["image"]) for r in rows)
        for r in rows:
            print(f"{r['image']:<{width}}  {r['label']}  {r['probability']:.3f}")
    return 0


def build_parser():
    """The argument parser of ``sk-animals``."""
    parser = argparse.ArgumentParser(
        prog="sk-animals",
        description="Train a CNN from scratch or transfer an ImageNet network? "
        "Compare both on a folder of labelled photos.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser(
        "compare",
        help="run both approaches and write a report",
        description="Cross-validate and fit the from-scratch CNN and the transfer model on "
        "the same images (the paper's protocol unless overridden), then write report.html, "
        "report.md, metrics.json, figures and both fitted pipelines (.joblib) into --out.",
    )
    c.add_argument(
        "data_dir",
        nargs="?",
        help="folder with one subfolder of images per "
        "class (Kaggle's Animals-10 layout is recognised)",
    )
    c.add_argument(
        "--demo",
        action="store_true",
        help="use the built-in synthetic image set (about 2 minutes on a CPU)",
    )
    c.add_argument("--out", required=True, help="output folder for the report and models")
    c.add_argument(
        "--overwrite", action="store_true", help="replace files in a non-empty --out folder"
    )
    c.add_argument(
        "--device", default="auto", help="'auto' (CUDA if available), 'cpu', 'cuda', 'cuda:1' ..."
    )
    c.add_argument(
        "--folds",
        type=int,
        default=None,
        help="stratified cross-validation folds, 0 to skip (default: 5; demo: 3)",
    )
    c.add_argument(
        "--per-class",
        type=int,
        default=None,
        help="images per class for both approaches (default: the paper's 1500 scratch and "
        "500 transfer; demo: 150)",
    )
    c.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs for both approaches (paper: 10 scratch, 6 transfer)",
    )
    c.add_argument("--seed", type=int, default=0, help="seed for sampling, splits and training")
    c.add_argument(
        "--backbone",
        default=None,
        choices=sorted(BACKBONES),
        help="pretrained network of the transfer approach (default: the paper's alexnet; "
        "demo: squeezenet1_1)",
    )
    c.add_argument(
        "--weights",
        default="DEFAULT",
        help="'DEFAULT' or 'IMAGENET1K_V1' (torchvision, cached in $TORCH_HOME), "
        "or the path of a state-dict file",
    )
    c.add_argument(
        "-v", "--verbose", action="store_true", help="print every epoch, with a progress bar"
    )
    c.set_defaults(run=_compare)

    t = sub.add_parser(
        "tune",
        help="search hyperparameters with Optuna",
        description="Run (or join) an Optuna study over one approach's hyperparameters, "
        "pruning bad trials per epoch. Start the same command on several machines with one "
        "--storage database and --study-name to share the study.",
    )
    t.add_argument("data_dir", nargs="?", help="folder with one subfolder per class")
    t.add_argument("--demo", action="store_true", help="tune on the built-in image set")
    t.add_argument(
        "--approach",
        choices=["scratch", "transfer"],
        default="scratch",
        help="which classifier to tune (default: scratch)",
    )
    t.add_argument(
        "--n-trials",
        type=int,
        default=20,
        help="trials the study stops at, counted over all workers",
    )
    t.add_argument(
        "--storage",
        default=None,
        help="study.db (SQLite), an RDB URL such as postgresql://user:pw@host/db, "
        "or a .log journal file; in memory by default",
    )
    t.add_argument("--study-name", default=None, help="study to create or join")
    t.add_argument(
        "--timeout", type=float, default=None, help="stop starting trials after this many seconds"
    )
    t.add_argument("--per-class", type=int, default=None, help="images per class")
    t.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="image size (default: 100 scratch, the backbone's for transfer)",
    )
    t.add_argument(
        "--backbone",
        default=None,
        choices=sorted(BACKBONES),
        help="transfer backbone (default: alexnet)",
    )
    t.add_argument("--weights", default="DEFAULT", help="transfer weights, as for compare")
    t.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda' ...")
    t.add_argument("--seed", type=int, default=0, help="seed of the sampler and the fits")
    t.add_argument(
        "--out",
        default=None,
        help="write the best pipeline, refitted on all the data, to this .joblib",
    )
    t.set_defaults(run=_tune)

    p = sub.add_parser(
        "predict",
        help="label images with a saved pipeline",
        description="Predict labels and probabilities with a .joblib pipeline "
        "written by 'compare' (only load files you trust: joblib runs code).",
    )
    p.add_argument("model", help="a .joblib file written by 'sk-animals compare'")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=_predict)
    return parser


def main(argv=None):
    """Entry point of the ``sk-animals`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError, ImportError) as exc:
        print(f"sk-animals: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
