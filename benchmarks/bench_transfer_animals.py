"""Transfer vs scratch on the 160 real Animals-10 photos, the same 4 stratified folds.

squeezenet1_1 starts from the real ImageNet weights in ../shared; ScratchCNNClassifier from
random weights. Rows, in one run: the paper's transfer recipe, the recommended transfer
preset (``TransferClassifier(**RECOMMENDED)``), the frozen features with a logistic
regression (the baseline any fine-tuning must beat), and the paper's scratch recipe.
Targets: the recommended preset's mean accuracy >= 0.80, its mean fit time at most 3x the
paper recipe's, and the paper recipe at least 3x scratch. Run:

    python benchmarks/bench_transfer_animals.py
"""

import json
import sys

import numpy as np
from _common import report, require_shared
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_animals.datasets import load_animals10
from sk_animals.preprocessing import ImageLoader
from sk_animals.scratch import ScratchCNNClassifier
from sk_animals.transfer import (
    BACKBONES,
    RECOMMENDED,
    PretrainedFeatures,
    TransferClassifier,
)


def main():
    shared = require_shared()
    data = load_animals10(shared / "data" / "animals10-sample")
    weights = shared / "weights" / "squeezenet1_1-imagenet1k.pth"
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    size = BACKBONES["squeezenet1_1"].size
    common = dict(weights=weights, random_state=0, verbose=0)
    models = {
        "transfer, paper recipe": TransferClassifier("squeezenet1_1", **common),
        "transfer, recommended": TransferClassifier("squeezenet1_1", **RECOMMENDED, **common),
        "frozen features + logistic regression": make_pipeline(
            PretrainedFeatures("squeezenet1_1", weights=weights),
            StandardScaler(),
            LogisticRegression(C=0.1, tol=1e-2),
        ),
    }
    X = ImageLoader(size, n_jobs=2).transform(data.data)  # decoded once for every row
    results = {}
    for name, model in models.items():
        results[name] = cross_validate(model, X, data.target, cv=cv, return_train_score=True)
    scratch = make_pipeline(ImageLoader(100, n_jobs=2), ScratchCNNClassifier(random_state=0))
    scratch.set_params(scratchcnnclassifier__verbose=0)
    results["scratch, paper recipe"] = cross_validate(
        scratch, data.data, data.target, cv=cv, return_train_score=True
    )
    for name, result in results.items():
        scores = result["test_score"]
        print(
            json.dumps(
                {
                    "model": name,
                    "fold_accuracy": np.round(scores, 3).tolist(),
                    "mean": round(scores.mean(), 3),
                    "std": round(scores.std(), 3),
                    "train_accuracy": round(result["train_score"].mean(), 3),
                    "fit_seconds_per_fold": round(result["fit_time"].mean(), 1),
                }
            ),
            flush=True,
        )
    mean = {name: r["test_score"].mean() for name, r in results.items()}
    fit = {name: r["fit_time"].mean() for name, r in results.items()}
    ok = report("recommended transfer: mean accuracy", mean["transfer, recommended"], 0.80)
    ok &= report(
        "recommended / paper transfer fit time",
        fit["transfer, recommended"] / fit["transfer, paper recipe"],
        3.0,
        higher_is_better=False,
    )
    ok &= report(
        "paper transfer / scratch mean accuracy",
        mean["transfer, paper recipe"] / max(mean["scratch, paper recipe"], 1e-9),
        3.0,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
