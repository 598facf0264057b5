import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from sk_animals import load
from sk_animals.cli import main
from sk_animals.datasets import make_image_dataset, save_image_folder


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "sk_animals", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """One end-to-end `sk-animals compare` in a subprocess on a small generated folder."""
    tmp = tmp_path_factory.mktemp("cli")
    X, y = make_image_dataset(n_samples=48, n_classes=3, size=32, random_state=0)
    data = save_image_folder(X, y, tmp / "data")
    weights = tmp / "squeezenet.pth"
    torch.save(torchvision.models.get_model("squeezenet1_1").state_dict(), weights)
    out = tmp / "out"
    proc = run(
        "compare",
        data,
        "--out",
        out,
        "--folds",
        2,
        "--per-class",
        12,
        "--epochs",
        1,
        "--backbone",
        "squeezenet1_1",
        "--weights",
        weights,
        "--device",
        "cpu",
    )
    assert proc.returncode == 0, proc.stderr
    return data, out, proc.stdout


def test_compare_writes_report_metrics_models_and_figures(compared):
    _, out, stdout = compared
    assert "| scratch |" in stdout and "| transfer |" in stdout
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| scratch |" in report and "Validation accuracy" in report
    assert "<table>" in (out / "report.html").read_text(encoding="utf-8")
    metrics = json.loads((out / "metrics.json").read_text())
    assert [a["name"] for a in metrics["approaches"]] == ["scratch", "transfer", "probe"]
    assert metrics["approaches"][1]["image_size"] == metrics["approaches"][2]["image_size"] == 224
    assert {(d["a"], d["b"]) for d in metrics["differences"]} == {
        ("transfer", "scratch"),
        ("probe", "scratch"),
        ("probe", "transfer"),
    }
    assert (out / "probe.skmodel").is_file()
    for saved in metrics["approaches"]:  # every family's maps, by default
        assert saved["test_overlays"]["shape"] == [32, 32] and saved["test_overlays"]["maps"]
    assert "beside a class-activation map" in report
    labels = metrics["audit"]["label_issues"]  # the probe looked for label errors
    assert (labels["approach"], labels["n_test"]) == ("probe", len(metrics["test"]["files"]))
    assert "## Likely label errors" in report
    for figure in out.glob("*.png"):
        with Image.open(figure) as img:
            img.verify()
        with Image.open(figure) as img:
            assert img.format == "PNG" and 300 <= img.width <= 3000 and 200 <= img.height <= 3000
    names = {p.name for p in out.glob("*.png")}
    for approach in ("scratch", "transfer", "probe"):
        for kind in ("curves", "confusion", "predictions", "reliability"):
            assert f"{approach}_{kind}.png" in names


def test_compare_writes_a_model_card_beside_each_model(compared):
    from huggingface_hub import ModelCard

    _, out, _ = compared
    metrics = json.loads((out / "metrics.json").read_text())
    for saved in metrics["approaches"]:
        card = ModelCard.load(out / f"{saved['name']}.md")
        (entry,) = card.data.to_dict()["model-index"]
        scores = {m["type"]: m["value"] for m in entry["results"][0]["metrics"]}
        assert (scores["accuracy"], scores["f1"], scores["ece"]) == (
            saved["test_accuracy"],
            saved["test_report"]["macro avg"]["f1-score"],
            saved["calibration"]["ece"],
        )
        if saved["backbone"]:  # a weights file from us: its licence is not known
            assert "squeezenet.pth" in card.text and card.data.license is None
    probe = ModelCard.load(out / "probe.md").text
    assert "Likely label errors" in probe and "sk-animals export probe.skmodel" in probe


def test_approaches_are_checked_early_and_keep_their_order(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["compare", "--demo", "--out", str(tmp_path / "o"), "--approaches", "finetune"])
    assert info.value.code == 2
    assert "choose one or more of scratch,transfer,probe" in capsys.readouterr().err
    from sk_animals.cli import _approach_list

    assert _approach_list("probe, scratch") == ("scratch", "probe")


@pytest.mark.slow  # a whole command or a large file: the slow lane
def test_predict_matches_in_process(compared):
    data, out, _ = compared
    images = sorted(str(p) for p in data.rglob("*.png"))[:4]
    proc = run("predict", out / "scratch.skmodel", *images, "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    pipe = load(out / "scratch.skmodel")
    assert [r["label"] for r in rows] == pipe.predict(images).tolist()
    np.testing.assert_allclose(
        [r["probability"] for r in rows], pipe.predict_proba(images).max(1), rtol=1e-5
    )
    table = run("predict", out / "scratch.skmodel", images[0])
    assert table.returncode == 0 and rows[0]["label"] in table.stdout


def test_existing_output_folder_is_not_clobbered(compared, capsys):
    data, out, _ = compared
    assert main(["compare", str(data), "--out", str(out)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err


def test_bad_inputs_give_clear_messages(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.jpg").write_text("no image")
    model = tmp_path / "m.joblib"
    X, y = make_image_dataset(n_samples=8, n_classes=2, size=16, random_state=0)
    from sklearn.pipeline import make_pipeline

    from sk_animals.preprocessing import ImageLoader
    from sk_animals.scratch import ScratchCNNClassifier

    joblib.dump(
        make_pipeline(ImageLoader(16), ScratchCNNClassifier(depth=2, max_epochs=1, verbose=0)).fit(
            list(X), y
        ),
        model,
    )
    assert main(["predict", str(model), str(tmp_path / "bad.jpg")]) == 2
    assert "is a pickle" in capsys.readouterr().err  # not unpickled unless trusted
    assert main(["predict", str(model), str(tmp_path / "bad.jpg"), "--trust-pickle"]) == 1
    captured = capsys.readouterr()  # nothing predicted: exit 1, the error in its row
    assert "bad.jpg  error: " in captured.out and "1 of 1 file(s)" in captured.err
    for not_a_model in (tmp_path / "bad.jpg", tmp_path / "empty.skmodel"):
        not_a_model.touch()
        assert main(["predict", str(not_a_model), str(tmp_path / "bad.jpg")]) == 2
        err = capsys.readouterr().err
        assert "is not an sk_animals model file" in err and len(err.splitlines()) == 1


def test_help_explains_options():
    proc = run("compare", "--help")
    assert proc.returncode == 0
    for option in (
        "--device",
        "--folds",
        "--per-class",
        "--epochs",
        "--seed",
        "--backbone",
        "--weights",
        "--demo",
        "--overwrite",
    ):
        assert option in proc.stdout


@pytest.mark.slow  # a whole command or worker processes: the slow lane
def test_tune_command_shares_a_study_file(tmp_path, capsys):
    pytest.importorskip("optuna")
    X, y = make_image_dataset(n_samples=48, n_classes=2, size=32, random_state=0)
    data = save_image_folder(X, y, tmp_path / "data")
    args = [
        "tune",
        str(data),
        "--image-size",
        "32",
        "--n-trials",
        "2",
        "--storage",
        str(tmp_path / "study.db"),
        "--study-name",
        "s",
        "--out",
        str(tmp_path / "b.skmodel"),
    ]
    assert main(args) == 0
    assert "study 's': 2 trials" in capsys.readouterr().out
    # a second worker joins and adds one; its best model replaces the first's when asked
    assert main([*args[:5], "3", *args[6:], "--overwrite"]) == 0
    assert "study 's': 3 trials" in capsys.readouterr().out
    assert load(tmp_path / "b.skmodel").predict(
        [str(p) for p in data.rglob("*.png")][:2]
    ).shape == (2,)


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("early")
    X, y = make_image_dataset(n_samples=12, n_classes=2, size=16, random_state=0)
    return save_image_folder(X, y, tmp / "data")


def _weights_files(tmp):
    """A missing, an empty, a truncated, a corrupt and a foreign-architecture weights file."""
    good = tmp / "resnet18.pth"
    torch.save(torchvision.models.get_model("resnet18").state_dict(), good)
    (tmp / "empty.pth").touch()
    (tmp / "truncated.pth").write_bytes(good.read_bytes()[:5000])
    (tmp / "corrupt.pth").write_bytes(b"not a torch file at all")
    return {
        "missing": tmp / "missing.pth",
        "empty": tmp / "empty.pth",
        "truncated": tmp / "truncated.pth",
        "corrupt": tmp / "corrupt.pth",
        "another architecture": good,
    }


@pytest.mark.parametrize(
    "extra, option",
    [
        (["--per-class", "0"], "--per-class"),
        (["--image-size", "0"], "--image-size"),
        (["--epochs", "0"], "--epochs"),
        (["--cv", "-2"], "--cv"),
        (["--cv", "1"], "--cv"),
        (["--seed", "-1"], "--seed"),
        (["--seed", str(2**32)], "--seed"),
        (["--test-size", "1.5"], "--test-size"),
        (["--budgets", "10,x"], "--budgets"),
        (["--n-jobs", "0"], "--n-jobs"),
        (["--n-jobs", "-3"], "--n-jobs"),
        (["--device", "cuda:7"], "--device"),
        (["--device", "nonsense"], "--device"),
        (["--drop-label-issues", "--approaches", "scratch"], "--drop-label-issues"),
    ],
)
def test_nonsense_options_fail_before_any_work(small_folder, tmp_path, capsys, extra, option):
    argv = ["compare", str(small_folder), "--out", str(tmp_path / "o"), *extra]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own type errors
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and option in err and len(err.splitlines()) == 1, err
    assert "Traceback" not in err and not (tmp_path / "o" / "metrics.json").exists()


def test_a_class_too_small_for_the_folds_is_one_line_and_exit_2(small_folder, tmp_path, capsys):
    argv = ["compare", str(small_folder), "--out", str(tmp_path / "o"), "--cv", "8"]
    assert main([*argv, "--approaches", "scratch"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "too few for 8 folds" in err and "error:" in err
    assert "traceback" not in err


def test_bad_out_folders_fail_before_any_work(small_folder, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    cases = [tmp_path / "file", tmp_path / "file" / "below"]
    if os.geteuid() != 0:  # root writes anywhere
        cases.append(locked / "out")
    for out in cases:
        assert main(["compare", str(small_folder), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert "--out" in err and len(err.splitlines()) == 1, err


def test_bad_weights_fail_before_any_work(small_folder, tmp_path, capsys):
    for kind, path in _weights_files(tmp_path).items():
        argv = ["compare", str(small_folder), "--out", str(tmp_path / kind), "--cv", "0"]
        assert main([*argv, "--backbone", "squeezenet1_1", "--weights", str(path)]) == 2, kind
        err = capsys.readouterr().err.strip()
        assert "--weights" in err and len(err.splitlines()) == 1, (kind, err)
        assert not (tmp_path / kind / "metrics.json").exists()


def test_unusable_storage_and_trial_count_fail_early(small_folder, tmp_path, capsys):
    pytest.importorskip("optuna")
    base = ["tune", str(small_folder)]
    assert main([*base, "--storage", "nosuchdb://user@host/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--storage" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as info:
        main([*base, "--n-trials", "0"])
    assert info.value.code == 2 and "--n-trials" in capsys.readouterr().err


def test_unexpected_errors_leave_a_log_not_a_traceback(
    small_folder, tmp_path, capsys, monkeypatch
):
    import sk_animals.evaluation

    def boom(*args, **kwargs):
        raise RuntimeError("something nobody foresaw")

    monkeypatch.setattr(sk_animals.evaluation, "compare", boom)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the temporary folder
    argv = ["compare", str(small_folder), "--out", str(tmp_path / "o"), "--cv", "0"]
    argv += ["--backbone", "squeezenet1_1", "--weights", _weights_files(tmp_path)["missing"]]
    weights = tmp_path / "sq.pth"
    torch.save(torchvision.models.get_model("squeezenet1_1").state_dict(), weights)
    argv[-1] = str(weights)
    assert main(argv) == 1
    message, where = capsys.readouterr().err.strip().splitlines()  # the message first
    assert message == "sk-animals compare: RuntimeError: something nobody foresaw"
    log = _log_named(where)
    assert log.parent == tmp_path and not (tmp_path / "o").exists()  # no --out was left
    assert "Traceback" in log.read_text() and "boom" in log.read_text()
    with pytest.raises(RuntimeError):
        main([*argv, "--debug"])


def _log_named(line):
    """The traceback log that an error's second line names."""
    assert line.endswith("; --debug shows the traceback"), line
    return Path(line.split("traceback in ")[1].split("; --debug")[0])


@pytest.fixture
def failing_compare(small_folder, tmp_path, monkeypatch):
    """``compare``'s argv for a run that fails in an unforeseen way, with the temporary
    folder in ``tmp_path / "tmp"``."""
    import sk_animals.evaluation

    def boom(*args, **kwargs):
        raise RuntimeError("something nobody foresaw")

    monkeypatch.setattr(sk_animals.evaluation, "compare", boom)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return ["compare", str(small_folder), "--approaches", "scratch", "--cv", "0"]


def test_a_failed_runs_log_goes_into_its_out_folder(failing_compare, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()  # the user's folder: it stays
    assert main([*failing_compare, "--out", str(out)]) == 1
    message, where = capsys.readouterr().err.strip().splitlines()
    assert "something nobody foresaw" in message and "traceback" not in message
    log = _log_named(where)
    assert log.parent == out and "boom" in log.read_text()
    assert not list((tmp_path / "tmp").iterdir())
    # the log is not an earlier run's output: the same command needs no --overwrite to go on
    assert main([*failing_compare, "--out", str(out)]) == 1
    assert len(list(out.iterdir())) == 2


def test_logs_in_the_temporary_folder_are_kept_to_the_last_few(failing_compare, tmp_path, capsys):
    from sk_animals.cli import KEEP_LOGS

    temp = tmp_path / "tmp"
    (temp / "sk-animals-notes.log").write_text("not a log of ours")
    logs = []
    for run in range(KEEP_LOGS + 3):
        assert main([*failing_compare, "--out", str(tmp_path / f"o{run}")]) == 1
        logs.append(_log_named(capsys.readouterr().err.strip().splitlines()[1]))
    kept = sorted(p for p in temp.iterdir() if p.name.startswith("sk-animals-error-"))
    assert kept == sorted(logs[-KEEP_LOGS:])  # the newest, the one just named among them
    assert (temp / "sk-animals-notes.log").exists()


def test_a_log_that_cannot_be_written_falls_back_to_the_temporary_folder(
    failing_compare, tmp_path, capsys, monkeypatch
):
    import errno

    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("the user's")
    full = {out}  # folders whose disk is full
    mkstemp = tempfile.mkstemp

    def on_a_full_disk(*args, dir=None, **kwargs):
        if Path(dir) in full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", on_a_full_disk)
    argv = [*failing_compare, "--out", str(out), "--overwrite"]
    assert main(argv) == 1
    message, where = capsys.readouterr().err.strip().splitlines()
    assert "something nobody foresaw" in message
    assert _log_named(where).parent == tmp_path / "tmp" and list(out.iterdir()) == [
        out / "notes.txt"
    ]
    full.add(tmp_path / "tmp")  # nowhere to write: the message stands, and says so
    assert main(argv) == 1
    message, where = capsys.readouterr().err.strip().splitlines()
    assert "something nobody foresaw" in message
    assert "no traceback log could be written" in where and "no space left" in where


def test_a_run_refused_after_it_made_its_out_folder_leaves_none(small_folder, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "o"
    argv = ["compare", str(small_folder), "--out", str(out), "--cv", "8"]
    assert main([*argv, "--approaches", "scratch"]) == 2  # a class too small, found in compare
    assert "too few for 8 folds" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # every folder it made, not just the last


def test_an_empty_data_folder_is_refused_and_leaves_no_out(small_model, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "cat").mkdir(parents=True)
    out = tmp_path / "new" / "o"
    for argv in (
        ["compare", str(empty), "--out", str(out), "--approaches", "scratch"],
        ["tune", str(empty), "--out", str(out / "best.skmodel")],
        ["predict", str(small_model[0]), str(empty), "--out", str(out / "p.csv")],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "error:" in err, err
        assert "no image" in err and str(empty) in err
        assert not (tmp_path / "new").exists()


def test_overwrite_clears_the_earlier_run_first(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    names = ("old_curves.png", "budget_curve.png", "old.skmodel", "old.md", "report.md")
    for name in (*names, "notes.txt", "best.skmodel"):
        (out / name).write_text("from an earlier run")
    # names are data: a glob or a path in one removes nothing else
    approaches = [{"name": "old"}, {"name": "*"}, {"name": "../o/notes"}]
    (out / "metrics.json").write_text(json.dumps({"approaches": approaches}))
    from sk_animals.cli import UsageError, _check_out_folder
    from sk_animals.report import remove_report

    with pytest.raises(UsageError, match="--overwrite"):
        _check_out_folder(out, overwrite=False)
    _check_out_folder(out, overwrite=True)
    assert len(list(out.iterdir())) == 8  # checking removes nothing
    remove_report(out)
    assert sorted(p.name for p in out.iterdir()) == ["best.skmodel", "notes.txt"]


def test_overwrite_keeps_the_earlier_run_when_an_option_is_bad(small_folder, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "report.md").write_text("the earlier run")
    argv = ["compare", str(small_folder), "--out", str(out), "--overwrite"]
    assert main([*argv, "--device", "cuda:7"]) == 2
    assert (out / "report.md").read_text(encoding="utf-8") == "the earlier run"


def test_demo_refuses_options_it_would_ignore(tmp_path, capsys):
    assert main(["compare", "--demo", "--out", str(tmp_path / "o"), "--backbone", "resnet18"]) == 2
    assert "--backbone" in capsys.readouterr().err


def test_tune_checks_its_out_file_and_timeout_first(small_folder, tmp_path, capsys):
    pytest.importorskip("optuna")
    (tmp_path / "file").write_text("x")
    base = ["tune", str(small_folder), "--n-trials", "1"]
    assert main([*base, "--out", str(tmp_path / "file" / "best.skmodel")]) == 2
    assert "--out" in capsys.readouterr().err
    assert main([*base, "--timeout", "-5"]) == 2
    assert "--timeout" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_tune_keeps_an_existing_model_unless_overwrite(small_folder, tmp_path, capsys):
    pytest.importorskip("optuna")
    out = tmp_path / "best.skmodel"
    out.write_bytes(b"an earlier model")
    argv = ["tune", str(small_folder), "--n-trials", "1", "--image-size", "16", "--out", str(out)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "pass --overwrite" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "study" not in captured.out  # refused before the study started
    assert out.read_bytes() == b"an earlier model"
    assert main([*argv, "--overwrite"]) == 0, capsys.readouterr().err
    assert load(out).classes_.tolist() == ["circle", "cross"]


def _labels_csv(folder, path, extra=()):
    rows = ["label;path"]  # a spreadsheet's separator
    rows += [f"{f.parent.name};{f}" for f in sorted(folder.rglob("*.png"))]
    path.write_text("\n".join([*rows, *extra]) + "\n")
    return path


def test_compare_and_tune_take_a_csv(small_folder, tmp_path, capsys):
    labels = _labels_csv(small_folder, tmp_path / "labels.csv")
    out = tmp_path / "o"
    argv = ["compare", str(labels), "--out", str(out), "--approaches", "scratch", "--folds", "2"]
    argv += ["--epochs", "1", "--image-size", "16", "--recipe", "paper", "-q", "--no-overlays"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["approaches"][0]["test_overlays"] is None
    used = metrics["test"]["files"] + metrics["approaches"][0]["training_files"]
    assert metrics["classes"] == ["circle", "cross"]
    assert set(used) <= {str(p) for p in small_folder.rglob("*.png")}
    study = tmp_path / "s.db"
    # 32 px: the search space holds depths up to 5, which halve an image 5 times
    argv = ["tune", str(labels), "--n-trials", "1", "--storage", str(study), "--image-size", "32"]
    assert main(argv) == 0, capsys.readouterr().err


def test_a_bad_csv_fails_before_any_work(small_folder, tmp_path, capsys):
    labels = _labels_csv(small_folder, tmp_path / "labels.csv", extra=["cross;missing.png"])
    assert main(["compare", str(labels), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "line 14: image 'missing.png' does not exist" in err and str(labels) in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "o").exists()


def test_predict_writes_a_csv_with_error_rows(compared, tmp_path, capsys):
    data, out, _ = compared
    images = sorted(str(p) for p in data.rglob("*.png"))
    (tmp_path / "more").mkdir()
    broken = tmp_path / "more" / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    (tmp_path / "more" / ".hidden.png").write_bytes(b"skipped")
    (tmp_path / "more" / "notes.txt").write_text("skipped")
    listed = tmp_path / "list.csv"
    listed.write_text("label,path\nx," + images[0] + "\n")
    predictions = tmp_path / "p.csv"
    argv = [
        "predict",
        str(out / "scratch.skmodel"),
        str(data),
        str(tmp_path / "more"),
        str(listed),
    ]
    argv += ["--out", str(predictions), "--top-k", "2", "--batch-size", "7"]
    assert main(argv) == 0
    assert "1 of 50 file(s) could not be read" in capsys.readouterr().err
    import csv

    with open(predictions, newline="") as f:
        rows = list(csv.DictReader(f))
    pipe = load(out / "scratch.skmodel")
    classes = [str(c) for c in pipe.classes_]
    assert list(rows[0]) == [
        "path", "label", "confidence", *(f"proba_{c}" for c in classes),
        "top1", "top1_confidence", "top2", "top2_confidence", "error",
    ]  # fmt: skip
    assert [r["path"] for r in rows] == [*images, str(broken), images[0]]
    bad = rows[-2]
    assert bad["label"] == bad["confidence"] == "" and "cannot identify" in bad["error"]
    good = [r for r in rows if not r["error"]]
    proba = pipe.predict_proba([r["path"] for r in good])
    np.testing.assert_allclose(
        [[float(r[f"proba_{c}"]) for c in classes] for r in good], proba, atol=2e-6
    )
    assert [r["label"] for r in good] == list(pipe.classes_[proba.argmax(1)])
    assert all(r["top1"] == r["label"] for r in good)
    assert main(argv) == 2  # the file exists
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    argv[argv.index("--out") + 1] = str(tmp_path / "more")  # a folder: refused, not replaced
    assert main([*argv, "--overwrite"]) == 2
    assert "is a folder; give a file name ending .csv" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("more")) == ["more"]
    assert main(["predict", str(out / "scratch.skmodel"), str(tmp_path / "nope")]) == 2


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A tiny fitted pipeline saved as .skmodel, and a bare classifier saved alone."""
    from sklearn.pipeline import make_pipeline

    from sk_animals import ImageLoader, ScratchCNNClassifier, save

    X, y = make_image_dataset(n_samples=32, n_classes=2, size=16, random_state=0)
    clf = ScratchCNNClassifier(width=2, depth=2, max_epochs=1, tta=True, verbose=0)
    pipeline = make_pipeline(ImageLoader(16), clf).fit(list(X), y)
    folder = tmp_path_factory.mktemp("export")
    save(pipeline, folder / "shapes.skmodel")
    save(pipeline[-1], folder / "bare.skmodel")
    return folder / "shapes.skmodel", folder / "bare.skmodel", X


def test_export_writes_the_onnx_file_of_a_model(small_model, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    import hashlib

    model, _, X = small_model
    out = tmp_path / "shapes.onnx"
    assert main(["export", str(model), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 classes, uint8 images (n, 16, 16, 3) in" in printed
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["skmodel_sha256"] == json.dumps(hashlib.sha256(model.read_bytes()).hexdigest())
    got = session.run(["probabilities"], {"images": X[:4]})[0]
    np.testing.assert_allclose(got, load(model)[-1].predict_proba(X[:4]), atol=1e-4)
    # a second export refuses to replace the file unless asked
    assert main(["export", str(model), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err
    assert main(["export", str(model), str(out), "--overwrite"]) == 0


def test_export_errors_are_one_line(small_model, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    model, bare, _ = small_model
    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("hello")
    cases = {
        str(tmp_path / "missing.skmodel"): "is not a file",
        str(not_a_model): "is not an sk_animals model file",
        str(bare): "first step is an ImageLoader",
    }
    for path, message in cases.items():
        assert main(["export", path, str(tmp_path / "out.onnx")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("sk-animals export: error: ") and err.count("\n") == 1, err
        assert message in err
    assert not (tmp_path / "out.onnx").exists()


def test_card_writes_the_card_of_a_saved_model(small_model, tmp_path, capsys):
    import hashlib

    from huggingface_hub import ModelCard

    model, _, _ = small_model
    out = tmp_path / "shapes.md"
    assert main(["card", str(model), "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(str(out))
    card = ModelCard.load(out)
    assert (
        "model-index" not in card.data.to_dict() and "## Evaluation\n\nNot evaluated." in card.text
    )
    assert hashlib.sha256(model.read_bytes()).hexdigest() in card.text
    assert "circle" in card.text and "ScratchCNNClassifier" in card.text
    assert main(["card", str(model), "--out", str(out)]) == 2  # exists
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err
    assert main(["card", str(model), "--out", str(out), "--overwrite"]) == 0


def test_card_errors_are_one_line(small_model, tmp_path, capsys):
    model, _, _ = small_model
    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("hello")
    cases = {
        (str(tmp_path / "missing.skmodel"),): "is not a file",
        (str(not_a_model), "--out", str(tmp_path / "c.md")): "is not an sk_animals model file",
        (str(model), "--out", str(tmp_path)): "is a folder",
        (str(model), "--out", str(model)): "is MODEL itself",
    }
    for args, message in cases.items():
        assert main(["card", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("sk-animals card: error: ") and err.count("\n") == 1, err
        assert message in err
    assert not (tmp_path / "c.md").exists() and not (tmp_path / "missing.md").exists()


def test_export_without_onnx_says_what_to_install(small_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed
    assert main(["export", str(small_model[0]), str(tmp_path / "out.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'sk-animals[onnx]'" in err, err
