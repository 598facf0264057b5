"""Frozen features computed once within a run, shared by every approach that needs them."""

import numpy as np
import pytest
import torch
import torchvision

from sk_animals._featurecache import costed, shared_features
from sk_animals.deploy import onnx_installed
from sk_animals.transfer import PretrainedFeatures, TransferClassifier


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """resnet18 weights in a file: every network built from it has the same body."""
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def transfer(weights, **kw):
    """A frozen-body transfer arm; it shares its first view with a probe on torch (the
    probes below run on torch: onnxruntime's features are other bits, kept apart)."""
    params = dict(
        weights=weights, freeze="body", random_flip=True, tta=True, max_epochs=2,
        batch_size=16, verbose=0, random_state=0,
    )  # fmt: skip
    return TransferClassifier("resnet18", **{**params, **kw})


def test_features_are_computed_once_and_charged_to_each_hit(shapes, weights):
    X, _ = shapes
    features = PretrainedFeatures("resnet18", weights=weights).fit()
    alone = features.transform(X[:32])
    with shared_features() as cache:
        first = features.transform(X[:32])
        assert len(cache.entries) == 32 and cache.charged == 0
        with costed() as cost:
            again = features.transform(X[8:16])  # hits only
        assert len(cache.entries) == 32 and cache.charged > 0
        assert cost.seconds >= cache.charged
    np.testing.assert_array_equal(first, alone)
    np.testing.assert_array_equal(again, alone[8:16])
    assert features.transform(X[:4]).shape == (4, 512)  # outside: nothing kept


def test_transfer_and_probe_share_the_body_features(shapes, weights):
    X, y = shapes
    alone = transfer(weights).fit(X[:48], y[:48])
    with shared_features() as cache:
        clf = transfer(weights).fit(X[:48], y[:48])  # both views of 48 images
        assert len(cache.entries) == 48 and cache.nbytes == 48 * 2 * 512 * 4
        probe = PretrainedFeatures("resnet18", weights=weights, engine="torch").fit()
        shared = probe.transform(X[:48])  # the transfer arm's first view
        assert len(cache.entries) == 48
        proba = clf.predict_proba(X[:48])  # the head on the features the run has
        assert len(cache.entries) == 48
    np.testing.assert_allclose(shared, probe.transform(X[:48]), atol=1e-5)
    np.testing.assert_allclose(proba, alone.predict_proba(X[:48]), atol=1e-5)
    np.testing.assert_allclose(clf.history[:, "train_loss"], alone.history[:, "train_loss"])


def test_more_views_are_computed_again_and_a_full_cache_stops_keeping(shapes, weights):
    X, y = shapes
    probe = PretrainedFeatures("resnet18", weights=weights, engine="torch").fit()
    with shared_features(max_bytes=40 * 512 * 4) as cache:
        probe.transform(X[:16])
        assert cache.nbytes == 16 * 512 * 4
        transfer(weights, max_epochs=1).fit(X[:16], y[:16])  # mirrors too: computed again
        assert cache.nbytes == 16 * 2 * 512 * 4
        probe.transform(X[16:48])  # only 8 more fit
        assert len(cache.entries) == 24 and cache.nbytes <= 40 * 512 * 4


def test_values_do_not_depend_on_what_was_computed_first(shapes, weights):
    """Padded to whole batches, an image's features are the same bits whichever call
    computed them (one thread, as in the tests, is where batch sizes change the bits)."""
    X, y = shapes
    probe = PretrainedFeatures("resnet18", weights=weights, engine="torch").fit()
    with shared_features():
        few = probe.transform(X[3:8])
    with shared_features():
        many = probe.transform(X[:21])
    with shared_features():
        transfer(weights, max_epochs=1).fit(X[:21], y[:21])  # its features, with mirrors
        shared = probe.transform(X[3:8])
    np.testing.assert_array_equal(few, many[3:8])
    np.testing.assert_array_equal(few, shared)


@pytest.mark.skipif(not onnx_installed(), reason="needs pip install 'sk-animals[onnx]'")
def test_onnxruntime_features_are_kept_apart_and_equal_torchs(shapes, weights):
    """The default engine on the CPU with the onnx group: its features are within 1e-4
    (relative to their largest) of torch's, and a run keeps them under a key of their own."""
    X, y = shapes
    on_torch = PretrainedFeatures("resnet18", weights=weights, engine="torch").fit()
    on_onnx = PretrainedFeatures("resnet18", weights=weights).fit()
    assert on_onnx._engine(X, "cpu")[0] == "onnxruntime"
    with shared_features() as cache:
        a, b = on_torch.transform(X[:16]), on_onnx.transform(X[:16])
        assert len(cache.entries) == 32  # each engine's own entries
        np.testing.assert_array_equal(on_onnx.transform(X[:16]), b)  # hits
        assert len(cache.entries) == 32 and cache.charged > 0
    assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max()
    np.testing.assert_array_equal(on_onnx.transform(X[:16]), b)  # the same bits again
