"""Central differences (float64), shared by the tests."""

import numpy as np


def numeric_grad(model, X, y, eps=1e-6, **kw):
    """d loss / d theta by central differences, every parameter."""
    theta = model.theta
    G = np.zeros_like(theta)
    for i in range(theta.size):
        old = theta[i]
        theta[i] = old + eps
        up = model.loss_and_grad(X, y, **kw)[0]
        theta[i] = old - eps
        down = model.loss_and_grad(X, y, **kw)[0]
        theta[i] = old
        G[i] = (up - down) / (2 * eps)
    return G


def relative_error(a, b):
    return float(np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max(), 1e-12))


def central_difference(f, X, eps=1e-6):
    """d f / d X by central differences, element by element; ``X`` is restored."""
    G = np.zeros_like(X)
    for i in np.ndindex(X.shape):
        old = X[i]
        X[i] = old + eps
        up = f(X)
        X[i] = old - eps
        down = f(X)
        X[i] = old
        G[i] = (up - down) / (2 * eps)
    return G
