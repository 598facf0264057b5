"""``compile=True`` against eager fits, cold and warm, on real images: whether it qualifies
as a default.

Three fits, each in a fresh process (as a user's next run is), on the real CIFAR-10 animal
images of ../shared (``train/`` for the fit, ``valid/`` for the test accuracy):

- ``scratch-paper``: ``ScratchCNNClassifier()`` (the paper's network and settings), 100 px,
  2,048 images;
- ``scratch-recommended``: ``ScratchCNNClassifier(**scratch.RECOMMENDED)``, 100 px, 2,048
  images;
- ``transfer``: ``TransferClassifier("squeezenet1_1")`` with the shared ImageNet weights,
  full fine-tuning (the paper's recipe, batches of 32), 224 px, 256 images;

each for ``--epochs`` (3) epochs, run three ways: eager; compiled with an empty inductor cache
(``TORCHINDUCTOR_CACHE_DIR`` a new folder: cold); compiled again in a new process with the
cache the cold run filled (warm, what ``--cache-dir`` gives the next ``sk-animals`` run).
The three alternate ``--repeats`` times (a new cache folder for each cold run) and the best
fit time of each is kept. Printed per fit: the fit time (what the compilation costs
included: a fit time is what the user waits for), the steady per-epoch time (median of the
epochs after the first), the first prediction of the test images (which compiles the
inference graph) and the test accuracy. A fit qualifies for ``compile=True`` by default
where the warm fit is at least 1.2x faster than the eager one, the cold fit adds at most
10 s to it, and the accuracies are equal (within two binomial standard errors of the test
set). Every figure is also one JSON line (``--out`` appends them to a file).

About 10 minutes per repeat on 2 cores::

    python benchmarks/bench_compile.py                         # all three fits
    python benchmarks/bench_compile.py --only transfer --repeats 2
    python benchmarks/bench_compile.py --smoke                 # its code, tiny (minutes)
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FITS = ("scratch-paper", "scratch-recommended", "transfer")
MODES = ("eager", "cold", "warm")
#: Training and test images of each fit, and the image side.
SIZES = {
    "scratch-paper": (2048, 600, 100),
    "scratch-recommended": (2048, 600, 100),
    "transfer": (256, 192, 224),
}


def cifar(split, n, size, cache_dir):
    """``n`` CIFAR-10 animal images of ``split`` (classes mixed) at ``size`` px, labels."""
    from _common import require_shared

    from sk_animals import ImageLoader, load_image_folder

    folder = require_shared() / "data" / "cifar10-animals" / split
    data = load_image_folder(folder, per_class=-(-n // 6), random_state=0)
    order = np.random.default_rng(0).permutation(len(data.data))[:n]
    X = ImageLoader(size, n_jobs=-1, cache_dir=cache_dir).transform(data.data[order])
    return X, np.asarray(data.target)[order]


def estimator(fit, epochs, device, compile_, backend):
    """The classifier of ``fit``; ``compile_`` adds ``compile=True``."""
    from _common import require_shared

    from sk_animals.scratch import RECOMMENDED, ScratchCNNClassifier
    from sk_animals.transfer import TransferClassifier

    extra = {"compile": True, "compile__backend": backend} if compile_ else {}
    common = {"max_epochs": epochs, "device": device, "random_state": 0, "verbose": 0}
    if fit == "scratch-paper":
        return ScratchCNNClassifier(**common, **extra)
    if fit == "scratch-recommended":
        return ScratchCNNClassifier(**RECOMMENDED, **common, **extra)
    weights = require_shared() / "weights" / "squeezenet1_1-imagenet1k.pth"
    return TransferClassifier(
        "squeezenet1_1", weights=weights, freeze="none", batch_size=32, **common, **extra
    )


def child(args):
    """One fit in this process: print its figures as one JSON line."""
    n_train, n_test, size = SIZES[args.child_fit]
    if args.smoke:
        n_train, n_test = 24, 12
    X, y = cifar("train", n_train, size, args.decode_cache)
    X_test, y_test = cifar("valid", n_test, size, args.decode_cache)
    clf = estimator(
        args.child_fit, args.epochs, args.device, args.child_mode != "eager", args.backend
    )
    start = time.perf_counter()
    clf.fit(X, y)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    accuracy = float(np.mean(clf.predict(X_test) == y_test))
    first_predict_s = time.perf_counter() - start
    start = time.perf_counter()
    clf.predict(X_test)
    predict_s = time.perf_counter() - start
    epochs = [float(d) for d in clf.history[:, "dur"]]
    record = {
        "bench": "compile",
        "fit": args.child_fit,
        "mode": args.child_mode,
        "device": args.device,
        "images": n_train,
        "test_images": n_test,
        "size": size,
        "epochs": args.epochs,
        "fit_s": round(fit_s, 2),
        "epoch_s": [round(d, 2) for d in epochs],
        "steady_epoch_s": round(float(np.median(epochs[1:] or epochs)), 2),
        "first_predict_s": round(first_predict_s, 2),
        "predict_s": round(predict_s, 2),
        "accuracy": round(accuracy, 4),
    }
    print(json.dumps(record), flush=True)


def run_child(fit, mode, inductor, args, decode_cache):
    """Run one fit in a new process with the inductor cache in ``inductor``."""
    argv = [
        sys.executable,
        __file__,
        "--child-fit",
        fit,
        "--child-mode",
        mode,
        "--decode-cache",
        decode_cache,
        "--epochs",
        str(args.epochs),
        "--device",
        args.device,
        "--backend",
        args.backend,
    ]
    argv += ["--smoke"] if args.smoke else []
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": inductor}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{fit} ({mode}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def emit(out, record):
    line = json.dumps(record)
    print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def verdict(fit, best, out):
    """Print one fit's figures and whether compile=True qualifies as its default."""
    eager, cold, warm = (best[m] for m in MODES)
    speed_up = eager["fit_s"] / warm["fit_s"]
    steady = eager["steady_epoch_s"] / warm["steady_epoch_s"]
    cold_added = cold["fit_s"] - eager["fit_s"]
    p, n = eager["accuracy"], eager["test_images"]
    tolerance = 2 * math.sqrt(max(p * (1 - p), 1e-6) / n)
    equal = all(abs(best[m]["accuracy"] - p) <= tolerance for m in ("cold", "warm"))
    qualifies = speed_up >= 1.2 and cold_added <= 10 and equal
    print(
        f"{fit}: fit eager {eager['fit_s']:.1f} s, cold {cold['fit_s']:.1f} s, warm "
        f"{warm['fit_s']:.1f} s; steady epoch {eager['steady_epoch_s']:.2f} / "
        f"{warm['steady_epoch_s']:.2f} s; first predict {eager['first_predict_s']:.2f} / "
        f"{cold['first_predict_s']:.2f} / {warm['first_predict_s']:.2f} s; accuracy "
        f"{eager['accuracy']:.3f} / {cold['accuracy']:.3f} / {warm['accuracy']:.3f}"
    )
    print(
        f"{fit}: warm fit {speed_up:.2f}x eager (target >= 1.2), steady epochs {steady:.2f}x, "
        f"cold start adds {cold_added:.1f} s (target <= 10), accuracy "
        f"{'equal' if equal else 'NOT equal'} (tolerance {tolerance:.3f}): compile=True "
        f"{'qualifies' if qualifies else 'does not qualify'} as the default"
    )
    emit(
        out,
        {
            "bench": "compile_verdict",
            "fit": fit,
            "warm_speed_up": round(speed_up, 3),
            "steady_speed_up": round(steady, 3),
            "cold_added_s": round(cold_added, 1),
            "accuracy_equal": equal,
            "qualifies": qualifies,
        },
    )
    return qualifies


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(FITS), help=f"fits, of {','.join(FITS)}")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs, best kept")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="inductor", help="torch.compile's backend")
    parser.add_argument("--out", default=None, help="also append the JSON lines to this file")
    parser.add_argument("--smoke", action="store_true", help="24 images, 1 epoch: the code path")
    parser.add_argument("--child-fit", choices=FITS, help=argparse.SUPPRESS)
    parser.add_argument("--child-mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--decode-cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.epochs, args.repeats = 1, 1
    if args.child_fit:
        return child(args)
    fits = [f for f in args.only.split(",") if f]
    unknown = sorted(set(fits) - set(FITS))
    if unknown:
        parser.error(f"--only: unknown fits {unknown}; choose from {', '.join(FITS)}")
    with tempfile.TemporaryDirectory(prefix="bench_compile-") as tmp:
        decode_cache = str(Path(tmp) / "decoded")
        for fit in fits:
            best = {}
            for r in range(args.repeats):
                inductor = str(Path(tmp) / f"inductor-{fit}-{r}")  # empty: a cold start
                for mode in MODES:
                    folder = str(Path(tmp) / "unused") if mode == "eager" else inductor
                    record = run_child(fit, mode, folder, args, decode_cache)
                    emit(args.out, record)
                    if mode not in best or record["fit_s"] < best[mode]["fit_s"]:
                        best[mode] = record
            verdict(fit, best, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
