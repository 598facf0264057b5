"""The protocols' frozen records, and that everything reads them."""

import dataclasses

import pytest

from sk_animals.protocols import DEMO, PAPER, paper_protocol
from sk_animals.scratch import ScratchCNNClassifier
from sk_animals.transfer import TransferClassifier


def test_the_paper_protocol_states_the_classifiers_paper_defaults():
    assert PAPER.scratch.epochs == ScratchCNNClassifier().max_epochs == 10
    assert PAPER.transfer.epochs == TransferClassifier().max_epochs == 6
    assert (PAPER.scratch.image_size, PAPER.image_size("transfer")) == (100, 227)
    assert (PAPER.scratch.per_class, PAPER.transfer.per_class, PAPER.folds) == (1500, 500, 5)


def test_timm_approaches_load_images_as_the_models_pretrained_cfg_says():
    built = paper_protocol(
        approaches=("scratch", "transfer", "probe"),
        backbone="timm/tf_efficientnet_lite0",
        weights=None,
    )
    loaders = {a.name: a.pipeline[0] for a in built}
    for name in ("transfer", "probe"):
        assert (loaders[name].size, loaders[name].resize) == (224, "crop")
        assert (loaders[name].interpolation, loaders[name].crop_pct) == ("bicubic", 0.875)
    assert (loaders["scratch"].resize, loaders["scratch"].crop_pct) == ("stretch", 1.0)
    alexnet = paper_protocol(weights=None)[1].pipeline[0]  # torchvision: the paper's images
    assert (alexnet.resize, alexnet.interpolation, alexnet.crop_pct) == ("stretch", "bilinear", 1)


def test_records_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PAPER.folds = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEMO.scratch.image_size = 32


def test_the_command_line_reads_the_records(monkeypatch):
    from sk_animals import _parser, cli, protocols

    changed = dataclasses.replace(PAPER, folds=7, backbone="resnet18")
    monkeypatch.setitem(cli.RECIPES, "paper", changed)
    monkeypatch.setattr(_parser, "PAPER", changed)
    monkeypatch.setattr(protocols, "PAPER", changed)
    text = cli.build_parser()._subparsers._group_actions[0].choices["compare"].format_help()
    assert "default: 7" in " ".join(text.split()) and "resnet18" in text
    assert paper_protocol()[1].classifier.backbone == "resnet18"
