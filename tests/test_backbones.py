"""Every torchvision classification model as a backbone: head, blocks, size, weights metadata."""

import numpy as np
import pytest
import torch
import torchvision

from sk_animals._backbones import (
    BACKBONES,
    backbone_spec,
    backbone_table,
    feature_blocks,
    input_size,
    list_backbones,
    load_backbone,
)
from sk_animals._networks import TransferNet
from sk_animals.datasets import make_image_dataset
from sk_animals.transfer import TransferClassifier

pytestmark = pytest.mark.filterwarnings("ignore:The default weight initialization:FutureWarning")

# One small model per family, at a small input where the model takes one (ViT and MaxViT
# take their own size only), with the head and the blocks the search should find.
FAMILIES = {
    "alexnet": (64, "classifier.6", "features"),
    "resnet18": (64, "fc", None),
    "regnet_x_400mf": (64, "fc", "trunk_output"),
    "mobilenet_v3_small": (64, "classifier.3", "features"),
    "efficientnet_b0": (64, "classifier.1", "features"),
    "convnext_tiny": (64, "classifier.2", "features"),
    "swin_t": (64, "head", "features"),
    "vit_b_32": (224, "heads.head", "encoder.layers"),
    "maxvit_t": (224, "classifier.5", "blocks"),
    "squeezenet1_1": (64, "classifier.1", "features"),
    "densenet121": (64, "classifier", "features"),
    "shufflenet_v2_x0_5": (64, "fc", None),
    "mnasnet0_5": (64, "classifier.1", "layers"),
    "googlenet": (64, "fc", None),
    "inception_v3": (96, "fc", None),
}

# Too big for a CPU test machine (over 8 GB of memory, or over a minute per step on one
# thread: efficientnet_b7, 38 GFLOPs per image, took 51 s); on CUDA they run.
TOO_BIG_FOR_CPU = {
    "vit_h_14": "632M parameters at 518x518 (1016 GFLOPs a step, over 8 GB with gradients)",
    "regnet_y_128gf": "644M parameters at 384x384 (375 GFLOPs a step, over 8 GB with gradients)",
    "vit_l_16": "304M parameters, 61 GFLOPs an image: about 90 s a step on a CPU",
    "efficientnet_v2_l": "118M parameters at 480x480, 56 GFLOPs an image: ~90 s a step on a CPU",
}


def test_the_registry_is_torchvisions_classification_models():
    names = list_backbones()
    assert names == tuple(sorted(torchvision.models.list_models(module=torchvision.models)))
    assert {"alexnet", "resnet50", "vit_b_16", "swin_t", "convnext_tiny"} <= set(names)
    assert not any(n.startswith(("quantized_", "fasterrcnn", "fcn_", "r3d")) for n in names)


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_static_presets_agree_with_the_models(backbone):
    assert backbone_spec(backbone) == BACKBONES[backbone]


@pytest.mark.parametrize("backbone", sorted(FAMILIES))
def test_head_and_blocks_found_from_the_model(backbone):
    _, head, blocks = FAMILIES[backbone]
    spec = backbone_spec(backbone)
    assert (spec.head, spec.blocks) == (head, blocks)


def test_input_size_and_normalization_follow_the_weights():
    assert input_size("alexnet") == 227  # the paper's, not torchvision's 224
    assert input_size("efficientnet_b3") == 300
    assert input_size("inception_v3") == 299
    assert input_size("swin_v2_t", None) == 256
    assert input_size("vit_h_14") == 518  # its only weights are SWAG's, end to end
    assert input_size("vit_b_16", "IMAGENET1K_SWAG_E2E_V1") == 384
    assert input_size("vit_b_16", "IMAGENET1K_V1") == 224


def test_unknown_backbone_suggests_names():
    with pytest.raises(ValueError, match="unknown backbone 'resnet5' .did you mean resnet50"):
        backbone_spec("resnet5")


@pytest.mark.parametrize("backbone", sorted(FAMILIES))
def test_head_replaced_and_blocks_frozen_one_step(backbone, seed):
    size, head, _ = FAMILIES[backbone]
    net = TransferNet(3, backbone, weights=None, freeze=2).train()
    assert net.head == head
    logits = net(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 3)  # one tensor: no auxiliary logits in training mode
    logits.sum().backward()
    _, blocks = feature_blocks(net.model, head)
    first = {id(p) for _, b in blocks[:2] for p in b.parameters()}
    later = {id(p) for _, b in blocks[2:] for p in b.parameters()}
    assert first or later
    for name, p in net.named_parameters():
        if id(p) in first:
            assert not p.requires_grad and p.grad is None, name
        elif id(p) in later or name.startswith(net.head_prefix):
            assert p.requires_grad and p.grad is not None, name
    # the stem, before the first block, is frozen with it
    before = next(iter(p for _, b in blocks for p in b.parameters()))
    for p in net.model.parameters():
        if p is before:
            break
        assert not p.requires_grad


def test_vit_stem_frozen_with_the_first_block():
    net = TransferNet(3, "vit_b_32", weights=None, freeze=1)
    frozen = {n for n, p in net.model.named_parameters() if not p.requires_grad}
    assert {"class_token", "conv_proj.weight", "encoder.pos_embedding"} <= frozen
    assert all(not n.startswith("encoder.layers.encoder_layer_1.") for n in frozen)
    net.train()
    assert net.model.encoder.layers.encoder_layer_1.training  # not put in eval by its parent


@pytest.mark.parametrize("backbone", ["googlenet", "inception_v3"])
def test_auxiliary_classifiers_removed_even_from_a_state_dict(backbone, tmp_path):
    full = torchvision.models.get_model(
        backbone, weights=None, aux_logits=True, init_weights=False
    )
    torch.save(full.state_dict(), tmp_path / "full.pth")
    model = load_backbone(backbone, tmp_path / "full.pth")
    assert not model.aux_logits
    assert not any("aux" in name.lower() for name, _ in model.named_children())
    torch.testing.assert_close(model.fc.weight, full.fc.weight)


@pytest.mark.parametrize(
    "backbone, size",
    [("alexnet", 64), ("regnet_x_400mf", 32), ("mobilenet_v3_small", 32), ("swin_t", 32)],
)
def test_short_fit_per_family(backbone, size):
    X, y = make_image_dataset(n_samples=6, n_classes=3, size=size, random_state=0)
    clf = TransferClassifier(backbone, weights=None, max_epochs=1, batch_size=3, verbose=0)
    assert clf.fit(X, y).predict_proba(X).shape == (6, 3)


def test_vit_at_another_size_says_which():
    X, y = make_image_dataset(n_samples=4, n_classes=2, size=256, random_state=0)
    clf = TransferClassifier("vit_b_32", weights=None, max_epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"256x256 do not fit backbone='vit_b_32'.*size=224"):
        clf.fit(X, y)


def test_backbone_table_from_torchvision_metadata():
    rows = backbone_table(["resnet50", "alexnet", "efficientnet_b0", "vgg16"])
    assert [r.name for r in rows] == ["efficientnet_b0", "alexnet", "resnet50", "vgg16"]
    resnet50 = rows[2]
    assert (resnet50.weights, resnet50.acc1, resnet50.gflops) == ("IMAGENET1K_V2", 80.858, 4.089)
    assert resnet50.params == 25.6 and resnet50.size == 224
    # efficientnet_b0 beats alexnet and resnet50 beats vgg16 on both counts
    assert [r.pareto for r in rows] == [True, False, True, False]
    assert len(backbone_table()) == len(list_backbones())


@pytest.mark.slow
@pytest.mark.parametrize("backbone", list_backbones())
def test_every_backbone_one_step_at_its_size(backbone):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and backbone in TOO_BIG_FOR_CPU:
        pytest.skip(TOO_BIG_FOR_CPU[backbone])
    size = input_size(backbone)
    spec = backbone_spec(backbone)
    net = TransferNet(3, backbone, weights=None, freeze=1).to(device).train()
    logits = net(torch.randn(2, 3, size, size, device=device))
    assert logits.shape == (2, 3)
    logits.sum().backward()
    assert net.model.get_submodule(spec.head).weight.grad is not None
    assert np.isfinite(logits.detach().cpu().numpy()).all()
