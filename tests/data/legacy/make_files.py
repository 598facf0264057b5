"""How the model files in this folder were written: by sk_animals at commit f463234.

They are users' data from an earlier release, kept so that every later release proves it
still loads them (``tests/test_legacy_files.py``). Do not run this again with newer code:
the point is that the files were written by the old one. Run from the repository root:
``python tests/data/legacy/make_files.py``. The transfer file's backbone weights are a
random state-dict file (no pretrained weights are committed); its ``weights`` parameter
records that file's path, as a user's file would.
"""

import tempfile
from pathlib import Path

import numpy as np
import torch
import torchvision
from sklearn.pipeline import make_pipeline

from sk_animals import ImageLoader, save
from sk_animals.datasets import make_image_dataset
from sk_animals.scratch import RECOMMENDED, ScratchCNNClassifier
from sk_animals.transfer import TransferClassifier


def main():
    HERE = Path(__file__).parent
    QUIET = {"max_epochs": 2, "batch_size": 16, "random_state": 0, "verbose": 0}

    X, y = make_image_dataset(n_samples=48, n_classes=3, size=32, random_state=0)
    inputs, _ = make_image_dataset(n_samples=6, n_classes=3, size=32, random_state=1)
    squeezenet = Path(tempfile.mkdtemp()) / "squeezenet1_1-random.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.squeezenet1_1().state_dict(), squeezenet)
    models = {
        "scratch": ScratchCNNClassifier(width=4, depth=2, **QUIET),
        "residual": ScratchCNNClassifier(**{**RECOMMENDED, "width": 8, "depth": 2, **QUIET}),
        "transfer": TransferClassifier(
            "squeezenet1_1", weights=str(squeezenet), freeze=8, head_lr_factor=10.0, **QUIET
        ),
        "pipeline": make_pipeline(
            ImageLoader(32), ScratchCNNClassifier(width=4, depth=2, **QUIET)
        ),
    }
    expected = {"inputs": inputs}
    for name, model in models.items():
        model.fit(X, y)
        save(model, HERE / f"{name}.skmodel")
        expected[name] = model.predict_proba(inputs)
    np.savez(HERE / "expected.npz", **expected)


if __name__ == "__main__":  # never on import: pytest --doctest-modules imports this file
    main()
