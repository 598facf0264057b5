import json
import subprocess
import sys

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
    report = (out / "report.md").read_text()
    assert "| scratch |" in report and "Validation accuracy" in report
    assert "<table>" in (out / "report.html").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert [a["name"] for a in metrics["approaches"]] == ["scratch", "transfer"]
    assert metrics["approaches"][1]["image_size"] == 224
    for figure in out.glob("*.png"):
        with Image.open(figure) as img:
            img.verify()
        with Image.open(figure) as img:
            assert img.format == "PNG" and 300 <= img.width <= 3000 and 200 <= img.height <= 3000
    names = {p.name for p in out.glob("*.png")}
    for approach in ("scratch", "transfer"):
        for kind in ("curves", "confusion", "predictions", "reliability"):
            assert f"{approach}_{kind}.png" in names


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
    assert main(["predict", str(model), str(tmp_path / "bad.jpg"), "--trust-pickle"]) == 2
    assert "bad.jpg" in capsys.readouterr().err
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
    assert main([*args[:5], "3", *args[6:]]) == 0  # a second worker joins and adds one
    assert "study 's': 3 trials" in capsys.readouterr().out
    assert load(tmp_path / "b.skmodel").predict(
        [str(p) for p in data.rglob("*.png")][:2]
    ).shape == (2,)
