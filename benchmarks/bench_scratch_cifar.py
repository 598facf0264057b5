"""The from-scratch CNN on real photos at the paper's budget: paper settings vs recommended.

CIFAR-10's six animal classes from ../shared, 1500 training images per class (the paper's
scratch budget), upscaled to 100x100 as the paper's inputs were, 10 epochs, validated on the
300-per-class ``valid/`` split. Run:

    python benchmarks/bench_scratch_cifar.py                 # both settings
    python benchmarks/bench_scratch_cifar.py recommended '{"width": 16}'   # one, with overrides

Target: the recommended settings reach at least 0.65 validation accuracy.
"""

import json
import sys
import time

from _common import report, require_shared

from sk_animals.datasets import load_image_folder
from sk_animals.preprocessing import ImageLoader
from sk_animals.scratch import RECOMMENDED, ScratchCNNClassifier

SETTINGS = {"paper": {}, "recommended": RECOMMENDED}


def main(argv):
    root = require_shared() / "data" / "cifar10-animals"
    loader = ImageLoader(size=100, n_jobs=2)
    train, valid = load_image_folder(root / "train"), load_image_folder(root / "valid")
    X_train, X_valid = loader.transform(train.data), loader.transform(valid.data)
    names = argv[:1] or list(SETTINGS)
    overrides = json.loads(argv[1]) if len(argv) > 1 else {}
    results = {}
    for name in names:
        params = {**SETTINGS[name], **overrides, "random_state": 0, "verbose": 1}
        clf = ScratchCNNClassifier(**params)
        start = time.perf_counter()
        clf.fit(X_train, train.target)
        fit_time = time.perf_counter() - start
        results[name] = {
            "valid_accuracy": clf.score(X_valid, valid.target),
            "train_accuracy": clf.score(X_train, train.target),
            "fit_seconds": round(fit_time, 1),
            "params": {k: v for k, v in params.items() if k != "verbose"},
        }
        print(json.dumps({name: results[name]}, default=str), flush=True)
    if "recommended" in results:
        ok = report(
            "recommended settings: validation accuracy",
            results["recommended"]["valid_accuracy"],
            0.65,
        )
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
