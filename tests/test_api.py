"""The package's public face and its layers: one home per object, old paths, no circles.

Each public object has one documented home (``sk_animals.__all__`` lists them, lazily
re-exported from ``sk_animals``); names that earlier releases documented elsewhere keep
importing; ``docs/api.rst`` names no private module; and no module of the package
imports one of a layer above it, at the top or inside a function (a deferred import
hides a circle, it does not remove it).
"""

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sk_animals

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sk_animals"

#: Top to bottom: a module imports only modules of layers below its own.
LAYERS = [
    ["__main__"],
    ["cli"],
    ["evaluation", "prediction", "tuning", "_parser"],
    ["_budgets"],
    ["_scoring", "protocols", "runs"],
    ["export"],
    ["results"],
    ["cards"],
    ["report"],
    ["persistence"],
    ["explanations"],
    ["scratch", "transfer"],
    ["_base", "_onnxgraph"],
    ["_training"],
    ["_callbacks"],
    ["_networks"],
    ["_backbones"],
    ["_timm"],
    ["datasets", "deploy"],
    ["audit", "preprocessing", "stats", "_tensors", "_files", "_featurecache"],
    ["exceptions", "_version", "_text"],
]

#: Import paths that earlier releases documented or used, and must keep working.
OLD_PATHS = [
    ("sk_animals.preprocessing", "ImageLoadError"),
    ("sk_animals.evaluation", "NotEnoughImagesError"),
    ("sk_animals.cli", "UsageError"),
    ("sk_animals._networks", "PaperCNN"),
    ("sk_animals._networks", "ResidualCNN"),
    ("sk_animals._networks", "TransferNet"),
    ("sk_animals._networks", "find_head"),
    ("sk_animals._networks", "feature_blocks"),
    ("sk_animals._base", "ImageClassifier"),
    ("sk_animals._backbones", "input_size"),
    ("sk_animals._backbones", "backbone_table"),
    ("sk_animals._backbones", "load_backbone"),
    ("sk_animals.scratch", "ResidualCNN"),
    ("sk_animals.transfer", "TransferNet"),
    ("sk_animals.transfer", "load_backbone"),
    ("sk_animals.transfer", "list_backbones"),
    ("sk_animals.transfer", "BACKBONES"),
    ("sk_animals.evaluation", "ComparisonResult"),
    ("sk_animals.evaluation", "ApproachResult"),
    ("sk_animals.evaluation", "CVScores"),
    ("sk_animals.evaluation", "BudgetPoint"),
    ("sk_animals.evaluation", "PairDifference"),
    ("sk_animals.evaluation", "DEMO_DATA"),
    ("sk_animals.persistence", "save"),
    ("sk_animals.persistence", "load"),
    ("sk_animals", "__version__"),
]


def test_every_public_name_comes_from_its_home():
    assert sk_animals.__all__ == sorted(sk_animals._HOMES)
    for name, home in sk_animals._HOMES.items():
        module = importlib.import_module(f"sk_animals.{home}")
        assert getattr(sk_animals, name) is getattr(module, name), name
    assert set(sk_animals.__all__) <= set(dir(sk_animals))
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        sk_animals.nothing  # noqa: B018


@pytest.mark.parametrize("module, name", OLD_PATHS, ids=[".".join(p) for p in OLD_PATHS])
def test_an_old_import_path_keeps_working(module, name):
    assert getattr(importlib.import_module(module), name) is not None


def test_importing_the_package_imports_no_heavy_module():
    code = (
        "import sys, sk_animals; print(sorted({'torch', 'sklearn', 'numpy'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _imports(path):
    """The sk_animals modules that ``path`` imports anywhere in its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif (node.module or "").startswith("sk_animals."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(
                a.name.split(".")[1] for a in node.names if a.name.startswith("sk_animals.")
            )
    return found


def test_no_module_imports_one_above_it():
    layer = {name: i for i, names in enumerate(LAYERS) for name in names}
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert not set(modules) - set(layer), "give every new module a layer in LAYERS"
    upward = [
        f"{module} (layer {layer[module]}) imports {other} (layer {layer[other]})"
        for module in modules
        for other in sorted(_imports(PACKAGE / f"{module}.py"))
        if layer.get(other, -1) <= layer[module]
    ]
    assert not upward, upward


def test_the_api_reference_names_no_private_module():
    text = (ROOT / "docs" / "api.rst").read_text(encoding="utf-8")
    entries = re.findall(r"^   (\S+)$", text, flags=re.MULTILINE)
    assert "compare" in " ".join(entries)  # the autosummary entries were found
    private = [e for e in entries if any(part.startswith("_") for part in e.split("."))]
    private += re.findall(r"sk_animals\._\w+", text)
    assert not private, private
