"""Two levers for training speed on the CPU, measured before turning either on by default.

On real CIFAR-10 animal images from ../shared at 100 px (1,024 by default, ``--n``), the
paper's network (``ScratchCNNClassifier()``), batches of 128, 2 torch threads:

- ``channels_last``: two-epoch fits with ``channels_last=True`` and ``False``, alternating,
  best of ``--repeats``. The estimators' batches are NHWC uint8 arrays whose permuted view is
  already channels-last, and torch's CPU convolutions follow the input's layout, so the
  weights' layout is expected to matter little.
- ``torch.compile`` of the same module in a plain loop (SGD, cross-entropy): the seconds of
  each of 3 epochs, eager and compiled; the first compiled epoch carries the compilation.
  A default may add at most 10 s of start-up to a fit.

Prints the figures and whether each lever would qualify as a default (faster by more than
5% at no more than 10 s of start-up). About 3 minutes on 2 cores::

    python benchmarks/bench_cpu_levers.py
"""

import argparse
import time

import numpy as np
import torch
from bench_training import real_images

from sk_animals import ScratchCNNClassifier
from sk_animals._networks import PaperCNN


def fit_seconds(X, y, channels_last, epochs):
    clf = ScratchCNNClassifier(
        max_epochs=epochs, batch_size=128, channels_last=channels_last, random_state=0, verbose=0
    )
    start = time.perf_counter()
    clf.fit(X, y)
    return time.perf_counter() - start


def epoch_seconds(X, y, compiled, epochs):
    torch.manual_seed(0)
    module = PaperCNN(6, X.shape[1:3]).train()
    data = torch.from_numpy(X).permute(0, 3, 1, 2).float().div(255)
    target = torch.from_numpy(y)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    step = torch.compile(module) if compiled else module
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for idx in torch.randperm(len(data)).split(128):
            loss = loss_fn(step(data[idx]), target[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1024, help="images")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(2)
    X, y = real_images(args.n, 100)
    fit_seconds(X[:256], y[:256], True, 1)  # warm-up
    best = {True: float("inf"), False: float("inf")}
    for _ in range(args.repeats):
        for layout in best:
            best[layout] = min(best[layout], fit_seconds(X, y, layout, 2))
    ratio = best[False] / best[True]
    print(
        f"channels_last fit, {len(X)} images x 2 epochs: True {best[True]:.1f} s, "
        f"False {best[False]:.1f} s, speed-up {ratio:.2f}x "
        f"({'qualifies' if ratio > 1.05 else 'does not qualify'})"
    )
    if args.no_compile:
        return
    eager = epoch_seconds(X, y, False, 3)
    compiled = epoch_seconds(X, y, True, 3)
    start_up = compiled[0] - np.median(compiled[1:])
    steady = np.median(eager[1:]) / np.median(compiled[1:])
    print(f"eager epochs    {', '.join(f'{t:.2f}' for t in eager)} s")
    print(f"compiled epochs {', '.join(f'{t:.2f}' for t in compiled)} s")
    qualifies = steady > 1.05 and start_up <= 10
    print(
        f"torch.compile: start-up {start_up:.1f} s, steady-state speed-up {steady:.2f}x "
        f"({'qualifies' if qualifies else 'does not qualify'})"
    )


if __name__ == "__main__":
    main()
