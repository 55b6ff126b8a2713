"""The numba kernels behind :mod:`steadynet.kernels` (imported only when the compiled path
runs; the formulas and the reasons for them are documented there).

Module-level functions, so that numba's cache (``cache=True``, in ``__pycache__``) keeps the
machine code between processes: compiled once, loaded in well under a second afterwards.
"""

import math

import numpy as np
from numba import njit

from .kernels import TANH_CLIP, TANH_P, TANH_Q

# error_model="numpy": a float division by zero gives inf or nan as in NumPy, instead of a
# test for ZeroDivisionError in every iteration (which would also keep loops from vectorising)
jit = njit(cache=True, nogil=True, error_model="numpy")


@jit
def tanh_rational(x):  # float32 tanh without a library call (TANH_P, TANH_Q); nan stays nan
    x = TANH_CLIP if x > TANH_CLIP else (-TANH_CLIP if x < -TANH_CLIP else x)
    s = x * x
    p = (((TANH_P[4] * s + TANH_P[3]) * s + TANH_P[2]) * s + TANH_P[1]) * s + TANH_P[0]
    q = (((TANH_Q[4] * s + TANH_Q[3]) * s + TANH_Q[2]) * s + TANH_Q[1]) * s + TANH_Q[0]
    t = x * p / q
    one = np.float32(1)
    return one if t > one else (-one if t < -one else t)


@jit
def add_bias_and_activate(Z, b, code, slope, rational):
    """Z = f(Z + b) in place, row by row; each case its own branch-free loop (vectorised)."""
    n, m = Z.shape
    half, one, zero = Z.dtype.type(0.5), Z.dtype.type(1), Z.dtype.type(0)  # no float64 in float32 sums
    for r in range(n):
        if code == 0 and rational:  # sigmoid as (1 + tanh(Z / 2)) / 2
            for c in range(m):
                Z[r, c] = half * (one + tanh_rational(half * (Z[r, c] + b[c])))
        elif code == 0:
            for c in range(m):
                Z[r, c] = half * (one + math.tanh(half * (Z[r, c] + b[c])))
        elif code == 1 and rational:
            for c in range(m):
                Z[r, c] = tanh_rational(Z[r, c] + b[c])
        elif code == 1:
            for c in range(m):
                Z[r, c] = math.tanh(Z[r, c] + b[c])
        elif code == 2:  # relu; z * 0 keeps a nan a nan
            for c in range(m):
                z = Z[r, c] + b[c]
                Z[r, c] = z if z > zero else z * zero
        elif code == 3:
            for c in range(m):
                z = Z[r, c] + b[c]
                Z[r, c] = z if z > zero else slope * z
        else:  # identity, and the logits
            for c in range(m):
                Z[r, c] = Z[r, c] + b[c]


@jit
def multiply_by_activation_grad(dA, A, code, slope):
    """dA *= f'(Z), written in terms of the output A, in place."""
    n, m = dA.shape
    one, zero = dA.dtype.type(1), dA.dtype.type(0)
    for r in range(n):
        if code == 0:
            for c in range(m):
                dA[r, c] = A[r, c] * (one - A[r, c]) * dA[r, c]
        elif code == 1:
            for c in range(m):
                dA[r, c] = (one - A[r, c] * A[r, c]) * dA[r, c]
        elif code == 2:
            for c in range(m):
                dA[r, c] = dA[r, c] if A[r, c] > zero else dA[r, c] * zero
        elif code == 3:
            for c in range(m):
                dA[r, c] = dA[r, c] if A[r, c] > zero else slope * dA[r, c]


@jit
def loss_and_grad(X, y, Ws, bs, dWs, dbs, As, code, slope, scale, rational):
    n, L = X.shape[0], len(Ws)
    # forward: Z = A @ W + b, then A = f(Z) into As[i], except at the logits
    logits = np.empty((n, Ws[L - 1].shape[1]), X.dtype)
    for i in range(L):
        W, b = Ws[i], bs[i]
        A = X if i == 0 else As[i - 1]
        Z = logits if i == L - 1 else As[i]
        np.dot(A, W, Z)  # (n, n_in) @ (n_in, n_out)
        add_bias_and_activate(Z, b, 4 if i == L - 1 else code, slope, rational)
    # softmax cross-entropy: loss = mean(log sum exp Z - Z[y]), dZ = (P - Y) / n
    Z = logits
    k = Z.shape[1]
    dZ = np.empty_like(Z)
    total_loss, bad = 0.0, False
    for r in range(n):
        if y[r] < 0 or y[r] >= k:
            bad = True
            continue
        top = Z[r, 0]
        for c in range(1, k):
            top = max(top, Z[r, c])
        total = 0.0
        for c in range(k):
            e = math.exp(Z[r, c] - top)
            dZ[r, c] = e
            total += e
        total_loss += math.log(total) - (Z[r, y[r]] - top)
        for c in range(k):
            dZ[r, c] = dZ[r, c] / total * scale
        dZ[r, y[r]] -= scale
    if bad:
        return math.nan, Z, True
    # backward: dW = A.T @ dZ, db = sum of dZ's rows, dZ of the layer below = (dZ @ W.T) f'(A)
    for i in range(L - 1, -1, -1):
        A = X if i == 0 else As[i - 1]
        np.dot(A.T, dZ, dWs[i])  # (n_in, n) @ (n, n_out)
        db = dbs[i]
        db[:] = 0
        for r in range(n):
            for c in range(dZ.shape[1]):
                db[c] += dZ[r, c]
        if i:  # the first layer's input is the data: its gradient is never used
            dA = np.dot(dZ, Ws[i].T)  # (n, n_out) @ (n_out, n_in)
            multiply_by_activation_grad(dA, A, code, slope)
            dZ = dA
    return total_loss * scale, Z, False


@jit
def gather_scaled(X, rows, out, scale):
    for r in range(rows.shape[0]):
        source = X[rows[r]]
        for c in range(X.shape[1]):
            out[r, c] = out.dtype.type(source[c]) * scale


# The updates: scalars come in the parameters' dtype and each loop is branch-free, so that
# the compiler vectorises it (a float64 scalar, or a test inside the loop, would stop that).
@jit
def sgd(theta, grad, lr, n_l2, wd):
    for i in range(n_l2):
        grad[i] += wd * theta[i]  # dW += wd W, the gradient of wd / 2 ||W||^2
    for i in range(theta.shape[0]):
        theta[i] -= lr * grad[i]


@jit
def momentum(theta, grad, v, lr, mu, nesterov, n_l2, wd):
    for i in range(n_l2):
        grad[i] += wd * theta[i]
    if nesterov:
        for i in range(theta.shape[0]):
            v[i] = mu * v[i] + grad[i]  # v = mu v + g
            theta[i] -= lr * (grad[i] + mu * v[i])
    else:
        for i in range(theta.shape[0]):
            v[i] = mu * v[i] + grad[i]
            theta[i] -= lr * v[i]


@jit
def adam(theta, grad, m, v, step, b1, c1, b2, c2, eps_hat, n_l2, wd, n_shrink, shrink):
    for i in range(n_l2):
        grad[i] += wd * theta[i]
    for i in range(n_shrink):
        theta[i] *= shrink  # AdamW: W *= 1 - lr wd
    for i in range(theta.shape[0]):
        g = grad[i]
        m[i] = b1 * m[i] + c1 * g  # m = b1 m + (1 - b1) g
        v[i] = b2 * v[i] + c2 * (g * g)  # v = b2 v + (1 - b2) g^2
        # theta -= lr sqrt(bc2) / bc1 * m / (sqrt(v) + eps sqrt(bc2)), as in optim.Adam
        theta[i] -= step * m[i] / (np.sqrt(v[i]) + eps_hat)
