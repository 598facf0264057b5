"""Memory order on the CPU: each network's fit and prediction in NCHW and channels-last order.

Six networks at their training sizes, fitted for one epoch and predicting the same real
images (CIFAR-10 animals from ../shared, upscaled) with ``channels_last`` False and True,
the runs interleaved ``--repeats`` times and the best of each kept: the paper's network
and the residual scratch network (``scratch.RECOMMENDED``'s settings) on 512 images at
100 px, squeezenet1_1, EfficientNet-Lite0, resnet18 and AlexNet fully fine-tuned on 64
images at 224 px (227 for AlexNet; random weights: the order's cost does not depend on
their values); ``--only NAME`` keeps the networks whose name contains NAME. Prints, per network,
NCHW seconds over channels-last seconds for the fit and for predict_proba (above 1:
channels-last is faster). No target: it shows which order to choose. About 6 minutes on
2 cores. Run:

    python benchmarks/bench_layout.py [--repeats 3]
"""

import argparse
import time

import torch
from bench_training import real_images

from sk_animals.scratch import RECOMMENDED, ScratchCNNClassifier
from sk_animals.transfer import TransferClassifier


def networks():
    """name -> (estimator factory, images, labels)."""
    small, large = real_images(512, 100), real_images(64, 224)
    residual = {k: v for k, v in RECOMMENDED.items() if k != "channels_last"}
    common = dict(random_state=0, max_epochs=1, verbose=0)

    def transfer(backbone):
        return lambda **kw: TransferClassifier(
            backbone, weights=None, batch_size=32, **common, **kw
        )

    return {
        "paper CNN, 100 px": (lambda **kw: ScratchCNNClassifier(**common, **kw), *small),
        "residual CNN, 100 px": (
            lambda **kw: ScratchCNNClassifier(**residual, **common, **kw),
            *small,
        ),
        "squeezenet1_1, 224 px": (transfer("squeezenet1_1"), *large),
        "tf_efficientnet_lite0, 224 px": (transfer("timm/tf_efficientnet_lite0"), *large),
        "resnet18, 224 px": (transfer("resnet18"), *large),
        "alexnet, 227 px": (transfer("alexnet"), *real_images(64, 227)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="", help="networks whose name contains this")
    args = parser.parse_args()
    torch.set_num_threads(2)
    runs = {}
    for name, (make, X, y) in networks().items():
        if args.only not in name:
            continue
        for order in (False, True):
            est = make(channels_last=order).fit(X[:32], y[:32])  # warm
            runs[name, order] = est, X, y
    best = {}
    for _ in range(args.repeats):
        for (name, order), (est, X, y) in runs.items():
            for what in ("fit", "predict"):
                start = time.perf_counter()
                est.fit(X, y) if what == "fit" else est.predict_proba(X)
                seconds = time.perf_counter() - start
                key = (name, order, what)
                best[key] = min(best.get(key, seconds), seconds)
    for name in dict.fromkeys(n for n, _ in runs):
        fit, predict = (best[name, False, w] / best[name, True, w] for w in ("fit", "predict"))
        print(
            f"{name:<32} NCHW / channels-last: fit {fit:.2f}x "
            f"({best[name, False, 'fit']:.2f} s vs {best[name, True, 'fit']:.2f} s), "
            f"predict {predict:.2f}x"
        )


if __name__ == "__main__":
    main()
