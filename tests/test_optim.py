"""Optimiser updates recomputed from their formulas, on several parameter shapes."""

import math

import numpy as np
import pytest

from steadynet.optim import SGD, Adam, Momentum, clip_grad_norm, make_optimizer
from steadynet.schedules import learning_rate


def flat(shapes, rng):
    return [rng.normal(size=s) for s in shapes]


SHAPES = [(4, 6), (6, 8), (7, 8, 9)]


def concat(arrays):
    return np.concatenate([a.ravel() for a in arrays])


def test_sgd_is_theta_minus_lr_grad():
    rng = np.random.default_rng(0)
    theta, grad = concat(flat(SHAPES, rng)), concat(flat(SHAPES, rng))
    expected = theta - 0.3 * grad
    SGD(n_weights=theta.size).step(theta, grad, 0.3)
    np.testing.assert_array_equal(theta, expected)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_rule(nesterov):
    rng = np.random.default_rng(1)
    theta = rng.normal(size=50)
    ref, v = theta.copy(), np.zeros(50)
    opt = Momentum(n_weights=50, momentum=0.8, nesterov=nesterov)
    for _ in range(4):
        g = rng.normal(size=50)
        v = 0.8 * v + g
        ref -= 0.1 * (g + 0.8 * v if nesterov else v)
        opt.step(theta, g.copy(), 0.1)
    np.testing.assert_allclose(theta, ref, rtol=1e-13)


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_rule_with_decay_on_weights_only(decoupled):
    rng = np.random.default_rng(2)
    n, nw, wd, lr, b1, b2, eps = 40, 30, 0.1, 0.01, 0.9, 0.999, 1e-8
    theta = rng.normal(size=n)
    ref, m, v = theta.copy(), np.zeros(n), np.zeros(n)
    opt = Adam(n_weights=nw, weight_decay=wd, decoupled=decoupled)
    for t in range(1, 6):
        g = rng.normal(size=n)
        opt.step(theta, g.copy(), lr)
        if decoupled:
            ref[:nw] *= 1 - lr * wd
        else:
            g[:nw] += wd * ref[:nw]
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        ref -= lr * m_hat / (np.sqrt(v_hat) + eps)
    np.testing.assert_allclose(theta, ref, rtol=1e-10)


def test_l2_decay_leaves_biases_alone():
    theta, grad = np.ones(10), np.zeros(10)
    SGD(n_weights=6, weight_decay=0.5).step(theta, grad, 1.0)
    np.testing.assert_array_equal(theta, [0.5] * 6 + [1.0] * 4)


def test_clip_grad_norm():
    g = np.array([3.0, 4.0])
    assert clip_grad_norm(g, 1.0) == 5.0
    np.testing.assert_allclose(g, [0.6, 0.8])
    g = np.array([0.3, 0.4])
    clip_grad_norm(g, 1.0)
    np.testing.assert_array_equal(g, [0.3, 0.4])


def test_state_round_trip_continues_identically():
    rng = np.random.default_rng(3)
    theta = rng.normal(size=20)
    grads = [rng.normal(size=20) for _ in range(6)]
    a = make_optimizer("adam", 20)
    for g in grads[:3]:
        a.step(theta, g.copy(), 0.01)
    theta_b = theta.copy()
    b = make_optimizer("adam", 20)
    b.load_state_dict(a.state_dict(), theta_b)
    for g in grads[3:]:
        a.step(theta, g.copy(), 0.01)
        b.step(theta_b, g.copy(), 0.01)
    np.testing.assert_array_equal(theta, theta_b)


def test_unknown_optimiser_lists_options():
    with pytest.raises(
        ValueError, match=r"optimizer must be one of \['adam', 'adamw', 'momentum', 'nesterov', 'sgd'\]"
    ):
        make_optimizer("rmsprop", 10)


def test_schedules():
    assert learning_rate(5, 100, 0.1, "constant") == 0.1
    assert learning_rate(0, 100, 0.1, "constant", warmup_steps=10) == pytest.approx(0.01)
    assert learning_rate(9, 100, 0.1, "cosine", warmup_steps=10) == pytest.approx(0.1)
    assert learning_rate(55, 100, 0.1, "cosine", warmup_steps=10) == pytest.approx(0.05)
    assert learning_rate(100, 100, 0.1, "cosine") == pytest.approx(0.0)
    assert learning_rate(25, 100, 0.1, "step", decay_every=10, decay_factor=0.5) == pytest.approx(0.025)
    lrs = [learning_rate(s, 100, 1.0, "cosine") for s in range(100)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert math.isclose(lrs[0], 1.0)


@pytest.mark.parametrize("name", ["sgd", "nesterov", "adamw"])
def test_blocked_update_equals_the_whole_array_update(name, monkeypatch):
    """Large buffers are updated block by block: element for element the same arithmetic,
    so the result matches one pass over the whole array to the last place (a threaded BLAS
    axpby splits the whole array where it likes, and a split can move one rounding by 1 ulp)."""
    from steadynet import optim

    n = 5 * optim.BLOCK + 123
    rng = np.random.default_rng(4)
    theta0 = rng.normal(size=n).astype(np.float32)
    grads = [rng.normal(size=n).astype(np.float32) for _ in range(3)]

    def run():
        theta, opt = theta0.copy(), make_optimizer(name, n_weights=n - 1000, weight_decay=0.01)
        for g in grads:
            opt.step(theta, g.copy(), 0.01)
        return theta

    blocked = run()
    monkeypatch.setattr(optim, "BLOCK", 10 * n)
    np.testing.assert_array_max_ulp(blocked, run(), maxulp=1)


def kernel_against_formula(name, dtype, weight_decay, n, steps, engine="numpy"):
    """``theta`` after ``steps`` updates by the kernel training runs and by the plain formula,
    from the same start and the same gradients."""
    rng = np.random.default_rng(5)
    theta0 = rng.normal(size=n).astype(dtype)
    n_weights = n - n // 10
    kernel = make_optimizer(name, n_weights, weight_decay, momentum=0.9, engine=engine)
    formula = make_optimizer(name, n_weights, weight_decay, momentum=0.9)
    theta_kernel, theta_formula = theta0.copy(), theta0.copy()
    lr = 1e-3 if name.startswith("adam") else 0.01
    for _ in range(steps):
        g = rng.normal(size=n).astype(dtype)
        grad = g.copy()
        formula.plain_step(theta_formula, grad, lr)
        np.testing.assert_array_equal(grad, g)  # the formula leaves the gradient alone
        kernel.step(theta_kernel, g, lr)
    for state in kernel.state_names:
        assert getattr(kernel, state).dtype == theta0.dtype
    return theta_kernel, theta_formula, theta0


def assert_agree_to_rounding(kernel, formula, start, dtype):
    """Each step rounds differently (one rounding per operation, in another order), and over
    many steps the differences add up; they stay a few units of the parameters' precision
    (here at most about 11 units of the largest parameter)."""
    assert kernel.dtype == formula.dtype == dtype
    scale = np.abs(formula).max()
    np.testing.assert_allclose(kernel, formula, rtol=0, atol=32 * np.finfo(dtype).eps * scale)
    assert not np.array_equal(formula, start)


ALL = ["sgd", "momentum", "nesterov", "adam", "adamw"]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05], ids=["no-decay", "decay"])
def test_kernel_agrees_with_the_plain_formula_over_many_steps(name, dtype, weight_decay):
    """Arrays shorter than BLAS_MIN: the kernel's NumPy arithmetic, one call per pass."""
    kernel, formula, start = kernel_against_formula(name, dtype, weight_decay, n=1000, steps=300)
    assert_agree_to_rounding(kernel, formula, start, dtype)


@pytest.mark.parametrize("with_blas", [True, False], ids=["blas", "numpy-fallback"])
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05], ids=["no-decay", "decay"])
def test_blocked_kernel_agrees_with_the_plain_formula(name, dtype, weight_decay, with_blas, monkeypatch):
    """Long arrays: BLAS's axpby where it was found (else its NumPy fallback), block by block."""
    from steadynet import blas, optim

    if not with_blas:
        monkeypatch.setattr(blas, "_KERNELS", {})
    kernel, formula, start = kernel_against_formula(name, dtype, weight_decay, n=2 * optim.BLOCK + 999, steps=12)
    assert_agree_to_rounding(kernel, formula, start, dtype)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("weight_decay", [0.0, 0.05], ids=["no-decay", "decay"])
def test_compiled_kernel_agrees_with_the_plain_formula(name, weight_decay):
    from steadynet import kernels

    if not kernels.available():
        pytest.skip("numba is not installed")
    kernel, formula, start = kernel_against_formula(name, np.float32, weight_decay, n=1000, steps=100, engine="numba")
    assert_agree_to_rounding(kernel, formula, start, np.float32)


def test_the_names_map_to_classes_that_say_what_state_they_keep():
    from steadynet.optim import OPTIMIZERS, AdamW, Nesterov

    assert {name: len(cls.state_names) for name, cls in OPTIMIZERS.items()} == {
        "sgd": 0,
        "momentum": 1,
        "nesterov": 1,
        "adam": 2,
        "adamw": 2,
    }
    assert make_optimizer("nesterov", 5).nesterov and isinstance(make_optimizer("nesterov", 5), Nesterov)
    assert make_optimizer("adamw", 5).decoupled and isinstance(make_optimizer("adamw", 5), AdamW)
    assert not make_optimizer("momentum", 5).nesterov and not make_optimizer("adam", 5).decoupled
    assert make_optimizer("momentum", 5, momentum=0.5).momentum == 0.5
