"""Helpers shared by the benchmarks: where ../shared is, and best-of-n timing."""

import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"


def require_shared():
    """Return ../shared, or exit with a message when it is absent."""
    if not SHARED.is_dir():
        sys.exit(f"this benchmark needs the shared data folder at {SHARED}")
    return SHARED


def best_of(fn, repeat=5):
    """Smallest wall time of ``repeat`` calls of ``fn`` (seconds)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def report(name, value, target, higher_is_better=True):
    """Print one measured ratio against its target; return whether it is met."""
    ok = value >= target if higher_is_better else value <= target
    sign = ">=" if higher_is_better else "<="
    print(f"{name:<58} {value:7.2f}  (target {sign} {target})  {'ok' if ok else 'MISSED'}")
    return ok
