"""Peak memory of fits: 15,000 images in memory, and 15,000 at 227 px from a memory map.

In memory (default): a ScratchCNNClassifier fit on 15,000 synthetic 100x100 images; the
target is that the peak resident memory the fit adds stays within the uint8 data (450 MB)
plus 1 GB, i.e. the data set is never converted to float as a whole.

``--memmap``: 15,000 images at 227 px (2.2 GB) in a ``.npy`` file opened as a memory map,
as ``ImageLoader(cache_dir=...)`` returns them, trained for one epoch by a narrow network
(the data path is what is measured), treated as a set larger than memory. Target: the
largest part of the data resident in the process after any batch (from
``/proc/self/smaps``) stays under a quarter of the array's size. ``--keep-pages`` trains
without releasing the pages read, for the comparison. Run:

    python benchmarks/bench_memory.py
    python benchmarks/bench_memory.py --memmap [--keep-pages]
"""

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import report
from skorch.callbacks import Callback

from sk_animals import _tensors
from sk_animals.scratch import ScratchCNNClassifier

N, CLASSES = 15000, 6


def rss_mb():
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_memory():
    clf = ScratchCNNClassifier(max_epochs=1, verbose=0, random_state=0, width=8)
    warm = np.zeros((256, 100, 100, 3), np.uint8)
    clf.fit(warm, np.arange(256) % CLASSES)  # libraries loaded, allocator warm, before the data
    before = rss_mb()
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (N, 100, 100, 3), dtype=np.uint8)
    y = rng.integers(0, CLASSES, N)
    data_mb = X.nbytes / 2**20
    clf.fit(X, y)
    added = rss_mb() - before
    print(
        f"uint8 data {data_mb:.0f} MB; peak memory added by data and fit {added:.0f} MB "
        f"(process peak {rss_mb():.0f} MB)"
    )
    return report(
        "memory added beyond the uint8 data (MB)", added - data_mb, 1024, higher_is_better=False
    )


WRITE = """
import sys, numpy as np
out = np.lib.format.open_memmap(sys.argv[1], "w+", np.uint8, (int(sys.argv[2]), 227, 227, 3))
rng = np.random.default_rng(0)
for start in range(0, len(out), 500):
    out[start:start + 500] = rng.integers(0, 256, out[start:start + 500].shape, dtype=np.uint8)
out.flush()
"""


class PeakResident(Callback):
    """The largest resident size of the data's mapping seen after any batch."""

    def __init__(self, path):
        self.path, self.peak = path, 0.0

    def on_batch_end(self, net, **kwargs):
        self.peak = max(self.peak, _tensors.MappedPages.resident_mb(self.path))


def memory_mapped(keep_pages):
    # this machine has more memory than the array: have it treated as a set that is not
    _tensors.MappedPages.LARGER_THAN = 0
    if keep_pages:  # never release: the pages read stay resident, as numpy leaves them
        _tensors.MappedPages.release = lambda self: None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "images.npy"
        subprocess.run([sys.executable, "-c", WRITE, str(path), str(N)], check=True)
        peak = PeakResident(path)
        clf = ScratchCNNClassifier(
            width=2, max_epochs=1, batch_size=128, verbose=0, random_state=0, callbacks=[peak]
        )  # narrow: the data path is measured, not the network
        X = np.load(path, mmap_mode="c")  # as ImageLoader's cache opens its entries
        y = np.random.default_rng(0).integers(0, CLASSES, N)
        clf.fit(X, y)
        data_mb = X.nbytes / 2**20
        del X
    print(
        f"memory-mapped uint8 data {data_mb:.0f} MB; largest part of it resident during the "
        f"epoch {peak.peak:.0f} MB ({peak.peak / data_mb:.0%}; pages "
        f"{'kept' if keep_pages else 'released'}); process peak {rss_mb():.0f} MB"
    )
    return report(
        "peak resident data / memory-mapped data", peak.peak / data_mb, 0.25,
        higher_is_better=False,
    )  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--memmap", action="store_true", help="train from a 2.3 GB memory map")
    parser.add_argument("--keep-pages", action="store_true", help="do not release read pages")
    args = parser.parse_args()
    ok = memory_mapped(args.keep_pages) if args.memmap else in_memory()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
