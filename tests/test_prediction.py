"""Predictions for files with names a stranger chose: safe in a spreadsheet and on a
terminal, exact in JSON, and never the end of a run."""

import csv
import json
import os

import pytest
from sklearn.pipeline import make_pipeline

from sk_animals import save
from sk_animals._text import FORMULA_STARTS
from sk_animals.cli import main
from sk_animals.datasets import make_image_dataset, save_image_folder
from sk_animals.prediction import find_images, predict_files, write_predictions
from sk_animals.preprocessing import ImageLoader
from sk_animals.scratch import ScratchCNNClassifier

#: File names a spreadsheet would run, a terminal would obey, or that hide behind a quote.
HOSTILE = [
    '=HYPERLINK("x","y").png',
    "@SUM(A1).png",
    "+SUM(1)0.png",
    "-2+3.png",
    "\tTAB.png",
    "\rCR.png",
    "'=quoted.png",
    "\x1b[2Jclear\x9b.png",
    "plain.png",
]
#: Class names a spreadsheet would run, a terminal would obey.
CLASSES = ["=1+1", "-cat\x1b]0;owned\x07"]


def _read_back(cell):
    """The rule docs/predictions.rst gives for reading a name back."""
    if cell[:1] == "'" and cell[1:].startswith((*FORMULA_STARTS, "'")):
        return cell[1:]
    return cell


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny fitted pipeline with hostile class names, and its model file."""
    X, y = make_image_dataset(n_samples=16, n_classes=2, size=32, random_state=0)
    y = [CLASSES[["circle", "cross"].index(label)] for label in y]
    clf = ScratchCNNClassifier(width=4, depth=2, max_epochs=1, verbose=0, random_state=0)
    pipe = make_pipeline(ImageLoader(32), clf).fit(X, y)
    path = tmp_path_factory.mktemp("model") / "tiny.skmodel"
    save(pipe, path)
    return pipe, path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder of images under hostile names (those the filesystem accepts)."""
    X, y = make_image_dataset(n_samples=4, n_classes=2, size=32, random_state=1)
    folder = save_image_folder(X, y, tmp_path_factory.mktemp("photos"))
    source = next(folder.rglob("*.png"))
    out = tmp_path_factory.mktemp("hostile")
    written = []
    for name in HOSTILE:
        try:
            (out / name).write_bytes(source.read_bytes())
        except OSError:
            continue
        written.append(name)
    try:  # not UTF-8: Python lists it with a surrogate escape
        with open(os.fsencode(out) + b"/caf\xe9.png", "wb") as f:
            f.write(source.read_bytes())
        written.append(os.fsdecode(b"caf\xe9.png"))
    except OSError:
        pass
    if len(written) < 3:
        pytest.skip("this filesystem refuses the hostile names")
    return out, written


def _read(path):
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        return list(csv.DictReader(f))


def test_csv_cells_never_start_a_formula_and_read_back_exactly(model, photos, tmp_path):
    pipe, path = model
    folder, names = photos
    out = tmp_path / "p.csv"
    assert main(["predict", str(path), str(folder), "--out", str(out), "--top-k", "2"]) == 0
    rows = _read(out)
    assert sorted(os.path.basename(_read_back(r["path"])) for r in rows) == sorted(names)
    for row in rows:
        for key in ("path", "label", "top1", "top2"):
            assert not row[key].startswith(FORMULA_STARTS), (key, row[key])
        assert _read_back(row["label"]) in CLASSES
        assert os.path.isfile(_read_back(row["path"]))  # the exact name, bytes too
    assert {_read_back(r["top2"]) for r in rows} <= set(CLASSES)


def test_a_name_that_is_not_utf8_does_not_end_the_run(model, tmp_path):
    pipe, _ = model
    name = os.fsdecode(b"photo\xff.png")
    rows = [(str(tmp_path / "a.png"), None, "no"), (name, None, "no"), ("b.png", None, "no")]
    with open(tmp_path / "p.csv", "w", newline="", encoding="utf-8") as f:
        assert write_predictions(rows, pipe.classes_, f) == (0, 3)
    assert [r["path"] for r in _read(tmp_path / "p.csv")][1:] == [name, "b.png"]
    raw = (tmp_path / "p.csv").read_bytes()
    assert b"photo\xff.png" in raw and raw.count(b"\n") == 4


def test_json_keeps_the_exact_names(model, photos, capsys):
    pipe, path = model
    folder, names = photos
    assert main(["predict", str(path), str(folder), "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert sorted(os.path.basename(r["image"]) for r in table) == sorted(names)
    assert {r["label"] for r in table} <= set(CLASSES)


def test_the_terminal_gets_no_control_characters(model, photos, capsys):
    pipe, path = model
    folder, names = photos
    assert main(["predict", str(path), str(folder), "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == len(names)  # a name's line break makes no extra row
    assert not any(c in out for c in "\x1b\x07\x9b\r\t")
    assert "\\x1b[2Jclear\\x9b.png" in out and "\\x1b]0;owned\\x07" in out
    if os.fsdecode(b"caf\xe9.png") in names:
        assert "caf\\xe9.png" in out


def test_find_and_predict_keep_every_hostile_file(model, photos):
    pipe, _ = model
    folder, names = photos
    rows = list(predict_files(pipe, find_images([folder])))
    assert len(rows) == len(names) and all(error == "" for _, _, error in rows)
