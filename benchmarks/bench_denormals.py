"""Denormal floats in training on the CPU: the package flushes them; what that is worth.

``ScratchCNNClassifier()`` (the paper's network and settings, batches of 128) for 4 epochs
on 2,048 images at 100 px, once on random noise and once on real CIFAR-10 animal images
from ``../shared`` (upscaled), and in the same run a plain PyTorch loop over the same
module (``bench_training.hand_written_loop``), each with and without flushing:

- ``package``: today's fit, which flushes denormals for its duration;
- ``package, not flushed``: the same fit with the flush switched off (this script
  replaces ``flush_denormals`` by a no-op, to measure what it removes);
- ``loop`` and ``loop, flushed``: the plain loop with ``torch.set_flush_denormal`` off
  and on.

After a warm-up fit, the four run interleaved twice and the best total of each is kept
(the first fit of a process, and single fits on a shared 2-core machine, vary by 10-25%).
Prints the package's seconds per epoch (epochs 1-4), the loops' totals, and the ratios.
Target: flushing never slower (ratio >= 0.95, within this machine's noise), and the
package at least as fast as the plain fp32 loop. About 10 minutes on 2 cores::

    python benchmarks/bench_denormals.py
"""

import contextlib
import time

import numpy as np
import torch
from _common import report, require_shared
from bench_training import hand_written_loop

import sk_animals._base as base
from sk_animals import ImageLoader, ScratchCNNClassifier, load_image_folder
from sk_animals.scratch import PaperCNN

N, SIZE, EPOCHS, BATCH = 2048, 100, 4, 128
REPEATS = 2


def package(X, y, flushed):
    real = base.flush_denormals
    if not flushed:
        base.flush_denormals = contextlib.nullcontext
    try:
        clf = ScratchCNNClassifier(max_epochs=EPOCHS, batch_size=BATCH, random_state=0, verbose=0)
        clf.fit(X, y)
    finally:
        base.flush_denormals = real
    return list(clf.history[:, "dur"])


def loop(X, y, flushed):
    """The plain loop's total seconds for the 4 epochs (no per-epoch split)."""
    torch.manual_seed(0)
    torch.set_flush_denormal(flushed)
    try:
        start = time.perf_counter()
        hand_written_loop(
            PaperCNN(6, (SIZE, SIZE)), X, y, BATCH, EPOCHS, torch.device("cpu"), 0.01
        )
        return [time.perf_counter() - start]
    finally:
        torch.set_flush_denormal(False)


CONFIGS = [
    ("package, not flushed", package, False),
    ("package", package, True),
    ("loop", loop, False),
    ("loop, flushed", loop, True),
]


def main():
    shared = require_shared()
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (N, SIZE, SIZE, 3), dtype=np.uint8), rng.integers(0, 6, N)
    cifar = load_image_folder(shared / "data" / "cifar10-animals" / "train", per_class=N // 6)
    real = ImageLoader(SIZE, n_jobs=2).transform(cifar.data[:N])
    codes = np.unique(cifar.target[:N], return_inverse=True)[1]
    ok = True
    for name, (X, y) in {"noise": noise, "cifar": (real, codes)}.items():
        package(X[:512], y[:512], True)  # warm-up: the first fit of a process is slower
        runs = {}
        for _ in range(REPEATS):  # interleaved, the best total of each kept
            for label, fn, flushed in CONFIGS:
                times = fn(X, y, flushed)
                if label not in runs or sum(times) < sum(runs[label]):
                    runs[label] = times
        print(f"\n{name}: {len(X)} images at {SIZE} px, seconds per epoch")
        for label, times in runs.items():
            print(f"  {label:<22} {' '.join(f'{t:6.2f}' for t in times)}  total {sum(times):6.1f}")
        total = {k: sum(v) for k, v in runs.items()}
        ok &= report(
            f"{name}: package not flushed / flushed (time)",
            total["package, not flushed"] / total["package"],
            0.95,
        )
        ok &= report(
            f"{name}: plain loop / package (time)", total["loop"] / total["package"], 0.95
        )
        report(f"{name}: loop / loop flushed (time)", total["loop"] / total["loop, flushed"], 0.0)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
