"""The overrides of skorch internals in ``_training``: ``compile=True`` compiles in place."""

import os
import pickle

import numpy as np
import pytest
import torch
from safetensors import safe_open
from sklearn.base import clone

from sk_animals import load, save
from sk_animals._networks import PaperCNN, TransferNet
from sk_animals._training import inductor_cache
from sk_animals.cli import main
from sk_animals.datasets import make_image_dataset, save_image_folder
from sk_animals.exceptions import BadInputError
from sk_animals.scratch import ScratchCNNClassifier
from sk_animals.transfer import TransferClassifier

#: Graphs handed to :func:`recording_backend`, i.e. what torch.compile compiled.
COMPILED = []


def recording_backend(graph, example_inputs):
    """A torch.compile backend that records each graph and runs it eagerly (no inductor:
    seconds instead of a minute on a CPU)."""
    COMPILED.append(graph)
    return graph.forward


@pytest.fixture
def compiled():
    """The graphs compiled within a test (torch's compile caches are emptied before it,
    or a graph compiled for an earlier test would be reused for the same network)."""
    torch.compiler.reset()
    COMPILED.clear()
    yield COMPILED
    COMPILED.clear()


@pytest.fixture(scope="module")
def images():
    return make_image_dataset(n_samples=64, n_classes=2, size=32, noise=0.05, random_state=0)


def scratch(**params):
    return ScratchCNNClassifier(max_epochs=1, batch_size=32, random_state=0, verbose=0, **params)


def file_tensors(path):
    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def test_compile_is_skorchs_parameter_and_survives_clone():
    clf = scratch(compile=True, compile__mode="max-autotune-no-cudagraphs")
    params = clone(clf).get_params()
    assert params["compile"] is True and params["compile__mode"] == "max-autotune-no-cudagraphs"
    assert scratch().get_params()["compile"] is False
    clf.set_params(compile=False, compile__dynamic=False)  # unfitted: stored for fit
    assert clf.compile is False and clone(clf).get_params()["compile__dynamic"] is False


def test_compile_must_be_a_boolean(images):
    with pytest.raises(ValueError, match="'compile' parameter"):
        scratch(compile="yes").fit(*images)


def test_a_compiled_fit_keeps_the_eager_network(images, compiled):
    eager = scratch().fit(*images)
    clf = scratch(compile=True, compile__backend=recording_backend).fit(*images)
    assert compiled  # the training graph went through torch.compile
    assert type(clf.module_) is PaperCNN  # not an OptimizedModule
    assert list(clf.module_.state_dict()) == list(eager.module_.state_dict())
    np.testing.assert_allclose(clf.predict_proba(images[0]), eager.predict_proba(images[0]))


def test_saved_files_are_those_of_an_eager_model_and_load_eager(images, tmp_path):
    eager = scratch().fit(*images)
    clf = scratch(compile=True, compile__backend="eager").fit(*images)
    save(eager, tmp_path / "eager.skmodel")
    save(clf, tmp_path / "compiled.skmodel")
    a, b = file_tensors(tmp_path / "eager.skmodel"), file_tensors(tmp_path / "compiled.skmodel")
    assert list(a) == list(b) and all(a[k].shape == b[k].shape for k in a)
    assert not any("_orig_mod" in k for k in b)
    loaded = load(tmp_path / "compiled.skmodel")
    # a file does not choose to compile: the loaded model runs eagerly until asked
    assert loaded.compile is False and "compile__backend" not in loaded.get_params()
    X = images[0]
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(load(tmp_path / "eager.skmodel").predict(X), eager.predict(X))


def test_set_params_compiles_a_fitted_model_in_place(images, compiled):
    X, y = images
    clf = scratch().fit(X, y)
    before = {k: v.clone() for k, v in clf.module_.state_dict().items()}
    proba = clf.predict_proba(X)
    clf.set_params(compile=True, compile__backend=recording_backend)
    # skorch would re-initialize the network here; the weights must stay
    assert all(torch.equal(before[k], v) for k, v in clf.module_.state_dict().items())
    np.testing.assert_allclose(clf.predict_proba(X), proba, rtol=1e-5, atol=1e-6)
    assert len(compiled) == 1  # the prediction's graph
    clf.set_params(compile=False)
    clf.predict_proba(X)
    assert len(compiled) == 1  # eager again: nothing more compiled


def test_a_pickled_compiled_model_compiles_again(images, compiled):
    clf = scratch(compile=True, compile__backend=recording_backend).fit(*images)
    copy = pickle.loads(pickle.dumps(clf))  # torch drops the compiled forward from pickles
    before = len(compiled)
    np.testing.assert_allclose(copy.predict_proba(images[0]), clf.predict_proba(images[0]))
    assert len(compiled) > before and type(copy.module_) is PaperCNN


def test_a_frozen_body_is_computed_once_without_compiling(images, compiled):
    clf = TransferClassifier(
        "resnet18",  # its pooled features go straight into the head
        weights=None,
        freeze="body",
        max_epochs=1,
        batch_size=32,
        random_state=0,
        verbose=0,
        compile=True,
        compile__backend=recording_backend,
    ).fit(*images)
    assert clf._feature_dropout_ is not None  # the head trained on the body's features
    assert compiled == []  # that one pass ran eagerly, and the head is not compiled
    assert type(clf.module_) is TransferNet
    clf.predict_proba(images[0][:4])  # the whole network: compiled
    assert len(compiled) == 1


def test_inductor_cache_goes_beside_the_decode_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    with inductor_cache(tmp_path / "cache"):
        assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "cache" / "inductor")
    assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ
    with inductor_cache(None):
        assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    with inductor_cache(tmp_path / "cache"):  # the user's choice wins
        assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")


@pytest.mark.parametrize("command", ["compare", "tune"])
def test_the_commands_keep_the_inductor_cache_in_cache_dir(command, tmp_path, monkeypatch):
    """The run (here stopped as it starts) sees DIR/inductor; the variable is restored."""
    pytest.importorskip("optuna")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    X, y = make_image_dataset(n_samples=12, n_classes=2, size=32, random_state=0)
    data = save_image_folder(X, y, tmp_path / "data")
    seen = []

    def stop(*args, **kwargs):
        seen.append(os.environ.get("TORCHINDUCTOR_CACHE_DIR"))
        raise BadInputError("stopped by the test")

    module = "sk_animals.evaluation" if command == "compare" else "sk_animals.tuning"
    monkeypatch.setattr(f"{module}.{command}", stop)
    argv = [command, str(data), "--cache-dir", str(tmp_path / "cache"), "--image-size", "32"]
    if command == "compare":
        argv += ["--out", str(tmp_path / "out"), "--approaches", "scratch"]
    assert main(argv) == 2
    assert seen == [str(tmp_path / "cache" / "inductor")]
    assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["scratch", "transfer"])
def test_an_inductor_compiled_fit_predicts_as_the_eager_fit(kind, images, tmp_path, monkeypatch):
    """torch.compile's default backend (inductor, a C++ compiler on the CPU): a minute."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    X, y = images
    if kind == "scratch":
        make, network = scratch, PaperCNN
    else:
        network = TransferNet

        def make(**params):
            return TransferClassifier(
                "squeezenet1_1",
                weights=None,
                max_epochs=1,
                batch_size=32,
                random_state=0,
                verbose=0,
                **params,
            )

    eager = make().fit(X, y)
    # squeezenet1_1 has dropout, whose random numbers inductor draws its own way
    clf = make(compile=True, compile__options={"fallback_random": True}).fit(X, y)
    assert type(clf.module_) is network
    assert list(clf.module_.state_dict()) == list(eager.module_.state_dict())
    np.testing.assert_allclose(clf.predict_proba(X), eager.predict_proba(X), atol=1e-4)
    save(clf, tmp_path / "m.skmodel")
    loaded = load(tmp_path / "m.skmodel")
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-5)
    if kind == "transfer":  # inductor's own draws: not the eager fit's, but reproducible
        once, again = (make(compile=True).fit(X, y).predict_proba(X) for _ in range(2))
        np.testing.assert_array_equal(once, again)
