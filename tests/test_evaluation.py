import numpy as np
import pytest
import torch
import torchvision
from sklearn.pipeline import make_pipeline

from sk_animals.datasets import make_image_dataset, save_image_folder
from sk_animals.evaluation import (
    DEMO_DATA,
    Approach,
    compare,
    demo_protocol,
    paper_protocol,
    per_class_rates,
    training_curves,
)
from sk_animals.preprocessing import ImageLoader
from sk_animals.scratch import ScratchCNNClassifier
from sk_animals.transfer import TransferClassifier


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    X, y = make_image_dataset(n_samples=60, n_classes=3, size=32, random_state=0)
    return save_image_folder(X, y, tmp_path_factory.mktemp("cmp"))


def fast(**kw):
    return ScratchCNNClassifier(
        width=4, depth=2, max_epochs=2, batch_size=8, verbose=0, random_state=0, **kw
    )


def approach(name, clf, size, per_class=None):
    return Approach(name, make_pipeline(ImageLoader(size), clf), per_class)


def save_each(out):
    """compare's on_approach hook that writes each finished approach into ``out``."""

    def save(result, name):
        result.save(out, [name])

    return save


def test_paper_protocol_settings():
    scratch, transfer = paper_protocol()
    assert (
        scratch.image_size,
        scratch.per_class,
        scratch.classifier.lr,
        scratch.classifier.max_epochs,
    ) == (100, 1500, 0.01, 10)
    assert (
        transfer.image_size,
        transfer.per_class,
        transfer.classifier.lr,
        transfer.classifier.max_epochs,
        transfer.classifier.backbone,
    ) == (227, 500, 1e-4, 6, "alexnet")
    scratch, transfer = paper_protocol(backbone="resnet18", per_class=20, epochs=1)
    assert (transfer.image_size, transfer.per_class, scratch.classifier.max_epochs) == (224, 20, 1)
    scratch, transfer = paper_protocol(image_size=48)
    assert scratch.image_size == transfer.image_size == 48


def test_demo_protocol_is_complete():
    scratch, transfer, probe = demo_protocol(weights=None)
    assert scratch.image_size == DEMO_DATA["size"] and transfer.image_size == probe.image_size
    assert (scratch.per_class, scratch.classifier.batch_size) == (30, 32)
    assert transfer.classifier.backbone == "timm/tf_efficientnet_lite0"
    assert transfer.classifier.weights is None
    assert demo_protocol()[1].classifier.weights == "EMBEDDED"
    features = probe.pipeline[1]
    assert (features.backbone, type(probe.classifier).__name__) == (
        "timm/tf_efficientnet_lite0",
        "LinearProbe",
    )
    assert [a.name for a in paper_protocol()] == ["scratch", "transfer"]
    assert [a.name for a in paper_protocol(approaches=["probe", "scratch"])] == [
        "scratch",
        "probe",
    ]
    with pytest.raises(ValueError, match="unknown approaches \\['finetune'\\]"):
        paper_protocol(approaches=["finetune"])


def test_per_class_rates_match_definitions():
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "c", "c"]
    rates = per_class_rates(y_true, y_pred, ["a", "b", "c"])
    assert rates["a"] == {"tpr": pytest.approx(2 / 3), "fpr": 0.0}
    assert rates["b"] == {"tpr": 0.5, "fpr": pytest.approx(1 / 4)}
    assert rates["c"] == {"tpr": 1.0, "fpr": pytest.approx(1 / 5)}


def test_compare_table_rates_curves_and_files(folder, tmp_path):
    approaches = [approach("small", fast(), 32, per_class=15), approach("tiny", fast(lr=0.1), 24)]
    result = compare(folder, approaches, cv=2, verbose=0)
    assert not any(tmp_path.iterdir())  # computing writes nothing
    result.save(tmp_path)
    small, tiny = result.approaches
    # 12 of the 60 images are the common test set; 16 per class remain
    assert small.n_train + small.n_valid == 45 and tiny.n_train + tiny.n_valid == 48
    assert len(result.test_files) == 12 and len(small.test_predicted) == 12
    assert small.images_per_class == 15 and tiny.image_size == 24
    assert len(small.cv.scores) == 2 and 0 <= small.cv.mean <= 1
    cm = np.asarray(small.confusion_matrix)
    assert cm.sum() == small.n_valid
    assert small.validation_accuracy == pytest.approx(np.trace(cm) / cm.sum())
    assert set(small.per_class) == {"circle", "cross", "triangle"}
    curves = small.curves
    assert len(curves["train"]["iteration"]) == 2 * int(np.ceil(small.n_train / 8))
    assert (
        curves["valid"]["iteration"]
        and max(curves["valid"]["iteration"]) == curves["train"]["iteration"][-1]
    )
    markdown = result.to_markdown()
    assert "| small |" in markdown and "Validation accuracy" in markdown
    # the onnx group is installed: each approach's graph timed in onnxruntime
    assert small.onnx_predict_ms_per_image > 0 and tiny.onnx_predict_ms_per_image > 0
    assert "ONNX predict time (ms/image)" in markdown
    for name in (
        "report.md",
        "report.html",
        "metrics.json",
        "small.skmodel",
        "tiny.skmodel",
        "small_curves.png",
        "tiny_confusion.png",
        "tiny_predictions.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    pipe = result.pipelines["small"]
    assert pipe.predict(small.validation_files[:3]).tolist() == small.validation_predicted[:3]


def test_training_curves_count_iterations(shapes):
    X, y = shapes
    clf = fast(train_split=0.25, validation_frequency=3).fit(X, y)
    curves = training_curves(clf.history_)
    assert curves["train"]["iteration"] == list(range(1, 25))
    assert curves["valid"]["iteration"] == [3, 6, 9, 12, 15, 18, 21, 24]


def test_duplicates_across_an_approachs_validation_split_are_said(folder, tmp_path):
    import shutil

    copy = shutil.copytree(folder, tmp_path / "dup")
    for path in sorted(copy.rglob("*.png")):  # every image twice
        shutil.copy(path, path.with_name(f"again_{path.name}"))
    result = compare(copy, [approach("small", fast(), 32)], cv=0, test_size=0.2, verbose=0)
    (note,) = [n for n in result.notes if "validation accuracy may be optimistic" in n]
    record = result.approaches[0]
    train, valid = set(record.training_files), set(record.validation_files)
    crossing = [g for g in result.audit.clusters() if train & set(g) and valid & set(g)]
    assert crossing and note.startswith(f"{len(crossing)} group(s)") and "small's" in note
    clean = compare(folder, [approach("small", fast(), 32)], cv=0, verbose=0)
    assert not [n for n in clean.notes if "optimistic" in n]


def test_too_few_images_is_refused_before_any_work(folder):
    with pytest.raises(ValueError, match="too few for 11 folds"):
        compare(folder, [approach("small", fast(), 32, per_class=15)], cv=11, verbose=0)


@pytest.mark.parametrize("test_size", [0.2, None])
def test_a_class_with_one_image_is_refused_before_any_work(folder, tmp_path, capsys, test_size):
    import shutil

    from sk_animals.exceptions import NotEnoughImagesError

    copy = shutil.copytree(folder, tmp_path / "data")
    for extra in sorted((copy / "circle").iterdir())[1:]:
        extra.unlink()
    with pytest.raises(NotEnoughImagesError, match="class 'circle' has 1 image"):
        compare(copy, [approach("small", fast(), 32)], cv=2, test_size=test_size)
    assert "auditing" not in capsys.readouterr().out  # before the audit and any training


def test_a_single_fold_is_refused_before_any_loading(folder, capsys):
    from sk_animals.exceptions import BadInputError

    with pytest.raises(BadInputError, match="cv must be 0 or None .* or at least 2 folds, got 1"):
        compare(folder, [approach("small", fast(), 32)], cv=1)
    assert capsys.readouterr().out == ""


def test_labels_mixing_strings_and_numbers_are_refused(folder):
    from sk_animals.datasets import load_image_folder

    data = load_image_folder(folder)
    target = [1 if label == "circle" else label for label in data.target.tolist()]
    with pytest.raises(ValueError, match=r"target mixes strings and numbers as labels \('"):
        compare({"data": data.data, "target": target}, [approach("small", fast(), 32)], cv=0)


def test_failure_keeps_finished_work(folder, tmp_path):
    broken = TransferClassifier("squeezenet1_1", weights=tmp_path / "missing.pth", verbose=0)
    approaches = [approach("small", fast(), 32), approach("broken", broken, 32)]
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        compare(folder, approaches, cv=0, on_approach=save_each(tmp_path / "out"), verbose=0)
    assert (tmp_path / "out" / "small.skmodel").exists()
    assert "| small |" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")


def test_unreadable_images_are_named_in_the_report(folder, tmp_path):
    import shutil

    copy = shutil.copytree(folder, tmp_path / "data")
    (copy / "circle" / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.warns(UserWarning, match="skipped 1 file"):
        result = compare(copy, [approach("small", fast(), 32)], cv=0, verbose=0)
    result.save(tmp_path / "o")
    assert result.skipped and "broken.png" in result.skipped[0][0]
    assert "broken.png" in (tmp_path / "o" / "report.md").read_text(encoding="utf-8")


def test_transfer_approach_with_weights_file(folder, tmp_path):
    weights = tmp_path / "squeeze.pth"
    torch.save(torchvision.models.get_model("squeezenet1_1").state_dict(), weights)
    clf = TransferClassifier("squeezenet1_1", weights=weights, max_epochs=1, verbose=0)
    result = compare(folder, [approach("transfer", clf, 48, per_class=10)], cv=0, verbose=0)
    assert result.approaches[0].weights == str(weights)


def test_protocols_pass_the_decode_cache_to_their_loaders(tmp_path):
    for approach in [*paper_protocol(cache_dir=tmp_path), *demo_protocol(cache_dir=tmp_path)]:
        assert approach.pipeline[0].cache_dir == tmp_path


def _numbers(result):
    """What a comparison reports, without timings."""
    return (
        [(r.cv.scores, r.test_predicted, r.validation_predicted) for r in result.approaches],
        [(p.per_class, p.test_accuracy) for p in result.budget_curve],
    )


@pytest.mark.slow  # a whole command or worker processes: the slow lane
def test_folds_and_budgets_on_a_dask_cluster_match_a_serial_run(folder):
    distributed = pytest.importorskip(
        "distributed", reason="no dask.distributed: pip install sk-animals[dask]"
    )
    from joblib import parallel_config

    approaches = [approach("small", fast(), 32, per_class=15)]
    kwargs = dict(cv=2, budgets=[5, 10], audit=False, verbose=0)
    serial = compare(folder, approaches, n_jobs=1, **kwargs)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
        parallel_config(backend="dask"),
        distributed.get_task_stream(client) as tasks,
    ):
        spread = compare(folder, approaches, n_jobs=2, **kwargs)
    workers = {t["worker"] for t in tasks.data}
    assert len(tasks.data) >= 4 and len(workers) == 2  # 2 folds and 2 budgets, both workers
    assert _numbers(spread) == _numbers(serial)


def test_any_pipeline_that_starts_with_an_image_loader_is_an_approach(folder, tmp_path):
    """A linear probe (frozen features + logistic regression) runs beside a network."""
    from sk_animals import load
    from sk_animals.transfer import LinearProbe, PretrainedFeatures

    features = PretrainedFeatures("squeezenet1_1", weights=None)
    probe = Approach("probe", make_pipeline(ImageLoader(32), features, LinearProbe()))
    result = compare(folder, [approach("scratch", fast(), 32), probe], cv=2, verbose=0)
    record = result.approaches[1]
    assert (record.classifier, record.backbone, record.lr, record.epochs) == (
        "LinearProbe",
        "squeezenet1_1",
        None,
        None,
    )
    assert len(record.cv.scores) == 2 and 0 <= record.test_accuracy <= 1
    maps = record.test_overlays.heatmaps()  # the probe explains too
    assert maps.shape[1:] == (32, 32) and len(maps) >= 4 and 0 <= maps.min() <= maps.max() <= 1
    pipeline = result.pipelines["probe"]
    assert [name for name, _ in pipeline.steps] == [
        "imageloader",
        "pretrainedfeatures",
        "linearprobe",
    ]
    assert pipeline.predict(result.test_files[:3]).shape == (3,)
    assert [d.a for d in result.differences] == ["probe"]
    assert result.save(tmp_path / "out")["report.html"].is_file()
    loaded = load(tmp_path / "out" / "probe.skmodel")
    np.testing.assert_allclose(
        loaded.predict_proba(result.test_files),
        pipeline.predict_proba(result.test_files),
        rtol=1e-5,
    )


def test_a_probe_in_a_terminal_gets_no_progress_line(folder, monkeypatch):
    """In a terminal, fits of networks draw a progress line; a linear probe has none to draw."""
    import sys

    from sk_animals.transfer import LinearProbe, PretrainedFeatures

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    features = PretrainedFeatures("squeezenet1_1", weights=None)
    probe = Approach("probe", make_pipeline(ImageLoader(32), features, LinearProbe()))
    result = compare(folder, [probe], cv=2, verbose=1)
    assert result.approaches[0].cv.folds == 2


@pytest.fixture(scope="module")
def mislabelled(tmp_path_factory):
    """Flat-colour images of three classes; five given the wrong label (three of them
    among the training images, two in the test set of ``compare``'s seed 0)."""
    rng = np.random.default_rng(0)
    colours = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}
    y = np.repeat(list(colours), 30)
    X = np.stack([np.array(colours[c]) + rng.normal(0, 25, (32, 32, 3)) for c in y])
    given = y.copy()
    wrong = [0, 5, 31, 40, 62]
    given[wrong] = ["green", "blue", "blue", "red", "red"]
    tmp = tmp_path_factory.mktemp("labels")
    root = save_image_folder(np.clip(X, 0, 255), given, tmp / "data")
    torch.manual_seed(0)  # a file of random weights: the same features in every run
    torch.save(torchvision.models.get_model("squeezenet1_1").state_dict(), tmp / "w.pth")
    return root, {str(root / given[i] / f"{i:05d}.png") for i in wrong}


def _colour_probe(mislabelled):
    from sk_animals.transfer import LinearProbe, PretrainedFeatures

    features = PretrainedFeatures("squeezenet1_1", weights=mislabelled[0].parent / "w.pth")
    return Approach("probe", make_pipeline(ImageLoader(32), features, LinearProbe()))


def test_compare_finds_planted_label_errors_and_can_drop_them(mislabelled, tmp_path):
    import json

    root, planted = mislabelled
    kept = compare(root, [_colour_probe(mislabelled)], cv=2, verbose=0)
    audit = kept.label_audit
    flagged = {r["path"] for r in audit.train + audit.test}
    assert planted <= flagged and len(flagged) <= len(planted) + 2
    assert {r["path"] for r in audit.test} <= set(kept.test_files)
    assert (audit.n_train, audit.n_test, audit.dropped) == (72, 18, False)
    assert audit.train[0]["score"] <= audit.train[-1]["score"]  # most suspicious first
    assert any("flags" in note for note in kept.notes)

    dropped = compare(root, [_colour_probe(mislabelled)], cv=2, verbose=0, drop_label_issues=True)
    record = dropped.approaches[0]
    assert dropped.label_audit.dropped
    assert record.n_train + record.n_valid == 72 - len(dropped.label_audit.train)
    trained_on = set(record.training_files + record.validation_files)
    assert not trained_on & {r["path"] for r in dropped.label_audit.train}
    assert dropped.test_files == kept.test_files  # the test set keeps its suspects

    paths = dropped.save(tmp_path)
    saved = json.loads(paths["metrics.json"].read_text())["audit"]["label_issues"]
    assert saved["test"] == dropped.label_audit.test and saved["dropped"]
    assert (tmp_path / "label_issues.png").is_file()
    assert "Likely label errors" in paths["report.md"].read_text()


def test_dropping_label_issues_trains_only_on_audited_images(mislabelled):
    """With a budget below the pool, the audit covers the budget's draw; after dropping,
    the approach must not refill its budget with images the audit never saw."""
    root, _ = mislabelled
    probe = Approach("probe", _colour_probe(mislabelled).pipeline, per_class=20)
    result = compare(root, [probe], cv=2, verbose=0, drop_label_issues=True)
    audit, record = result.label_audit, result.approaches[0]
    assert audit.n_train == 60 and audit.train  # 20 of the 24 training images per class
    assert record.n_train + record.n_valid == audit.n_train - len(audit.train)


def test_label_issues_need_an_approach_on_frozen_features(folder):
    scratch = approach("scratch", fast(), 32)
    assert compare(folder, [scratch], cv=2, verbose=0, audit=False).label_audit is None
    for kwargs in ({"label_issues": True}, {"drop_label_issues": True}):
        with pytest.raises(ValueError, match="frozen features .*the approaches are scratch"):
            compare(folder / "missing", [scratch], **kwargs)  # refused before any loading


def test_a_checkpoint_restores_each_finished_unit(mislabelled, tmp_path, capsys):
    """Folds, final fits, budget points and the label audit are checkpointed one by one."""
    root, _ = mislabelled
    run = dict(cv=2, budgets=[5, 10], checkpoint_dir=tmp_path, verbose=1)
    first = compare(root, [_colour_probe(mislabelled)], **run)
    units = sorted(p.name for p in tmp_path.iterdir())
    assert units == [  # JSON and model files, no pickle; the lock went with the run
        "arguments.json",
        "label-audit.json",
        "probe.budget10.json",
        "probe.budget5.json",
        "probe.final.json",
        "probe.final.skmodel",
        "probe.fold0.json",
        "probe.fold1.json",
    ]
    for unit in ("probe.final", "probe.budget10"):
        (tmp_path / f"{unit}.json").unlink()
    capsys.readouterr()
    again = compare(root, [_colour_probe(mislabelled)], **run)
    said = capsys.readouterr().out
    assert "label audit finished in an earlier run" in said
    assert "2 of 2 folds finished in an earlier run" in said
    assert "1 of 2 budget points restored" in said and "budgets 10 per class" in said
    assert again.approaches[0].cv == first.approaches[0].cv
    assert again.approaches[0].test_predicted == first.approaches[0].test_predicted
    assert again.budget_curve == first.budget_curve


def test_a_probe_pays_for_its_features(mislabelled, monkeypatch):
    """Frozen features are computed once, but they are the probe's cost: its fit time
    holds the training images' features and its predict time the validation images'."""
    import time

    from sk_animals.transfer import PretrainedFeatures

    real = PretrainedFeatures.transform

    def slow(self, X):
        time.sleep(0.3)
        return real(self, X)

    monkeypatch.setattr(PretrainedFeatures, "transform", slow)
    root, _ = mislabelled
    result = compare(root, [_colour_probe(mislabelled)], cv=0, audit=False, verbose=0)
    (record,) = result.approaches
    assert record.fit_seconds >= 0.3
    assert record.predict_ms_per_image * record.n_valid / 1000 >= 0.3
    assert record.onnx_predict_ms_per_image > 0  # backbone and probe as one graph
    row = dict(zip(result.COLUMNS, result.table()[0], strict=True))
    assert "0.0" not in (row["Fit time (s)"], row["Predict time (ms/image)"])


def test_without_onnxruntime_the_onnx_column_is_empty_and_a_graph_it_cannot_export_is_said(
    folder, monkeypatch, capsys
):
    """The ONNX predict time needs the onnx group; a model the graph cannot hold (bf16)
    gets none, in one line, and its scores stand."""
    import sys

    bf16 = approach("bf16", fast(precision="bf16"), 32)
    result = compare(folder, [bf16], cv=0, audit=False, verbose=1)
    (record,) = result.approaches
    assert record.onnx_predict_ms_per_image is None and record.test_accuracy is not None
    assert "no ONNX predict time for bf16: cannot export step" in capsys.readouterr().out
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # importing it fails
    result = compare(folder, [approach("small", fast(), 32)], cv=0, audit=False, verbose=0)
    row = dict(zip(result.COLUMNS, result.table()[0], strict=True))
    assert row["ONNX predict time (ms/image)"] == "-"
