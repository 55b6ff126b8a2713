"""Are training results bit for bit what an earlier commit gave? For refactors.

Each case trains on a slice of real MNIST (4,000 training images, 500 of them for validation,
1,000 test images) and is summarised by two hashes: of the model file's arrays, and of the
per-epoch losses and accuracies with the test loss. The cases: every preset for its first two
epochs; Adam with L2 decay, AdamW, SGD with clipping and label smoothing, full-batch descent,
recovery from divergence, distillation from a teacher; and a run interrupted by SIGINT in
its second epoch (the real signal path) and resumed, which must equal the same run done
straight. Each case runs on the NumPy engine and on ``auto`` (the compiled step where numba
is installed).

OpenBLAS's sums depend on its thread count, so two trees agree only with the same BLAS
threads: ``--threads N`` pins them (by ``OPENBLAS_NUM_THREADS`` and, in trees that have it,
the ``threads`` setting).

Run: ``python benchmarks/identity.py`` (this tree, about 20 s on 2 cores) or
``python benchmarks/identity.py --against REF`` (REF checked out into a temporary git
worktree and run there too; exits 1 if any case differs). Options missing from an older tree
are left out of its runs.
"""

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def digest(run_dir):
    """``"<model hash> <metrics hash>"`` of a run folder."""
    import numpy as np

    with np.load(os.path.join(run_dir, "model.npz")) as z:
        h = hashlib.sha256()
        for name in sorted(z.files):
            h.update(name.encode())
            h.update(np.ascontiguousarray(z[name]).tobytes())
    with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)
    curve = [(e["train_loss"], e["val_loss"], e["val_accuracy"]) for e in metrics["epochs"]]
    return f"{h.hexdigest()[:16]} {hashlib.sha256(repr((curve, metrics.get('test_loss'))).encode()).hexdigest()[:8]}"


def run_cases(work, threads=None):
    """Train every case in folders under ``work``; returns ``{case: digest}``."""
    import steadynet
    from steadynet.data import load_data, make_dataset
    from steadynet.presets import PRESETS

    try:
        from steadynet.train.signals import Interrupted
    except ImportError:  # older trees
        from steadynet.train.trainer import Interrupted

    fields = set(steadynet.TrainConfig.__dataclass_fields__)
    full = load_data("mnist")
    data = make_dataset(full.x_train[:4000], full.y_train[:4000], full.x_test[:1000], full.y_test[:1000])

    def train(out, **settings):
        if threads is not None and not settings.get("resume"):  # a resume keeps the run's settings
            settings["threads"] = threads
        settings = {k: v for k, v in settings.items() if k in fields or k in ("resume", "handle_signals", "on_step")}
        steadynet.train(out=out, data=data, log=lambda line: None, **settings)

    def case(name, **settings):
        out = tempfile.mkdtemp(dir=work, prefix=name.replace("/", "-") + "-")
        try:
            train(out, val_size=500, **settings)
        except steadynet.SteadynetError as exc:  # diverged: the last finite weights and the message
            os.replace(os.path.join(out, "last_finite.npz"), os.path.join(out, "model.npz"))
            with open(os.path.join(out, "metrics.json"), "w", encoding="utf-8") as f:
                json.dump({"epochs": [], "test_loss": str(exc)}, f)
        return digest(out)

    hashes = {}
    for engine in ("numpy", "auto"):
        for preset, settings in PRESETS.items():
            hashes[f"{preset}/{engine}"] = case(preset, **dict(settings, epochs=2, preset=preset, engine=engine))
        small = dict(hidden=(64,), epochs=2, engine=engine)
        hashes[f"adam-l2/{engine}"] = case("adam", optimizer="adam", weight_decay=1e-4, **small)
        hashes[f"adamw/{engine}"] = case("adamw", optimizer="adamw", weight_decay=1e-2, **small)
        hashes[f"sgd-clip-smooth/{engine}"] = case(
            "sgd", optimizer="sgd", clip_norm=1.0, label_smoothing=0.1, learning_rate=0.1, **small
        )
        hashes[f"full-batch/{engine}"] = case("full", batch_size="full", hidden=(30,), epochs=3, engine=engine)
        hashes[f"recover/{engine}"] = case(
            "recover", learning_rate=40.0, on_diverge="recover", optimizer="sgd", **small
        )
        teacher = tempfile.mkdtemp(dir=work, prefix="teacher-")
        train(teacher, val_size=500, **small)
        hashes[f"distill/{engine}"] = case("student", teacher=teacher, hidden=(32,), epochs=2, engine=engine)
        for preset in ("seed", "best"):
            settings = dict(PRESETS[preset], epochs=3, preset=preset, engine=engine, checkpoint_every_steps=7)
            straight = case(f"{preset}-straight", **settings)
            out = tempfile.mkdtemp(dir=work, prefix=f"{preset}-interrupted-")

            def interrupt(info):
                if info.step == info.batches + 40:  # in the second epoch, between checkpoints
                    os.kill(os.getpid(), signal.SIGINT)

            try:
                train(out, val_size=500, handle_signals=True, on_step=interrupt, **settings)
                raise SystemExit(f"{preset}: the run was not interrupted")
            except Interrupted:
                pass
            train(out, resume=True)
            hashes[f"resume-{preset}/{engine}"] = digest(out)
            hashes[f"resume-{preset}-as-straight/{engine}"] = "same" if digest(out) == straight else "DIFFERENT"
    return hashes


def run_tree(src, threads):
    """This script's cases in a child process on the package in ``src``; returns its hashes."""
    env = dict(os.environ, PYTHONPATH=src)
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = str(threads)
    args = [sys.executable, os.path.abspath(__file__), "--json"] + (
        [] if threads is None else ["--threads", str(threads)]
    )
    done = subprocess.run(args, env=env, stdout=subprocess.PIPE, check=True)
    return json.loads(done.stdout)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--against", metavar="REF", help="a commit to compare with (checked out in a temporary worktree)")
    p.add_argument("--threads", type=int, help="BLAS threads, pinned in every run")
    p.add_argument("--json", action="store_true", help="print this tree's hashes as JSON")
    args = p.parse_args(argv)
    if args.json:
        with tempfile.TemporaryDirectory() as work:
            print(json.dumps(run_cases(work, args.threads)))
        return 0
    mine = run_tree(os.path.join(os.path.dirname(HERE), "src"), args.threads)
    if not args.against:
        for name, value in mine.items():
            print(f"{name:36s} {value}")
        return 0
    with tempfile.TemporaryDirectory() as tree:
        subprocess.run(["git", "-C", HERE, "worktree", "add", "--detach", tree, args.against], check=True)
        try:
            theirs = run_tree(os.path.join(tree, "src"), args.threads)
        finally:
            subprocess.run(["git", "-C", HERE, "worktree", "remove", "--force", tree], check=False)
    differ = [name for name in mine if mine[name] != theirs.get(name)]
    for name in mine:
        print(f"{name:36s} {mine[name]:26s} {'same' if name not in differ else 'DIFFERS: ' + str(theirs.get(name))}")
    print(f"{len(mine) - len(differ)} of {len(mine)} cases bit-identical to {args.against}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
