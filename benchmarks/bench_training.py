"""Training throughput against a hand-written PyTorch loop, and the GPU suite, in one run.

The estimators and a hand-written loop train the same network on the same uint8 images with
the same batch size, threads and device; the hand-written loop keeps the whole data set as
a float tensor on the device and never waits for it inside an epoch (the plain, fast way),
the estimators convert each uint8 batch on the device and record per-iteration curves.
Run:

    python benchmarks/bench_training.py                 # CPU: the ratios (target >= 0.95)
    python benchmarks/bench_training.py --device cuda   # the GPU suite, one command
    python benchmarks/bench_training.py --device cpu --suite gpu --smoke   # its code, tiny

The GPU suite adds, with peak GPU memory: AlexNet fine-tuning at 227 px in fp32 and bf16,
with and without channels_last, at batch 10 (the paper's) and 256 (target: bf16 at batch
256 >= 10,000 images/s on an H200); the scratch network at 100 px; a 10-trial Optuna
study on the GPU; and a model saved on the GPU and loaded in a process without CUDA.
Every figure is printed as one JSON line (and appended to ``--out``).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _common import report

from sk_animals import load, save
from sk_animals._networks import PaperCNN, TransferNet
from sk_animals.scratch import ScratchCNNClassifier
from sk_animals.transfer import BACKBONES, TransferClassifier


def emit(out, **record):
    line = json.dumps(record)
    print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def hand_written_loop(module, X, y, batch_size, epochs, device, lr, dtype=None):
    """Plain PyTorch: float data on the device, shuffled index batches, SGD, CE loss."""
    module = module.to(device).train()
    mean = torch.tensor(X[:256].reshape(-1, 3).mean(0) / 255, dtype=torch.float32)
    mean = mean.to(device).view(1, 3, 1, 1)
    data = torch.from_numpy(X).to(device).permute(0, 3, 1, 2).float().div(255).sub(mean)
    target = torch.from_numpy(y).to(device)
    optimizer = torch.optim.SGD(module.parameters(), lr=lr, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(epochs):
        losses = []
        for idx in torch.randperm(len(data), device=device).split(batch_size):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(module(data[idx]), target[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        torch.stack(losses).tolist()  # read back once per epoch, as the estimators do


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    """Seconds and peak GPU memory (MiB, NaN on the CPU) of ``fn()``."""
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    fn()
    synchronize(device)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return time.perf_counter() - start, peak


def versus_loop(
    name, make_estimator, make_module, X, y, batch_size, epochs, device, precision, repeats, out
):
    """Interleaved best-of-``repeats`` throughput of an estimator and the plain loop."""
    dtype = {"fp32": None, "bf16": torch.bfloat16}[precision]
    n = len(X) * epochs
    est = make_estimator(
        batch_size=batch_size,
        max_epochs=epochs,
        device=device.type,
        precision=precision,
        verbose=0,
    )
    warm = slice(0, batch_size * 2)
    hand_written_loop(make_module(), X[warm], y[warm], batch_size, 1, device, est.lr, dtype)
    loop_s = est_s = float("inf")
    for _ in range(repeats):  # alternate, keep the best of each (shared machines are noisy)
        t, loop_mem = timed(
            lambda: hand_written_loop(
                make_module(), X, y, batch_size, epochs, device, est.lr, dtype
            ),
            device,
        )
        loop_s = min(loop_s, t)
        t, est_mem = timed(lambda: est.fit(X, y), device)
        est_s = min(est_s, t)
    emit(
        out,
        bench="versus_loop",
        model=name,
        precision=precision,
        device=device.type,
        loop_img_s=round(n / loop_s, 1),
        estimator_img_s=round(n / est_s, 1),
        ratio=round(loop_s / est_s, 3),
        loop_peak_mib=loop_mem,
        estimator_peak_mib=est_mem,
    )
    return report(
        f"{name} [{precision}]: estimator / hand-written throughput", loop_s / est_s, 0.95
    )


def ratios(device, args):
    """The estimators against the plain loop: scratch at 100 px, squeezenet1_1 at 224 px."""
    rng = np.random.default_rng(0)
    gpu = device.type == "cuda"
    precisions = ["fp32", "bf16"] if gpu else ["fp32"]
    ok = True
    n = args.n or (20000 if gpu else 2048)
    X = rng.integers(0, 256, (n, 100, 100, 3), dtype=np.uint8)
    y = rng.integers(0, 6, n)
    for precision in precisions:
        ok &= versus_loop(
            "ScratchCNNClassifier (100 px)",
            lambda **kw: ScratchCNNClassifier(random_state=0, **kw),
            lambda: PaperCNN(6, (100, 100)),
            X,
            y,
            128,
            2,
            device,
            precision,
            args.repeats,
            args.out,
        )
    size = BACKBONES["squeezenet1_1"].size
    n = args.n or (5000 if gpu else 192)
    X = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    y = rng.integers(0, 6, n)
    for precision in precisions:
        ok &= versus_loop(
            "TransferClassifier squeezenet1_1 (224 px, full fine-tuning)",
            lambda **kw: TransferClassifier(
                "squeezenet1_1", weights=None, head_lr_factor=1, random_state=0, **kw
            ),
            lambda: TransferNet(6, "squeezenet1_1", weights=None),
            X,
            y,
            32,
            1,
            device,
            precision,
            args.repeats,
            args.out,
        )
    return ok


def throughput(clf, X, y, device):
    """Images per second of one training epoch (skorch's epoch timer, after a warm-up fit),
    peak GPU memory, and the device synchronisations the epoch made (CUDA only)."""
    clf.set_params(max_epochs=1).fit(X[: 2 * clf.batch_size], y[: 2 * clf.batch_size])
    syncs = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            _, peak = timed(lambda: clf.fit(X, y), device)
        finally:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode("default")
                syncs = sum("synchroniz" in str(w.message) for w in caught)
    return round(len(X) / clf.history_[-1, "dur"], 1), peak and round(peak, 1), syncs


def measured(clf, X, y, device, args, bench):
    """Measure :func:`throughput`, write it as one record and return the images/s."""
    img_s, peak, syncs = throughput(clf, X, y, device)
    emit(
        args.out,
        bench=bench,
        batch_size=clf.batch_size,
        iterations=-(-len(X) // clf.batch_size),
        precision=clf.precision,
        channels_last=clf.channels_last,
        img_s=img_s,
        peak_mib=peak,
        device_syncs=syncs,
    )
    return img_s


def gpu_suite(device, args):
    """AlexNet and scratch throughput, an Optuna study, a GPU save loaded on a CPU."""
    rng = np.random.default_rng(0)
    ok = True
    for batch_size in args.batch_sizes:
        n = args.n or max(40 * batch_size, 2000)
        X = rng.integers(0, 256, (n, 227, 227, 3), dtype=np.uint8)
        y = rng.integers(0, 10, n)
        for precision in ("fp32", "bf16"):
            for channels_last in (False, True):
                clf = TransferClassifier(
                    "alexnet",
                    weights=None,
                    batch_size=batch_size,
                    precision=precision,
                    channels_last=channels_last,
                    device=device.type,
                    random_state=0,
                    verbose=0,
                )
                img_s = measured(clf, X, y, device, args, "alexnet_finetune_227")
                if batch_size == 256 and precision == "bf16" and channels_last:
                    ok &= report("AlexNet bf16 fine-tuning, batch 256: images/s", img_s, 10000)
    n = args.n or 20000
    X = rng.integers(0, 256, (n, 100, 100, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n)
    for precision in ("fp32", "bf16"):
        clf = ScratchCNNClassifier(
            batch_size=128,
            precision=precision,
            channels_last=True,
            device=device.type,
            random_state=0,
            verbose=0,
        )
        measured(clf, X, y, device, args, "scratch_100")
    ok &= optuna_study(X[: args.n or 5000], y[: args.n or 5000], device, args)
    ok &= saved_on_gpu_loaded_on_cpu(X[:64], y[:64], device, args)
    return ok


def optuna_study(X, y, device, args):
    from optuna.distributions import FloatDistribution

    from sk_animals.tuning import tune

    clf = ScratchCNNClassifier(device=device.type, max_epochs=3, verbose=0)
    space = {"lr": FloatDistribution(1e-3, 0.3, log=True)}  # 3 epochs each
    start = time.perf_counter()
    _, study = tune(
        clf, X, y, n_trials=args.trials, param_distributions=space, random_state=0, refit=False
    )
    seconds = time.perf_counter() - start
    states = [t.state.name for t in study.trials]
    emit(
        args.out,
        bench="optuna_study",
        n_trials=len(states),
        seconds=round(seconds, 1),
        complete=states.count("COMPLETE"),
        pruned=states.count("PRUNED"),
        best_value=study.best_value,
    )
    return len(states) == args.trials and "FAIL" not in states


LOAD_ON_CPU = """
import sys, numpy as np, torch
from sk_animals import load
assert not torch.cuda.is_available()
clf = load(sys.argv[1])
np.save(sys.argv[3], clf.predict_proba(np.load(sys.argv[2])))
"""


def saved_on_gpu_loaded_on_cpu(X, y, device, args):
    """Save a model fitted on ``device`` and load it in a process that sees no GPU."""
    clf = ScratchCNNClassifier(device=device.type, max_epochs=1, random_state=0, verbose=0)
    clf.fit(X, y)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save(clf, tmp / "model.skmodel")
        np.save(tmp / "X.npy", X)
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
        subprocess.run(
            [
                sys.executable,
                "-c",
                LOAD_ON_CPU,
                tmp / "model.skmodel",
                tmp / "X.npy",
                tmp / "proba.npy",
            ],
            check=True,
            env=env,
        )
        on_cpu = np.load(tmp / "proba.npy")
        same_here = load(tmp / "model.skmodel").predict_proba(X)
    difference = float(np.abs(on_cpu - clf.predict_proba(X)).max())
    emit(
        args.out,
        bench="saved_on_gpu_loaded_on_cpu",
        saved_on=device.type,
        max_proba_difference=difference,
    )
    return difference < 1e-3 and np.allclose(same_here, on_cpu, atol=1e-3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--suite",
        choices=["ratios", "gpu", "all"],
        default=None,
        help="default: ratios on the CPU, all on CUDA",
    )
    parser.add_argument("--n", type=int, default=None, help="images (default: by device)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved runs, best kept")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 256])
    parser.add_argument("--trials", type=int, default=10, help="trials of the Optuna study")
    parser.add_argument("--out", default=None, help="also append the JSON lines to this file")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, to check the suite's code path on any device",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.smoke:
        args.n, args.repeats, args.batch_sizes, args.trials = 64, 1, [4], 2
    suite = args.suite or ("all" if device.type == "cuda" else "ratios")
    ok = True
    if suite in ("ratios", "all"):
        ok &= ratios(device, args)
    if suite in ("gpu", "all"):
        ok &= gpu_suite(device, args)
    return 0 if ok or args.smoke else 1


if __name__ == "__main__":
    sys.exit(main())
