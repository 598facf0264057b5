"""The data-budget curve on CIFAR-10's six animal classes: scratch vs squeezenet transfer.

``sk_animals.evaluation.compare`` on ``../shared/data/cifar10-animals/train`` (1500 per
class): a common 20% test set (1800 images) is drawn first, the paper's two approaches are
fitted (scratch at 100 px, squeezenet1_1 with the shared ImageNet weights at 224 px), and
each is retrained at every budget of images per class and scored on the same test set.
Prints the verdict, the curve and the audit counts; writes the report to
``benchmarks/results/budget_cifar``. Run: ``python benchmarks/bench_budget_cifar.py
[--budgets 25,100,500] [--per-class N]`` (over an hour on 2 cores with the defaults).
"""

import argparse
import time
from pathlib import Path

from _common import require_shared

from sk_animals.evaluation import compare, paper_protocol


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="25,100,500")
    parser.add_argument(
        "--per-class", type=int, default=None, help="both approaches' own budget (paper: 1500/500)"
    )
    args = parser.parse_args()
    shared = require_shared()
    budgets = [int(b) for b in args.budgets.split(",")]
    approaches = paper_protocol(
        backbone="squeezenet1_1",
        weights=shared / "weights" / "squeezenet1_1-imagenet1k.pth",
        per_class=args.per_class,
        device="cpu",
    )
    start = time.perf_counter()
    result = compare(
        shared / "data" / "cifar10-animals" / "train", approaches, cv=0, budgets=budgets
    )
    seconds = time.perf_counter() - start
    out = Path(__file__).parent / "results" / "budget_cifar"
    result.save(out)
    print("\n".join(result.verdicts()))
    print(result.to_markdown())
    print("\n| approach | per class | test accuracy | 95% CI |\n|---|---|---|---|")
    for p in result.budget_curve:
        low, high = p.test_ci95
        print(f"| {p.approach} | {p.per_class} | {p.test_accuracy:.3f} | {low:.3f}-{high:.3f} |")
    print("\n".join(result.budget_matches()))
    print(f"audit: {result.audit.summary()}")
    print(f"compare took {seconds / 60:.1f} minutes; report: {out / 'report.html'}")


if __name__ == "__main__":
    main()
