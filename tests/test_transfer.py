import hashlib
import shutil

import joblib
import numpy as np
import pytest
import torch
import torchvision
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline

from sk_animals._backbones import weights_normalization as normalization
from sk_animals._networks import TransferNet
from sk_animals.preprocessing import ImageLoader
from sk_animals.transfer import (
    BACKBONES,
    AlexNetTransferClassifier,
    PretrainedFeatures,
    TransferClassifier,
    load_backbone,
)

SQUEEZENET_SHA256 = "2258ba41a272fc551218b870353ce59ffe104c1d095fe5841bfedb5e96aa812d"


def small(**kw):
    params = {"weights": None, "max_epochs": 1, "batch_size": 16, "verbose": 0, "random_state": 0}
    return TransferClassifier("squeezenet1_1", **{**params, **kw})


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME, so nothing is read from or written to the real cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path


def _cached_name(backbone):
    return torchvision.models.get_model_weights(backbone).DEFAULT.url.rsplit("/", 1)[-1]


def test_weights_from_torch_home_cache_without_network(torch_home):
    reference = torchvision.models.get_model("squeezenet1_1", weights=None)
    cache = torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / _cached_name("squeezenet1_1"))
    for weights in ("DEFAULT", "IMAGENET1K_V1"):
        model = load_backbone("squeezenet1_1", weights)
        for a, b in zip(model.state_dict().values(), reference.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b)


def test_missing_weights_offline_error_names_the_file(torch_home):
    with pytest.raises(OSError) as info:
        load_backbone("alexnet", "IMAGENET1K_V1")
    message = str(info.value)
    assert str(torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth") in message
    assert "download.pytorch.org" in message


def test_weights_from_a_path_and_bad_files(tmp_path):
    reference = torchvision.models.get_model("resnet18", weights=None)
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    model = load_backbone("resnet18", tmp_path / "r18.pth")
    torch.testing.assert_close(model.fc.weight, reference.fc.weight)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_backbone("resnet18", tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError, match="IMAGENET1K_V1"):
        load_backbone("resnet18", str(tmp_path / "missing.pth"))
    (tmp_path / "broken.pth").write_bytes((tmp_path / "r18.pth").read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a state dict of torchvision's resnet18"):
        load_backbone("resnet18", tmp_path / "broken.pth")
    with pytest.raises(ValueError, match="not a state dict of torchvision's alexnet"):
        load_backbone("alexnet", tmp_path / "r18.pth")
    with pytest.raises(FileNotFoundError, match="neither one of alexnet's weights"):
        load_backbone("alexnet", "IMAGENET2K")
    with pytest.raises(ValueError, match="unknown backbone"):
        load_backbone("vgg99")


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_head_replaced_to_n_classes(backbone, shapes):
    X, y = shapes
    X = ImageLoader(size=BACKBONES[backbone].size).transform(X[:4])
    clf = TransferClassifier(backbone, weights=None, max_epochs=0, verbose=0).fit(X, y[:4])
    logits = clf.module_(torch.zeros(2, 3, BACKBONES[backbone].size, BACKBONES[backbone].size))
    assert logits.shape == (2, 2)
    head = clf.module_.model.get_submodule(BACKBONES[backbone].head)
    assert head.weight.shape[0] == 2


def test_normalization_from_weights_metadata():
    mean, std = normalization("alexnet")
    np.testing.assert_allclose(mean, [0.485, 0.456, 0.406])
    np.testing.assert_allclose(std, [0.229, 0.224, 0.225])


def test_head_learns_20x_and_follows_lr(shapes):
    X, y = shapes
    clf = small(max_epochs=0).fit(X[:4], y[:4])
    assert [g["lr"] for g in clf.optimizer_.param_groups] == [1e-4, pytest.approx(2e-3)]
    clf.set_params(lr=0.01)
    assert [g["lr"] for g in clf.optimizer_.param_groups] == [0.01, pytest.approx(0.2)]
    clf.set_params(head_lr_factor=5)
    assert [g["lr"] for g in clf.optimizer_.param_groups] == [0.01, pytest.approx(0.05)]
    clf.set_params(optimizer__lr=0.002)  # skorch's way to change the optimizer alone
    assert [g["lr"] for g in clf.optimizer_.param_groups] == [0.002, pytest.approx(0.01)]
    assert clf.lr == 0.01
    clf.set_params(lr=0.003, optimizer__lr=0.002)  # lr wins, as in skorch
    assert [g["lr"] for g in clf.optimizer_.param_groups] == [0.003, pytest.approx(0.015)]
    refit = clone(clf).set_params(lr=0.001).fit(X[:4], y[:4])
    assert [g["lr"] for g in refit.optimizer_.param_groups] == [0.001, pytest.approx(0.005)]
    head = refit.optimizer_.param_groups[1]["params"]
    assert [p.shape for p in head] == [(2, 512, 1, 1), (2,)]
    assert refit.optimizer_.defaults["momentum"] == 0.9
    assert refit.optimizer_.defaults["weight_decay"] == 1e-4


@pytest.mark.parametrize("freeze", ["body", 3, "none"])
def test_frozen_parameters_unchanged_by_fit(shapes, freeze):
    X, y = shapes
    clf = TransferClassifier("resnet18", weights=None, freeze=freeze, max_epochs=0, verbose=0).fit(
        X[:8], y[:8]
    )
    before = {n: p.detach().clone() for n, p in clf.module_.named_parameters()}
    stats = clf.module_.model.bn1.running_mean.clone()
    clf.set_params(max_epochs=1, lr=0.05, warm_start=True).fit(X[:16], y[:16])
    changed = {n for n, p in clf.module_.named_parameters() if not torch.equal(p, before[n])}
    frozen = {n for n, p in clf.module_.named_parameters() if not p.requires_grad}
    assert not changed & frozen
    assert len(changed) == len(before) - len(frozen)
    if freeze != "none":
        torch.testing.assert_close(clf.module_.model.bn1.running_mean, stats)


@pytest.mark.parametrize("backbone", ["resnet18", "timm/resnet10t"])
def test_frozen_batch_norm_keeps_the_statistics_and_trains_the_rest(shapes, backbone):
    X, y = shapes
    clf = TransferClassifier(backbone, weights=None, batch_norm="frozen", max_epochs=0, verbose=0)
    clf.fit(X[:8], y[:8])
    norms = [m for m in clf.module_.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    stats = [m.running_mean.clone() for m in norms]
    before = {n: p.detach().clone() for n, p in clf.module_.named_parameters()}
    clf.set_params(max_epochs=1, lr=0.05, warm_start=True).fit(X[:16], y[:16])
    for m, s in zip(norms, stats, strict=True):
        torch.testing.assert_close(m.running_mean, s)  # eval mode in training
    assert all(not torch.equal(p, before[n]) for n, p in clf.module_.named_parameters())
    trained = clone(clf).set_params(batch_norm="train", warm_start=False).fit(X[:16], y[:16])
    assert not torch.equal(trained.module_.model.bn1.running_mean, stats[0])  # torch's default
    state = clf.__getstate__()
    state.pop("batch_norm")  # a classifier pickled before the parameter existed
    old = TransferClassifier.__new__(TransferClassifier)
    old.__setstate__(state)
    assert old.get_params()["batch_norm"] == "train"


def test_alexnet_preset_matches_the_paper():
    clf = AlexNetTransferClassifier()
    assert (clf.backbone, clf.weights, clf.freeze) == ("alexnet", "DEFAULT", "none")
    assert (clf.lr, clf.max_epochs, clf.batch_size, clf.head_lr_factor) == (1e-4, 6, 10, 20)
    assert not {"optimizer__momentum", "optimizer__weight_decay"} & set(clf.get_params())
    assert BACKBONES["alexnet"].size == 227 and BACKBONES["alexnet"].head == "classifier.6"


def test_alexnet_fits_227px(shapes):
    X, y = shapes
    X227 = ImageLoader(size=227).transform(X[:6])
    clf = AlexNetTransferClassifier(weights=None, max_epochs=1, batch_size=3, verbose=0)
    assert clf.fit(X227, y[:6]).predict(X227).shape == (6,)


def test_joblib_round_trip_and_grid_search_in_pipeline(shapes, tmp_path):
    X, y = shapes
    pipe = make_pipeline(ImageLoader(size=48), small())
    search = GridSearchCV(pipe, {"transferclassifier__lr": [1e-4, 1e-3]}, cv=2)
    search.fit(list(X[:32]), y[:32])
    assert search.best_params_["transferclassifier__lr"] in (1e-4, 1e-3)
    joblib.dump(search.best_estimator_, tmp_path / "t.joblib")
    loaded = joblib.load(tmp_path / "t.joblib")
    np.testing.assert_array_equal(
        loaded.predict_proba(list(X[:8])), search.best_estimator_.predict_proba(list(X[:8]))
    )


def test_pretrained_features_in_cached_pipeline(shapes, tmp_path):
    X, y = shapes
    features = PretrainedFeatures("squeezenet1_1", weights=None, batch_size=16)
    F = features.fit_transform(X[:20])
    assert F.shape == (20, 512) and F.dtype == np.float32 and features.n_features_out_ == 512
    assert features.get_feature_names_out()[0] == "pretrainedfeatures0"
    pipe = Pipeline(
        [
            ("load", ImageLoader(size=32)),
            ("features", features),
            ("clf", LogisticRegression(max_iter=500)),
        ],
        memory=str(tmp_path),
    )
    search = GridSearchCV(pipe, {"clf__C": [0.1, 1.0, 10.0]}, cv=2).fit(list(X[:40]), y[:40])
    assert search.best_params_["clf__C"] in (0.1, 1.0, 10.0)
    assert any(tmp_path.rglob("output.pkl"))  # the features step was cached
    clone(features)  # parameters only


def test_shared_squeezenet_weights_really_transfer(shared, tmp_path, monkeypatch):
    path = shared / "weights" / "squeezenet1_1-imagenet1k.pth"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SQUEEZENET_SHA256
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    shutil.copy(path, cache / _cached_name("squeezenet1_1"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    from sk_animals.datasets import load_animals10

    data = load_animals10(shared / "data" / "animals10-sample", per_class=8, random_state=0)
    X = ImageLoader(size=224, resize="crop").transform(data.data)
    model = load_backbone("squeezenet1_1", "DEFAULT").eval()
    with torch.inference_mode():
        from sk_animals._tensors import to_network_input

        top = model(to_network_input(X, *normalization("squeezenet1_1"), "cpu")).argmax(1)
    categories = torchvision.models.SqueezeNet1_1_Weights.DEFAULT.meta["categories"]
    # ImageNet classes 0-397 are animals: a real network sends most animal photos there.
    assert (top < 398).float().mean() > 0.8, [categories[i] for i in top]


@pytest.mark.parametrize(
    "backbone, expected",
    [("squeezenet1_1", True), ("resnet18", True), ("alexnet", True), ("mobilenet_v3_small", False),
     ("timm/tf_efficientnet_lite0", False)],
)  # fmt: skip
def test_channels_last_auto_on_the_cpu_follows_the_backbone(backbone, expected):
    clf = TransferClassifier(backbone, weights=None, device="cpu")
    assert clf.channels_last == "auto" and clf._channels_last() is expected


def test_a_torchvision_backbone_trains_channels_last_by_default_and_as_nchw_does(shapes):
    """resnet18: no dropout, whose masks are drawn in memory order (so a squeezenet1_1 fit
    draws other masks channels-last than in NCHW for the same seed)."""
    X, y = shapes
    X = ImageLoader(size=64).transform(X[:32])
    fits = {
        order: TransferClassifier(
            "resnet18",
            weights=None,
            device="cpu",
            max_epochs=2,
            batch_size=16,
            channels_last=order,
            verbose=0,
            random_state=0,
        ).fit(X, y[:32])
        for order in ("auto", False)
    }
    for order, clf in fits.items():
        weight = clf.module_.model.conv1.weight
        assert weight.is_contiguous(memory_format=torch.channels_last) is (order == "auto")
        assert weight.is_contiguous() is (order is False)
    losses = [clf.history[:, "train_loss"] for clf in fits.values()]
    np.testing.assert_allclose(*losses, rtol=1e-3)  # float noise, grown over the steps
    probabilities = [clf.predict_proba(X) for clf in fits.values()]
    np.testing.assert_allclose(*probabilities, atol=1e-3)


def test_batches_follow_the_weights_order_whatever_the_setting_says_now(shapes, tmp_path):
    """A channels-last fit whose ``channels_last`` is set to False afterwards, or that is
    pickled and loaded, still gets channels-last batches: the order comes from its weights
    (a network and its input in different orders crashed oneDNN's backward)."""
    X, y = shapes
    X = ImageLoader(size=64).transform(X[:16])
    clf = small(max_epochs=1, device="cpu").fit(X, y[:16])
    joblib.dump(clf, tmp_path / "m.joblib")
    for model in (clf.set_params(channels_last=False), joblib.load(tmp_path / "m.joblib")):
        stem = model.module_.model.features[0]
        orders = []
        hook = stem.register_forward_pre_hook(
            lambda m, args, orders=orders: orders.append(
                args[0].is_contiguous(memory_format=torch.channels_last)
            )
        )
        try:
            model.predict(X)
            model.partial_fit(X, y[:16])
        finally:
            hook.remove()
        assert orders and all(orders)


def test_every_batch_of_a_channels_last_network_is_channels_last(shapes):
    """The blank batch that checks the image size, the random one that checks a frozen
    body, the features and the predictions: all in the order of the network's weights."""
    X, y = shapes
    X = ImageLoader(size=64).transform(X[:16])
    orders = []

    def record(module, args):
        if isinstance(module, torch.nn.Conv2d) and module.in_channels == 3:
            orders.append(args[0].is_contiguous(memory_format=torch.channels_last))

    hook = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        clf = TransferClassifier(
            "resnet18", weights=None, device="cpu", freeze="body", max_epochs=1, verbose=0
        ).fit(X, y[:16])
        clf.predict(X)
    finally:
        hook.remove()
    assert clf.module_.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert clf._feature_dropout_ is not None  # the frozen body was checked, then used
    assert len(orders) >= 3 and all(orders), orders


def test_optimizer_defaults_follow_the_optimizer(shapes):
    X, y = shapes
    sgd = small(max_epochs=0).fit(X[:4], y[:4]).optimizer_
    assert sgd.defaults["momentum"] == 0.9 and sgd.defaults["weight_decay"] == 1e-4
    adam = clone(small(max_epochs=1)).set_params(optimizer=torch.optim.Adam).fit(X[:8], y[:8])
    assert isinstance(adam.optimizer_, torch.optim.Adam)
    assert adam.optimizer_.defaults["weight_decay"] == 1e-4
    back = clone(small(optimizer=torch.optim.Adam)).set_params(optimizer=torch.optim.SGD)
    assert back.fit(X[:4], y[:4]).optimizer_.defaults["momentum"] == 0.9


def test_user_param_groups_are_honoured_beside_the_head(shapes):
    X, y = shapes
    clf = small(max_epochs=0, optimizer__param_groups=[("model.features.0.*", {"lr": 0.5})])
    groups = clf.fit(X[:4], y[:4]).optimizer_.param_groups
    assert [g["lr"] for g in groups] == [0.5, 1e-4, pytest.approx(2e-3)]
    assert len(groups[0]["params"]) == 2  # the first convolution's weight and bias
    for params in [{"lr": 0.01}, {"optimizer__lr": 0.01}]:  # the user's group keeps its lr
        groups = clf.set_params(**params).optimizer_.param_groups
        assert [g["lr"] for g in groups] == [0.5, 0.01, pytest.approx(0.2)]


@pytest.mark.parametrize(
    "params, X_shape, match",
    [
        ({"head_lr_factor": 0}, (4, 64, 64, 3), "'head_lr_factor' parameter"),
        ({"freeze": 99}, (4, 64, 64, 3), "freeze=99 but squeezenet1_1 has 13 blocks"),
        ({"freeze": "all"}, (4, 64, 64, 3), "'freeze' parameter"),
        ({"batch_norm": "eval"}, (4, 64, 64, 3), "'batch_norm' parameter"),
        ({"backbone": "vgg99"}, (4, 64, 64, 3), "unknown backbone 'vgg99' \\(did you mean vgg"),
        ({"backbone": "timm/resnet10"}, (4, 64, 64, 3), "did you mean timm/resnet10t"),
        ({}, (4, 8, 8, 3), "images of 8x8 are too small for backbone='squeezenet1_1'"),
    ],
)
def test_bad_transfer_settings_name_the_parameter(params, X_shape, match):
    X, y = np.zeros(X_shape, np.uint8), np.array(["a", "b"] * 2)
    with pytest.raises(ValueError, match=match):
        small().set_params(**params).fit(X, y)


def test_pretrained_features_do_not_depend_on_the_batch_size(shapes):
    from sk_animals._tensors import inference_batch_size

    X = shapes[0][:20]
    torch.manual_seed(0)
    auto = PretrainedFeatures("squeezenet1_1", weights=None).fit()
    assert (auto.batch_size, inference_batch_size("auto", "cpu")) == ("auto", 16)
    features = auto.transform(X)
    in_threes = auto.set_params(batch_size=3).transform(X)  # the same fitted weights
    np.testing.assert_allclose(features, in_threes, rtol=1e-4, atol=1e-5)


def test_pretrained_features_engines(shapes, monkeypatch):
    """uint8 images on the CPU run in onnxruntime by default (with the onnx group), float
    images on torch; asking for onnxruntime without it, or off the CPU, is refused at fit."""
    import sys

    from sk_animals.deploy import onnx_installed

    X = shapes[0][:8]
    features = PretrainedFeatures("squeezenet1_1", weights=None).fit()
    expected = "onnxruntime" if onnx_installed() else "torch"
    assert features._engine(X, "cpu")[0] == expected
    assert features._engine(X / np.float32(255), "cpu") == ("torch", None)
    assert features.set_params(engine="torch")._engine(X, "cpu") == ("torch", None)
    with pytest.raises(ValueError, match="engine='onnxruntime' runs on the CPU"):
        PretrainedFeatures("squeezenet1_1", engine="onnxruntime", device="meta").fit()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # importing it fails
    assert features.set_params(engine="auto")._engine(X, "cpu") == ("torch", None)
    with pytest.raises(ImportError, match=r"pip install 'sk-animals\[onnx\]'"):
        PretrainedFeatures("squeezenet1_1", weights=None, engine="onnxruntime").fit()


def test_pretrained_features_validates_batch_size():
    with pytest.raises(ValueError, match="'batch_size' parameter of PretrainedFeatures"):
        PretrainedFeatures("squeezenet1_1", weights=None, batch_size=0).fit()


def test_a_new_head_gives_logits_of_either_sign():
    """SqueezeNet's ReLU after its class scores would clip a new head's logits at 0."""
    from torch import nn

    torch.manual_seed(0)
    net = TransferNet(6, "squeezenet1_1", weights=None).eval()
    with torch.no_grad():
        logits = net(torch.randn(4, 3, 64, 64))
    assert (logits < 0).any() and (logits > 0).any()
    assert isinstance(net.model.classifier[2], nn.Identity)
    features = TransferNet(None, "squeezenet1_1", weights=None)
    assert isinstance(features.model.classifier[2], nn.ReLU)  # features keep the backbone's
    alexnet = TransferNet(6, "alexnet", weights=None)
    assert isinstance(alexnet.model.classifier[5], nn.ReLU)  # before the head: untouched


@pytest.mark.parametrize(
    "backbone, dropout",
    [
        ("resnet18", 0.0),  # pooled features straight into the head
        ("mobilenet_v3_small", 0.2),  # a Dropout module right before the head
        ("timm/resnet10t", 0.0),
        ("squeezenet1_1", None),  # its head is a convolution of the spatial map
        ("efficientnet_b0", None),  # stochastic depth inside the body
    ],
)
def test_a_frozen_body_computed_once_trains_as_the_whole_network(shapes, backbone, dropout):
    X, y = shapes
    params = dict(
        weights=None, freeze="body", init_head="probe", random_flip=True, tta=True, lr=0.05,
        max_epochs=2, batch_size=16, train_split=0.25, verbose=0, random_state=0,
    )  # fmt: skip
    once = TransferClassifier(backbone, **params).fit(X[:48], y[:48])
    whole = TransferClassifier(backbone, **params)
    whole._body_once = False
    whole.fit(X[:48], y[:48])
    assert once._feature_dropout_ == dropout and whole._feature_dropout_ is None
    for key in ("train_loss", "valid_loss", "valid_acc"):
        np.testing.assert_allclose(
            once.history[:, key], whole.history[:, key], atol=1e-5, rtol=1e-5
        )
    np.testing.assert_allclose(once.predict_proba(X), whole.predict_proba(X), atol=1e-5)
    if dropout is not None:  # and only the head learned
        pairs = zip(once.module_.named_parameters(), whole.module_.parameters(), strict=True)
        for (name, p), q in pairs:
            assert p.requires_grad == name.startswith(once.module_.head_prefix)
            torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4)


def test_a_given_validation_set_is_scored_from_features_computed_once(shapes):
    """compare's final fit watches a given validation set every half epoch: its images go
    through the frozen body once per fit, whatever the number of epochs, and the scores
    equal the whole network's."""
    X, y = shapes
    params = dict(
        weights=None, freeze="body", init_head="probe", tta=True, lr=0.001, batch_size=16,
        train_split=(X[48:64], y[48:64]), validation_frequency=1, verbose=0, random_state=0,
    )  # fmt: skip
    images = []  # images through the whole network, per fit

    def count(module, args, output):
        if isinstance(module, TransferNet):
            images[-1] += len(args[0])

    handle = torch.nn.modules.module.register_module_forward_hook(count)
    try:
        for epochs in (1, 3):
            images.append(0)
            once = TransferClassifier("resnet18", max_epochs=epochs, **params)
            once.fit(X[:48], y[:48])
        images.append(0)
        whole = TransferClassifier("resnet18", max_epochs=3, **params)
        whole._body_once = False
        whole.fit(X[:48], y[:48])
    finally:
        handle.remove()
    assert images[0] == images[1] < images[2]
    trained = [b for e in once.history for b in e["batches"] if "train_loss" in b]
    assert len(trained) == 9 and all("valid_loss" in b for b in trained)  # every iteration
    for key in ("valid_loss", "valid_acc"):
        np.testing.assert_allclose(
            once.history[:, key], whole.history[:, key], atol=1e-5, rtol=1e-5
        )
        got, want = (n.history[:, "batches", :, key] for n in (once, whole))
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_a_body_computed_once_is_not_used_with_translations(shapes):
    X, y = shapes
    clf = small(freeze="body", random_translate=0.1).set_params(backbone="resnet18")
    assert clf.fit(X[:16], y[:16])._feature_dropout_ is None
    assert clf.set_params(random_translate=0.0).fit(X[:16], y[:16])._feature_dropout_ == 0.0
