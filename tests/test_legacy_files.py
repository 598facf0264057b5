"""Model files written by earlier releases load and predict as they did (users' data).

``tests/data/legacy`` holds ``.skmodel`` files written by sk_animals at commit f463234 and
their ``predict_proba`` on fixed inputs (``make_files.py`` says how they were made). Every
change to the package, to the format or to where classes live must keep these passing.
"""

import warnings
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.pipeline import Pipeline

from sk_animals import load
from sk_animals.preprocessing import ImageLoader
from sk_animals.scratch import ResidualCNN, ScratchCNNClassifier
from sk_animals.transfer import TransferClassifier

LEGACY = Path(__file__).parent / "data" / "legacy"
EXPECTED = np.load(LEGACY / "expected.npz")
KINDS = {
    "scratch": ScratchCNNClassifier,
    "residual": ScratchCNNClassifier,
    "transfer": TransferClassifier,
    "pipeline": Pipeline,
}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_file_of_an_earlier_release_loads_and_predicts_the_same(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "saved with sk_animals 0.1.0.dev0"
        model = load(LEGACY / f"{name}.skmodel")
    assert type(model) is KINDS[name]
    assert model.classes_.tolist() == ["circle", "cross", "triangle"]
    assert_allclose(model.predict_proba(EXPECTED["inputs"]), EXPECTED[name], rtol=1e-5, atol=1e-6)


def test_the_earlier_files_keep_their_settings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        residual = load(LEGACY / "residual.skmodel")
        transfer = load(LEGACY / "transfer.skmodel")
        pipeline = load(LEGACY / "pipeline.skmodel")
    assert isinstance(residual.module_, ResidualCNN) and residual.tta
    assert residual.get_params()["optimizer__nesterov"] is True
    assert (transfer.backbone, transfer.freeze, transfer.head_lr_factor) == (
        "squeezenet1_1",
        8,
        10.0,
    )
    assert str(transfer.weights).endswith("squeezenet1_1-random.pth")
    assert isinstance(pipeline[0], ImageLoader) and pipeline[0].size == 32
