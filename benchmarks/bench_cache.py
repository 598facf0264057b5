"""ImageLoader's on-disk cache: decode once, and train from a memory map bigger than the fit.

Two measurements, in one run (needs ../shared):

1. The 160 real Animals-10 photos at 227 px: the first ``transform`` with ``cache_dir``
   (decode and store) against the second (read back). Target: the second takes at most 5%
   of the first.
2. 15,000 images at 227 px (2.3 GB of uint8; the 9,000 CIFAR-10 animal files listed 1.7
   times, upscaled) stored in the cache, then a tiny ScratchCNNClassifier fitted for one
   epoch on the memory map in a fresh process. Reported: that process's peak resident
   memory (``ru_maxrss``) and its peak anonymous memory (sampled from /proc), against the
   array's size. The memory map's pages count in ``ru_maxrss`` while mapped, but they are
   clean file pages the kernel drops under memory pressure; anonymous memory is what the
   fit itself holds. Target: the anonymous memory the fit on the map adds, beyond a
   warm-up fit on 256 images, is at most a tenth of the array (an in-memory array would
   add all of it).

Run: ``python benchmarks/bench_cache.py [--cache-dir DIR]`` (the big entry needs 2.3 GB of
disk; by default a temporary folder, removed at the end). About 12 minutes with one thread.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import report, require_shared

from sk_animals.datasets import load_animals10, load_image_folder
from sk_animals.preprocessing import ImageLoader

N_BIG, SIZE = 15_000, 227

# Run in a fresh process so that its peak memory is the fit's alone.
FIT = """
import resource, sys, threading, time
import numpy as np
from sk_animals.datasets import load_image_folder
from sk_animals.preprocessing import ImageLoader
from sk_animals.scratch import ScratchCNNClassifier

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024

peak_anon, done = [0.0], threading.Event()
def sample():
    while not done.is_set():
        peak_anon[0] = max(peak_anon[0], status("RssAnon:"))
        time.sleep(0.02)

cache_dir, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = load_image_folder(sys.argv[4])
paths, y = np.resize(data.data, n), np.resize(data.target, n)
threading.Thread(target=sample, daemon=True).start()
X = ImageLoader(size, cache_dir=cache_dir).transform(paths)
assert isinstance(X, np.memmap), type(X)
clf = ScratchCNNClassifier(max_epochs=1, width=4, random_state=0, verbose=0)
warm = np.linspace(0, n - 1, 256).astype(int)  # every class
clf.fit(np.array(X[warm]), y[warm])  # libraries loaded, allocator warm, before the data
base_anon, peak_anon[0] = status("RssAnon:"), 0.0
start = time.perf_counter()
clf.fit(X, y)
seconds = time.perf_counter() - start
done.set()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(peak, base_anon, peak_anon[0], status("RssFile:"), seconds)
"""


def decode_once(paths, cache_dir, repeat=3):
    """Best first (decode and store) and second (read back) transform times, seconds."""
    first, second = [], []
    for i in range(repeat):
        loader = ImageLoader(SIZE, cache_dir=cache_dir / f"photos-{i}")
        start = time.perf_counter()
        stored = loader.transform(paths)
        first.append(time.perf_counter() - start)
        start = time.perf_counter()
        again = loader.transform(paths)
        second.append(time.perf_counter() - start)
        assert np.array_equal(stored, again)
    return min(first), min(second)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache-dir", type=Path, help="where to build the cache (default: temp)")
    args = parser.parse_args()
    shared = require_shared()
    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="bench_cache-"))
    ok = True
    try:
        photos = load_animals10(shared / "data" / "animals10-sample").data
        plain = ImageLoader(SIZE).transform(photos)  # warm the file cache
        first, second = decode_once(photos, cache_dir)
        print(
            f"{len(photos)} photos at {SIZE} px: first transform {first * 1000:.0f} ms "
            f"(decode and store), second {second * 1000:.1f} ms (read back)"
        )
        assert np.array_equal(plain, ImageLoader(SIZE, cache_dir=cache_dir).transform(photos))
        ok &= report("second transform / first transform", second / first, 0.05, False)

        train = shared / "data" / "cifar10-animals" / "train"
        paths = np.resize(load_image_folder(train).data, N_BIG)
        start = time.perf_counter()
        X = ImageLoader(SIZE, n_jobs=2, cache_dir=cache_dir).transform(paths)
        array_mb = X.nbytes / 2**20
        print(
            f"{N_BIG} images at {SIZE} px ({len(set(paths))} files): stored in the cache in "
            f"{time.perf_counter() - start:.0f} s, {array_mb:.0f} MB"
        )
        del X
        out = subprocess.run(
            [sys.executable, "-c", FIT, str(cache_dir), str(N_BIG), str(SIZE), str(train)],
            capture_output=True,
            text=True,
        )
        if out.returncode:
            sys.exit(f"the fit failed:\n{out.stderr}")
        peak, base, anon, file_mb, seconds = map(float, out.stdout.split())
        print(
            f"fit on the memory map, 1 epoch, width 4: {seconds:.0f} s; peak RSS {peak:.0f} MB "
            f"({peak / array_mb:.2f} of the array); anonymous memory {base:.0f} MB after a "
            f"warm-up fit on 256 images, {anon:.0f} MB at the peak of the big fit; file pages "
            f"resident at the end (libraries and the map) {file_mb:.0f} MB"
        )
        ok &= report(
            "anonymous memory the big fit adds / array size", (anon - base) / array_mb, 0.1, False
        )
    finally:
        if args.cache_dir is None:
            shutil.rmtree(cache_dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
