"""Does the data-budget forecast hold? Forecast from small budgets, then measure for real.

``compare`` on the CIFAR-10 animals of ``../shared`` (six classes, 1500 per class in
``train/``): one common 20% test set (1800 images) is drawn first, then each approach is
trained at 25, 50, 100, 200, 500 and 1000 images per class (nested draws) and scored on
it. Approaches: the paper's scratch CNN at 64 px (its settings, 10 epochs) and the probe
(EfficientNet-Lite0's frozen ImageNet features from ``../shared/weights`` at 128 px, a
logistic regression). The forecast is fitted on the points of 25-200 per class only
(``sk_animals.stats.fit_learning_curve``, as ``compare`` does) and read at 500 and 1000;
the measured 500 and 1000 are the check: each should fall inside its 95% interval.
About 25 minutes on 2 cores::

    HF_HUB_OFFLINE=1 python benchmarks/bench_forecast.py
"""

import argparse
import json
import time
from pathlib import Path

from _common import require_shared
from sklearn.pipeline import make_pipeline

from sk_animals import ImageLoader, LinearProbe, PretrainedFeatures, ScratchCNNClassifier
from sk_animals.evaluation import compare
from sk_animals.protocols import Approach
from sk_animals.stats import fit_learning_curve

FITTED, CHECKED = (25, 50, 100, 200), (500, 1000)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/forecast.json")
    args = parser.parse_args()
    shared = require_shared()
    weights = str(shared / "weights" / "tf_efficientnet_lite0-imagenet1k.pth")
    approaches = [
        Approach(
            "scratch",
            make_pipeline(ImageLoader(64), ScratchCNNClassifier(random_state=0, verbose=0)),
            per_class=FITTED[0],
        ),
        Approach(
            "probe",
            make_pipeline(
                ImageLoader(128, interpolation="bicubic"),
                PretrainedFeatures("timm/tf_efficientnet_lite0", weights=weights),
                LinearProbe(),
            ),
            per_class=FITTED[0],
        ),
    ]
    start = time.perf_counter()
    result = compare(
        shared / "data" / "cifar10-animals" / "train",
        approaches,
        cv=0,
        budgets=[*FITTED, *CHECKED],
        audit=False,
        random_state=0,
        verbose=1,
    )
    seconds = time.perf_counter() - start
    n_test = len(result.test_files)
    rows, covered = [], []
    for name in ("scratch", "probe"):
        points = sorted(
            (p for p in result.budget_curve if p.approach == name), key=lambda p: p.per_class
        )
        measured = {p.per_class: p.test_accuracy for p in points}
        fit = fit_learning_curve(
            list(FITTED), [measured[n] for n in FITTED], n_test, random_state=0
        )
        if isinstance(fit, str):
            print(f"{name}: no forecast ({fit})")
            continue
        low, high = fit.interval(list(CHECKED), random_state=0)
        for k, n in enumerate(CHECKED):
            inside = bool(low[k] <= measured[n] <= high[k])
            covered.append(inside)
            rows.append(
                {
                    "approach": name,
                    "per_class": n,
                    "forecast": float(fit.predict(n)),
                    "ci95": [float(low[k]), float(high[k])],
                    "measured": measured[n],
                    "inside": inside,
                }
            )
        print(f"{name}: measured {', '.join(f'{n}: {measured[n]:.3f}' for n in measured)}")
        print(f"{name}: fit on {FITTED}: {fit.params}")
    print(f"\n{n_test} common test images; {seconds:.0f} s\n")
    print("| approach | per class | forecast | 95% interval | measured | inside |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        lo, hi = r["ci95"]
        print(
            f"| {r['approach']} | {r['per_class']} | {r['forecast']:.3f} | "
            f"{lo:.3f}-{hi:.3f} | {r['measured']:.3f} | {'yes' if r['inside'] else 'NO'} |"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"n_test": n_test, "rows": rows}, indent=1))
    print(f"\n{sum(covered)} of {len(covered)} measured values inside their intervals")
    return 0 if all(covered) else 1


if __name__ == "__main__":
    raise SystemExit(main())
