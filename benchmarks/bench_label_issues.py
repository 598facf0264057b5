"""Precision and recall of ``audit.find_label_issues`` on planted label errors.

The 160 shared Animals-10 photos; for each seed, 10% of them (16, drawn at random) get a
wrong label drawn uniformly from the other classes. The estimator is the linear probe on
EfficientNet-Lite0's frozen ImageNet features (``../shared/weights``) at 224 px: the
features are extracted once (they do not depend on the labels), then
``find_label_issues(LinearProbe(), features, noisy_labels, cv=5)``. Precision: the flagged
images that were planted; recall: the planted images that were flagged. The photos' own
labels may hold real errors too: a flagged image that was not planted counts against
precision here. About 1 minute on 2 cores::

    HF_HUB_OFFLINE=1 python benchmarks/bench_label_issues.py --seeds 0,1,2
"""

import argparse

import numpy as np
from _common import require_shared

from sk_animals import ImageLoader, LinearProbe, PretrainedFeatures, load_image_folder
from sk_animals.audit import find_label_issues


def planted(y, fraction, seed):
    """Labels with ``fraction`` of them changed to another class, and the changed positions."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    where = rng.choice(len(y), round(fraction * len(y)), replace=False)
    noisy = y.copy()
    for i in where:
        noisy[i] = rng.choice(classes[classes != y[i]])
    return noisy, set(where.tolist())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--fraction", type=float, default=0.1)
    args = parser.parse_args()
    shared = require_shared()
    data = load_image_folder(shared / "data" / "animals10-sample")
    weights = shared / "weights" / "tf_efficientnet_lite0-imagenet1k.pth"
    images = ImageLoader(224, interpolation="bicubic").transform(data.data)
    features = PretrainedFeatures("timm/tf_efficientnet_lite0", weights=str(weights))
    F = features.fit_transform(images)
    y = np.asarray(data.target)
    own = find_label_issues(LinearProbe(), F, y, cv=5, random_state=0)
    print(f"{len(data.data)} photos; with their own labels, {len(own)} flagged:")
    for row in own.to_dict(data.data):
        print(f"  {row['path']}: given {row['given']}, suggested {row['suggested']}")
    precisions, recalls = [], []
    for seed in map(int, args.seeds.split(",")):
        noisy, truth = planted(y, args.fraction, seed)
        issues = find_label_issues(LinearProbe(), F, noisy, cv=5, random_state=seed)
        found = set(issues.indices.tolist())
        precision = len(found & truth) / max(len(found), 1)
        recall = len(found & truth) / len(truth)
        precisions.append(precision)
        recalls.append(recall)
        print(
            f"seed {seed}: {len(truth)} planted, {len(found)} flagged, "
            f"precision {precision:.2f}, recall {recall:.2f}"
        )
    print(
        f"mean precision {np.mean(precisions):.2f}, mean recall {np.mean(recalls):.2f} "
        f"over {len(precisions)} seeds"
    )


if __name__ == "__main__":
    main()
