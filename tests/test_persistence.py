import pickle
import re
import warnings
from contextlib import contextmanager

import joblib
import numpy as np
import pytest
import torch
import torchvision
from numpy.testing import assert_allclose, assert_array_equal
from PIL import Image
from safetensors.torch import save_file
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback

import sk_animals
from sk_animals import __version__, load, save
from sk_animals.datasets import load_image_folder, save_image_folder
from sk_animals.persistence import FORMAT_VERSION, _params, _read, _write
from sk_animals.preprocessing import ImageLoader
from sk_animals.scratch import ScratchCNNClassifier
from sk_animals.transfer import PretrainedFeatures, TransferClassifier


def tiny(**kw):
    params = {"width": 4, "depth": 2, "max_epochs": 1, "batch_size": 32, "verbose": 0}
    return ScratchCNNClassifier(**{**params, "random_state": 0, **kw})


def squeezenet(**kw):
    params = {"weights": None, "max_epochs": 1, "batch_size": 32, "verbose": 0}
    return TransferClassifier("squeezenet1_1", **{**params, "random_state": 0, **kw})


def _refuse(*args, **kwargs):
    raise AssertionError("load must not unpickle")


@contextmanager
def no_unpickling():
    """Make every way of unpickling fail, to prove that ``load`` uses none."""
    with pytest.MonkeyPatch.context() as patch:
        for owner in (pickle, torch, torch.serialization, joblib):
            patch.setattr(owner, "load", _refuse)
        patch.setattr(pickle, "loads", _refuse)
        patch.setattr(pickle, "Unpickler", _refuse)
        yield


@pytest.fixture(scope="module")
def shapes(shapes):
    """32 of the shared images: enough for both classes, fast to fit."""
    return shapes[0][:32], shapes[1][:32]


@pytest.fixture(scope="module")
def image_folder(shapes, tmp_path_factory):
    X, y = shapes
    return load_image_folder(save_image_folder(X, y, tmp_path_factory.mktemp("imgs")))


@pytest.fixture(scope="module")
def saved(shapes, tmp_path_factory):
    """A bare fitted classifier and the model file it was saved to."""
    clf = tiny().fit(*shapes)
    path = tmp_path_factory.mktemp("model") / "tiny.skmodel"
    save(clf, path)
    return clf, path


def assert_same_params(loaded, original):
    assert type(loaded) is type(original)
    assert loaded.get_params(deep=False) == original.get_params(deep=False)


@pytest.mark.parametrize("make", [tiny, squeezenet], ids=["scratch", "transfer"])
def test_pipeline_on_paths_round_trip(make, image_folder, tmp_path):
    paths, labels = image_folder.data, image_folder.target
    clf = make(class_weight={"circle": 1.0, "cross": 2.0}, optimizer__weight_decay=1e-3)
    pipe = Pipeline([("imageloader", ImageLoader(size=(32, 32))), ("clf", clf)])
    pipe.fit(paths, labels)
    save(pipe, tmp_path / "model.skmodel")
    rng_state = torch.get_rng_state()
    with no_unpickling():
        loaded = load(tmp_path / "model.skmodel")
    assert torch.equal(torch.get_rng_state(), rng_state)  # random init did not use it
    assert isinstance(loaded, Pipeline) and [n for n, _ in loaded.steps] == ["imageloader", "clf"]
    check_is_fitted(loaded)
    check_is_fitted(loaded[-1])
    assert_allclose(loaded.predict_proba(paths), pipe.predict_proba(paths), rtol=1e-6)
    assert_array_equal(loaded.predict(paths), pipe.predict(paths))
    for new, old in zip(loaded, pipe, strict=True):
        assert_same_params(new, old)
    assert loaded.get_params()["clf__device"] == "auto"
    assert loaded[-1].image_size_ == (32, 32)
    assert_array_equal(loaded[-1].class_weight_, pipe[-1].class_weight_)
    assert loaded.get_params(deep=False).keys() == pipe.get_params(deep=False).keys()


def test_weights_file_is_not_read_when_loading(shapes, tmp_path):
    X, y = shapes
    weights = tmp_path / "squeezenet.pth"
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), weights)
    clf = squeezenet(weights=weights, freeze="body").fit(X, y)
    save(clf, tmp_path / "model.skmodel")
    weights.unlink()
    with no_unpickling():
        loaded = load(tmp_path / "model.skmodel")
    assert loaded.get_params()["weights"] == str(weights)
    assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    frozen = [p.requires_grad for p in loaded.module_.parameters()]
    assert frozen == [p.requires_grad for p in clf.module_.parameters()]


def test_weights_enum_is_saved_by_name():
    enum = torchvision.models.SqueezeNet1_1_Weights.IMAGENET1K_V1
    assert _params(squeezenet(weights=enum))[0]["weights"] == "IMAGENET1K_V1"


def test_pretrained_features_alone(shapes, tmp_path):
    X = shapes[0][:8]
    features = PretrainedFeatures("squeezenet1_1", weights=None, batch_size=4).fit(X)
    save(features, tmp_path / "features.skmodel")
    with no_unpickling():
        loaded = load(tmp_path / "features.skmodel")
    assert_same_params(loaded, features)
    assert loaded.n_features_out_ == features.n_features_out_ == 512
    assert_allclose(loaded.transform(X), features.transform(X), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "kind",
    [
        lambda y: np.where(y == "circle", 3, 7),
        lambda y: y.astype(object),
        lambda y: y == "circle",
    ],
    ids=["int", "object", "bool"],
)
def test_labels_keep_their_dtype(kind, shapes, tmp_path):
    X, y = shapes
    clf = tiny().fit(X, kind(y))
    save(clf, tmp_path / "model.skmodel")
    loaded = load(tmp_path / "model.skmodel")
    assert loaded.classes_.dtype == clf.classes_.dtype
    assert_array_equal(loaded.classes_, clf.classes_)
    pred = loaded.predict(X)
    assert pred.dtype == clf.predict(X).dtype
    assert_array_equal(pred, clf.predict(X))


def test_size_is_weights_plus_a_small_constant_and_data_is_dropped(shapes, tmp_path):
    X, y = shapes
    clf = tiny(width=8, train_split=(X[:8], y[:8]), callbacks=[("noop", Callback())])
    clf.fit(X, y)
    path = tmp_path / "model.skmodel"
    with pytest.warns(UserWarning, match=r"estimator: train_split, callbacks\)") as record:
        save(clf, path)
    assert len(record) == 1
    weights = sum(t.numel() * t.element_size() for t in clf.module_.state_dict().values())
    assert path.stat().st_size < weights + 64 * 1024
    assert _read(path)[0]["steps"][0]["dropped"] == ["train_split", "callbacks"]
    loaded = load(path)
    assert loaded.train_split is None and loaded.callbacks is None
    assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-6)


def _image(path):
    Image.new("RGB", (8, 8)).save(path, format="PNG")


def _truncated(path, model):
    path.write_bytes(model.read_bytes()[:-100])


def _joblib(path, model):
    joblib.dump({"a": 1}, path)


def _tensors_only(path):
    save_file({"a": torch.zeros(2)}, path)


def _not_json(path):
    save_file({"a": torch.zeros(2)}, path, metadata={"sk_animals": "{not json"})


@pytest.mark.parametrize(
    "make",
    [
        _image,
        lambda p: p.write_bytes(b""),
        lambda p: p.write_bytes(b"\x00" * 7),
        _truncated,
        _joblib,
        lambda p: p.mkdir(),
        _tensors_only,
        _not_json,
    ],
    ids=["image", "empty", "short", "truncated", "joblib", "folder", "plain", "not-json"],
)
def test_not_a_model_file(make, saved, tmp_path):
    path = tmp_path / "bad.skmodel"
    make(path, saved[1]) if make in (_truncated, _joblib) else make(path)
    with pytest.raises(ValueError, match="is not an sk_animals model file") as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path} is not an sk_animals model file (") and "\n" not in message


def _rewrite(source, target, edit, edit_tensors=None):
    """Write ``source`` again as ``target`` after ``edit(doc)`` changed its JSON (and
    ``edit_tensors(tensors)`` its tensors)."""
    doc, tensors = _read(source)
    edit(doc)
    if edit_tensors is not None:
        edit_tensors(tensors)
    _write(target, doc, tensors)
    return target


def test_newer_format_is_refused_naming_both_versions(saved, tmp_path):
    def newer(doc):
        doc["format"] = FORMAT_VERSION + 1
        doc["versions"]["sk_animals"] = "9.0"

    path = _rewrite(saved[1], tmp_path / "newer.skmodel", newer)
    message = (
        f"model format {FORMAT_VERSION + 1} (written by sk_animals 9.0), but sk_animals "
        f"{__version__} reads format {FORMAT_VERSION} and older"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        load(path)


def test_other_package_version_loads_with_a_warning(saved, shapes, tmp_path):
    def older(doc):
        doc["versions"]["sk_animals"] = "0.0.1"

    path = _rewrite(saved[1], tmp_path / "older.skmodel", older)
    expected = f"saved with sk_animals 0.0.1 and is loaded with sk_animals {__version__}"
    with pytest.warns(UserWarning, match=re.escape(expected)):
        loaded = load(path)
    assert_allclose(loaded.predict_proba(shapes[0]), saved[0].predict_proba(shapes[0]), rtol=1e-6)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", {"device": "cuda:0"}])
def test_cuda_model_loads_on_a_cpu_only_machine(device, saved, shapes, tmp_path, monkeypatch):
    def on_cuda(doc):
        doc["steps"][0]["params"]["device"] = device

    path = _rewrite(saved[1], tmp_path / "cuda.skmodel", on_cuda)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="CUDA is not available; loading it on the CPU"):
        loaded = load(path)
    assert loaded.get_params()["device"] == "cpu"
    assert next(loaded.module_.parameters()).device.type == "cpu"
    assert_allclose(loaded.predict_proba(shapes[0]), saved[0].predict_proba(shapes[0]), rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load(path, device="cpu").get_params()["device"] == "cpu"
        assert load(saved[1]).get_params()["device"] == "auto"  # "auto" is kept


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_saved_model_loads_on_cpu(shapes, tmp_path, monkeypatch):
    X, y = shapes
    clf = tiny(device="cuda").fit(X, y)
    save(clf, tmp_path / "gpu.skmodel")
    on_gpu = load(tmp_path / "gpu.skmodel")
    assert on_gpu.get_params()["device"] == "cuda"
    assert next(on_gpu.module_.parameters()).is_cuda
    assert_allclose(on_gpu.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="CUDA is not available"):
        on_cpu = load(tmp_path / "gpu.skmodel")
    assert not next(on_cpu.module_.parameters()).is_cuda
    assert_allclose(on_cpu.predict_proba(X), clf.predict_proba(X), rtol=1e-4, atol=1e-5)


def test_files_name_classes_by_registry_name(saved):
    doc = _read(saved[1])[0]
    assert doc["format"] == FORMAT_VERSION == 2
    assert doc["steps"][0]["class"] == "ScratchCNNClassifier"
    assert doc["steps"][0]["params"]["module"] == {"class": "PaperCNN"}
    assert doc["steps"][0]["params"]["criterion"] == {
        "class": "torch.nn.modules.loss.CrossEntropyLoss"
    }


@pytest.mark.parametrize("where", ["class", "module"])
def test_a_class_this_release_does_not_know_fails_in_one_line(where, saved, tmp_path):
    def future(doc):
        doc["versions"]["sk_animals"] = "9.0"
        step = doc["steps"][0]
        if where == "class":
            step["class"] = "FutureClassifier"
        else:
            step["params"]["module"] = {"class": "FutureNet"}

    path = _rewrite(saved[1], tmp_path / "future.skmodel", future)
    with pytest.raises(ValueError) as info, pytest.warns(UserWarning, match="saved with"):
        load(path)
    message = str(info.value)
    assert "\n" not in message and "Future" in message
    assert f"of sk_animals {__version__} (the file was written by sk_animals 9.0)" in message


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d["steps"][0].update({"class": "Evil"}), "'Evil', not on the allow-list"),
        (
            lambda d: d["steps"][0]["params"].update(optimizer={"class": "os.system"}),
            "optimizer=class 'os.system' is not on the allow-list",
        ),
        (
            lambda d: d["steps"][0]["params"].update(module={"class": "torch.nn.Linear"}),
            "module=class 'torch.nn.Linear' is not on the allow-list",
        ),
        (
            lambda d: d["steps"][0]["params"].update(criterion={"class": "torch.nn.nowhere.X"}),
            "criterion=class 'torch.nn.nowhere.X' is not on the allow-list",
        ),
    ],
)
def test_only_allow_listed_classes_are_rebuilt(edit, match, saved, tmp_path):
    path = _rewrite(saved[1], tmp_path / "evil.skmodel", edit)
    with pytest.raises(ValueError, match=re.escape(match)):
        load(path)


def test_what_cannot_be_saved(shapes, tmp_path):
    X, y = shapes
    features = PretrainedFeatures("squeezenet1_1", weights=None)
    head = make_pipeline(ImageLoader(32), features, LogisticRegression()).fit(X[:8], y[:8])
    with pytest.raises(TypeError, match="step 'logisticregression' \\(LogisticRegression\\)"):
        save(head, tmp_path / "a.skmodel")
    with pytest.raises(TypeError, match="cannot save module="):
        save(tiny(module=torch.nn.Linear), tmp_path / "b.skmodel")
    with pytest.raises(NotFittedError):
        save(tiny(), tmp_path / "c.skmodel")
    assert not list(tmp_path.iterdir())


def test_public_api():
    assert sk_animals.save is save and sk_animals.load is load
    assert {"save", "load"} <= set(sk_animals.__all__)


@pytest.mark.parametrize("kind", ["scratch", "transfer"])
def test_pickled_fitted_estimators_hold_no_images(kind):
    """The validation set (train_split) and training data never travel with the model."""
    import pickle

    from sk_animals.datasets import make_image_dataset
    from sk_animals.scratch import ScratchCNNClassifier
    from sk_animals.transfer import TransferClassifier

    X, y = make_image_dataset(n_samples=64, n_classes=2, size=64, random_state=0)
    common = {"max_epochs": 1, "batch_size": 16, "verbose": 0, "train_split": 0.5}
    clf = (
        ScratchCNNClassifier(width=4, depth=2, **common)
        if kind == "scratch"
        else TransferClassifier("squeezenet1_1", weights=None, **common)
    ).fit(X, y)
    weights = sum(t.numel() * t.element_size() for t in clf.module_.state_dict().values())
    assert len(pickle.dumps(clf)) < weights * 2 + 64 * 1024  # params + optimizer state
    assert X.nbytes // 2 > 64 * 1024  # the validation half alone would break the bound


@contextmanager
def parameters_allocated():
    """The sizes (elements) of every network parameter allocated in the block, off meta."""
    sizes = [0]
    new = torch.nn.Parameter.__new__

    def spy(cls, data=None, requires_grad=True):
        if data is not None and data.device.type != "meta":
            sizes.append(data.numel())
        return new(cls, data, requires_grad)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.nn.Parameter, "__new__", staticmethod(spy))
        yield sizes


def _set_params(**changes):
    return lambda d: d["steps"][0]["params"].update(changes)


def _fitted(**changes):
    return lambda d: d["steps"][0]["fitted"].update(changes)


def _labels(*values):
    return {"dtype": "<U1", "values": list(values)}


def _tensor(key, value):
    def edit(tensors):
        if value is None:
            del tensors[f"estimator.{key}"]
        else:
            tensors[f"estimator.{key}"] = value

    return edit


def _same(doc):
    pass


CONV = "module_.blocks.0.0.weight"  # the tiny network's first convolution, width 4


@pytest.mark.parametrize(
    "edit, edit_tensors, match",
    [
        (_set_params(width=64), None, "width=64 disagrees with the stored tensors, made with 4"),
        (_set_params(width=100_000), None, "width=100000 disagrees"),
        (_set_params(depth=3), None, "depth=3 disagrees with the stored tensors, made with 2"),
        (_set_params(depth=10**9), None, "depth=1000000000 does not fit"),
        (_set_params(module__hidden=4096), None, "hidden=4096 disagrees"),
        (_set_params(module={"class": "ResidualCNN"}), None, "do not fit the settings"),
        (_fitted(image_size_=[100_000, 100_000]), None, "image_size_=[100000, 100000]"),
        (_fitted(image_size_=[64, 64]), None, "module_.head.2.weight is (256, 1024)"),
        (_fitted(classes_=_labels("a", "b", "c")), None, "classes_ (3 classes) disagrees"),
        (_fitted(classes_={"dtype": "<U99999999", "values": ["a"] * 9}), None, "would take"),
        (_fitted(classes_={"dtype": "V8", "values": ["a", "b"]}), None, "plain dtype (|V8)"),
        (lambda d: d.pop("steps"), None, "'steps' is not a list of steps"),
        (lambda d: d.update(steps="estimator"), None, "'steps' is not a list of steps"),
        (lambda d: d["steps"][0].pop("fitted"), None, "step 0 is not a name, a class"),
        (_same, _tensor(CONV, None), f"tensor {CONV} is missing"),
        (_same, _tensor(CONV, torch.zeros(4, 3, 5, 5)), f"{CONV} is (4, 3, 5, 5), the settings"),
        (_same, _tensor("module_.extra", torch.zeros(2)), "module_.extra is not part of"),
        (_same, _tensor("mean_", None), "no 'mean_'"),
    ],
    ids=lambda v: None if callable(v) or v is None else v[:24],
)
def test_a_bad_file_is_refused_in_one_line_before_anything_is_built(
    edit, edit_tensors, match, saved, tmp_path
):
    path = _rewrite(saved[1], tmp_path / "bad.skmodel", edit, edit_tensors)
    with parameters_allocated() as sizes, pytest.raises(ValueError) as info:
        load(path)
    message = str(info.value)
    assert match in message and str(path) in message and "\n" not in message
    assert max(sizes) < 10_000  # the tiny network's own parameters at most


def test_a_file_chooses_no_workers_and_no_folders(image_folder, tmp_path):
    pipe = make_pipeline(ImageLoader(32), tiny()).fit(image_folder.data, image_folder.target)
    save(pipe, tmp_path / "good.skmodel")

    def choose(doc):
        loader, net = doc["steps"]
        loader["params"].update(cache_dir=str(tmp_path / "theirs"), n_jobs=64)
        net["params"].update(iterator_valid__num_workers=6, iterator_train__num_workers=6)
        doc["pipeline"].update(memory=str(tmp_path / "theirs"))

    path = _rewrite(tmp_path / "good.skmodel", tmp_path / "chosen.skmodel", choose)
    loaded = load(path)
    params = loaded.get_params()
    assert params["memory"] is None and params["imageloader__cache_dir"] is None
    assert params["imageloader__n_jobs"] == ImageLoader().n_jobs
    assert "scratchcnnclassifier__iterator_valid__num_workers" not in params
    X = image_folder.data[:8]
    assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))
    assert not (tmp_path / "theirs").exists()


@pytest.mark.parametrize("make", [squeezenet, PretrainedFeatures], ids=["transfer", "features"])
def test_a_backbone_other_than_the_tensors_is_refused_before_it_is_built(make, shapes, tmp_path):
    est = make(weights=None) if make is PretrainedFeatures else make()
    save(est.fit(*shapes), tmp_path / "good.skmodel")
    path = _rewrite(
        tmp_path / "good.skmodel", tmp_path / "bad.skmodel", _set_params(backbone="vgg11")
    )
    with parameters_allocated() as sizes, pytest.raises(ValueError) as info:
        load(path)
    message = str(info.value)
    assert "do not fit the settings" in message and str(path) in message and "\n" not in message
    assert max(sizes) == 0  # VGG-11's 133 M parameters were never allocated


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"size": 100_000}, "size=100000 with crop_pct=1.0 makes images of 100000x100000"),
        ({"size": [32, 50_000]}, "makes images of 32x50000 pixels, above the 4096"),
        ({"crop_pct": 1e-6}, "makes images of 32000000x32000000"),
        ({"size": -3}, "size"),
    ],
    ids=["side", "width", "crop", "negative"],
)
def test_a_loader_from_a_file_cannot_ask_for_huge_images(image_folder, tmp_path, settings, match):
    pipe = make_pipeline(ImageLoader(32), tiny()).fit(image_folder.data, image_folder.target)
    save(pipe, tmp_path / "good.skmodel")

    def enlarge(doc):
        doc["steps"][0]["params"].update(settings)

    path = _rewrite(tmp_path / "good.skmodel", tmp_path / "huge.skmodel", enlarge)
    with pytest.raises(ValueError) as info:  # at load, not when predict allocates the images
        load(path)
    message = str(info.value)
    assert match in message and str(path) in message and "\n" not in message
