"""How the photos are resized, and the linear probe's accuracy: timm's evaluation transform
against the paper's stretched images.

EfficientNet-Lite0 with the shared ImageNet weights, frozen features of the 160 shared
Animals-10 photos at 224 px, ``LinearProbe`` scored by 4-fold stratified cross-validation at
seeds 0, 1 and 2 (mean of the per-seed means, and their standard error), for each way of
making the images:

- ``stretch, bilinear``: both sides scaled to 224 (the paper's, and ``ImageLoader``'s default);
- ``stretch, bicubic``;
- ``crop, bicubic``: the shorter side to 224, the centre cut;
- ``timm pretrained_cfg``: the shorter side to 256 (``crop_pct`` 0.875), the centre 224,
  bicubic, what ``paper_protocol(backbone="timm/...")`` builds (``loader_settings``).

Nothing is chosen from it: the protocols follow the model's ``pretrained_cfg``, and this
shows what that changes. About 1 minute on 2 cores::

    HF_HUB_OFFLINE=1 python benchmarks/bench_loader_transforms.py
"""

import numpy as np
from _common import require_shared
from sklearn.model_selection import StratifiedKFold, cross_val_score

from sk_animals import ImageLoader, load_image_folder
from sk_animals._backbones import loader_settings
from sk_animals.transfer import LinearProbe, PretrainedFeatures

BACKBONE = "timm/tf_efficientnet_lite0"


def main():
    shared = require_shared()
    data = load_image_folder(shared / "data" / "animals10-sample")
    weights = shared / "weights" / "tf_efficientnet_lite0-imagenet1k.pth"
    features = PretrainedFeatures(BACKBONE, weights=weights).fit()
    loaders = {
        "stretch, bilinear": ImageLoader(224),
        "stretch, bicubic": ImageLoader(224, interpolation="bicubic"),
        "crop, bicubic": ImageLoader(224, resize="crop", interpolation="bicubic"),
        "timm pretrained_cfg": ImageLoader(224, **loader_settings(BACKBONE)),
    }
    print(f"timm pretrained_cfg: {loader_settings(BACKBONE)}")
    print("| images | per-seed means | mean (SE) |\n|---|---|---|")
    for name, loader in loaders.items():
        F = features.transform(loader.transform(data.data))
        means = np.array(
            [
                cross_val_score(
                    LinearProbe(),
                    F,
                    data.target,
                    cv=StratifiedKFold(4, shuffle=True, random_state=seed),
                ).mean()
                for seed in (0, 1, 2)
            ]
        )
        se = means.std(ddof=1) / np.sqrt(len(means))
        per_seed = ", ".join(f"{m:.3f}" for m in means)
        print(f"| {name} | {per_seed} | {means.mean():.3f} ({se:.3f}) |")


if __name__ == "__main__":
    main()
