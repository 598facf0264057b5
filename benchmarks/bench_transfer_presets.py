"""Choosing ``transfer.RECOMMENDED``: fine-tuning presets against their own linear probe.

Backbone: ``timm/tf_efficientnet_lite0`` with the real ImageNet weights in ../shared. The
approaches, all on images from ``ImageLoader(size, interpolation="bicubic")``:

- ``probe``: ``make_pipeline(PretrainedFeatures(...), LinearProbe())`` (C=1.0), the baseline;
- ``paper``: ``TransferClassifier`` with its defaults (the paper's recipe: SGD, lr 1e-4, a
  random head at 20x the learning rate, 6 epochs, batches of 10);
- ``preset``: the candidate of today's API chosen by the screen below;
- ``preset+frozen-bn``: the candidate chosen among LP-FT runs whose batch-norm layers stay in
  eval mode while every weight trains (ImageNet running statistics, as the probe saw them).
  (``TransferClassifier(batch_norm="frozen")``). Why: by default ``TransferClassifier`` trains
  batch-norm layers in train mode, and their running statistics move to the new images'
  within the first epoch; the probe's head no longer matches the features (LP-FT at
  lr=1e-9, one epoch: 0.63 -> 0.42 on CIFAR 50 per class), so every fine-tuned model starts
  below the probe. ``freeze=k`` keeps the first k blocks' statistics.

The run has three stages, in this order, in one process (2 torch threads):

1. Throughput: seconds per epoch of the paper recipe and of a batch-32 variant on 300 CIFAR
   images at 96 px (median of epochs 2 and 3; the first carries warm-up).
2. Screen, one seed, on an inner split of CIFAR ``train/`` that nothing reported uses: the
   images of the 50-per-class budget draws of seeds 0-2 are set aside, and from the rest 500
   per class train (the first 50 of them for the small budget) and 200 per class validate.
   (The 500-per-class budget draws cover most of ``train/`` and so overlap the screen's
   training images; all reported CIFAR scores are on ``valid/``, which the screen never
   sees, and the photos are not screened on.) Stage A: the paper recipe; LP-FT
   (``init_head="probe"``, ``head_lr_factor=1``, SGD, batches of 32, 6 epochs, cosine
   schedule, random flips, test-time flips) with ``freeze`` 6 or 7 (the last stage or two
   and the head convolution train) at lr 1e-3, or the head alone (``freeze="body"``) at lr
   1e-2; LP-FT with frozen batch norm at lr 1e-3, 3e-3 and 3e-4 (the last added after the
   first two diverged; ``--screen`` runs it alone). Stage B: the best API candidate of
   stage A with label smoothing 0.1, and at lr 3e-3. The probe's C in {0.1, 0.3, 1, 3}
   on the same split. Rule, fixed before the run, applied to each family (API, frozen batch
   norm): among candidates whose fit time is within 4x the paper recipe's at both budgets,
   those whose 50-per-class accuracy is at least the probe's minus 0.01 (about one binomial
   standard error of 1200 images); of these, the best at 500 per class (ties: faster). If
   none qualifies: the best worst-case margin over the probe.
3. Confirmation, seeds 0, 1, 2 (which also draw the budgets and the folds): the 160 shared
   Animals-10 photos at 224 px (StratifiedKFold(4), 120 train / 40 test, 12 scores), CIFAR
   50 and 500 per class from ``train/`` at 96 px scored on all 1800 ``valid/`` images.
   Mean, standard error (std of the per-seed means / sqrt(3); photos: each seed's 4 folds
   averaged first) and mean fit seconds per row. The probe's fit time is its logistic
   regression plus the measured extraction time of its training images (features are
   extracted once per data set and reused).

Targets, for each chosen preset: on every setting its mean is at least the probe's minus one
standard error (the larger of the two rows'), and above it by more than that at 500 per
class; its fit time within 4x the paper recipe's; on the photos at least 0.90 and at most
0.025 below the probe. About 50 minutes on 2 cores. Run (``--quick``: a smoke run of tiny
sizes, about 30 s):

    HF_HUB_OFFLINE=1 python benchmarks/bench_transfer_presets.py \\
        --out benchmarks/results/transfer_presets.jsonl
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import require_shared  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

from sk_animals import ImageLoader, load_image_folder  # noqa: E402
from sk_animals.transfer import (  # noqa: E402
    LinearProbe,
    PretrainedFeatures,
    TransferClassifier,
)

BACKBONE = "timm/tf_efficientnet_lite0"
LPFT = {
    "init_head": "probe",
    "head_lr_factor": 1,
    "batch_size": 32,
    "lr_schedule": "cosine",
    "random_flip": True,
    "tta": True,
}
API, FROZEN_BN = "API", "frozen batch norm"
FAMILIES = {"preset": API, "preset+frozen-bn": FROZEN_BN}


LPFT = {**LPFT, "max_epochs": 6}
BN = {"batch_norm": "frozen"}
STAGE_A = {  # name -> (family, parameters)
    "paper": (None, {}),
    "lpft freeze7 lr1e-3": (API, {**LPFT, "freeze": 7, "lr": 1e-3}),
    "lpft freeze6 lr1e-3": (API, {**LPFT, "freeze": 6, "lr": 1e-3}),
    "lpft head-only lr1e-2": (API, {**LPFT, "freeze": "body", "lr": 1e-2}),
    "lpft frozen-bn lr1e-3": (FROZEN_BN, {**LPFT, **BN, "lr": 1e-3}),
    "lpft frozen-bn lr3e-3": (FROZEN_BN, {**LPFT, **BN, "lr": 3e-3}),
    "lpft frozen-bn lr3e-4": (FROZEN_BN, {**LPFT, **BN, "lr": 3e-4}),
}
STAGE_B = {"ls0.1": {"criterion__label_smoothing": 0.1}, "lr3e-3": {"lr": 3e-3}}
PROBE_CS = (0.1, 0.3, 1.0, 3.0)
TOLERANCE = 0.01  # screen: how far below the probe at 50 per class a candidate may be
TIME_FACTOR = 4.0


class Run:
    """Sizes of a full or a quick run, the weights, and the JSON lines output."""

    def __init__(self, args, shared):
        self.quick = args.quick
        self.confirm_only = args.confirm
        self.screen_only = args.screen
        self.photos_confirmed = not args.no_photos
        self.paper_only = args.paper_only
        self.weights = shared / "weights" / "tf_efficientnet_lite0-imagenet1k.pth"
        self.photos = shared / "data" / "animals10-sample"
        self.cifar = shared / "data" / "cifar10-animals"
        self.seeds = [0] if args.quick else [0, 1, 2]
        self.budgets = (2, 4) if args.quick else (50, 500)
        self.inner_valid = 3 if args.quick else 200
        self.photo_size, self.cifar_size = (64, 32) if args.quick else (224, 96)
        self.folds = 2 if args.quick else 4
        self.valid_per_class = 4 if args.quick else None
        self.epochs_cap = 1 if args.quick else None
        self.start = time.perf_counter()
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        self.out = open(args.out, "w")  # noqa: SIM115 - closed in main

    def params(self, params):
        if self.epochs_cap is None:
            return dict(params)
        return {**params, "max_epochs": self.epochs_cap}

    def classifier(self, params, seed):
        return TransferClassifier(
            BACKBONE,
            weights=self.weights,
            random_state=seed,
            verbose=0,
            device="cpu",
            **self.params(params),
        )

    def record(self, **values):
        values["elapsed_s"] = round(time.perf_counter() - self.start, 1)
        self.out.write(json.dumps(values, default=str) + "\n")
        self.out.flush()
        print(json.dumps(values, default=str), flush=True)


def features(run, X):
    """Frozen features of ``X`` and the extraction seconds per image."""
    start = time.perf_counter()
    F = PretrainedFeatures(BACKBONE, weights=run.weights, device="cpu").fit_transform(X)
    return F, (time.perf_counter() - start) / len(X)


def fit_transfer(run, params, seed, X, y, X_test, y_test):
    """Accuracy on the test images and the fit's seconds."""
    clf = run.classifier(params, seed)
    start = time.perf_counter()
    clf.fit(X, y)
    fit_s = time.perf_counter() - start
    return float(np.mean(clf.predict(X_test) == y_test)), fit_s


def fit_probe(F, y, F_test, y_test, per_image_s, C=1.0):
    """The linear probe on cached features; its fit time counts its images' extraction."""
    start = time.perf_counter()
    probe = LinearProbe(C=C).fit(F, y)
    fit_s = time.perf_counter() - start + per_image_s * len(F)
    return float(np.mean(probe.predict(F_test) == y_test)), fit_s


# -- 1. throughput ------------------------------------------------------------------------
def throughput(run, X, y):
    result = {}
    variants = {"paper (batch 10)": {}, "paper, batch 32": {"batch_size": 32}}
    for name, params in variants.items():
        clf = run.classifier({**params, "max_epochs": 3}, 0)
        start = time.perf_counter()
        clf.fit(X, y)
        total = time.perf_counter() - start
        epochs = list(clf.history[:, "dur"])
        per_epoch = float(np.median(epochs[1:] if len(epochs) > 1 else epochs))
        result[name] = per_epoch
        run.record(
            stage="throughput",
            variant=name,
            n_images=len(X),
            size=int(X.shape[1]),
            epoch_s=[round(e, 2) for e in epochs],
            s_per_epoch=round(per_epoch, 2),
            images_per_s=round(len(X) / per_epoch, 1),
            fit_3_epochs_s=round(total, 1),
        )
    return result


# -- 2. screen -----------------------------------------------------------------------------
def inner_split(run, pool, reserved):
    """Per class: 500 (budget) training and 200 validation indices, none reserved."""
    rng = np.random.default_rng(1000)
    train, valid = [], []
    big = run.budgets[1]
    for label in np.unique(pool.target):
        free = np.setdiff1d(np.flatnonzero(pool.target == label), reserved)
        free = rng.permutation(free)
        valid.append(free[: run.inner_valid])
        train.append(free[run.inner_valid : run.inner_valid + big])
    small = np.concatenate([t[: run.budgets[0]] for t in train])
    return {run.budgets[0]: small, big: np.concatenate(train)}, np.concatenate(valid)


def screen(run, X_pool, F_pool, y_pool, per_image_s, inner, valid):
    rows = {}  # name -> {budget: (acc, fit_s)}
    probe = {}
    for budget, idx in inner.items():
        for C in PROBE_CS:
            acc, fit_s = fit_probe(
                F_pool[idx], y_pool[idx], F_pool[valid], y_pool[valid], per_image_s, C
            )
            run.record(
                stage="screen",
                approach=f"probe C={C:g}",
                per_class=budget,
                accuracy=round(acc, 4),
                fit_s=round(fit_s, 2),
            )
            if C == 1.0:
                probe[budget] = acc

    def evaluate(name, params):
        rows[name] = {}
        for budget, idx in inner.items():
            acc, fit_s = fit_transfer(
                run, params, 0, X_pool[idx], y_pool[idx], X_pool[valid], y_pool[valid]
            )
            rows[name][budget] = (acc, fit_s)
            run.record(
                stage="screen",
                approach=name,
                params=run.params(params),
                per_class=budget,
                accuracy=round(acc, 4),
                fit_s=round(fit_s, 1),
                margin_over_probe=round(acc - probe[budget], 4),
            )

    candidates = dict(STAGE_A)
    for name, (_, params) in STAGE_A.items():
        if not run.screen_only or name == "paper" or name in run.screen_only:
            evaluate(name, params)
    if run.screen_only:
        return {}, rows, probe
    best_a = choose(run, rows, probe, candidates, API)
    for suffix, extra in STAGE_B.items():
        name = f"{best_a} {suffix}"
        candidates[name] = (API, {**candidates[best_a][1], **extra})
        evaluate(name, candidates[name][1])
    chosen = {}
    for approach, family in FAMILIES.items():
        name = choose(run, rows, probe, candidates, family)
        chosen[approach] = (name, candidates[name][1])
        run.record(
            stage="choice",
            approach=approach,
            family=family,
            chosen=name,
            preset=run.params(candidates[name][1]),
        )
    return chosen, rows, probe


def choose(run, rows, probe, candidates, family):
    """The screen's rule (module docstring), over one family's candidates evaluated so far."""
    small, big = run.budgets
    paper = rows["paper"]
    names = [n for n in rows if candidates[n][0] == family]
    fast = [
        n for n in names if all(rows[n][b][1] <= TIME_FACTOR * paper[b][1] for b in (small, big))
    ] or names
    safe = [n for n in fast if rows[n][small][0] >= probe[small] - TOLERANCE]
    if safe:
        return max(safe, key=lambda n: (rows[n][big][0], -rows[n][big][1]))
    return max(fast, key=lambda n: min(rows[n][b][0] - probe[b] for b in (small, big)))


# -- 3. confirmation -----------------------------------------------------------------------
def confirm(run, approaches, photos, cifar):
    scores = {}  # (setting, approach) -> {seed: [scores]}, and fit seconds

    def add(setting, approach, seed, acc, fit_s, **extra):
        entry = scores.setdefault((setting, approach), {"by_seed": {}, "fit_s": []})
        entry["by_seed"].setdefault(seed, []).append(acc)
        entry["fit_s"].append(fit_s)
        run.record(
            stage="confirm",
            setting=setting,
            approach=approach,
            seed=seed,
            accuracy=round(acc, 4),
            fit_s=round(fit_s, 2),
            **extra,
        )

    X, y, F, per_image_s = photos
    for seed in run.seeds if run.photos_confirmed else ():
        cv = StratifiedKFold(run.folds, shuffle=True, random_state=seed)
        for fold, (tr, te) in enumerate(cv.split(X, y)):
            add(
                "photos",
                "probe",
                seed,
                *fit_probe(F[tr], y[tr], F[te], y[te], per_image_s),
                fold=fold,
            )
            for name, params in approaches.items():
                add(
                    "photos",
                    name,
                    seed,
                    *fit_transfer(run, params, seed, X[tr], y[tr], X[te], y[te]),
                    fold=fold,
                )

    X_pool, F_pool, y_pool, draws, X_valid, F_valid, y_valid, per_image_s = cifar
    for budget in run.budgets:
        setting = f"cifar {budget}/class"
        for seed in run.seeds:
            idx = draws[budget, seed]
            add(
                setting,
                "probe",
                seed,
                *fit_probe(F_pool[idx], y_pool[idx], F_valid, y_valid, per_image_s),
            )
            for name, params in approaches.items():
                if name == "paper" and run.confirm_only and budget == run.budgets[-1]:
                    continue  # the slowest row; its fit time is known from the screen
                add(
                    setting,
                    name,
                    seed,
                    *fit_transfer(run, params, seed, X_pool[idx], y_pool[idx], X_valid, y_valid),
                )
    return scores


def summarise(run, scores):
    rows = {}
    for (setting, approach), entry in scores.items():
        per_seed = np.array([np.mean(v) for v in entry["by_seed"].values()])
        se = per_seed.std(ddof=1) / math.sqrt(len(per_seed)) if len(per_seed) > 1 else float("nan")
        n = sum(len(v) for v in entry["by_seed"].values())
        rows[setting, approach] = {
            "mean": float(per_seed.mean()),
            "se": float(se),
            "n": n,
            "fit_s": float(np.mean(entry["fit_s"])),
            "per_seed": per_seed,
        }
        run.record(
            stage="summary",
            setting=setting,
            approach=approach,
            mean=round(float(per_seed.mean()), 4),
            se=round(float(se), 4),
            n=n,
            per_seed=np.round(per_seed, 4).tolist(),
            fit_s=round(float(np.mean(entry["fit_s"])), 2),
        )
    return rows


def criteria(run, rows, approach):
    """Each target criterion of one chosen preset: (description, holds)."""
    checks = []
    settings = list(dict.fromkeys(s for s, _ in rows))
    big = f"cifar {run.budgets[1]}/class"
    for setting in settings:
        p, q, paper = rows[setting, approach], rows[setting, "probe"], rows.get((setting, "paper"))
        se = max(p["se"], q["se"])
        diff = p["mean"] - q["mean"]
        paired = p["per_seed"] - q["per_seed"]
        paired_se = (
            paired.std(ddof=1) / math.sqrt(len(paired)) if len(paired) > 1 else float("nan")
        )
        note = f"{diff:+.4f} over the probe, SE {se:.4f} (paired SE {paired_se:.4f})"
        checks.append((f"{approach}, {setting}: >= probe - SE; {note}", diff >= -se))
        if setting == big:
            checks.append((f"{approach}, {setting}: > probe + SE; {note}", diff > se))
        if paper is None:
            continue
        ratio = p["fit_s"] / paper["fit_s"]
        checks.append(
            (f"{approach}, {setting}: fit time / paper's = {ratio:.2f} (<= 4)", ratio <= 4)
        )
        if setting == "photos":
            checks.append((f"{approach}, photos: mean {p['mean']:.4f} >= 0.90", p["mean"] >= 0.90))
            checks.append(
                (f"{approach}, photos: probe - mean = {-diff:.4f} <= 0.025", -diff <= 0.025)
            )
    for text, ok in checks:
        run.record(stage="criterion", check=text, holds=bool(ok))
    return checks


def markdown(header, lines):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(v) for v in line) + " |" for line in lines]
    return "\n".join(out)


def print_screen(run, screen_rows, screen_probe):
    small, big = run.budgets
    print(f"\n## Screen (seed 0, inner split of train/, {run.inner_valid}/class validation)\n")
    lines = [["probe (C=1)", f"{screen_probe[small]:.4f}", "", f"{screen_probe[big]:.4f}", ""]]
    for name, r in screen_rows.items():
        lines.append(
            [
                name,
                f"{r[small][0]:.4f}",
                f"{r[small][1]:.1f}",
                f"{r[big][0]:.4f}",
                f"{r[big][1]:.1f}",
            ]
        )
    print(
        markdown(["candidate", f"acc {small}/class", "fit s", f"acc {big}/class", "fit s"], lines)
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of tiny sizes")
    parser.add_argument(
        "--out",
        default="benchmarks/results/transfer_presets.jsonl",
        help="JSON lines file (benchmarks/results/ is not tracked)",
    )
    parser.add_argument(
        "--confirm",
        default=None,
        metavar="NAME",
        help="skip the throughput and the screen; confirm this stage-A candidate as the "
        "preset (the paper recipe then runs on the photos and the small budget only)",
    )
    parser.add_argument(
        "--screen",
        action="append",
        default=None,
        metavar="NAME",
        help="screen only this stage-A candidate (repeatable) beside the paper recipe and "
        "the probe, print the screen and stop",
    )
    parser.add_argument(
        "--no-photos",
        action="store_true",
        help="confirm on the CIFAR budgets only (the photos' rows are in an earlier run)",
    )
    parser.add_argument(
        "--paper-only",
        action="store_true",
        help="confirm the paper recipe (and the probe) alone, at every budget: the rows a "
        "--confirm run leaves out",
    )
    args = parser.parse_args()
    for name in [args.confirm or "paper", *(args.screen or [])]:
        if name not in STAGE_A:
            parser.error(f"choose candidates among {', '.join(STAGE_A)}; got {name!r}")
    torch.set_num_threads(2)
    run = Run(args, require_shared())
    try:
        return _main(run)
    finally:
        run.out.close()


def _main(run):
    # data: decode each set once, extract each set's frozen features once
    pool = load_image_folder(run.cifar / "train")
    index = {p: i for i, p in enumerate(pool.data)}
    draws = {
        (b, s): np.array(
            [
                index[p]
                for p in load_image_folder(run.cifar / "train", per_class=b, random_state=s).data
            ]
        )
        for b in run.budgets
        for s in run.seeds
    }
    reserved = np.unique(
        np.concatenate(
            [draws[run.budgets[0], s] for s in (0, 1, 2) if (run.budgets[0], s) in draws]
        )
    )
    inner, inner_valid = inner_split(run, pool, reserved)
    needed = np.unique(np.concatenate([*draws.values(), *inner.values(), inner_valid]))
    cifar_loader = ImageLoader(run.cifar_size, interpolation="bicubic", n_jobs=2)
    X_pool = np.zeros((len(pool.data), run.cifar_size, run.cifar_size, 3), np.uint8)
    X_pool[needed] = cifar_loader.transform(pool.data[needed])
    F_needed, cifar_per_image = features(run, X_pool[needed])
    F_pool = np.zeros((len(pool.data), F_needed.shape[1]), np.float32)
    F_pool[needed] = F_needed
    y_pool = pool.target
    valid = load_image_folder(run.cifar / "valid", per_class=run.valid_per_class, random_state=0)
    X_valid = cifar_loader.transform(valid.data)
    F_valid, _ = features(run, X_valid)
    photos = load_image_folder(run.photos)
    if not run.photos_confirmed or run.screen_only:
        photos = load_image_folder(run.photos, per_class=1)  # not used: keep it cheap
    X_photos = ImageLoader(run.photo_size, interpolation="bicubic", n_jobs=2).transform(
        photos.data
    )
    F_photos, photo_per_image = features(run, X_photos)
    run.record(
        stage="data",
        cifar_decoded=len(needed),
        cifar_valid=len(X_valid),
        photos=len(X_photos),
        reserved_from_screen=len(reserved),
        inner_train=len(inner[run.budgets[1]]),
        inner_valid=len(inner_valid),
        feature_s_per_image={
            "cifar": round(cifar_per_image, 5),
            "photos": round(photo_per_image, 5),
        },
    )

    tp_idx = draws[run.budgets[0], 0]
    if run.confirm_only or run.paper_only:  # chosen by an earlier run's screen
        chosen = (
            {} if run.paper_only else {"preset": (run.confirm_only, STAGE_A[run.confirm_only][1])}
        )
        tp, screen_rows, screen_probe = {}, {}, {b: float("nan") for b in run.budgets}
    else:
        # 1. throughput: 300 CIFAR images (50 per class of the seed-0 small draw)
        tp = {} if run.screen_only else throughput(run, X_pool[tp_idx], y_pool[tp_idx])
        # 2. screen on the inner split
        chosen, screen_rows, screen_probe = screen(
            run, X_pool, F_pool, y_pool, cifar_per_image, inner, inner_valid
        )
    if run.screen_only:
        print_screen(run, screen_rows, screen_probe)
        return 0

    # 3. confirmation
    scores = confirm(
        run,
        {"paper": {}, **{approach: params for approach, (_, params) in chosen.items()}},
        (X_photos, photos.target, F_photos, photo_per_image),
        (X_pool, F_pool, y_pool, draws, X_valid, F_valid, valid.target, cifar_per_image),
    )
    rows = summarise(run, scores)
    checks = {approach: criteria(run, rows, approach) for approach in chosen}
    # the paper row is left out at the big budget with --confirm

    small, big = run.budgets
    print("\n## Throughput (300 CIFAR images at 96 px in a full run)\n")
    print(
        markdown(
            ["variant", "s/epoch", "images/s"],
            [[k, f"{v:.2f}", f"{tp_idx.size / v:.0f}"] for k, v in tp.items()],
        )
    )
    print_screen(run, screen_rows, screen_probe)
    for approach, (name, params) in chosen.items():
        print(f"\n{approach}: {name} = {run.params(params)}")
    print()
    print("## Confirmation\n")
    print(
        markdown(
            ["setting", "approach", "mean", "SE", "n", "fit s"],
            [
                [s, a, f"{r['mean']:.4f}", f"{r['se']:.4f}", r["n"], f"{r['fit_s']:.1f}"]
                for (s, a), r in rows.items()
            ],
        )
    )
    print("\n## Targets\n")
    for approach_checks in checks.values():
        for text, ok in approach_checks:
            print(f"- {'ok    ' if ok else 'MISSED'} {text}")
    print(f"\ntotal {time.perf_counter() - run.start:.0f} s")
    return 0 if all(ok for _, ok in checks.get("preset", [])) else 1


if __name__ == "__main__":
    sys.exit(main())
