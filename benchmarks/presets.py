"""Accuracy of each preset over several seeds: mean and spread of validation and test accuracy.

Runs ``steadynet train --preset NAME --seed S --data D`` for every preset, seed and data set
named, one after the other (never side by side: the training times are part of the result),
reads each run's ``metrics.json`` and ``config.json`` and prints a Markdown table: per data
set and preset, the validation and test accuracy of every seed, their mean and spread
(min-max), the augmentation each run's trial chose (``augment_trial``, see
steadynet/train/trial.py) and the time: training, and of it the trial.

The data sets: ``mnist`` and three proxies for MNIST-like data that is not digits, made from
MNIST and written once as NPZ files into ``--out``:

- ``mnist-permuted``: every image's pixels in one fixed random order (seed 123), so that
  neighbouring pixels are unrelated and any shift or warp destroys the signal;
- ``mnist-rot90``: every image turned 90 degrees, digits no one writes;
- ``mnist-inverted``: 255 - pixel, dark strokes on a white ground, which shifts and warps
  pad with black.

Run: ``python benchmarks/presets.py`` (all presets, seeds 0-2, on MNIST: about 30 minutes on a
quiet 2-core machine, `best` takes 28 of them), ``--presets seed fast --seeds 0 1 2``, or
``--data mnist mnist-permuted mnist-rot90 mnist-inverted`` (about two hours, 2026-12-03). Runs that already
finished in ``--out`` are read, not run again, so an interrupted series can be continued.
Results: docs/accuracy.md and the README.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

import numpy as np

from steadynet.data import load_data, make_dataset
from steadynet.data.npz import write_npz
from steadynet.presets import PRESETS

PROXIES = {
    "mnist-permuted": lambda X: X[:, np.random.default_rng(123).permutation(X.shape[1])],
    "mnist-rot90": lambda X: np.ascontiguousarray(np.rot90(X.reshape(-1, 28, 28), 1, axes=(1, 2))).reshape(-1, 784),
    "mnist-inverted": lambda X: 255 - X,
}


def data_file(name, folder):
    """The data set ``name`` as ``steadynet train --data`` takes it: mnist, or a proxy's NPZ file."""
    if name == "mnist":
        return name
    path = os.path.join(folder, name + ".npz")
    if not os.path.exists(path):
        d = load_data("mnist")
        os.makedirs(folder, exist_ok=True)
        write_npz(path, make_dataset(PROXIES[name](d.x_train), d.y_train, PROXIES[name](d.x_test), d.y_test))
    return path


def run_preset(preset, seed, out, data="mnist"):
    """Train one preset with one seed into ``out`` (unless done already); return its metrics."""
    metrics_path = os.path.join(out, "metrics.json")
    if os.path.exists(metrics_path):
        with open(metrics_path) as f:
            metrics = json.load(f)
        if metrics.get("status") == "completed":
            return metrics
    command = [
        sys.executable,
        "-m",
        "steadynet",
        "train",
        "--preset",
        preset,
        "--seed",
        str(seed),
        "--data",
        data,
        "--out",
        out,
        "--no-plots",
        "--quiet",
    ]
    print("$ " + " ".join(command[1:]), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, stdout=sys.stderr)  # stdout is for the table
    with open(metrics_path) as f:
        return json.load(f)


def trial_of(out):
    """``(chosen level or "-", seconds the trial took)`` from a run folder's config.json."""
    with open(os.path.join(out, "config.json")) as f:
        trial = json.load(f).get("augmentation_trial")
    if not trial:
        return "-", 0.0
    return trial["chosen"], sum(level["seconds"] for level in trial["levels"])


def tta_of(metrics):
    """'used (98.81%)' when the run tested with test-time augmentation (its plain accuracy in
    brackets), 'not used' when it decided against, '-' for a run that records no decision."""
    tta = metrics.get("tta")
    if not tta or tta.get("setting") == "off":
        return "-"
    if tta.get("used") and tta.get("test_accuracy_plain") is not None:
        return f"used ({100 * tta['test_accuracy_plain']:.2f}%)"
    return "used" if tta.get("used") else "not used"


def percent(values):
    """'mean% (min-max)' over the seeds, e.g. '97.58% (97.51-97.62)'."""
    values = [100 * v for v in values]
    if len(values) == 1:
        return f"{values[0]:.2f}%"
    return f"{statistics.mean(values):.2f}% ({min(values):.2f}-{max(values):.2f})"


def seconds_range(values):
    """'417-486 s' over the seeds, or '29 s' when they round to the same."""
    low, high = round(min(values)), round(max(values))
    return f"{low} s" if low == high else f"{low}-{high} s"


def table(results, seeds):
    """Markdown table: one row per data set and preset, mean (min-max) over the seeds."""
    lines = [
        "| data | preset | seeds | val acc, mean (min-max) | test acc, mean (min-max) "
        "| test acc per seed | augmentation chosen | test-time augmentation (plain test acc) "
        "| training time per run (of it, the trial) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (data, preset), runs in results.items():
        val = [m["epochs"][-1]["val_accuracy"] for m, _ in runs]
        test = [m["test_accuracy"] for m, _ in runs]
        trial = [t for _, t in runs]
        seconds = [m["train_seconds"] + t[1] for m, t in runs]
        per_seed = ", ".join(f"{100 * t:.2f}%" for t in test)
        chosen = ", ".join(name for name, _ in trial)
        tta = ", ".join(tta_of(m) for m, _ in runs)
        lines.append(
            f"| {data} | `{preset}` | {' '.join(map(str, seeds))} | {percent(val)} | {percent(test)} "
            f"| {per_seed} | {chosen} | {tta} | {seconds_range(seconds)} ({seconds_range([t[1] for t in trial])}) |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--data", nargs="+", default=["mnist"], choices=["mnist", *PROXIES])
    parser.add_argument(
        "--out", default="runs/presets", help="folder for the runs, one per preset and seed (default runs/presets)"
    )
    args = parser.parse_args(argv)
    results = {}
    for data in args.data:
        path = data_file(data, args.out)
        for preset in args.presets:
            results[data, preset] = []
            for seed in args.seeds:
                name = f"{preset}-seed{seed}" if data == "mnist" else f"{data}-{preset}-seed{seed}"
                out = os.path.join(args.out, name)
                metrics = run_preset(preset, seed, out, path)
                results[data, preset].append((metrics, trial_of(out)))
                print(
                    f"{data} {preset} seed {seed}: val {metrics['epochs'][-1]['val_accuracy']:.4f} "
                    f"test {metrics['test_accuracy']:.4f} in {metrics['train_seconds']:.1f} s, "
                    f"augmentation {trial_of(out)[0]}, test-time augmentation {tta_of(metrics)}",
                    file=sys.stderr,
                    flush=True,
                )
    print(table(results, args.seeds))


if __name__ == "__main__":
    main()
