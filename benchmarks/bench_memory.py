"""Peak memory of a ScratchCNNClassifier fit on 15,000 images of 100x100 (synthetic).

Target: the peak resident memory the fit adds stays within the uint8 data (450 MB) plus
1 GB, i.e. the data set is never converted to float as a whole. Run:

    python benchmarks/bench_memory.py
"""

import resource
import sys

import numpy as np
from _common import report

from sk_animals.scratch import ScratchCNNClassifier


def rss_mb():
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    clf = ScratchCNNClassifier(max_epochs=1, verbose=0, random_state=0, width=8)
    warm = np.zeros((256, 100, 100, 3), np.uint8)
    clf.fit(warm, np.arange(256) % 6)  # libraries loaded, allocator warm, before the data
    before = rss_mb()
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (15000, 100, 100, 3), dtype=np.uint8)
    y = rng.integers(0, 6, 15000)
    data_mb = X.nbytes / 2**20
    clf.fit(X, y)
    added = rss_mb() - before
    print(
        f"uint8 data {data_mb:.0f} MB; peak memory added by data and fit {added:.0f} MB "
        f"(process peak {rss_mb():.0f} MB)"
    )
    ok = report(
        "memory added beyond the uint8 data (MB)", added - data_mb, 1024, higher_is_better=False
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
