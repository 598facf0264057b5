"""ONNX export: the graph's probabilities equal predict_proba, per family, with and without
test-time flips; the metadata; the refusals; the torch-free runner in a process without torch."""

import hashlib
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sk_animals import ImageLoader, export_onnx, load, save
from sk_animals.datasets import load_image_folder, make_image_folder
from sk_animals.deploy import OnnxMetadata, onnx_metadata, predict_onnx
from sk_animals.export import TOLERANCE
from sk_animals.scratch import PaperCNN, ResidualCNN, ScratchCNNClassifier
from sk_animals.transfer import LinearProbe, PretrainedFeatures, TransferClassifier, loader_for

ort = pytest.importorskip("onnxruntime", reason="ONNX export needs pip install 'sk-animals[onnx]'")
onnx = pytest.importorskip("onnx", reason="ONNX export needs pip install 'sk-animals[onnx]'")

LITE0 = "timm/tf_efficientnet_lite0"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Paths and labels of real photos (../shared), or of generated PNGs without it."""
    from conftest import SHARED

    if SHARED.is_dir():
        data = load_image_folder(SHARED / "data" / "animals10-sample")
    else:
        root = tmp_path_factory.mktemp("images")
        data = load_image_folder(make_image_folder(root, n_samples=40, n_classes=4, size=80))
    return list(data.data), list(data.target)


def _few(photos, per_class=4):
    """``per_class`` photos of each class: where a 224-px backbone runs, seconds."""
    paths, labels = photos
    rows = [
        i for c in sorted(set(labels)) for i in np.flatnonzero(np.array(labels) == c)[:per_class]
    ]
    return [paths[i] for i in rows], [labels[i] for i in rows]


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _gap(model, path, files):
    """Max |ONNX Runtime - predict_proba| on ``files`` decoded by the model's own loader."""
    X = model[0].transform(files)
    want = model[1:].predict_proba(X)
    got = _session(path).run(["probabilities"], {"images": X})[0]
    assert got.shape == want.shape
    return float(np.abs(got - want).max()), got


def _parity(model, tmp_path, files, name):
    """Export with tta off and on (when the classifier has it): both within TOLERANCE."""
    clf = model.steps[-1][1]
    outputs = {}
    for tta in (False, True) if hasattr(clf, "tta") else (None,):
        if tta is not None:
            clf.set_params(tta=tta)
        path = export_onnx(model, tmp_path / f"{name}-{tta}.onnx")
        gap, outputs[tta] = _gap(model, path, files)
        print(f"parity {name} tta={tta}: max abs difference {gap:.2e}")
        assert gap <= TOLERANCE, (name, tta, gap)
    if len(outputs) == 2:  # the flips are inside the graph: they change the probabilities
        assert np.abs(outputs[True] - outputs[False]).max() > 1e-4


def _shapes_pipeline(clf, size, shapes):
    X, y = shapes
    return make_pipeline(ImageLoader(size), clf).fit(list(X), y)


@pytest.mark.parametrize(
    "module, size, channels_last", [(PaperCNN, (32, 48), False), (ResidualCNN, 32, True)]
)
def test_scratch_networks_equal_predict_proba(
    module, size, channels_last, shapes, photos, tmp_path
):
    """Both networks on every shared photo; a rectangular input, channels-last weights."""
    clf = ScratchCNNClassifier(
        module,
        width=4,
        depth=2,
        channels_last=channels_last,
        max_epochs=1,
        batch_size=32,
        random_state=0,
        verbose=0,
    )
    model = _shapes_pipeline(clf, size, shapes)
    _parity(model, tmp_path, photos[0], module.__name__)


def test_a_compiled_classifier_exports(shapes, tmp_path):
    """compile=True: the exporter traces the network eagerly (it cannot trace a compiled
    forward), and the graph equals the compiled model's predict_proba."""
    clf = ScratchCNNClassifier(
        width=4, depth=2, max_epochs=1, batch_size=32, random_state=0, verbose=0,
        compile=True, compile__backend="eager",  # dynamo without inductor: seconds
    )  # fmt: skip
    model = _shapes_pipeline(clf, 32, shapes)
    gap, _ = _gap(model, export_onnx(model, tmp_path / "compiled.onnx"), list(shapes[0][:8]))
    assert gap <= TOLERANCE


def test_torchvision_transfer_equals_predict_proba(shapes, photos, tmp_path):
    clf = TransferClassifier(
        "squeezenet1_1", weights=None, max_epochs=1, batch_size=32, random_state=0, verbose=0
    )
    _parity(_shapes_pipeline(clf, 64, shapes), tmp_path, _few(photos)[0], "squeezenet1_1")


def test_timm_transfer_equals_predict_proba(shapes, photos, tmp_path):
    clf = TransferClassifier(
        LITE0, weights=None, freeze="body", max_epochs=1, batch_size=32, random_state=0, verbose=0
    )
    _parity(_shapes_pipeline(clf, 64, shapes), tmp_path, _few(photos)[0], "lite0")


def test_probe_equals_predict_proba_on_real_photos(shared, photos, tmp_path):
    """The deployment the recommended protocol ends with: lite0's real weights, its own
    loader (bicubic, centre crop 0.875), the probe's head in the same graph."""
    weights = str(shared / "weights" / "tf_efficientnet_lite0-imagenet1k.pth")
    files, labels = _few(photos)
    model = make_pipeline(
        loader_for(LITE0, weights), PretrainedFeatures(LITE0, weights=weights), LinearProbe()
    ).fit(files, labels)
    _parity(model, tmp_path, files, "probe")
    path = tmp_path / "probe-None.onnx"
    meta = onnx_metadata(path)
    assert (meta.resize, meta.interpolation, meta.crop_pct) == ("crop", "bicubic", 0.875)
    # the runner decodes as the loader does: the same probabilities from the paths
    got, want = predict_onnx(path, files), model.predict_proba(files)
    assert np.abs(got - want).max() <= TOLERANCE
    assert (got.argmax(1) == want.argmax(1)).all()


def test_a_probe_whose_body_has_dropout_exports_and_stays_in_eval(shapes, tmp_path):
    """squeezenet1_1's body ends in dropout. The exporter puts back the mode it found on
    the module it traced: the wrapper's, train, which switched the body's dropout on, so
    that the parity check's features on torch were noisy and the graph was refused."""
    X, y = shapes
    torch.manual_seed(0)
    features = PretrainedFeatures("squeezenet1_1", weights=None, engine="torch")
    model = make_pipeline(ImageLoader(32), features, LinearProbe()).fit(list(X), y)
    before = model.predict_proba(list(X[:8]))
    gap, _ = _gap(model, export_onnx(model, tmp_path / "probe.onnx"), list(X[:8]))
    assert gap <= TOLERANCE and not features.module_.training
    np.testing.assert_array_equal(model.predict_proba(list(X[:8])), before)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, shapes):
    """A small fitted pipeline saved as .skmodel (test-time flips on)."""
    X, y = shapes
    clf = ScratchCNNClassifier(width=4, depth=2, max_epochs=1, tta=True, verbose=0)
    model = make_pipeline(ImageLoader(32, resize="pad", interpolation="lanczos"), clf)
    path = tmp_path_factory.mktemp("model") / "shapes.skmodel"
    save(model.fit(list(X), y), path)
    return path


def test_metadata_and_one_self_contained_file(saved, tmp_path):
    out = export_onnx(saved, tmp_path / "shapes.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes.onnx"]
    graph = onnx.load(str(out))
    onnx.checker.check_model(graph, full_check=True)
    external = onnx.external_data_helper.uses_external_data
    assert not any(external(t) for t in graph.graph.initializer)
    props = {p.key: p.value for p in graph.metadata_props}
    meta = OnnxMetadata.from_props(props)
    import sk_animals

    assert meta == OnnxMetadata(
        classes=["circle", "cross"],
        input_size=(32, 32),
        resize="pad",
        interpolation="lanczos",
        crop_pct=1.0,
        sk_animals_version=sk_animals.__version__,
        skmodel_sha256=hashlib.sha256(saved.read_bytes()).hexdigest(),
    )
    (image,) = graph.graph.input
    dims = image.type.tensor_type.shape.dim
    assert image.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 32, 32, 3]
    # an in-memory pipeline has no file to name
    in_memory = export_onnx(load(saved), tmp_path / "memory.onnx")
    assert onnx_metadata(in_memory).skmodel_sha256 is None


def test_refuses_what_it_cannot_export(saved, shapes, tmp_path):
    model = load(saved)
    out = tmp_path / "x.onnx"
    with pytest.raises(ValueError, match="first step is an ImageLoader"):
        export_onnx(model[-1], out)
    odd = make_pipeline(ImageLoader(32), FunctionTransformer(), model[-1])
    with pytest.raises(ValueError, match=r"step 'functiontransformer' \(FunctionTransformer\)"):
        export_onnx(odd, out)
    model[-1].precision_ = "bf16"
    with pytest.raises(ValueError, match=r"precision_='bf16'"):
        export_onnx(model, out)
    assert not out.exists()


def test_the_runner_checks_the_metadata(saved, tmp_path):
    graph = onnx.load(str(export_onnx(saved, tmp_path / "shapes.onnx")))
    props = {p.key: p.value for p in graph.metadata_props}
    del graph.metadata_props[:]
    onnx.save(graph, str(tmp_path / "bare.onnx"))
    with pytest.raises(ValueError, match="'.*bare.onnx' is not an ONNX file exported by sk_anim"):
        predict_onnx(tmp_path / "bare.onnx", [np.zeros((8, 8, 3), np.uint8)])
    for key, value in [
        ("resize", '"zoom"'), ("input_size", "[32, 0]"), ("input_size", "[32, 4097]"),
        ("crop_pct", "1.5"),
    ]:  # fmt: skip
        del graph.metadata_props[:]
        for k, v in {**props, key: value}.items():
            graph.metadata_props.add(key=k, value=v)
        onnx.save(graph, str(tmp_path / "odd.onnx"))
        with pytest.raises(ValueError, match=f"invalid sk_animals metadata: {key}$"):
            onnx_metadata(tmp_path / "odd.onnx")


class _Branching(PaperCNN):
    """A network with a Python branch on the data: a trace keeps the branch of its example
    (a blank batch), random images take the other."""

    def forward(self, x):
        out = super().forward(x)
        return out if float(x[:, 0].amax()) == float(x[:, 0].amin()) else -out


def test_refuses_a_graph_that_disagrees(shapes, tmp_path):
    clf = ScratchCNNClassifier(_Branching, width=4, depth=2, max_epochs=1, verbose=0)
    model = _shapes_pipeline(clf, 32, shapes)
    with pytest.raises(ValueError, match="differ from predict_proba by .*nothing was written"):
        export_onnx(model, tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []


_WITHOUT_TORCH = """
import json, sys

class NoTorch:  # as if torch were not installed
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoTorch())
from sk_animals.deploy import onnx_metadata, predict_onnx

model, files = sys.argv[1], json.loads(sys.argv[2])
proba = predict_onnx(model, files)
classes = onnx_metadata(model).classes
print(json.dumps({"labels": [classes[i] for i in proba.argmax(1)],
                  "torch": [m for m in sys.modules if m.split(".")[0] == "torch"]}))
"""


def test_the_runner_needs_no_torch(saved, photos, tmp_path):
    path = export_onnx(saved, tmp_path / "shapes.onnx")
    files = [str(f) for f in photos[0]]
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_WITHOUT_TORCH), str(path), json.dumps(files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["torch"] == []
    assert result["labels"] == load(saved).predict(files).tolist()


_PREDICT_WITHOUT_TORCH = (
    _WITHOUT_TORCH.split("from sk_animals.deploy")[0]
    + """
from sk_animals.cli import main

status = main(["predict", sys.argv[1], *json.loads(sys.argv[2]), "--out", sys.argv[3]])
print(json.dumps({"status": status,
                  "torch": [m for m in sys.modules if m.split(".")[0] == "torch"]}))
"""
)


def _labels(csv_path):
    import csv

    with open(csv_path, newline="") as f:
        return [row["label"] for row in csv.DictReader(f)]


def test_the_onnx_classifier_runs_in_batches(saved, shapes, tmp_path):
    """Whole or in batches of any size, the same probabilities; a bad size is refused."""
    from sk_animals.deploy import OnnxClassifier

    path = export_onnx(saved, tmp_path / "shapes.onnx")
    X = load(saved)[0].transform(list(shapes[0][:7]))
    whole = OnnxClassifier(path, batch_size=100).fit().predict_proba(X)
    assert whole.shape == (7, len(np.unique(shapes[1])))
    for size in (1, 3):
        got = OnnxClassifier(path, batch_size=size).fit().predict_proba(X)
        np.testing.assert_allclose(got, whole, atol=1e-6)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        OnnxClassifier(path, batch_size=0).fit()


def test_predict_runs_an_onnx_file_without_torch(saved, photos, tmp_path):
    path = export_onnx(saved, tmp_path / "shapes.onnx")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    files = [str(f) for f in photos[0][:6]] + [str(tmp_path / "broken.jpg")]
    out = tmp_path / "predictions.csv"
    proc = subprocess.run(
        [sys.executable, "-c", _PREDICT_WITHOUT_TORCH, str(path), json.dumps(files), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result == {"status": 0, "torch": []}, proc.stderr[-2000:]
    assert _labels(out) == [*load(saved).predict(files[:-1]).tolist(), ""]  # an error row


def test_predict_engines_agree_and_refuse_what_cannot_be_exported(saved, photos, tmp_path, capsys):
    from sk_animals.cli import main

    files = [str(f) for f in photos[0][:6]]
    got = {}
    for engine in ("torch", "onnxruntime", "auto"):
        out = tmp_path / f"{engine}.csv"
        assert main(["predict", str(saved), *files, "--engine", engine, "--out", str(out)]) == 0
        got[engine] = _labels(out)
    assert got["torch"] == got["onnxruntime"] == got["auto"]
    model = load(saved)
    model[-1].precision_ = "bf16"  # predicts in bf16: no exact graph
    odd = tmp_path / "bf16.skmodel"
    save(model, odd)
    out = tmp_path / "bf16.csv"
    assert main(["predict", str(odd), *files, "--engine", "auto", "--out", str(out)]) == 0
    argv = ["predict", str(odd), *files, "--engine", "onnxruntime", "--out", str(out) + "2"]
    capsys.readouterr()
    assert main(argv) == 2
    assert "--engine onnxruntime: " in capsys.readouterr().err


def test_predict_refuses_a_foreign_onnx_file(tmp_path, capsys):
    from sk_animals.cli import main

    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(b"not a graph")
    assert main(["predict", str(foreign), str(tmp_path)]) == 2
    assert "not an ONNX file exported by sk_animals" in capsys.readouterr().err
