"""ImageLoader throughput on real photos against a plain PIL loop, measured in one run.

Run: ``python benchmarks/bench_imageloader.py`` (needs ../shared). Targets: at 100 px with
``n_jobs=1`` at least 1.3x the plain loop; ``n_jobs=2`` at least 1.8x ``n_jobs=1``.
"""

import sys

import numpy as np
from _common import best_of, report, require_shared
from PIL import Image

from sk_animals.datasets import load_animals10
from sk_animals.preprocessing import ImageLoader


def plain_loop(paths, size):
    """The baseline: open, convert to RGB, resize, stack."""
    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size))) for p in paths])


def main():
    # The 160 real photos, each listed 10 times: a folder-sized list, so that per-call
    # overheads (thread start-up) do not hide the steady-state throughput.
    paths = np.tile(load_animals10(require_shared() / "data" / "animals10-sample").data, 10)
    plain_loop(paths[:160], 100)  # warm the file cache
    ok = True
    for size in (100, 227):
        plain = best_of(lambda size=size: plain_loop(paths, size), 3)
        one = best_of(lambda size=size: ImageLoader(size, n_jobs=1).transform(paths), 3)
        two = best_of(lambda size=size: ImageLoader(size, n_jobs=2).transform(paths), 3)
        n = len(paths)
        print(
            f"{size} px, {n} paths: plain {n / plain:6.0f} img/s, ImageLoader n_jobs=1 "
            f"{n / one:6.0f} img/s, n_jobs=2 {n / two:6.0f} img/s"
        )
        ok &= report(
            f"{size} px: ImageLoader(n_jobs=1) / plain loop",
            plain / one,
            1.3 if size == 100 else 1.0,
        )
        ok &= report(
            f"{size} px: ImageLoader(n_jobs=2) / ImageLoader(n_jobs=1)",
            one / two,
            1.8 if size == 100 else 1.0,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
