"""audit_images throughput on 26,000 paths against a plain PIL decode loop, in one run.

Run: ``python benchmarks/bench_audit.py`` (needs ../shared). The 10,800 CIFAR-10 animal
JPEGs (32x32) are listed over and over up to 26,000 paths, the size of Animals-10. Targets:
the audit on one thread takes at most 3x the time of a loop that only opens and decodes each
image (it decodes once too, then adds a byte hash and ``imagehash.phash``, which costs about
as much as decoding a 32x32 JPEG), and comparing 26,000 perceptual hashes pairwise takes at
most 5 s. The ``n_jobs=2`` speed-up is printed without a target: phash holds the GIL for most
of its time. Also prints what the audit finds in the two shared data sets.
"""

import sys
import time

import numpy as np
from _common import best_of, report, require_shared
from PIL import Image

from sk_animals.audit import _near_pairs, audit_images
from sk_animals.datasets import load_animals10, load_image_folder

N_PATHS = 26_000


def plain_loop(paths):
    """The baseline: open and decode each image, nothing else."""
    for p in paths:
        with Image.open(p) as img:
            img.convert("RGB")


def cifar(shared):
    """The CIFAR-10 animal paths, their labels and their split (the folder name)."""
    parts = [
        load_image_folder(shared / "data" / "cifar10-animals" / s) for s in ("train", "valid")
    ]
    splits = np.repeat(["train", "valid"], [len(d.data) for d in parts])
    return (*(np.concatenate([d[k] for d in parts]) for k in ("data", "target")), splits)


def main():
    shared = require_shared()
    paths, labels, splits = cifar(shared)
    many, many_labels = np.resize(paths, N_PATHS), np.resize(labels, N_PATHS)
    plain_loop(paths)  # warm the file cache
    plain = best_of(lambda: plain_loop(many), 2)
    one = best_of(lambda: audit_images(many, many_labels, n_jobs=1), 2)
    audit = best_of(lambda: audit_images(many, many_labels, n_jobs=2), 2)
    words = np.random.default_rng(0).integers(0, 2**63, (N_PATHS, 1), dtype=np.uint64)
    start = time.perf_counter()
    _near_pairs(words, 4)
    pairs = time.perf_counter() - start
    print(
        f"{N_PATHS} paths of 32x32 JPEG: plain decode {N_PATHS / plain:6.0f} img/s "
        f"({plain:.1f} s), audit_images n_jobs=1 {N_PATHS / one:6.0f} img/s ({one:.1f} s), "
        f"n_jobs=2 {N_PATHS / audit:6.0f} img/s ({audit:.1f} s); "
        f"n_jobs=2 / n_jobs=1 speed-up {one / audit:.2f}x; "
        f"{N_PATHS}^2/2 hash pairs compared in {pairs:.2f} s"
    )
    ok = report("audit_images(n_jobs=1) time / plain decode loop", one / plain, 3.0, False)
    ok &= report(f"seconds to compare {N_PATHS} hashes pairwise", pairs, 5.0, False)

    print("\nwhat the audit finds (groups):")
    photos = load_animals10(shared / "data" / "animals10-sample")
    for name, result in [
        ("animals10-sample", audit_images(photos.data, photos.target, n_jobs=2)),
        ("cifar10-animals", audit_images(paths, labels, splits=splits, n_jobs=2)),
    ]:
        counts = ", ".join(f"{k} {v}" for k, v in result.summary().items())
        print(
            f"{name:<17} {result.n_images:6d} images: {counts}, unreadable "
            f"{len(result.unreadable)}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
