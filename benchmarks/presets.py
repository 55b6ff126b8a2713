"""Accuracy of each preset over several seeds: mean and spread of validation and test accuracy.

Runs ``steadynet train --preset NAME --seed S`` for every preset and seed named, one after
the other (never side by side: the training times are part of the result), reads each run's
``metrics.json`` and prints a Markdown table: per preset, the validation and test accuracy of
every seed, their mean and spread (min-max), and the training time.

Run: ``python benchmarks/presets.py`` (all presets, seeds 0-2: about 50 minutes on a 2-core
machine, `best` takes 45 of them) or ``--presets seed fast --seeds 0 1 2``. Runs that already
finished in ``--out`` are read, not run again, so an interrupted series can be continued.
Results: docs/accuracy.md and the README.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

from steadynet.presets import PRESETS


def run_preset(preset, seed, out):
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
        "--out",
        out,
        "--no-plots",
        "--quiet",
    ]
    print("$ " + " ".join(command[1:]), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, stdout=sys.stderr)  # stdout is for the table
    with open(metrics_path) as f:
        return json.load(f)


def percent(values):
    """'mean% (min-max)' over the seeds, e.g. '97.58% (97.51-97.62)'."""
    values = [100 * v for v in values]
    if len(values) == 1:
        return f"{values[0]:.2f}%"
    return f"{statistics.mean(values):.2f}% ({min(values):.2f}-{max(values):.2f})"


def table(results, seeds):
    """Markdown table: one row per preset, mean (min-max) over the seeds."""
    lines = [
        "| preset | seeds | val acc, mean (min-max) | test acc, mean (min-max) "
        "| test acc per seed | training time per run |",
        "|---|---|---|---|---|---|",
    ]
    for preset, runs in results.items():
        val = [m["epochs"][-1]["val_accuracy"] for m in runs]
        test = [m["test_accuracy"] for m in runs]
        seconds = [m["train_seconds"] for m in runs]
        per_seed = ", ".join(f"{100 * t:.2f}%" for t in test)
        time_range = f"{min(seconds):.0f}-{max(seconds):.0f} s" if len(seconds) > 1 else f"{seconds[0]:.0f} s"
        lines.append(
            f"| `{preset}` | {' '.join(map(str, seeds))} | {percent(val)} | {percent(test)} "
            f"| {per_seed} | {time_range} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--out", default="runs/presets", help="folder for the runs, one per preset and seed (default runs/presets)"
    )
    args = parser.parse_args(argv)
    results = {}
    for preset in args.presets:
        results[preset] = []
        for seed in args.seeds:
            metrics = run_preset(preset, seed, os.path.join(args.out, f"{preset}-seed{seed}"))
            results[preset].append(metrics)
            print(
                f"{preset} seed {seed}: val {metrics['epochs'][-1]['val_accuracy']:.4f} "
                f"test {metrics['test_accuracy']:.4f} in {metrics['train_seconds']:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    print(table(results, args.seeds))


if __name__ == "__main__":
    main()
