"""Shared fixtures: a seed, small generated images, and the optional ../shared material."""

import os
import signal

# tests/data holds files of earlier releases and the scripts that wrote them, not tests:
# importing data/legacy/make_files.py under --doctest-modules rewrote the legacy files.
collect_ignore_glob = ["data/*"]

# The tests fit tiny networks, often in several processes at once (workers, the CLI): one
# BLAS/OpenMP thread each keeps 2 cores from being oversubscribed (a value exported for the
# host's cores made tiny fits 25x slower) and gives every process, dask's workers included,
# the same floating-point order. Set before torch loads; subprocesses inherit it.
os.environ["OMP_NUM_THREADS"] = "1"

# A shell without job control starts background jobs with SIGINT and SIGQUIT ignored, and
# children inherit that: the interrupt tests' Ctrl-C would be lost and PostgreSQL's
# immediate stop would hang. Restore the defaults, which children then get on exec; a
# blocked signal is inherited too, so unblock them.
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGQUIT})
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGQUIT) == signal.SIG_IGN:
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sk_animals.datasets import make_image_dataset  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def seed():
    """Seed numpy and torch; return the seed."""
    np.random.seed(0)
    torch.manual_seed(0)
    return 0


@pytest.fixture(scope="session")
def shapes():
    """A tiny learnable image set: 128 images of 32x32, 2 classes, string labels."""
    return make_image_dataset(n_samples=128, n_classes=2, size=32, noise=0.05, random_state=0)


@pytest.fixture(scope="session")
def shared():
    """The ../shared folder, or skip when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED
