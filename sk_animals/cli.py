"""The ``sk-animals`` command: compare the approaches, tune one, predict with, explain or export
a model.

Every option is checked before any long work starts; heavy modules (torch, torchvision,
scikit-learn) are imported only by the command that runs, so ``--help`` is instant.
"""

import os
import sys
import tempfile
import traceback
from pathlib import Path

from ._parser import _approach_list, build_parser  # noqa: F401  (re-exported)
from ._text import terminal_text
from .exceptions import (
    BadInputError,
    FileWriteError,
    Interrupted,
    RunInProgressError,
    UsageError,
)
from .protocols import DEMO, ON_BACKBONE, RECIPES


def _check_data(args):
    """Exactly one of DATA_DIR and --demo; DATA_DIR a folder, or a CSV whose rows are sound."""
    if args.demo == (args.data_dir is not None):
        raise UsageError("give either DATA_DIR or --demo")
    if args.data_dir is None:
        return
    if args.data_dir.lower().endswith(".csv"):
        import warnings

        from .datasets import load_image_csv

        try:
            with warnings.catch_warnings():  # the run itself warns about repeated rows
                warnings.simplefilter("ignore", UserWarning)
                load_image_csv(args.data_dir)  # paths and labels only: nothing is decoded
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    elif not Path(args.data_dir).is_dir():
        raise UsageError(f"DATA_DIR {args.data_dir!r} does not exist or is not a folder")
    else:
        import warnings

        from .datasets import load_folder

        try:
            with warnings.catch_warnings():  # the run itself warns about what it skips
                warnings.simplefilter("ignore", UserWarning)
                load_folder(args.data_dir)  # the files are listed, none is decoded
        except ValueError as exc:  # no images, or class folders that are one folder
            raise UsageError(f"DATA_DIR: {exc}") from None


def _check_device(device):
    import torch

    try:
        resolved = torch.device("cpu" if device == "auto" else device)
    except RuntimeError:
        raise UsageError(f"--device {device!r} is not a device: use auto, cpu or cuda") from None
    if resolved.type == "cuda":
        available = torch.cuda.device_count()
        if (resolved.index or 0) >= available:
            raise UsageError(
                f"--device {device}: this machine has {available} CUDA device(s); "
                "use --device cpu or auto"
            )


def _check_out_folder(out, overwrite):
    """``--out`` can be written to and holds no earlier run, unless ``overwrite``."""
    from .runs import LOCK

    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"--out {str(out)!r}: {str(parent)!r} is a file, not a folder")
    earlier = out.is_dir() and any(p.name != LOCK and not _is_log(p) for p in out.iterdir())
    if earlier and not overwrite:
        raise UsageError(
            f"--out {str(out)!r} exists and is not empty; choose another folder or "
            "pass --overwrite to replace the files of the earlier run"
        )
    existing = next(p for p in [out, *out.parents] if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--out {str(out)!r} cannot be written to: {str(existing)!r} is locked")


def _check_out_file(out, overwrite, suffix, option="--out"):
    """``out`` is a file name (not a folder) in a folder that can be written to, and no
    file is there unless ``overwrite``: checked before any work."""
    if out.is_dir():
        raise UsageError(f"{option} {str(out)!r} is a folder; give a file name ending {suffix}")
    if out.exists() and not overwrite:
        raise UsageError(f"{option} {str(out)!r} exists: pass --overwrite to replace it")
    _check_out_folder(out.parent, overwrite=True)


#: How ``compare``'s arguments are spelled on the command line, for ``--resume``'s errors.
_OPTIONS = {
    "data": "DATA_DIR",
    "random_state": "--seed",
    "test_size": "--test-size",
    "cv": "--cv",
    "budgets": "--budgets",
    "target_accuracy": "--target-accuracy",
    "dedupe": "--dedupe",
    "label_issues": "--no-label-issues",
    "drop_label_issues": "--drop-label-issues",
    "overlays": "--no-overlays",
    "approaches": "--approaches",
}


def _changed_options(exc):
    """``--resume``'s one line for a :class:`~sk_animals.exceptions.ResumeError`: the
    options that changed, as the command line spells them."""
    top = {}
    for key, before, now in exc.changed:
        name, *inner = key.split(".")
        if name == "approaches" and inner:  # a setting of one approach's pipeline
            top.setdefault(f"the {inner[0]} approach's {inner[-1]}", (before, now))
        else:
            top.setdefault(_OPTIONS.get(name, name), (before, now))
    plain = {k: v for k, v in top.items() if not k.startswith("the ")} or top
    return ", ".join(f"{k} (was {b!r}, now {n!r})" for k, (b, n) in list(plain.items())[:4])


def _check_weights(backbone, weights):
    """Load the weights once, now: a missing, corrupt or foreign file fails here."""
    from ._backbones import check_backbone, load_backbone

    try:
        check_backbone(backbone)
    except ValueError as exc:
        raise UsageError(f"--backbone: {exc}") from None
    try:
        load_backbone(backbone, weights)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        raise UsageError(f"--weights: {exc}") from None


def _protocol(args):
    """The protocol record of ``args``: the demo's, or the chosen recipe's (``tune``: the
    paper's)."""
    return DEMO if args.demo else RECIPES[getattr(args, "recipe", "paper")]


def _backbone_and_weights(args, approaches):
    """The backbone and weights of ``args``' protocol, the demo's or the paper's.

    The demo has its own settings: options that would change them are refused, and its
    weights are the embedded ones unless ``--weights`` names others. When any of
    ``approaches`` uses the backbone, its weights are loaded once, now.
    """
    if args.demo:
        options = ("backbone", "epochs", "per_class", "image_size")
        given = [o for o in options if getattr(args, o, None)]
        if given:
            names = ", ".join("--" + o.replace("_", "-") for o in given)
            raise UsageError(f"{names}: the demo has its own settings; drop them or give DATA_DIR")
    protocol = _protocol(args)
    backbone = args.backbone or protocol.backbone
    weights = args.weights
    if weights == "DEFAULT" and backbone == protocol.backbone:
        weights = protocol.weights  # the protocol's own: embedded where it has them
    if set(approaches) & set(ON_BACKBONE):
        try:
            _check_weights(backbone, weights)
        except OSError as exc:  # not cached, and offline
            raise UsageError(f"--weights: {exc}") from None
    return backbone, weights


def _compare(args):
    from .runs import folder_lock

    _check_data(args)
    out = Path(args.out)
    if not args.resume:
        _check_out_folder(out, args.overwrite)
    from ._training import inductor_cache

    # a second run on --out fails here; one refused or stopped before writing leaves no
    # empty folder that it made
    with folder_lock(out, "sk-animals compare"), inductor_cache(args.cache_dir):
        return _compare_in(args, out)


def _compare_in(args, out):
    """``compare`` with ``--out`` held: check the rest, build the approaches, run, report."""
    from .runs import CHECKPOINT, RunStore

    store = RunStore(out / CHECKPOINT)
    if args.resume and not store.has_run():
        raise UsageError(
            f"--resume: {str(args.out)!r} holds no interrupted run to resume (no "
            f"{CHECKPOINT} folder with its arguments); run without --resume"
        )
    if not args.resume:
        _check_out_folder(out, args.overwrite)  # again, now that nobody else writes here
    _check_device(args.device)
    protocol = _protocol(args)
    backbone, weights = _backbone_and_weights(args, args.approaches)

    from .datasets import make_image_folder
    from .evaluation import compare
    from .exceptions import BadInputError, ResumeError
    from .protocols import demo_protocol, paper_protocol, recommended_protocol
    from .report import remove_report

    common = {
        "device": args.device,
        "random_state": args.seed,
        "verbose": 2 * args.verbose,
        "cache_dir": args.cache_dir,
    }
    if args.overwrite and not args.resume:
        remove_report(out)
        store.clear()
    if args.demo:
        approaches = demo_protocol(approaches=args.approaches, weights=weights, **common)
        data = store.path("demo-data")  # in the run's folder: a resumed run finds them
        if not data.is_dir():
            make_image_folder(data, **DEMO.data, random_state=args.seed)
    else:
        build = paper_protocol if args.recipe == "paper" else recommended_protocol
        approaches = build(
            approaches=args.approaches,
            backbone=backbone,
            weights=weights,
            per_class=args.per_class,
            epochs=args.epochs,
            image_size=args.image_size,
            **common,
        )
        data = args.data_dir
    for approach in approaches:  # the network's smallest input, before any work
        needs = getattr(approach.classifier, "min_image_size", lambda: 1)()
        if approach.image_size < needs:
            raise UsageError(
                f"--image-size {approach.image_size}: the {approach.name} approach's network "
                f"needs at least {needs} px; give {needs} or more"
            )
    saved = []

    def save(result, name):
        result.save(out, [name])
        saved.append(name)

    try:
        result = compare(
            data,
            approaches,
            test_size=args.test_size,
            cv=protocol.folds if args.cv is None else args.cv,
            budgets=args.budgets,
            target_accuracy=args.target_accuracy,
            dedupe=args.dedupe,
            label_issues="auto" if args.label_issues else False,
            drop_label_issues=args.drop_label_issues,
            overlays="auto" if args.overlays else False,
            random_state=args.seed,
            n_jobs=args.n_jobs,
            on_approach=save,
            checkpoint_dir=store.folder,
            verbose=0 if args.quiet else 1,
        )
    except ResumeError as exc:
        if not exc.changed:
            raise UsageError(f"--resume: {exc}") from None
        raise UsageError(
            f"--resume: the interrupted run had other arguments: {_changed_options(exc)}; give "
            "the same ones, or start afresh with --overwrite"
        ) from None
    except BadInputError as exc:  # bad input, found before any training
        option = _OPTIONS.get(exc.parameter)
        raise UsageError(f"{option}: {exc}" if option else str(exc)) from None
    except KeyboardInterrupt:
        kept = "no approach had finished"
        if saved:
            kept = f"the finished {', '.join(saved)} results are in {out}"
        if store.has_units():
            kept += "; the finished folds and fits are kept: run the same command with --resume"
        raise Interrupted(
            f"interrupted: nothing of the approach in progress was reported; {kept}"
        ) from None
    finally:
        if not store.has_units():  # nothing finished: nothing to resume
            store.clear()
    store.clear()  # finished: nothing left to resume
    if not args.quiet:
        print(terminal_text("\n".join(result.verdicts()), keep_newlines=True), end="\n\n")
        print(terminal_text(result.to_markdown(), keep_newlines=True))
        print(terminal_text(f"\nreport: {out / 'report.html'}", keep_newlines=True))
    return 0


def _tune(args):
    _check_data(args)
    _check_device(args.device)
    if args.out is not None:
        _check_out_file(Path(args.out), args.overwrite, ".skmodel")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    from .tuning import make_storage

    try:
        make_storage(args.storage)
    except Exception as exc:
        raise UsageError(f"--storage {args.storage!r} cannot be used: {exc}") from None
    backbone, weights = _backbone_and_weights(args, [args.approach])

    from .datasets import load_folder, make_image_dataset, sample_per_class
    from .persistence import save
    from .protocols import demo_protocol, paper_protocol
    from .runs import new_folders
    from .tuning import trial_counts, tune

    common = {
        "approaches": [args.approach],
        "weights": weights,
        "device": args.device,
        "random_state": args.seed,
        "verbose": 0,
        "cache_dir": args.cache_dir,
    }
    if args.demo:  # the images and the budget the demo gives the approach
        [approach] = demo_protocol(**common)
        X, y = make_image_dataset(**DEMO.data, random_state=args.seed)
        keep = sample_per_class(y, approach.per_class, random_state=args.seed)
        X, y = list(X[keep]), y[keep]
    else:
        [approach] = paper_protocol(backbone=backbone, image_size=args.image_size, **common)
        data = load_folder(
            args.data_dir, per_class=args.per_class, random_state=args.seed, verify=True, n_jobs=-1
        )
        X, y = data.data, data.target
    from ._training import inductor_cache

    try:
        with inductor_cache(args.cache_dir):
            best, study = tune(
                approach.pipeline,
                X,
                y,
                n_trials=args.n_trials,
                storage=args.storage,
                study_name=args.study_name,
                timeout=args.timeout,
                random_state=args.seed,
                refit=args.out is not None,
            )
    except KeyboardInterrupt:
        raise Interrupted(
            "interrupted: trials already finished stay in the study"
            + (f" in {args.storage}" if args.storage else "")
            + "; a trial cut short is marked failed"
        ) from None
    counts = trial_counts(study)
    print(
        f"study {study.study_name!r}: {len(study.trials)} trials "
        f"({', '.join(f'{n} {state}' for state, n in counts.items() if n)})"
    )
    print(f"best validation accuracy {study.best_value:.4f} with {study.best_params}")
    if args.out:
        with new_folders(Path(args.out).parent):
            save(best.set_params(**{f"{best.steps[-1][0]}__callbacks": None}), args.out)
        print(terminal_text(f"best pipeline refitted on all the data: {args.out}"))
    return 0


def _load_model(path, trust_pickle, engine="torch"):
    """A model from a safe ``.skmodel`` file, an exported ``.onnx`` file (without torch), or
    a pickle only when trusted; ``engine`` runs a ``.skmodel`` through ONNX Runtime."""
    if Path(path).suffix == ".onnx":
        from .deploy import load_onnx

        try:
            return load_onnx(path)
        except ImportError as exc:
            raise UsageError(str(exc)) from None
        except Exception as exc:  # onnxruntime's own errors for a file it cannot read
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            message = f"{path!r} is not an ONNX file exported by sk_animals: {reason}"
            raise UsageError(message) from None
    from .persistence import SUFFIX, load

    if Path(path).suffix in (".joblib", ".pkl", ".pickle"):
        if not trust_pickle:
            raise UsageError(
                f"{path!r} is a pickle, and loading a pickle runs any code it holds: pass "
                f"--trust-pickle if you made it yourself, or use a {SUFFIX} file"
            )
        import joblib

        try:
            model = joblib.load(path)
        except Exception as exc:
            raise UsageError(f"{path!r} is not a saved model ({type(exc).__name__})") from None
    else:
        try:
            model = load(path)
        except (ValueError, OSError) as exc:
            raise UsageError(str(exc)) from None
    if not (hasattr(model, "predict_proba") and hasattr(model, "classes_")):
        raise UsageError(f"{path!r} holds a {type(model).__name__}, not a fitted classifier")
    return model if engine == "torch" else _on_onnxruntime(model, engine)


def _on_onnxruntime(model, engine):
    """``model`` exported in memory and run by ONNX Runtime (its parity checked by the
    export); with ``engine="auto"``, ``model`` itself where that cannot be done."""
    from .deploy import import_optional, load_onnx

    try:
        for name in ("onnx", "onnxruntime"):
            import_optional(name)
        from .export import onnx_bytes

        return load_onnx(onnx_bytes(model))
    except (ImportError, ValueError) as exc:
        if engine == "onnxruntime":
            raise UsageError(f"--engine onnxruntime: {exc}") from None
        return model


def _image_paths(images):
    """The image files that the command line's PATH arguments name (at least one)."""
    from .prediction import find_images

    try:
        paths = find_images(images)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if not paths:
        raise UsageError(f"no image files in {', '.join(images)}")
    return paths


def _predict(args):
    from .prediction import predict_files, write_predictions

    out = Path(args.out) if args.out else None
    if out is not None:
        _check_out_file(out, args.overwrite, ".csv")
    model = _load_model(args.model, args.trust_pickle, args.engine)
    paths = _image_paths(args.images)
    classes = [str(c) for c in model.classes_]
    rows = predict_files(model, paths, batch_size=args.batch_size)
    if sys.stderr.isatty() and not args.quiet:
        from tqdm.auto import tqdm

        rows = tqdm(rows, total=len(paths), unit="image", leave=False)
    if out is not None:
        from ._files import atomic_write
        from .runs import new_folders

        try:
            with (
                new_folders(out.parent),
                atomic_write(out, newline="", keep_on_interrupt=True) as f,
            ):
                done, failed = write_predictions(rows, classes, f, top_k=args.top_k)
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted: the rows written so far are in {out}.partial"
            ) from None
    else:
        done, failed = _print_predictions(rows, classes, args.json, args.top_k)
    if failed and not args.quiet:
        where = f" (see the error column of {out})" if out else ""
        _error(f"{failed} of {done + failed} file(s) could not be read{where}")
    return 0 if done else 1


def _export(args):
    from .deploy import import_optional

    try:
        for name in ("onnx", "onnxruntime"):  # before torch loads: the missing package first
            import_optional(name)
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    out = Path(args.out)
    if out.is_dir():
        raise UsageError(f"OUT {str(out)!r} is a folder; give a file name ending .onnx")
    if out.exists() and not args.overwrite:
        raise UsageError(f"OUT {str(out)!r} exists: pass --overwrite to replace it")
    if not Path(args.model).is_file():
        raise UsageError(f"MODEL {args.model!r} is not a file")
    from .deploy import onnx_metadata
    from .export import export_onnx

    try:
        export_onnx(args.model, out)
    except ValueError as exc:  # not a model file, or what cannot be exported exactly
        raise UsageError(str(exc)) from None
    meta = onnx_metadata(out)
    h, w = meta.input_size
    print(
        f"{out}: {len(meta.classes)} classes, uint8 images (n, {h}, {w}, 3) in, probabilities "
        f"out; decode with ImageLoader({h if h == w else (h, w)}, resize={meta.resize!r}, "
        f"interpolation={meta.interpolation!r}, crop_pct={meta.crop_pct:g}) or "
        "sk_animals.deploy.predict_onnx"
    )
    return 0


def _card(args):
    import warnings

    from .report import CARD_SUFFIX

    model = Path(args.model)
    if not model.is_file():
        raise UsageError(f"MODEL {args.model!r} is not a file")
    out = Path(args.out) if args.out else model.with_suffix(CARD_SUFFIX)
    if out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a folder; give a file name ending {CARD_SUFFIX}")
    if out.exists() and out.resolve() == model.resolve():
        raise UsageError(f"--out {str(out)!r} is MODEL itself; give another file")
    if out.exists() and not args.overwrite:
        raise UsageError(
            f"{str(out)!r} exists (the card 'compare' writes holds the model's scores): pass "
            "--overwrite to replace it, or --out another file"
        )
    from .cards import write_model_card

    try:
        with warnings.catch_warnings():  # another version wrote it: the card names both
            warnings.simplefilter("ignore", UserWarning)
            write_model_card(model, out)
    except ValueError as exc:  # not a model file, or a malformed one
        raise UsageError(str(exc)) from None
    print(terminal_text(f"{out}: the model card of {model.name} (no evaluation)"))
    return 0


def _explain(args):
    from .explanations import _cam_library

    try:
        _cam_library()  # before the model loads: the missing package first
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    out = Path(args.out)
    _check_out_folder(out, args.overwrite)
    model = _load_model(args.model, trust_pickle=False)
    paths = _image_paths(args.images)
    from .explanations import write_explanations
    from .prediction import explain_files

    rows = explain_files(model, paths, batch_size=args.batch_size, method=args.method)
    if sys.stderr.isatty() and not args.quiet:
        from tqdm.auto import tqdm

        rows = tqdm(rows, total=len(paths), unit="image", leave=False)
    try:
        done, failed = write_explanations(rows, model.classes_, out, total=len(paths))
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted: the overlays made so far are listed in {out / 'index.html'}"
        ) from None
    if not args.quiet:
        more = f"; {failed} file(s) could not be read (see the index)" if failed else ""
        print(terminal_text(f"{out / 'index.html'}: {done} image(s) explained{more}"))
    return 0 if done else 1


def _print_predictions(rows, classes, as_json, top_k):
    """Today's table (or JSON) on standard output; return the counts predicted and failed."""
    import numpy as np

    table = []
    for image, proba, error in rows:
        row = {"image": image, "label": None, "probability": None, "error": error}
        if proba is not None:
            order = np.argsort(-proba, kind="stable")
            row.update(label=classes[order[0]], probability=float(proba[order[0]]))
            row["probabilities"] = dict(zip(classes, np.round(proba, 6).tolist(), strict=True))
            if top_k:
                row["top"] = [classes[k] for k in order[:top_k]]
        table.append(row)
    if as_json:
        import json

        print(json.dumps(table, indent=1))  # ASCII: names escaped, and exact when parsed
    else:
        shown = [terminal_text(r["image"]) for r in table]
        width = max(map(len, shown))
        for image, r in zip(shown, table, strict=True):
            if r["error"]:
                print(f"{image:<{width}}  error: {terminal_text(r['error'])}")
            else:
                best = f"  ({', '.join(r['top'])})" if top_k else ""
                line = f"{r['label']}  {r['probability']:.3f}{best}"
                print(f"{image:<{width}}  {terminal_text(line)}")
    failed = sum(bool(r["error"]) for r in table)
    return len(table) - failed, failed


def _error(message):
    """``message`` on standard error, names in it unable to drive the terminal."""
    print(terminal_text(message, keep_newlines=True), file=sys.stderr)


#: A traceback log's name: ``sk-animals-error-<date>-<time>-<random>.log``.
LOG_PREFIX, LOG_SUFFIX = "sk-animals-error-", ".log"
#: Traceback logs kept in a folder: the older ones are removed as a new one is written.
KEEP_LOGS = 5


def _is_log(path):
    """Whether ``path`` is a traceback log (:func:`_write_log`), not a run's output."""
    return path.name.startswith(LOG_PREFIX) and path.name.endswith(LOG_SUFFIX)


def _log_folders(args):
    """Where a failed run's traceback goes: its ``--out`` folder (a file's folder) when it
    exists, else the temporary folder."""
    folders = []
    if getattr(args, "out", None):
        out = Path(args.out)
        folders.append(out if args.command == "compare" else out.parent)
    return [f for f in folders if f.is_dir()] + [Path(tempfile.gettempdir())]


def _write_log(folders):
    """Write the traceback being handled into the first of ``folders`` that takes it,
    keeping the newest :data:`KEEP_LOGS` there; say where it went, or why nowhere."""
    import time

    reasons = []
    for folder in folders:
        log = None
        try:
            stamp = time.strftime("%Y%m%d-%H%M%S-")
            fd, log = tempfile.mkstemp(prefix=LOG_PREFIX + stamp, suffix=LOG_SUFFIX, dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as f:
                traceback.print_exc(file=f)
        except OSError as exc:  # a full disk, a folder gone read-only: the next one
            reasons.append(f"{folder}: {(exc.strerror or str(exc)).lower()}")
            if log is not None:
                Path(log).unlink(missing_ok=True)
            continue
        _prune_logs(folder, keep=Path(log))
        return f"traceback in {log}"
    return f"no traceback log could be written ({'; '.join(reasons)})"


def _prune_logs(folder, keep):
    """Remove all but the newest :data:`KEEP_LOGS` traceback logs in ``folder`` that this
    user owns (another user's logs in a shared temporary folder stay)."""
    me = os.getuid() if hasattr(os, "getuid") else None  # None: no owners (Windows)
    mine = []
    for path in folder.glob(f"{LOG_PREFIX}*{LOG_SUFFIX}"):
        try:
            info = path.stat()
        except OSError:
            continue
        if me is None or info.st_uid == me:
            mine.append((info.st_mtime, path.name, path))
    for *_, path in sorted(mine, reverse=True)[KEEP_LOGS:]:
        if path != keep:
            path.unlink(missing_ok=True)


def main(argv=None):
    """Entry point of the ``sk-animals`` command."""
    args = build_parser().parse_args(argv)
    prog = f"sk-animals {args.command}"
    commands = {
        "compare": _compare,
        "tune": _tune,
        "predict": _predict,
        "export": _export,
        "card": _card,
        "explain": _explain,
    }
    run = commands[args.command]
    try:
        return run(args)
    except (UsageError, BadInputError, RunInProgressError) as exc:  # before any work
        _error(f"{prog}: error: {exc}")
        return 2
    except FileWriteError as exc:  # named file, nothing half-written left under its name
        _error(f"{prog}: error: {exc}")
        return 1
    except (Interrupted, KeyboardInterrupt) as exc:
        _error(f"{prog}: {str(exc) or 'interrupted'}")
        return 130
    except Exception as exc:
        if args.debug:
            raise
        if isinstance(exc, ImportError):  # an optional dependency: say what to install
            _error(f"{prog}: error: {exc}")
            return 2
        line = str(exc).splitlines()[0] if str(exc) else ""
        _error(f"{prog}: {type(exc).__name__}: {line}")  # first: whatever the log does
        _error(f"{prog}: {_write_log(_log_folders(args))}; --debug shows the traceback")
        return 1


if __name__ == "__main__":
    sys.exit(main())
