"""Denormal floats are flushed inside fit and predict, and the caller's setting survives."""

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sk_animals._tensors import denormals_flushed, flush_denormals
from sk_animals.scratch import ScratchCNNClassifier
from sk_animals.transfer import PretrainedFeatures

if not torch.set_flush_denormal(False):
    pytest.skip("this CPU cannot flush denormals (no SSE3)", allow_module_level=True)


class Seen(Callback):
    """Records, at every batch, whether denormals were flushed; raises when told to."""

    def __init__(self, raise_at=None):
        self.raise_at = raise_at

    def initialize(self):
        self.flags = []
        return self

    def on_batch_end(self, net, **kwargs):
        self.flags.append(denormals_flushed())
        if self.raise_at is not None and len(self.flags) == self.raise_at:
            raise self.raise_at_error


@pytest.fixture
def caller_setting():
    """Run the test under each caller setting, and put the default back after."""
    yield
    torch.set_flush_denormal(False)


def test_the_detector_sees_both_settings(caller_setting):
    torch.set_flush_denormal(True)
    assert denormals_flushed()
    torch.set_flush_denormal(False)
    assert not denormals_flushed()
    with flush_denormals():
        assert denormals_flushed()
    assert not denormals_flushed()


@pytest.mark.parametrize("caller", [False, True])
def test_fit_and_predict_flush_and_restore(shapes, caller, caller_setting):
    X, y = shapes
    torch.set_flush_denormal(caller)
    seen = Seen()
    clf = ScratchCNNClassifier(depth=2, max_epochs=1, batch_size=64, callbacks=[seen], verbose=0)
    clf.fit(X[:64], y[:64])
    assert seen.flags and all(seen.flags)  # flushed during training
    assert denormals_flushed() == caller
    clf.predict(X[:8])
    assert denormals_flushed() == caller


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_an_error_or_ctrl_c_restores_the_setting(shapes, error, caller_setting):
    X, y = shapes
    torch.set_flush_denormal(False)
    seen = Seen(raise_at=1)
    seen.raise_at_error = error
    clf = ScratchCNNClassifier(depth=2, max_epochs=1, batch_size=32, callbacks=[seen], verbose=0)
    with pytest.raises(type(error)):
        clf.fit(X[:64], y[:64])
    assert seen.flags == [True] and not denormals_flushed()


def test_feature_extraction_restores_the_setting(caller_setting):
    torch.set_flush_denormal(False)
    features = PretrainedFeatures("squeezenet1_1", weights=None).fit()
    out = features.transform(np.zeros((2, 32, 32, 3), np.uint8))
    assert out.shape[0] == 2 and not denormals_flushed()
