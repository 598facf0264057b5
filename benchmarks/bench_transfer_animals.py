"""Transfer vs scratch on the 160 real Animals-10 photos, same 4 stratified folds.

The squeezenet1_1 transfer classifier starts from the real ImageNet weights in ../shared;
ScratchCNNClassifier starts from random weights. Targets: transfer mean accuracy >= 0.70
and at least 3x scratch's. Run: ``python benchmarks/bench_transfer_animals.py``
"""

import json
import sys
import time

import numpy as np
from _common import report, require_shared
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.pipeline import make_pipeline

from sk_animals.datasets import load_animals10
from sk_animals.preprocessing import ImageLoader
from sk_animals.scratch import ScratchCNNClassifier
from sk_animals.transfer import BACKBONES, TransferClassifier


def main():
    shared = require_shared()
    data = load_animals10(shared / "data" / "animals10-sample")
    weights = shared / "weights" / "squeezenet1_1-imagenet1k.pth"
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    models = {
        "transfer squeezenet1_1 (paper recipe)": make_pipeline(
            ImageLoader(BACKBONES["squeezenet1_1"].size, n_jobs=2),
            TransferClassifier("squeezenet1_1", weights=weights, random_state=0, verbose=0),
        ),
        "scratch (paper recipe)": make_pipeline(
            ImageLoader(100, n_jobs=2), ScratchCNNClassifier(random_state=0, verbose=0)
        ),
    }
    means = []
    for name, pipe in models.items():
        start = time.perf_counter()
        result = cross_validate(pipe, data.data, data.target, cv=cv, return_train_score=True)
        scores = result["test_score"]
        means.append(scores.mean())
        print(
            json.dumps(
                {
                    "model": name,
                    "fold_accuracy": np.round(scores, 3).tolist(),
                    "mean": round(scores.mean(), 3),
                    "std": round(scores.std(), 3),
                    "train_accuracy": round(result["train_score"].mean(), 3),
                    "seconds": round(time.perf_counter() - start, 1),
                }
            ),
            flush=True,
        )
    ok = report("transfer mean accuracy", means[0], 0.70)
    ok &= report("transfer / scratch mean accuracy", means[0] / max(means[1], 1e-9), 3.0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
