"""``sk-animals predict``'s streaming path against a plain loop, on the 160 shared photos.

The model: ``make_pipeline(ImageLoader(224), TransferClassifier("timm/tf_efficientnet_lite0"))``
with the shared ImageNet weights, its head fitted for one epoch on 40 of the photos (what is
timed is prediction; the fit only makes a real model). Timed, best of 3, same thread count:

- plain loop: for each file, PIL open + RGB + resize to 224 (bilinear, as the loader),
  the same normalisation and the same eval-mode network on a batch of one, softmax;
- ``predict_files(model, paths)`` (what ``--out`` writes): decoding on every core, the
  next batch decoded while the network predicts the current one, batches of 256.

- ``predict_files`` on the same model exported to ONNX and run by ONNX Runtime (what
  ``sk-animals predict model.onnx`` and ``--engine onnxruntime`` run), and the time of the
  in-memory export that ``--engine`` pays once at load (with its parity check);
- the ceiling: the same network alone on the photos decoded beforehand, in the model's
  batches (``predict_proba`` of the decoded images): what any pipeline must still spend, so
  the loop's time over it bounds the ratio that faster decoding could reach.

Also ``PretrainedFeatures`` (the probe's and the label audit's features) on torch and on
ONNX Runtime (``engine=``), for EfficientNet-Lite0 and squeezenet1_1 with the shared
weights, the one-off export timed apart. And the peak resident memory of ``sk-animals
predict`` on the photos, each in a process of its own: with the exported ``.onnx`` file
(torch never imported) and with the ``.skmodel`` file on torch (``--engine torch``).

Both give the same labels (checked on at least 95% of the photos: the loader decodes large
JPEGs in draft mode, which moves the pixels a little). Target: at least 1.5x the loop's images per
second; with ONNX Runtime, at least 1.5x the loop and 1.3x ``predict_files`` on torch. About
3 minutes on 2 cores::

    HF_HUB_OFFLINE=1 python benchmarks/bench_predict.py
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import best_of, report, require_shared
from PIL import Image
from sklearn.pipeline import make_pipeline

from sk_animals import ImageLoader, TransferClassifier, export_onnx, load_image_folder, save
from sk_animals.deploy import load_onnx
from sk_animals.export import onnx_bytes
from sk_animals.prediction import predict_files


def peak_rss_mib(command):
    """Peak resident memory (MiB) of ``command``, run as a child process (ru_maxrss)."""
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
        "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *map(str, command)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.split()[-1]) / 1024


def deployment_memory(model, folder):
    """Peak memory of ``sk-animals predict`` on ``folder``: the exported .onnx file (torch is
    never imported) and the .skmodel file on torch (``--engine torch``)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save(model, tmp / "model.skmodel")
        export_onnx(model, tmp / "model.onnx")
        predict = [sys.executable, "-m", "sk_animals", "predict", "--out"]
        onnx = peak_rss_mib([*predict, tmp / "a.csv", tmp / "model.onnx", folder])
        torch_path = [*predict, tmp / "b.csv", "--engine", "torch", tmp / "model.skmodel", folder]
        on_torch = peak_rss_mib(torch_path)
    return onnx, on_torch


def feature_engines(backbone, weights, decoded, repeat):
    """Seconds of ``PretrainedFeatures`` (what the probe, the label audit and their share
    of a run compute) on torch (channels-last on the CPU) and on onnxruntime, the export
    excluded and timed apart; and the largest feature gap relative to the largest feature.
    """
    from sk_animals.transfer import PretrainedFeatures

    on_torch = PretrainedFeatures(backbone, weights=str(weights), engine="torch").fit()
    on_onnx = PretrainedFeatures(backbone, weights=str(weights), engine="onnxruntime").fit()
    start = time.perf_counter()
    on_onnx.transform(decoded[:1])  # exports the body, once per process
    t_export = time.perf_counter() - start
    a, b = on_torch.transform(decoded), on_onnx.transform(decoded)
    gap = float(np.abs(a - b).max() / np.abs(a).max())
    t_torch = best_of(lambda: on_torch.transform(decoded), repeat)
    t_onnx = best_of(lambda: on_onnx.transform(decoded), repeat)
    return t_torch, t_onnx, t_export, gap


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    shared = require_shared()
    data = load_image_folder(shared / "data" / "animals10-sample")
    paths = list(data.data)
    weights = shared / "weights" / "tf_efficientnet_lite0-imagenet1k.pth"
    clf = TransferClassifier(
        "timm/tf_efficientnet_lite0", weights=str(weights), freeze="body", max_epochs=1,
        random_state=0, verbose=0,
    )  # fmt: skip
    model = make_pipeline(ImageLoader(224), clf).fit(paths[::4], data.target[::4])
    net = model[-1]
    mean, std = net.mean_.astype(np.float32), net.std_.astype(np.float32)

    def plain():
        module = net.module_.eval()
        m = torch.tensor(mean).view(1, 3, 1, 1)
        s = torch.tensor(std).view(1, 3, 1, 1)
        out = []
        with torch.inference_mode():
            for path in paths:
                with Image.open(path) as img:
                    img = img.convert("RGB").resize((224, 224), Image.BILINEAR)
                x = torch.from_numpy(np.asarray(img)).permute(2, 0, 1)[None].float() / 255
                out.append(torch.softmax(module((x - m) / s), 1)[0].numpy())
        return np.stack(out)

    def streamed():
        return np.stack([p for _, p, _ in predict_files(model, paths)])

    start = time.perf_counter()
    exported = load_onnx(onnx_bytes(model))
    t_export = time.perf_counter() - start

    def on_onnx():
        return np.stack([p for _, p, _ in predict_files(exported, paths)])

    decoded = model[0].transform(paths)

    def network():
        return net.predict_proba(decoded)

    a, b = plain(), streamed()  # the loader decodes JPEGs in draft mode: pixels differ a little
    agree = (a.argmax(1) == b.argmax(1)).mean()
    print(
        f"same label on {agree:.1%} of the photos; largest probability gap {abs(a - b).max():.4f}"
    )
    assert agree >= 0.95
    t_plain = best_of(plain, args.repeat)
    t_stream = best_of(streamed, args.repeat)
    t_net = best_of(network, args.repeat)
    gap = float(np.abs(on_onnx() - b).max())
    t_onnx = best_of(on_onnx, args.repeat)
    n = len(paths)
    print(f"threads {torch.get_num_threads()}, {n} photos")
    print(f"plain loop        {n / t_plain:7.1f} images/s ({t_plain:.2f} s)")
    print(f"predict_files     {n / t_stream:7.1f} images/s ({t_stream:.2f} s)")
    print(f"onnxruntime       {n / t_onnx:7.1f} images/s ({t_onnx:.2f} s; largest gap {gap:.1e})")
    print(f"in-memory export  {t_export:.2f} s, once per --engine onnxruntime run")
    print(f"network alone     {n / t_net:7.1f} images/s ({t_net:.2f} s, {net.batch_size} a batch)")
    print(f"ceiling: plain loop / network alone = {t_plain / t_net:.2f}x")
    ratios = {}
    for backbone, path in [
        ("timm/tf_efficientnet_lite0", weights),
        ("squeezenet1_1", shared / "weights" / "squeezenet1_1-imagenet1k.pth"),
    ]:
        on_torch, on_onnx, once, gap = feature_engines(backbone, path, decoded, args.repeat)
        ratios[backbone] = on_torch / on_onnx
        print(
            f"{backbone} features of {n} photos: torch (channels-last) {on_torch:.2f} s, "
            f"onnxruntime {on_onnx:.2f} s (+ {once:.2f} s export, once); largest gap "
            f"{gap:.1e} of the largest feature"
        )
    rss_onnx, rss_torch = deployment_memory(model, shared / "data" / "animals10-sample")
    print(
        f"peak memory of sk-animals predict: .onnx without torch {rss_onnx:.0f} MiB, "
        f".skmodel on torch {rss_torch:.0f} MiB"
    )
    report("predict_files / plain loop (images per second)", t_plain / t_stream, 1.5)
    report("predict_files on ONNX Runtime / plain loop", t_plain / t_onnx, 1.5)
    report("predict_files on ONNX Runtime / on torch", t_stream / t_onnx, 1.3)
    for backbone, ratio in ratios.items():
        report(f"{backbone.split('/')[-1]} features on ONNX Runtime / on torch", ratio, 1.0)
    with_export = t_stream / (t_onnx + t_export)
    report("--engine onnxruntime, export included / torch", with_export, 1.0)


if __name__ == "__main__":
    main()
