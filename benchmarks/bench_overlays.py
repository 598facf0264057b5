"""The time the report's class-activation maps add to ``sk-animals compare``.

The same command twice, as separate processes with the same arguments and threads: with
the maps (the default) and with ``--no-overlays``, the run with the maps first (so that a
cold start counts against them); on the offline demo (``--demo``) and on the 160 shared
photos (the recommended recipes: scratch, transfer and the probe on EfficientNet-Lite0's
embedded ImageNet weights, the label audit, as the command runs them by default). Figures:
the wall time of each run, the time the maps add (the difference, as a share of the run
without them), and the seconds the maps took inside the run (``test_overlays.seconds`` in
metrics.json, summed over the approaches: the part of the difference that is not noise or
drawing). Target: the maps add under 10% of the run. About 3 minutes for the demo and 12
for the photos on 2 cores. Run:

    python benchmarks/bench_overlays.py [--only demo|photos]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import report, require_shared

HERE = Path(__file__).resolve().parents[1]


def run(arguments, out):
    """Seconds of one ``sk-animals compare`` run, the seconds its maps took inside it and
    how many there are; prints each approach's fit time (load from other work shows there)."""
    env = {**os.environ, "PYTHONPATH": str(HERE), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "sk_animals", "compare", *arguments, "--out", str(out)]
    start = time.perf_counter()
    subprocess.run([*command, "--quiet"], env=env, check=True)
    seconds = time.perf_counter() - start
    metrics = json.loads((out / "metrics.json").read_text())
    fits = ", ".join(f"{a['name']} {a['fit_seconds']:.1f} s" for a in metrics["approaches"])
    print(f"    {out.name}: {seconds:.1f} s; final fits: {fits}")
    maps = [a["test_overlays"] for a in metrics["approaches"]]
    return seconds, sum(m["seconds"] for m in maps if m), sum(len(m["maps"]) for m in maps if m)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("demo", "photos"), default=None)
    args = parser.parse_args()
    runs = {"demo": ["--demo"], "photos": [str(require_shared() / "data" / "animals10-sample")]}
    with tempfile.TemporaryDirectory() as tmp:
        for name, arguments in runs.items():
            if args.only not in (None, name):
                continue
            with_maps, inside, n = run(arguments, Path(tmp) / f"{name}-maps")
            without, _, _ = run([*arguments, "--no-overlays"], Path(tmp) / f"{name}-plain")
            print(
                f"{name}: {with_maps:.1f} s with the maps ({n} maps, {inside:.1f} s inside the "
                f"run), {without:.1f} s without"
            )
            report(f"{name}: time the maps add / run without them", with_maps / without - 1, 0.10,
                   higher_is_better=False)  # fmt: skip
            report(f"{name}: the maps' own seconds / run without them", inside / without, 0.10,
                   higher_is_better=False)  # fmt: skip


if __name__ == "__main__":
    main()
