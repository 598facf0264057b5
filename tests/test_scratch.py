import pickle
import re
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from skorch.callbacks import Callback

from sk_animals._tensors import MappedPages, augment, inference_order, to_network_input
from sk_animals.datasets import load_image_folder, save_image_folder
from sk_animals.preprocessing import ImageLoader
from sk_animals.scratch import RECOMMENDED, ScratchCNNClassifier


def tiny(**kw):
    """A small, fast, quiet configuration."""
    params = {
        "width": 4,
        "depth": 2,
        "max_epochs": 3,
        "batch_size": 16,
        "random_state": 0,
        "verbose": 0,
        "lr": 0.05,
    }
    return ScratchCNNClassifier(**{**params, **kw})


def test_learns_the_shapes(shapes):
    X, y = shapes
    clf = tiny(max_epochs=12).fit(X, y)
    assert clf.score(X, y) > 0.8  # seeds 0-7 scored 0.95 to 1 (at 8 epochs: as low as 0.74)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    assert set(clf.predict(X)) <= set(clf.classes_) and clf.classes_.tolist() == [
        "circle",
        "cross",
    ]


def test_int_labels_and_float_images(shapes):
    X, y = shapes
    y_int = (y == "cross").astype(int) + 3
    clf = tiny().fit(X.astype(np.float32) / 255, y_int)
    assert clf.classes_.tolist() == [3, 4] and set(clf.predict(X / 255.0)) <= {3, 4}


def test_random_state_makes_fits_identical(shapes):
    X, y = shapes
    a, b = (
        tiny(random_flip=True, random_translate=0.1).fit(X, y),
        tiny(random_flip=True, random_translate=0.1).fit(X, y),
    )
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    c = tiny(random_state=1).fit(X, y)
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def test_global_torch_rng_untouched(shapes):
    X, y = shapes
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny().fit(X, y)
    np.testing.assert_array_equal(torch.rand(3), expected)


def test_no_silent_holdout_and_explicit_validation(shapes):
    X, y = shapes
    clf = tiny(max_epochs=1).fit(X, y)
    assert sum(b["train_batch_size"] for b in clf.history[-1, "batches"]) == len(X)
    assert "valid_loss" not in clf.history[-1]
    clf = tiny(max_epochs=1, train_split=0.25).fit(X, y)
    assert (
        sum(b["train_batch_size"] for b in clf.history[-1, "batches"] if "train_loss" in b) == 96
    )
    clf = tiny(max_epochs=2, train_split=(X[:10], y[:10])).fit(X, y)
    assert {"valid_loss", "valid_acc", "train_acc"} <= set(clf.history[-1])


def test_per_iteration_history(shapes):
    X, y = shapes
    clf = tiny(max_epochs=2, train_split=0.25, validation_frequency=2).fit(X, y)
    train = [b for e in clf.history for b in e["batches"] if "train_loss" in b]
    assert len(train) == 2 * 6  # 96 training images, batches of 16, 2 epochs
    assert all(0 <= b["train_acc"] <= 1 for b in train)
    assert [i for i, b in enumerate(train, 1) if "valid_acc" in b] == [2, 4, 6, 8, 10, 12]
    assert clf.history[:, "train_acc"] and clf.history[:, "valid_acc"]


class _RecordBatches(Callback):
    """Remember the labels of every training batch, per epoch."""

    def on_epoch_begin(self, net, **kwargs):
        self.epochs_ = [*getattr(self, "epochs_", []), []]

    def on_batch_end(self, net, batch, training, **kwargs):
        if training:
            self.epochs_[-1] += batch[1].tolist()


def test_shuffled_every_epoch(shapes):
    X, y = shapes
    record = _RecordBatches()
    tiny(max_epochs=3, callbacks=[record]).fit(X, y)
    first, second, third = record.epochs_
    assert sorted(first) == sorted(second) and first != second != third


def test_class_weight_balanced(shapes):
    X, y = shapes
    keep = np.r_[np.flatnonzero(y == "circle"), np.flatnonzero(y == "cross")[:8]]
    clf = tiny(max_epochs=1, class_weight="balanced").fit(X[keep], y[keep])
    weight = clf.criterion_.weight.cpu().numpy()
    assert weight[1] > 2 * weight[0]


def test_augmentation_flips():
    x = torch.rand(64, 3, 8, 8)
    out = augment(x, flip=True)
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(3)).flatten(1).all(1)
    assert (same | flipped).all() and 10 < same.sum() < 54


def test_augmentation_translates_by_whole_pixels():
    x = torch.zeros(64, 3, 8, 8)
    x[:, :, 3:5, 3:5] = 1  # a 2x2 mark in the centre; shifts of up to 2 px keep it inside
    out = augment(x, translate=0.25)
    assert (out.sum((1, 2, 3)) == 12).all()  # whole-pixel shifts, zero fill, nothing lost
    rows, cols = out[:, 0].sum(2).argmax(1), out[:, 0].sum(1).argmax(1)
    offsets = set(zip((rows - 3).tolist(), (cols - 3).tolist(), strict=True))
    assert all(abs(dy) <= 2 and abs(dx) <= 2 for dy, dx in offsets) and len(offsets) >= 8


def test_paper_defaults():
    clf = ScratchCNNClassifier()
    assert (clf.lr, clf.max_epochs, clf.batch_size) == (0.01, 10, 128)
    assert clf.optimizer is torch.optim.SGD and "optimizer__momentum" not in clf.get_params()
    assert clf.train_split is None and not clf.random_flip and clf.random_translate == 0
    assert clf.get_params()["device"] == "auto" and clf.device == "cpu"


def test_paper_network_has_25_layers_at_100px(shapes):
    """MATLAB's 25 layers, counted in the built PaperCNN (its docstring maps them).

    1 (input: the estimator's normalisation, no module) + 19 leaves of ``blocks`` (4
    conv/BN/ReLU/maxpool blocks, then conv/BN/ReLU) + 3 layers of ``head`` (FC, ReLU, FC;
    its Flatten is implicit in MATLAB and its two Dropout(p=0) are absent) + 2 (softmax
    and classification: the CrossEntropyLoss criterion) = 25.
    """
    X, y = shapes
    big = ImageLoader(size=100).transform(X[:8])
    clf = ScratchCNNClassifier(max_epochs=0, verbose=0).fit(big, y[:8])
    nn = torch.nn
    conv_bn_relu = [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    blocks = [type(m) for m in clf.module_.blocks.modules() if not list(m.children())]
    assert blocks == 4 * [*conv_bn_relu, nn.MaxPool2d] + conv_bn_relu
    head = [type(m) for m in clf.module_.head]
    assert head == [nn.Flatten, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert [m.p for m in clf.module_.head if isinstance(m, nn.Dropout)] == [0, 0]
    head_layers = [t for t in head if t not in (nn.Flatten, nn.Dropout)]
    assert type(clf.criterion_) is nn.CrossEntropyLoss  # softmax + classification
    assert 1 + len(blocks) + len(head_layers) + 2 == 25
    convs = [m for m in clf.module_.blocks.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [8, 16, 32, 64, 128]
    linears = [m for m in clf.module_.head if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [256, 2]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains(shapes, precision):
    X, y = shapes
    clf = tiny(max_epochs=8, precision=precision).fit(X, y)
    assert np.isfinite(clf.history[:, "train_loss"]).all()
    assert clf.score(X, y) > 0.6  # seeds 0-7 scored 0.79 to 0.98


def test_onecycle_schedule_peaks_at_lr(shapes):
    X, y = shapes
    clf = tiny(max_epochs=3, lr=0.2, lr_schedule="onecycle").fit(X, y)
    lrs = [b["lr"] for e in clf.history for b in e["batches"]]
    assert len(lrs) == 24 and max(lrs) == pytest.approx(0.2, rel=0.05) and lrs[-1] < 0.01


def test_recommended_settings_are_valid(shapes):
    X, y = shapes
    clf = tiny(**{**RECOMMENDED, "max_epochs": 2}).fit(X, y)
    assert clf.module_ is not None and np.isfinite(clf.history[:, "train_loss"]).all()


def test_clone_get_set_params():
    clf = tiny(width=6, dropout=0.2, optimizer__weight_decay=1e-3)
    copy = clone(clf)
    assert copy.get_params()["width"] == 6 and copy.optimizer__weight_decay == 1e-3
    copy.set_params(depth=3, lr=0.5)
    assert (copy.depth, copy.lr, clf.depth) == (3, 0.5, 2)


@pytest.fixture(scope="module")
def image_folder(shapes, tmp_path_factory):
    X, y = shapes
    return load_image_folder(save_image_folder(X, y, tmp_path_factory.mktemp("imgs")))


def test_pipeline_on_paths_cross_val_and_confusion_matrix(image_folder):
    paths, labels = image_folder.data, image_folder.target
    pipe = make_pipeline(ImageLoader(size=32), tiny(max_epochs=10, random_flip=True))
    scores = cross_val_score(
        pipe, paths, labels, cv=StratifiedKFold(2, shuffle=True, random_state=0)
    )
    assert scores.shape == (2,) and scores.mean() > 0.6  # seeds 0-5: 0.67 to 0.74
    pred = pipe.fit(paths, labels).predict(paths)
    cm = confusion_matrix(labels, pred, labels=pipe.classes_)
    assert cm.shape == (2, 2) and cm.sum() == len(paths) and np.trace(cm) > 0.6 * len(paths)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search(image_folder, n_jobs):
    pipe = make_pipeline(ImageLoader(size=32), tiny(max_epochs=2))
    search = GridSearchCV(pipe, {"scratchcnnclassifier__lr": [0.01, 0.1]}, cv=2, n_jobs=n_jobs)
    search.fit(image_folder.data, image_folder.target)
    assert search.best_params_["scratchcnnclassifier__lr"] in (0.01, 0.1)
    assert search.predict(image_folder.data[:3]).dtype.kind == "U"


def test_joblib_round_trip(image_folder, tmp_path):
    pipe = make_pipeline(ImageLoader(size=32), tiny()).fit(image_folder.data, image_folder.target)
    joblib.dump(pipe, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(
        loaded.predict_proba(image_folder.data), pipe.predict_proba(image_folder.data)
    )
    assert loaded[-1].get_params()["device"] == "auto"


def test_a_pickle_from_before_later_parameters_loads_predicts_and_trains(shapes):
    """A fitted model pickled by a release without tta, channels_last, compile,
    validation_frequency and precision_ (c3f9336^; checked by hand with such a file)
    gets their defaults (channels_last: False, the order it trained in)."""
    X, y = shapes
    clf = tiny(max_epochs=1).fit(X, y)
    state = clf.__getstate__()
    later = ("tta", "channels_last", "compile", "validation_frequency", "precision_")
    for name in (*later, "grad_scaler_"):
        del state[name]
    old = ScratchCNNClassifier.__new__(ScratchCNNClassifier)
    old.__setstate__(state)
    assert (old.tta, old.channels_last, old.compile) == (False, False, False)
    assert old.precision_ == "fp32"
    np.testing.assert_allclose(old.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    assert old.partial_fit(X, y).get_params()["validation_frequency"] is None


def test_net_saved_for_cuda_loads_on_cpu(shapes):
    X, y = shapes
    clf = tiny(device="cpu").fit(X, y)
    clf.__dict__["device"] = "cuda"  # as if it had been fitted on a GPU
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = pickle.loads(pickle.dumps(clf))
    if not torch.cuda.is_available():
        assert str(loaded.device) == "cpu"
    np.testing.assert_allclose(
        loaded.predict_proba(X), tiny().fit(X, y).predict_proba(X), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.zeros((4, 32, 32), np.uint8), ["a", "b"] * 2, "shape"),
        (np.zeros((4, 32, 32, 1), np.uint8), ["a", "b"] * 2, "shape"),
        (np.full((4, 32, 32, 3), np.nan), ["a", "b"] * 2, "NaN"),
        (np.zeros((0, 32, 32, 3), np.uint8), [], "empty"),
        (np.zeros((4, 32, 32, 3), np.uint8), ["a"] * 4, "single class"),
        (np.zeros((4, 32, 32, 3), np.uint8), ["a", "b"] * 3, "4 images but y has 6"),
        (np.zeros((4, 8, 8, 3), np.uint8), ["a", "b"] * 2, "too small"),
    ],
)
def test_bad_input_messages(X, y, match):
    with pytest.raises(ValueError, match=match):
        tiny(depth=4).fit(X, np.asarray(y))


def test_predict_before_fit_and_new_size(shapes):
    X, y = shapes
    with pytest.raises(NotFittedError):
        tiny().predict(X)
    clf = tiny(max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="fitted on 32x32 images but X has 40x40"):
        clf.predict(np.zeros((2, 40, 40, 3), np.uint8))
    with pytest.raises(ValueError, match="not fitted on: \\['triangle'\\]"):
        clf.partial_fit(X[:2], ["triangle", "circle"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_fit_then_cpu_predict(shapes, tmp_path):
    X, y = shapes
    clf = tiny(precision="bf16").fit(X, y)
    assert next(clf.module_.parameters()).is_cuda
    joblib.dump(clf, tmp_path / "gpu.joblib")
    assert joblib.load(tmp_path / "gpu.joblib").predict(X).shape == (len(X),)


def test_early_stopping_and_best_checkpoint(shapes, tmp_path):
    from skorch.callbacks import Checkpoint, EarlyStopping, LoadInitState

    X, y = shapes
    checkpoint = Checkpoint(monitor="valid_acc_best", dirname=str(tmp_path / "ckpt"))
    stopper = EarlyStopping(monitor="valid_loss", patience=2, threshold=10.0)
    clf = tiny(max_epochs=20, train_split=0.25, callbacks=[checkpoint, stopper]).fit(X, y)
    assert len(clf.history) == 3  # a huge threshold: no epoch counts as improving
    assert (tmp_path / "ckpt" / "params.pt").exists()
    saved = [e["epoch"] for e in clf.history if e["event_cp"]]
    assert saved and all(clf.history[i - 1, "valid_acc_best"] for i in saved)
    restored = tiny(max_epochs=0, train_split=0.25, callbacks=[LoadInitState(checkpoint)]).fit(
        X, y
    )
    assert restored.history[-1, "epoch"] == saved[-1]
    state = torch.load(tmp_path / "ckpt" / "params.pt", weights_only=True)
    for name, value in restored.module_.state_dict().items():
        torch.testing.assert_close(value, state[name])


def test_verbose_levels(shapes, capsys):
    X, y = shapes
    tiny(max_epochs=1, verbose=0).fit(X, y)
    assert capsys.readouterr().out == ""
    tiny(max_epochs=1, verbose=1).fit(X, y)
    assert "train_loss" in capsys.readouterr().out
    clf = tiny(max_epochs=1, verbose=2).fit(X, y)
    assert "progress_bar" in dict(clf.callbacks_)


@pytest.mark.parametrize(
    "params, message",
    [
        (
            {"lr": -1},
            "The 'lr' parameter of ScratchCNNClassifier must be a float in the range "
            "(0.0, inf). Got -1 instead.",
        ),
        ({"batch_size": 0}, "'batch_size' parameter of ScratchCNNClassifier"),
        ({"precision": "fp8"}, "'precision' parameter"),
        ({"lr_schedule": "step"}, "'lr_schedule' parameter"),
        ({"width": 0}, "'width' parameter"),
        ({"dropout": 1.5}, "'dropout' parameter"),
        ({"random_translate": 0.7}, "'random_translate' parameter"),
        ({"validation_frequency": 0}, "'validation_frequency' parameter"),
    ],
)
def test_parameters_validated_in_fit_as_sklearn_does(shapes, params, message):
    X, y = shapes
    clf = tiny(**params)  # __init__ only stores
    with pytest.raises(ValueError, match=re.escape(message)):
        clf.fit(X, y)


def test_labels_with_none_are_refused(shapes):
    X, y = shapes
    y = y.astype(object)
    y[3] = None
    with pytest.raises(ValueError, match=r"no label \(None\) at positions \[3\]"):
        tiny().fit(X, y)


@pytest.mark.parametrize(
    "kind", [list, lambda y: np.array(y, dtype=object)], ids=["list", "object array"]
)
def test_labels_mixing_strings_and_numbers_are_refused(shapes, kind):
    X, y = shapes
    y = kind([1 if label == "circle" else label for label in y[:8].tolist()])
    # a list would become ["cross", "1"] without a word, an object array fail to sort
    with pytest.raises(ValueError, match=r"y mixes strings and numbers as labels \("):
        tiny().fit(X[:8], y)


def test_zero_epochs_warn_as_sklearn_does_for_max_iter_0(shapes):
    from sklearn.exceptions import ConvergenceWarning

    X, y = shapes
    with pytest.warns(ConvergenceWarning, match=r"max_epochs=0\) trains no epoch"):
        clf = tiny(max_epochs=0).fit(X[:8], y[:8])
    assert len(clf.history) == 0  # fitted, untrained: what the warning says
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        tiny(max_epochs=1).fit(X[:8], y[:8])


def test_float_images_outside_unit_range_are_refused(shapes):
    X, y = shapes
    with pytest.raises(ValueError, match="outside \\[0, 1\\].*divide float images by 255"):
        tiny().fit(X.astype(np.float32), y)


def test_switching_optimizers_after_clone_and_in_a_grid(shapes):
    X, y = shapes
    adam = clone(tiny(max_epochs=1)).set_params(optimizer=torch.optim.Adam, lr=1e-3).fit(X, y)
    assert isinstance(adam.optimizer_, torch.optim.Adam)
    sgd = clone(tiny(optimizer=torch.optim.Adam)).set_params(optimizer=torch.optim.SGD)
    assert sgd.fit(X, y).optimizer_.defaults["momentum"] == 0.9
    search = GridSearchCV(
        tiny(max_epochs=1), {"optimizer": [torch.optim.SGD, torch.optim.Adam]}, cv=2
    ).fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_other_optimizers_need_no_momentum(shapes):
    X, y = shapes
    clf = tiny(optimizer=torch.optim.Adam, lr=1e-3).fit(X, y)
    assert isinstance(clf.optimizer_, torch.optim.Adam)
    assert "optimizer__momentum" not in clf.get_params()


def test_tta_averages_each_image_and_its_mirror(shapes):
    X, y = shapes
    clf = tiny().fit(X, y)
    mirrored = np.ascontiguousarray(X[:, :, ::-1])
    logits = (clf.forward(X) + clf.forward(mirrored)) / 2
    clf.set_params(tta=True)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba, torch.softmax(logits, 1).numpy(), atol=1e-5)
    np.testing.assert_allclose(proba, clf.predict_proba(mirrored), atol=1e-5)
    assert not np.allclose(proba, clf.set_params(tta=False).predict_proba(X), atol=1e-3)


def test_channels_last_weights_train_alike(shapes):
    X, y = shapes
    plain = tiny(max_epochs=1).fit(X, y)
    fast = tiny(max_epochs=1, channels_last=True).fit(X, y)
    conv = fast.module_.blocks[0][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(fast.predict_proba(X), plain.predict_proba(X), atol=1e-4)


def test_channels_last_auto_is_channels_last_for_half_precision_on_cuda(shapes):
    X, y = shapes
    auto = tiny(max_epochs=1).fit(X, y)  # "auto" by default; fp32 on the CPU: NCHW
    assert auto.module_.blocks[0][0].weight.is_contiguous()
    assert not auto._channels_last()
    for precision, device, expected in [
        ("bf16", "cuda", True), ("fp16", "cuda", True), ("fp32", "cuda", False),
        ("bf16", "cpu", False), ("fp32", "cpu", False),
    ]:  # fmt: skip
        clf = tiny(channels_last="auto", precision=precision, device=device)
        assert clf._channels_last() is expected
    assert RECOMMENDED["channels_last"] == "auto"


@pytest.mark.parametrize("channels_last", [False, True])
def test_inference_order_gives_the_weights_back_as_they_were(channels_last):
    """Features run channels-last on the CPU, in inference mode; afterwards the weights are
    in their own order again and still train (not inference tensors)."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 2, 1))
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net.to(memory_format=layout)
    weight = net[0].weight
    with torch.inference_mode(), inference_order(net, "cpu") as order:
        assert order and weight.is_contiguous(memory_format=torch.channels_last)
        x = to_network_input(np.zeros((2, 8, 8, 3), np.uint8), [0.5] * 3, [0.5] * 3, "cpu", order)
        assert x.is_contiguous(memory_format=torch.channels_last)
        net(x)
    assert net[0].weight is weight and weight.is_contiguous(memory_format=layout)
    assert not weight.is_inference()
    net(torch.rand(1, 3, 8, 8)).sum().backward()
    assert weight.grad is not None
    with inference_order(torch.nn.Linear(2, 2), "cpu") as order:
        assert not order  # nothing to lay out


def test_batches_are_pinned_only_for_cuda():
    assert "pin_memory" not in tiny(device="cpu").get_params_for("iterator_train")
    cuda = tiny(device="cuda")
    assert cuda.get_params_for("iterator_train")["pin_memory"] is True
    assert cuda.get_params_for("iterator_valid")["pin_memory"] is True
    mine = tiny(device="cuda", iterator_train__pin_memory=False)
    assert mine.get_params_for("iterator_train")["pin_memory"] is False


def test_batch_values_are_read_back_once_per_epoch(shapes, monkeypatch):
    X, y = shapes
    reads = []
    item, tolist = torch.Tensor.item, torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "item", lambda t: reads.append("item") or item(t))
    monkeypatch.setattr(torch.Tensor, "tolist", lambda t: reads.append("tolist") or tolist(t))
    clf = tiny(max_epochs=2, batch_size=2, train_split=0.25).fit(X, y)
    monkeypatch.undo()
    batches = [b for epoch in clf.history_ for b in epoch["batches"]]
    assert len(batches) > 100
    assert all(isinstance(b.get("train_loss", b.get("valid_loss")), float) for b in batches)
    assert all(isinstance(b.get("train_acc", b.get("valid_acc")), float) for b in batches)
    assert len(reads) <= 8 * clf.max_epochs, reads  # a few per epoch, not one per batch


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux's smaps")
@pytest.mark.slow  # a whole command or a large file: the slow lane
def test_a_memory_mapped_data_set_does_not_stay_resident(shapes, tmp_path, monkeypatch):
    monkeypatch.setattr(MappedPages, "LARGER_THAN", 0)  # as if larger than memory
    X, y = shapes
    X = np.repeat(np.repeat(X, 3, axis=1), 3, axis=2)  # 96x96: 27 KB per image
    path = tmp_path / "images.npy"
    big = np.lib.format.open_memmap(path, "w+", np.uint8, (len(X) * 16, *X.shape[1:]))
    big[:] = np.tile(X, (16, 1, 1, 1))
    del big
    mapped = np.load(path, mmap_mode="c")  # as ImageLoader's cache opens entries
    size_mb = mapped.nbytes / 2**20
    pages = MappedPages(mapped)
    pages.release()
    if pages.mapping is None:
        pytest.skip("this kernel cannot page a mapping out (MADV_PAGEOUT needs Linux 5.4)")

    class PeakResident(Callback):
        peak, batches = 0.0, 0

        def on_batch_end(self, net, **kwargs):
            PeakResident.batches += 1
            if PeakResident.batches % 8 == 1:  # reading smaps takes tens of milliseconds
                PeakResident.peak = max(PeakResident.peak, MappedPages.resident_mb(path))

    assert int(mapped[::7].sum()) > 0  # reading maps
    assert MappedPages.resident_mb(path) > 0.1 * size_mb
    tiny(max_epochs=1, batch_size=4, callbacks=[PeakResident()]).fit(mapped, np.tile(y, 16))
    assert MappedPages.resident_mb(path) < 0.05 * size_mb
    # While a batch is used its images are mapped, each with the page-cache folio it sits
    # in: 4 KB pages here, but up to megabytes where the file system caches large folios
    # (CI measured 16 MB for a batch of 16). Batches of 4 keep that under half the set,
    # which an epoch that never released its pages would map entirely.
    assert 0 < PeakResident.peak < 0.5 * size_mb, (PeakResident.peak, size_mb)


def test_residual_network_as_module(shapes):
    from sk_animals._networks import ResidualCNN

    X, y = shapes
    clf = tiny(module=ResidualCNN, width=8, depth=2, max_epochs=10).fit(X, y)
    assert isinstance(clf.module_, ResidualCNN)
    assert clf.score(X, y) > 0.8  # seeds 0-5: 0.95 to 1
    assert clf.module_.blocks[0].out_channels == 6  # the stem: three quarters of width
    assert ResidualCNN(2, (32, 32), width=8, stem_width=5).blocks[0].out_channels == 5
    with pytest.raises(ValueError, match="at least 32 pixels or a smaller depth"):
        ResidualCNN(2, (24, 24), depth=4)


def test_releasing_mapped_pages_keeps_what_was_written(tmp_path, monkeypatch):
    monkeypatch.setattr(MappedPages, "LARGER_THAN", 0)
    path = tmp_path / "a.npy"
    np.save(path, np.zeros((64, 64, 64, 3), np.uint8))
    mapped = np.load(path, mmap_mode="c")
    mapped[::2] = 7  # copy-on-write: in this process only
    pages = MappedPages(np.asarray(mapped), limit=2**10)
    assert pages.mapping is not None
    pages.release()
    assert (mapped[::2] == 7).all() and (mapped[1::2] == 0).all()
    assert (np.load(path) == 0).all()
    assert MappedPages(np.zeros((64, 64, 64, 3), np.uint8), limit=2**10).mapping is None


def test_callbacks_that_read_every_batch_see_its_values(shapes):
    from skorch.callbacks import LRScheduler
    from torch.optim.lr_scheduler import ReduceLROnPlateau

    X, y = shapes
    seen = []

    class Reader(Callback):
        def on_batch_end(self, net, training, **kwargs):
            if training:
                seen.append(net.history[-1, "batches", -1, "train_loss"])

    plateau = LRScheduler(ReduceLROnPlateau, monitor="train_loss", step_every="batch")
    clf = tiny(max_epochs=1, callbacks=[plateau, ("reader", Reader())])
    clf.fit(X, y)  # no "train_loss was not found in history"
    assert seen and all(isinstance(v, float) for v in seen)


def test_a_fitted_net_keeps_no_device_tensors_outside_its_module(shapes):
    X, y = shapes
    clf = tiny(max_epochs=1).fit(X, y)
    scores = dict(clf.callbacks_)["scores"]
    assert all(isinstance(v, int) for v in scores.correct_.values())
    assert "_stats_on_device_" not in pickle.loads(pickle.dumps(clf)).__dict__


def test_memory_maps_that_fit_in_memory_are_not_paged_out(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.zeros((64, 64, 64, 3), np.uint8))
    assert MappedPages(np.load(path, mmap_mode="c"), limit=2**10).mapping is None


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_follows_the_hardware(shapes, monkeypatch, native, expected, tmp_path):
    """``precision="auto"``: bf16 where the device computes it natively, else fp32."""
    import torch

    import sk_animals._training as training
    from sk_animals import load, save

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert training.resolve_precision("auto", "cpu") == expected
    seen = []
    real = torch.autocast
    monkeypatch.setattr(
        training.torch, "autocast", lambda *a, **k: seen.append(k["dtype"]) or real(*a, **k)
    )
    X, y = shapes
    clf = tiny(max_epochs=1, precision="auto", device="cpu").fit(X[:32], y[:32])
    assert clf.precision_ == expected
    assert (torch.bfloat16 in seen) == (expected == "bf16")
    save(clf, tmp_path / "m.skmodel")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: not native)
    assert load(tmp_path / "m.skmodel").precision_ == expected  # what fit ran, kept
    assert tiny(precision="fp32").fit(X[:32], y[:32]).precision_ == "fp32"


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_network_gets_its_own_memory_layout(shapes, channels_last):
    """A permuted NHWC batch is channels-last in memory; an NCHW network got it as is, and
    oneDNN's CPU convolution backward crashed on that mix (timm's repvgg_a1, 4 runs in 7)."""
    X, y = shapes
    batch = to_network_input(X[:4], [0.5] * 3, [0.5] * 3, "cpu")
    assert batch.shape == (4, 3, 32, 32) and batch.is_contiguous()
    seen = []
    clf = ScratchCNNClassifier(
        width=4, depth=2, max_epochs=1, channels_last=channels_last, verbose=0, random_state=0
    )
    clf.fit(X, y)
    clf.module_.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    clf.module_.train()  # training's layout: infer is the same path for fit and predict
    clf.infer(X[:4])
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert seen and all(x.is_contiguous(memory_format=layout) for x in seen)
