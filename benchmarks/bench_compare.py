"""``sk-animals compare`` end to end on the 160 shared photos, against an earlier release.

The command runs the recommended recipes (scratch, transfer and the probe on
EfficientNet-Lite0 with its embedded ImageNet weights, the label audit, the common test
set), once with this checkout and once with an earlier release's checkout (``--baseline``,
e.g. made with ``git worktree add /tmp/release df7d590``), in turn, as separate processes
with the same arguments and threads. Figures: wall time of each, and each approach's test
accuracy and the verdicts from both ``metrics.json``. Target: at least 2x faster, the same
verdicts. About 5 minutes a repeat on 2 cores. Run:

    python benchmarks/bench_compare.py --baseline /tmp/release [--repeats 1]
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


def run(checkout, data, out):
    """Seconds of one ``sk-animals compare`` run with the package of ``checkout``.

    The process starts in ``checkout``: ``python -m`` puts the working directory ahead of
    ``PYTHONPATH``, so started anywhere else it could import another checkout's package
    (it did: this script once timed this checkout twice). Which package ran is checked.
    """
    env = {**os.environ, "PYTHONPATH": str(checkout), "HF_HUB_OFFLINE": "1"}
    where = [sys.executable, "-c", "import sk_animals; print(sk_animals.__file__)"]
    imported = subprocess.run(where, env=env, cwd=checkout, capture_output=True, text=True)
    found = imported.stdout.strip()
    if imported.returncode or not found or not Path(found).resolve().is_relative_to(checkout):
        raise SystemExit(f"{checkout}: sk_animals imported from {found!r} {imported.stderr}")
    command = [sys.executable, "-m", "sk_animals", "compare", str(data), "--out", str(out)]
    start = time.perf_counter()
    subprocess.run([*command, "--quiet"], env=env, cwd=checkout, check=True)
    seconds = time.perf_counter() - start
    metrics = json.loads((out / "metrics.json").read_text())
    accuracy = {a["name"]: round(a["test_accuracy"], 3) for a in metrics["approaches"]}
    return seconds, accuracy, metrics["verdict"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="an earlier checkout")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    data = require_shared() / "data" / "animals10-sample"
    times = {"baseline": [], "this": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for name, checkout in (("baseline", args.baseline), ("this", HERE)):
                out = Path(tmp) / f"{name}{r}"
                seconds, accuracy, verdict = run(checkout.resolve(), data.resolve(), out)
                times[name].append(seconds)
                print(f"{name}: {seconds:.0f} s, test accuracy {accuracy}")
                for sentence in verdict:
                    print(f"    {sentence}")
    ratio = min(times["baseline"]) / min(times["this"])
    report("compare end to end, earlier release / this checkout", ratio, 2)


if __name__ == "__main__":
    main()
