"""The fast path against a plain reference, step for step.

The training loop's fast path (one flat parameter buffer, fused softmax cross-entropy, the
sigmoid written with tanh, optimisers updating the buffer block by block with BLAS axpby,
subnormal state flushed, uint8 batches gathered by index and scaled) must compute what the
textbook computes. The reference below is written the plain way: a list of weight matrices,
``1 / (1 + exp(-Z))``, one-hot targets, ``P - Y`` divided by the batch size, and each
optimiser's update array by array. After every step of training, every parameter of the two
must agree.
"""

import math

import numpy as np
import pytest

from steadynet import blas, optim
from steadynet.config import TrainConfig
from steadynet.model import MLP
from steadynet.optim import make_optimizer
from steadynet.train.loop import LoopState, rng_state_of, train_loop

ACTIVATION = {  # name -> (f(Z), f'(Z))
    "sigmoid": (lambda Z: 1 / (1 + np.exp(-Z)), lambda Z: np.exp(-Z) / (1 + np.exp(-Z)) ** 2),
    "relu": (lambda Z: np.maximum(Z, 0), lambda Z: (Z > 0).astype(Z.dtype)),
}


def reference_steps(Ws, bs, X, y, activation, optimizer, lr, batch_size, epochs, seed):
    """Plain mini-batch training; yields the list of parameters ``Ws + bs`` after each step."""
    f, f_prime = ACTIVATION[activation]
    params = [W.copy() for W in Ws] + [b.copy() for b in bs]
    L = len(Ws)
    state = {"v": [np.zeros_like(p) for p in params], "m": [np.zeros_like(p) for p in params]}
    t = 0
    for epoch in range(epochs):
        rng = np.random.default_rng()
        rng.bit_generator.state = rng_state_of(seed, epoch)  # the loop's data order
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch_size):
            rows = order[start : start + batch_size]
            A0 = X[rows].astype(Ws[0].dtype) / 255
            n = len(rows)
            # forward, keeping every pre-activation
            As, Zs = [A0], []
            for i in range(L):
                Z = As[-1] @ params[i] + params[L + i]
                Zs.append(Z)
                As.append(f(Z) if i < L - 1 else Z)
            P = np.exp(Zs[-1]) / np.exp(Zs[-1]).sum(axis=1, keepdims=True)
            Y = np.eye(P.shape[1], dtype=P.dtype)[y[rows]]
            dZ = (P - Y) / n
            grads = [None] * (2 * L)
            for i in range(L - 1, -1, -1):
                grads[i] = As[i].T @ dZ
                grads[L + i] = dZ.sum(axis=0)
                if i:
                    dZ = (dZ @ params[i].T) * f_prime(Zs[i - 1])
            # update, array by array
            t += 1
            for j, (p, g) in enumerate(zip(params, grads)):
                if optimizer == "nesterov":
                    v = state["v"][j]
                    v[...] = 0.9 * v + g
                    p -= lr * (g + 0.9 * v)
                else:  # adam
                    m, v = state["m"][j], state["v"][j]
                    m[...] = 0.9 * m + 0.1 * g
                    v[...] = 0.999 * v + 0.001 * g * g
                    m_hat, v_hat = m / (1 - 0.9**t), v / (1 - 0.999**t)
                    p -= lr * m_hat / (np.sqrt(v_hat) + 1e-8)
            yield [p.copy() for p in params]


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-9), ("float32", 2e-4)])
@pytest.mark.parametrize(
    "activation, optimizer, lr, with_blas",
    [
        ("sigmoid", "nesterov", 0.1, False),  # momentum never uses BLAS (see optim.SGD)
        ("relu", "adam", 3e-3, True),
        ("relu", "adam", 3e-3, False),
    ],
    ids=["nesterov", "adam-blas", "adam-numpy"],
)
def test_training_steps_match_the_plain_reference(activation, optimizer, lr, with_blas, dtype, rtol, monkeypatch):
    # small blocks and a short flush period, so this small network goes through the blocked
    # update and the subnormal flush like a large one; Adam with BLAS's axpby and without
    monkeypatch.setattr(optim, "BLOCK", 256)
    monkeypatch.setattr(optim, "FLUSH_EVERY", 4)
    if with_blas:
        monkeypatch.setattr(optim, "BLAS_MIN", 0)  # BLAS even for arrays this short
    else:
        monkeypatch.setattr(blas, "_KERNELS", {})
    rng = np.random.default_rng(3)
    X = rng.integers(0, 256, size=(90, 64), dtype=np.uint8)
    X[:, :8] = 0  # inputs that are always 0: their weights never get a gradient
    y = rng.integers(0, 5, size=90)
    config = TrainConfig(
        hidden=(40, 24),
        activation=activation,
        optimizer=optimizer,
        learning_rate=lr,
        batch_size=16,
        epochs=3,
        schedule="constant",
        augment_shift=0,
        val_size=0,
        dtype=dtype,
        seed=0,
    )
    model = MLP((64, 40, 24, 5), activation, dtype=dtype, seed=5)
    assert model.n_params > 4 * optim.BLOCK  # the blocked path is taken
    Ws = [model.params[f"W{i}"].copy() for i in (1, 2, 3)]
    bs = [model.params[f"b{i}"].copy() for i in (1, 2, 3)]

    ours = []
    optimizer_ = make_optimizer(optimizer, model.n_weights, 0.0, 0.9)
    for _ in train_loop(
        model, optimizer_, config, X, y, (8, 8), state=LoopState(), on_step=lambda info: ours.append(model.theta.copy())
    ):
        pass

    expected = list(reference_steps(Ws, bs, X, y, activation, optimizer, lr, 16, 3, seed=0))
    assert len(ours) == len(expected) == 3 * math.ceil(90 / 16)
    names = list(model.params)
    for step, (theta, params) in enumerate(zip(ours, expected), 1):
        model.theta[...] = theta
        for name, p in zip(names, params):  # W1, W2, W3, b1, b2, b3
            np.testing.assert_allclose(
                model.params[name], p, rtol=rtol, atol=rtol * 1e-2, err_msg=f"{name} after step {step}"
            )
    assert not np.array_equal(ours[-1], ours[0])  # it trained


@pytest.mark.parametrize("name", ["adam", "nesterov"])
def test_state_of_stopped_gradients_never_turns_subnormal(name):
    """Entries whose gradient stops decay geometrically; left alone they would pass through
    the subnormal range (about 100x slower to compute with on x86). The flush zeroes them
    before they get there, and leaves every entry that still matters alone."""
    n = 3 * optim.BLOCK + 7  # the blocked path
    rng = np.random.default_rng(0)
    theta = rng.normal(size=n).astype(np.float32)
    opt = make_optimizer(name, n)
    grad = rng.normal(size=n).astype(np.float32)
    opt.step(theta, grad, 1e-3)
    grad[: n // 2] = 0  # half the gradient stops
    tiny = np.finfo(np.float32).tiny
    for step in range(2, 1200):
        opt.step(theta, grad, 1e-3)
        for state in (opt.v,) + ((opt.m,) if name == "adam" else ()):
            subnormal = (state != 0) & (np.abs(state) < tiny)
            assert not subnormal.any(), f"subnormal state after step {step}"
    live = opt.m if name == "adam" else opt.v
    assert np.all(live[n // 2 :] != 0)  # entries with a gradient are untouched
    assert np.all(live[: n // 2] == 0)  # 0.9 ** 1200 of anything is below float32's range
