"""Speed of steadynet against PyTorch (CPU) and scikit-learn, interleaved epoch by epoch.

A fourth trainer, "plain numpy", is the loop people write by hand in NumPy with nothing else
(:class:`PlainNumpy`): the yardstick for what NumPy itself costs, and so for how much of
steadynet's time is its own.

For each case, the four trainers start from the same initial weights (steadynet's, copied),
use the same optimiser and batch size, and see the training images in the same order every
epoch. Epoch e of each trainer runs back to back with epoch e of the others, so a busy moment
of the machine hits all of them alike. Timed: the training epoch only. Not timed: test
accuracy after each epoch. Timed after the last epoch: each one's prediction of the 10,000
test images (steadynet's from uint8 pixels, the others' from pixels already scaled).

Also measured: the GEMM floor (only the matrix products of forward and backward, at the
network's real shapes, with preallocated outputs, for one epoch of steps), and peak memory
of a whole `steadynet train` process.

steadynet runs as a user's run would: the compiled step where numba is installed
(``steadynet[fast]``) and the thread policy of :mod:`steadynet.threads`. Where the compiled step
runs, a fifth trainer, "steadynet numpy", is the NumPy reference path on the same policy.

Each case runs ``--repeats`` times (default 3), one run after the other; the table gives the
spread of the per-run ratios, not one run's. The ``contention`` case trains the seed network
(batch 64) epoch by epoch quiet and then beside one busy process (a plain Python loop that
this benchmark starts, stops after each epoch, and which ends itself after ``BUSY_LIMIT``
seconds whatever happens): steadynet, steadynet on the NumPy path with the BLAS's default
threads (what steadynet did before the thread policy), PyTorch with its default threads and
with one. The ``products`` case times one step's matrix products alone at every case's shapes,
NumPy's BLAS against PyTorch's, on one thread and on all cores: what the BLAS alone allows. The
``shifts`` line times one epoch's one-pixel shifts of the training set against an
epoch of the seed network (the claim tests/test_augment.py once asserted).

Run: ``python benchmarks/bench.py`` (every case, three runs: about 20 minutes on this project's
quiet 2-core machine), ``--cases seed-128 --repeats 1``, ``--cases contention`` or
``--cases products``. Results: benchmarks/RESULTS.md, written with ``--write``, which replaces
the tables and keeps the hand-written notes below ``NOTES_MARK``.

On a GPU machine, ``--device gpu`` runs steadynet on CuPy against PyTorch on CUDA, with the
GEMM floor taken by CuPy, and writes benchmarks/RESULTS-gpu.md. Such machines here reach no
package index or download: carry the data in, e.g. write it here with
``python -c "from steadynet.data import load_data; from steadynet.data.npz import write_npz;
write_npz('data/mnist.npz', load_data('mnist'))"`` (11.5 MB, ignored by git), and run there
``PYTHONPATH=src python3 benchmarks/bench.py --device gpu --data data/mnist.npz --write``.
"""

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext

import numpy as np

import steadynet
from steadynet.backend import get_array_module
from steadynet.config import TrainConfig
from steadynet.data import load_data
from steadynet.data.augment import random_shifts
from steadynet.model import MLP
from steadynet.optim import make_optimizer
from steadynet.threads import available_cores, blas_threads
from steadynet.train.loop import LoopState, execution, rng_state_of, train_loop

# name -> (hidden, activation, optimizer, learning rate, batch size, epochs)
CASES = {
    "seed-32": ((30,), "sigmoid", "nesterov", 0.05, 32, 6),
    "seed-128": ((30,), "sigmoid", "nesterov", 0.1, 128, 6),
    "784-100-10": ((100,), "relu", "adam", 1e-3, 128, 6),
    "784-800-10": ((800,), "relu", "adam", 1e-3, 128, 4),
    "deep-512x3": ((512, 512, 512), "relu", "adam", 1e-3, 128, 4),
}
TARGET = 0.97  # time to this test accuracy is reported
CONTENTION = ((30,), "sigmoid", "nesterov", 0.05, 64, 5)  # the seed network, as the issue measured it
BUSY_LIMIT = 60  # seconds after which the busy process ends itself
EXTRA = ("contention", "products")  # the cases that are not a network trained epoch by epoch


# ----------------------------------------------------------------------------- trainers


class Steadynet:
    """steadynet's own loop. ``engine`` and ``threads`` as TrainConfig's (default: a user's run)."""

    name = "steadynet"

    def __init__(self, case, data, seed, device="cpu", engine="auto", threads="auto", name=None):
        hidden, act, opt, lr, bs, epochs = case
        self.config = TrainConfig(
            hidden=hidden,
            activation=act,
            optimizer=opt,
            learning_rate=lr,
            batch_size=bs,
            epochs=epochs,
            schedule="constant",
            augment_shift=0,
            val_size=0,
            seed=seed,
            device=device,
            engine=engine,
            threads=threads,
        )
        self.name = name or self.name
        self.execution = execution(self.config, (784, *hidden, 10), len(data.y_train))
        if self.execution["engine"] == "numba":
            warm_up(hidden, act, opt, bs, data)
        self.model = MLP((784, *hidden, 10), act, seed=seed, device=device)
        optimizer = make_optimizer(opt, self.model.n_weights, 0.0, 0.9)
        self.epochs = train_loop(
            self.model, optimizer, self.config, data.x_train, data.y_train, data.image_shape, state=LoopState()
        )
        self.data = data

    def initial_weights(self):
        return self.model.state_dict()

    def epoch(self, e):
        next(self.epochs)
        if self.model.xp is not np:  # the GPU's queue finished, for the timer
            self.model.xp.cuda.get_current_stream().synchronize()

    def predict(self):
        """Class of each test image (uint8 pixels in, scaled chunk by chunk), as NumPy."""
        return self.model.predict(self.data.x_test)


def warm_up(hidden, act, opt, bs, data):
    """One compiled step on a throwaway network: numba compiles its kernels once per machine
    (about 13 s, then cached) and loads them in each new process (1-3 s), which is no part of
    training time and would otherwise land in the first epoch, and so in the time to 97%."""
    model = MLP((784, *hidden, 10), act)
    optimizer = make_optimizer(opt, model.n_weights, engine="numba")
    model.engine = "numba"
    from steadynet.kernels import float_batch, load

    load()
    Xb = float_batch(data.x_train, slice(0, bs), model.dtype)
    model.loss_and_grad(Xb, data.y_train[:bs])
    optimizer.step(model.theta, model.grad, 0.0)


class Torch:
    name = "pytorch"

    def __init__(self, case, data, seed, weights, device="cpu", threads=None, name=None):
        import torch

        self.torch = torch
        self.threads, self.name = threads, name or self.name  # threads: None keeps PyTorch's default
        self.device = device = "cuda" if device == "gpu" else device
        hidden, act, opt, lr, bs, epochs = case
        layers, sizes = [], (784, *hidden, 10)
        acts = {"sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}
        for i in range(1, len(sizes)):
            linear = torch.nn.Linear(sizes[i - 1], sizes[i])
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(weights[f"W{i}"].T.copy()))
                linear.bias.copy_(torch.from_numpy(weights[f"b{i}"]))
            layers.append(linear)
            if i < len(sizes) - 1:
                layers.append(acts[act]())
        self.net = torch.nn.Sequential(*layers).to(device)
        if opt == "adam":
            self.opt = torch.optim.Adam(self.net.parameters(), lr=lr, fused=True)
        else:
            self.opt = torch.optim.SGD(
                self.net.parameters(), lr=lr, momentum=0.9, nesterov=opt == "nesterov", fused=True
            )
        # the same pixels: uint8 scaled per batch, like steadynet
        self.X = torch.from_numpy(data.x_train).to(device)
        self.y = torch.from_numpy(data.y_train).to(device)
        self.Xt = torch.from_numpy(data.x_test.astype(np.float32) / 255).to(device)
        self.bs, self.seed = bs, seed
        self.loss = torch.nn.CrossEntropyLoss()

    def epoch(self, e):
        torch = self.torch
        default = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            self._epoch(e)
        finally:
            torch.set_num_threads(default)

    def _epoch(self, e):
        torch = self.torch
        order = torch.from_numpy(epoch_order(self.seed, e, len(self.y))).to(self.device)
        X, y = self.X[order], self.y[order]
        for s in range(0, len(y), self.bs):
            Xb = X[s : s + self.bs].float().mul_(1 / 255)
            self.opt.zero_grad(set_to_none=True)
            self.loss(self.net(Xb), y[s : s + self.bs]).backward()
            self.opt.step()
        if self.device == "cuda":
            torch.cuda.synchronize()

    def predict(self):
        with self.torch.no_grad():
            return self.net(self.Xt).argmax(1).cpu().numpy()


class Sklearn:
    name = "scikit-learn"

    def __init__(self, case, data, seed, weights):
        from sklearn.neural_network import MLPClassifier

        hidden, act, opt, lr, bs, epochs = case
        self.clf = MLPClassifier(
            hidden_layer_sizes=hidden,
            activation={"sigmoid": "logistic"}.get(act, act),
            solver="adam" if opt == "adam" else "sgd",
            learning_rate_init=lr,
            momentum=0.9,
            nesterovs_momentum=opt == "nesterov",
            alpha=0.0,
            batch_size=bs,
            shuffle=False,
            random_state=seed,
        )
        self.X = data.x_train.astype(np.float32) / 255
        self.y = data.y_train
        self.Xt = data.x_test.astype(np.float32) / 255
        self.seed, self.weights, self.bs = seed, weights, bs

    def epoch(self, e):
        order = epoch_order(self.seed, e, len(self.y))
        if e == 0:  # first call sets up the network; then start from the shared weights
            self.clf.partial_fit(self.X[: self.bs], self.y[: self.bs], classes=np.arange(10))
            n = len(self.clf.coefs_)
            self.clf.coefs_ = [self.weights[f"W{i}"].copy() for i in range(1, n + 1)]
            self.clf.intercepts_ = [self.weights[f"b{i}"].copy() for i in range(1, n + 1)]
            del self.clf._optimizer  # a fresh optimiser state for the copied weights
            self.clf.t_ = 0
        self.clf.partial_fit(self.X[order], self.y[order])

    def predict(self):
        return self.clf.predict(self.Xt)


class PlainNumpy:
    """The loop people write by hand, in NumPy and nothing else: a list of weight arrays, the
    forward pass, softmax cross-entropy, the backward pass, and the optimiser array by array
    (in place, with the temporaries its formulas make). No checks, no diagnostics, no flat
    buffer: what NumPy itself costs per step, as a yardstick for steadynet's own overhead."""

    name = "plain numpy"

    def __init__(self, case, data, seed, weights):
        hidden, self.act, self.opt, self.lr, self.bs, epochs = case
        n_layers = len(hidden) + 1
        self.W = [weights[f"W{i}"].copy() for i in range(1, n_layers + 1)]
        self.b = [weights[f"b{i}"].copy() for i in range(1, n_layers + 1)]
        params = self.W + self.b
        self.m = [np.zeros_like(p) for p in params]  # momentum's v, or Adam's first moment
        self.v = [np.zeros_like(p) for p in params]  # Adam's second moment
        self.t = 0
        self.X, self.y, self.seed = data.x_train, data.y_train, seed
        self.Xt = data.x_test

    def forward(self, A):
        """Every layer's output, the input first; the last is the logits."""
        outputs = [A]
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            Z = outputs[-1] @ W
            Z += b
            if i < len(self.W) - 1:
                if self.act == "sigmoid":  # 1 / (1 + exp(-Z)), as (1 + tanh(Z / 2)) / 2
                    Z *= np.float32(0.5)
                    np.tanh(Z, out=Z)
                    Z += 1
                    Z *= np.float32(0.5)
                else:
                    np.maximum(Z, 0, out=Z)
            outputs.append(Z)
        return outputs

    def epoch(self, e):
        order = epoch_order(self.seed, e, len(self.y))
        for s in range(0, len(order), self.bs):
            rows = order[s : s + self.bs]
            A = self.X[rows].astype(np.float32)
            A *= np.float32(1 / 255)
            outputs = self.forward(A)
            # softmax cross-entropy's gradient at the logits: (P - Y) / n
            n = len(rows)
            dZ = outputs.pop()
            dZ -= dZ.max(axis=1, keepdims=True)
            np.exp(dZ, out=dZ)
            dZ /= dZ.sum(axis=1, keepdims=True)
            dZ[np.arange(n), self.y[rows]] -= 1
            dZ *= np.float32(1 / n)
            grads_W, grads_b = [None] * len(self.W), [None] * len(self.W)
            for i in range(len(self.W) - 1, -1, -1):
                A = outputs[i]
                grads_W[i] = A.T @ dZ
                grads_b[i] = dZ.sum(axis=0)
                if i:
                    dA = dZ @ self.W[i].T
                    dZ = dA * (A * (1 - A) if self.act == "sigmoid" else (A > 0))
            self.update(self.W + self.b, grads_W + grads_b)

    def update(self, params, grads):
        self.t += 1
        lr = self.lr
        for p, g, m, v in zip(params, grads, self.m, self.v):
            if self.opt == "adam":
                m *= 0.9
                m += 0.1 * g
                v *= 0.999
                v += 0.001 * g * g
                denom = np.sqrt(v)
                denom /= np.sqrt(1 - 0.999**self.t)
                denom += 1e-8
                p -= lr / (1 - 0.9**self.t) * m / denom
            else:  # momentum 0.9, Nesterov or heavy ball
                m *= 0.9
                m += g
                p -= lr * (g + 0.9 * m) if self.opt == "nesterov" else lr * m

    def predict(self):
        chunks = [
            self.forward(self.Xt[s : s + 8192].astype(np.float32) / 255)[-1].argmax(axis=1)
            for s in range(0, len(self.Xt), 8192)
        ]
        return np.concatenate(chunks)


def epoch_order(seed, epoch, n):
    """The order steadynet's loop visits the training images in epoch ``epoch`` (0-based)."""
    rng = np.random.default_rng()
    rng.bit_generator.state = rng_state_of(seed, epoch)
    return rng.permutation(n)


# ----------------------------------------------------------------------------- floors


def step_operands(case, rng):
    """One step's matrix products at a case's shapes, with the layouts the compiled step
    gives them (float32): each layer's forward ``A @ W``, weight gradient ``A.T @ dZ`` and,
    above the first layer, input gradient ``dZ @ W.T``; as ``(left, right, out)`` triples."""
    hidden, _, _, _, bs, _ = case
    sizes = (784, *hidden, 10)
    operands = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        A = rng.random((bs, fan_in), dtype=np.float32)
        W = rng.normal(size=(fan_in, fan_out)).astype(np.float32)
        dZ = rng.normal(size=(bs, fan_out)).astype(np.float32)
        operands.append((A, W, np.empty((bs, fan_out), np.float32)))
        operands.append((A.T, dZ, np.empty((fan_in, fan_out), np.float32)))
        if i:
            operands.append((dZ, W.T, np.empty((bs, fan_in), np.float32)))
    return operands


def gemm_floor(case, n=60000, repeats=3, device="cpu"):
    """Seconds per epoch spent in the matrix products alone (:func:`step_operands`, float32,
    preallocated outputs): the best of ``repeats`` epochs of steps."""
    xp = get_array_module(device)
    operands = [tuple(xp.asarray(a) for a in triple) for triple in step_operands(case, np.random.default_rng(0))]
    steps = -(-n // case[4])
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            for A, B, C in operands:
                xp.matmul(A, B, out=C)
        if xp is not np:
            xp.cuda.get_current_stream().synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def peak_rss_of_training(epochs=2):
    """Peak resident memory (MB) of a `steadynet train` process on MNIST with the defaults.

    The process reports its own high-water mark (VmHWM, Linux): the rusage of a child would
    also count the pages it shared with this process between fork and exec.
    """
    out = f"/tmp/steadynet-bench-{os.getpid()}-{time.time_ns()}"
    code = (
        "import sys; from steadynet.cli.app import main; rc = main(sys.argv[1:]); "
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]); sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "train", "--epochs", str(epochs), "--quiet", "--out", out],
        check=True,
        capture_output=True,
        text=True,
    )
    kb = int(done.stdout.split("VmHWM:")[1].split()[0])
    return kb / 1024


# ----------------------------------------------------------------------------- running


def run_case(name, data, seed=0, device="cpu"):
    case = CASES[name]
    epochs = case[-1]
    sn = Steadynet(case, data, seed, device)
    weights = sn.initial_weights()
    trainers = [sn, Torch(case, data, seed, weights, device)]
    if device == "cpu":
        trainers += [Sklearn(case, data, seed, weights), PlainNumpy(case, data, seed, weights)]
    if sn.execution["engine"] != "numpy":  # the reference path beside the compiled one
        trainers.append(Steadynet(case, data, seed, device, engine="numpy", name="steadynet numpy"))
    times = {t.name: [] for t in trainers}
    accs = {t.name: [] for t in trainers}
    for e in range(epochs):
        for t in trainers:  # interleaved: epoch e of each, back to back
            times[t.name].append(seconds(lambda: t.epoch(e)))
            accs[t.name].append(float(np.mean(t.predict() == data.y_test)))
    predict = {t.name: min(seconds(t.predict) for _ in range(3)) for t in trainers}
    return times, accs, predict, gemm_floor(case, device=device)


def seconds(f):
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def summarise(name, runs):
    """Table rows of one case from its runs, each ``(times, accs, predict, floor)`` as
    :func:`run_case` returns it. Times pool the runs' epochs 2..N; the ratio to steadynet is
    the median of per-epoch ratios within each run, then the median and range over the runs."""
    rows = []
    for fw in runs[0][0]:
        t = [x for times, *_ in runs for x in times[fw][1:]]  # epoch 1 warms caches: epochs 2..N
        ratios = [statistics.median(a / b for a, b in zip(times[fw][1:], times["steadynet"][1:])) for times, *_ in runs]
        hits = [time_to_target(times[fw], accs[fw]) for times, accs, *_ in runs]
        hits = [h for h in hits if h is not None]
        accs = runs[0][1][fw]
        spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(runs) > 1 else ""
        rows.append(
            f"| {name} | {fw} | {statistics.median(t):.3f} | {min(t):.3f}-{max(t):.3f} | "
            f"{statistics.median(ratios):.2f}x{spread} | {' '.join(f'{a:.4f}' for a in accs)} | "
            f"{f'{statistics.median(hits):.2f}' if hits else '-'} | "
            f"{min(r[2][fw] for r in runs):.3f} | {min(r[3] for r in runs):.3f} |"
        )
    return rows


def time_to_target(times, accs):
    cumulative = np.cumsum(times)
    return next((float(cumulative[i]) for i, a in enumerate(accs) if a >= TARGET), None)


HEADER = [
    "| case | trainer | s/epoch (median, epochs 2..N of every run) | range | time vs steadynet "
    "(median over runs of each run's median per-epoch ratio; range over runs) | test acc after each "
    "epoch (first run) | s to 97.0% test (median of runs) | s to predict the 10,000 test images (best) "
    "| GEMM floor s/epoch |",
    "|---|---|---|---|---|---|---|---|---|",
]


# ----------------------------------------------------------------------------- products


def time_products(case, threads, rounds=5):
    """Microseconds per step of one step's matrix products (:func:`step_operands`, outputs
    preallocated), NumPy's BLAS against PyTorch's on the same arrays, on ``threads`` threads:
    the best of ``rounds`` rounds, the two alternating round by round so that a busy moment
    hits both. Each waits a moment first: a BLAS's idle workers spin for a while after its
    last call, and would hold the cores the other library's workers need."""
    import torch

    operands = step_operands(case, np.random.default_rng(0))
    tensors = [tuple(torch.from_numpy(a) for a in triple) for triple in operands]
    macs = sum(A.shape[0] * A.shape[1] * B.shape[1] for A, B, _ in operands)
    reps = max(20, int(4e8 // macs))

    def numpy_products():
        for A, B, C in operands:
            np.matmul(A, B, out=C)

    def torch_products():
        for tA, tB, tC in tensors:
            torch.mm(tA, tB, out=tC)

    best = {"numpy": float("inf"), "pytorch": float("inf")}
    default = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with blas_threads(threads):
            for _ in range(rounds):
                for name, f in (("numpy", numpy_products), ("pytorch", torch_products)):
                    time.sleep(0.1)  # the other library's worker threads stop spinning
                    f()  # warm
                    start = time.perf_counter()
                    for _ in range(reps):
                        f()
                    best[name] = min(best[name], (time.perf_counter() - start) / reps * 1e6)
    finally:
        torch.set_num_threads(default)
    return best


def products_rows(names):
    """Table rows: per case and thread count, one step's products on NumPy's BLAS and on PyTorch's."""
    rows = []
    for name in names:
        for threads in sorted({1, available_cores()}):
            best = time_products(CASES[name], threads)
            rows.append(
                f"| {name} | {threads} | {best['numpy']:.1f} | {best['pytorch']:.1f} | "
                f"{best['numpy'] / best['pytorch']:.2f}x |"
            )
    return rows


PRODUCTS_HEADER = [
    "| case | threads | one step's matrix products, NumPy's BLAS (us, best of 5 rounds) | the same "
    "in PyTorch | NumPy's time / PyTorch's |",
    "|---|---|---|---|---|",
]


# ----------------------------------------------------------------------------- contention


class BusyProcess:
    """One other process keeping a core busy: a plain Python loop, as a browser tab or a
    colleague's script would. It ends itself after ``limit`` seconds, so that no crash or
    Ctrl-C of the benchmark can leave it running; :meth:`stop` ends it sooner."""

    def __init__(self, limit=BUSY_LIMIT):
        code = f"import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end:\n    pass\n"
        self.process = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(0.2)  # let it reach its loop

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def run_contention(data, seed=0):
    """Seconds per epoch of each trainer, quiet and beside one busy process, interleaved:
    epoch e of every trainer quiet, then epoch e + 1 of every trainer busy, and so on."""
    case = (*CONTENTION[:-1], 2 * CONTENTION[-1])  # epochs: half of them quiet, half busy
    sn = Steadynet(case, data, seed)
    weights = sn.initial_weights()
    trainers = [
        sn,
        Steadynet(
            case,
            data,
            seed,
            engine="numpy",
            threads=available_cores(),
            name="steadynet numpy, BLAS default threads (before)",
        ),
        Torch(case, data, seed, weights),
        Torch(case, data, seed, weights, threads=1, name="pytorch 1 thread"),
    ]
    times = {t.name: {"quiet": [], "busy": []} for t in trainers}
    for e in range(case[-1]):
        busy = e % 2 == 1
        with BusyProcess() if busy else nullcontext():
            for t in trainers:
                times[t.name]["busy" if busy else "quiet"].append(seconds(lambda: t.epoch(e)))
    return times, sn.execution


def summarise_contention(runs):
    """Rows: per trainer, quiet and busy medians (every run's epochs after the first quiet
    one), busy over quiet, and busy against steadynet busy, each with its range over runs."""
    rows = []
    for fw in runs[0][0]:
        quiet = [x for times, _ in runs for x in times[fw]["quiet"][1:]]
        busy = [x for times, _ in runs for x in times[fw]["busy"]]
        slowdown = [statistics.median(t[fw]["busy"]) / statistics.median(t[fw]["quiet"][1:]) for t, _ in runs]
        vs = [statistics.median(a / b for a, b in zip(t[fw]["busy"], t["steadynet"]["busy"])) for t, _ in runs]
        rows.append(
            f"| {fw} | {statistics.median(quiet):.3f} ({min(quiet):.3f}-{max(quiet):.3f}) | "
            f"{statistics.median(busy):.3f} ({min(busy):.3f}-{max(busy):.3f}) | "
            f"{statistics.median(slowdown):.2f}x ({min(slowdown):.2f}-{max(slowdown):.2f}) | "
            f"{statistics.median(vs):.2f}x ({min(vs):.2f}-{max(vs):.2f}) |"
        )
    return rows


CONTENTION_HEADER = [
    "| trainer (784-30-10 sigmoid, Nesterov, batch 64) | quiet s/epoch (median, range) | "
    "beside one busy process | busy / quiet (median of runs, range) | busy, time vs "
    "steadynet busy |",
    "|---|---|---|---|---|",
]


def shift_cost(data, seed=0):
    """Seconds of one epoch's one-pixel shifts of the training set (in epoch order, into a
    reused array, as the loop does them), and of one epoch of the seed network (batch 64)."""
    X = data.x_train
    order, out = np.random.default_rng(seed).permutation(len(X)), np.empty_like(X)
    shifts = min(
        seconds(lambda: random_shifts(X, data.image_shape, 1, np.random.default_rng(1), index=order, out=out))
        for _ in range(3)
    )
    sn = Steadynet((*CONTENTION[:-1], 3), data, seed)
    epoch = min(seconds(lambda: sn.epoch(e)) for e in range(3))
    return shifts, epoch


def environment(device="cpu"):
    import torch

    where = (
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"Python {platform.python_version()}, steadynet {steadynet.__version__}, NumPy {np.__version__}"
    )
    if device == "gpu":
        import cupy

        gpu = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        return f"{where}; {gpu}, CuPy {cupy.__version__}, PyTorch {torch.__version__} (CUDA {torch.version.cuda})"
    import sklearn
    from threadpoolctl import threadpool_info

    blas = ", ".join(
        f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    )
    return (
        f"{where} [{blas}], PyTorch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"scikit-learn {sklearn.__version__}"
    )


NOTES_MARK = "<!-- written by hand from here on: bench.py --write keeps it -->"


def kept_notes(path):
    """The hand-written part of a results file (from ``NOTES_MARK`` on), which ``--write``
    keeps below the fresh tables; empty when there is none."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return ""
    at = text.find(NOTES_MARK)
    return text[at:] if at >= 0 else ""


def main():
    parser = argparse.ArgumentParser(description="steadynet vs PyTorch, scikit-learn and plain NumPy, epoch by epoch")
    parser.add_argument("--cases", default=",".join([*CASES, *EXTRA]), help=f"comma-separated of {[*CASES, *EXTRA]}")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each case, one after the other (default 3)")
    parser.add_argument("--data", default="mnist", help="data set: a name or a file (default: mnist)")
    parser.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "gpu"],
        help="gpu: steadynet on CuPy against PyTorch on CUDA (no scikit-learn, no plain NumPy)",
    )
    parser.add_argument(
        "--write", action="store_true", help="write benchmarks/RESULTS.md (RESULTS-gpu.md with --device gpu)"
    )
    args = parser.parse_args()
    data = load_data(args.data)
    names = args.cases.split(",")
    unknown = sorted(set(names) - {*CASES, *EXTRA})
    if unknown:
        parser.error(f"--cases: unknown {unknown}; known are {[*CASES, *EXTRA]}")
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    how = execution(TrainConfig(device=args.device), (784, 30, 10), len(data.y_train))
    lines = [
        environment(args.device),
        "",
        f"steadynet's step: {how['engine']} "
        f"({'compiled with numba' if how['engine'] == 'numba' else 'NumPy'}); {args.repeats} run(s) per case.",
        "",
    ]
    print("\n".join(lines), flush=True)
    table = [name for name in names if name in CASES]
    if table:
        lines += HEADER
        print("\n".join(HEADER), flush=True)
    for name in table:
        rows = summarise(name, [run_case(name, data, device=args.device) for _ in range(args.repeats)])
        print("\n".join(rows), flush=True)
        lines += rows
    if "contention" in names and args.device == "cpu":
        runs = [run_contention(data) for _ in range(args.repeats)]
        block = [
            "",
            f"Contention (steadynet: {runs[0][1]['engine']}, {runs[0][1]['threads']} BLAS thread(s) "
            f"by its policy; {available_cores()} cores; {args.repeats} run(s)):",
            "",
        ]
        block += CONTENTION_HEADER + summarise_contention(runs)
        print("\n".join(block), flush=True)
        lines += block
    if "products" in names and args.device == "cpu":
        block = [
            "",
            "Products: one step's matrix products alone, at each case's shapes (float32, outputs "
            "preallocated), on NumPy's BLAS and on PyTorch's:",
            "",
        ]
        block += PRODUCTS_HEADER + products_rows(list(CASES))
        print("\n".join(block), flush=True)
        lines += block
    if args.device == "cpu" and table:
        shifts, epoch = shift_cost(data)
        rss = peak_rss_of_training()
        lines += [
            "",
            f"Shifts: one epoch's one-pixel shifts of the {len(data.y_train):,} training images took "
            f"{shifts:.3f} s, {shifts / epoch:.2f} of an epoch of the seed network at batch 64 "
            f"({epoch:.3f} s; best of 3 each).",
            "",
            f"Peak resident memory of `steadynet train` (defaults, MNIST, 2 epochs, plots drawn): {rss:.0f} MB",
        ]
        print("\n".join(lines[-3:]))
    if args.write:
        suffix = "-gpu" if args.device == "gpu" else ""
        path = os.path.join(os.path.dirname(__file__), f"RESULTS{suffix}.md")
        kept = kept_notes(path)
        with open(path, "w") as f:
            f.write(
                f"# Benchmark results\n\nProduced by `python benchmarks/bench.py --write"
                f"{' --device gpu' if suffix else ''}`.\n\n"
            )
            f.write("\n".join(lines) + "\n")
            if kept:
                f.write("\n" + kept)


if __name__ == "__main__":
    main()
