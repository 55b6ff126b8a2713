"""Is this tree slower than another commit? Training time of the two, interleaved run by run.

Each case is a short `steadynet.train` on real MNIST (the run's own ``train_seconds``, which
times the training epochs only), run in a child process on each tree in turn, ``--repeats``
times: A, B, A, B, ... so that a busy moment of the machine hits both alike. Reported: each
tree's median seconds per epoch and the ratio of the medians (this tree over REF), with the
range of the per-pair ratios.

Cases: the seed network as ``steadynet train`` runs it by default (batch 64), the same at
batch 128, 784-100-10 ReLU with Adam, and 784-800-10 ReLU with Adam.

Run: ``python benchmarks/ab.py --against REF`` (about 6 minutes on 2 cores with the default
3 repeats). Nothing else may run meanwhile: on 2 cores any other load swamps the difference.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = {
    "seed, batch 64": dict(epochs=3),
    "seed, batch 128": dict(epochs=3, batch_size=128),
    "784-100-10 Adam": dict(epochs=2, hidden=(100,), activation="relu", optimizer="adam", learning_rate=1e-3),
    "784-800-10 Adam": dict(epochs=1, hidden=(800,), activation="relu", optimizer="adam", learning_rate=1e-3),
}
CHILD = """
import json, sys, tempfile
import steadynet
settings = json.loads(sys.argv[1])
settings["hidden"] = tuple(settings.get("hidden", (30,)))
with tempfile.TemporaryDirectory() as out:
    result = steadynet.train(out=out, log=lambda line: None, **settings)
print(json.dumps(result["train_seconds"] / settings["epochs"]))
"""


def seconds_per_epoch(src, settings):
    env = dict(os.environ, PYTHONPATH=src)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(settings)], env=env, stdout=subprocess.PIPE, check=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--against", metavar="REF", required=True, help="the commit to compare with")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    args = p.parse_args(argv)
    mine = os.path.join(os.path.dirname(HERE), "src")
    with tempfile.TemporaryDirectory() as tree:
        subprocess.run(["git", "-C", HERE, "worktree", "add", "--detach", tree, args.against], check=True)
        try:
            print(f"{'case':18s} {'this tree':>10s} {args.against[:10]:>10s} {'ratio':>6s}  per-pair range")
            for name in args.cases:
                a, b = [], []
                for _ in range(args.repeats):
                    a.append(seconds_per_epoch(mine, CASES[name]))
                    b.append(seconds_per_epoch(os.path.join(tree, "src"), CASES[name]))
                pairs = sorted(x / y for x, y in zip(a, b))
                ratio = statistics.median(a) / statistics.median(b)
                print(
                    f"{name:18s} {statistics.median(a):9.3f}s {statistics.median(b):9.3f}s {ratio:6.3f}"
                    f"  {pairs[0]:.3f}-{pairs[-1]:.3f}"
                )
        finally:
            subprocess.run(["git", "-C", HERE, "worktree", "remove", "--force", tree], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
