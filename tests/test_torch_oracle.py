"""PyTorch as an oracle: the same weights give the same forward, backward and optimiser steps."""

import numpy as np
import pytest

from steadynet import MLP
from steadynet.optim import make_optimizer

torch = pytest.importorskip("torch", reason="needs PyTorch")

TORCH_ACT = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, 0.01),
}


def torch_forward(params, X, activation, n_layers):
    A = X
    for i in range(1, n_layers + 1):
        Z = A @ params[f"W{i}"] + params[f"b{i}"]
        A = TORCH_ACT[activation](Z) if i < n_layers else Z
    return A


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu"])
def test_forward_and_backward_match_torch(activation):
    rng = np.random.default_rng(0)
    model = MLP((12, 9, 7, 4), activation, dtype="float64", seed=1)
    model.theta[model.n_weights :] = rng.normal(0, 0.1, model.n_params - model.n_weights)
    X, y = rng.uniform(size=(10, 12)), rng.integers(0, 4, size=10)
    loss, Z = model.loss_and_grad(X, y)

    params = {k: torch.tensor(v, requires_grad=True) for k, v in model.state_dict().items()}
    Zt = torch_forward(params, torch.tensor(X), activation, 3)
    loss_t = torch.nn.functional.cross_entropy(Zt, torch.tensor(y))
    loss_t.backward()
    np.testing.assert_allclose(Z, Zt.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert loss == pytest.approx(loss_t.item(), rel=1e-12)
    for name, p in params.items():
        np.testing.assert_allclose(model.grads[name], p.grad.numpy(), rtol=1e-10, atol=1e-13, err_msg=name)


@pytest.mark.parametrize(
    "name, make_torch",
    [
        ("sgd", lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.01)),
        ("momentum", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01)),
        ("nesterov", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
        ("adam", lambda p: torch.optim.Adam(p, lr=0.1, weight_decay=0.01)),
        ("adamw", lambda p: torch.optim.AdamW(p, lr=0.1, weight_decay=0.01)),
    ],
)
def test_optimiser_trajectories_match_torch(name, make_torch):
    """Five steps on a real network; weight decay on weights only (torch: a param group)."""
    rng = np.random.default_rng(2)
    model = MLP((6, 5, 3), "tanh", dtype="float64", seed=3)
    X, y = rng.uniform(size=(8, 6)), rng.integers(0, 3, size=8)
    params = {k: torch.tensor(v, requires_grad=True) for k, v in model.state_dict().items()}
    weights = [params["W1"], params["W2"]]
    biases = [params["b1"], params["b2"]]
    opt_t = make_torch([{"params": weights}, {"params": biases, "weight_decay": 0.0}])
    opt = make_optimizer(name, model.n_weights, weight_decay=0.01, momentum=0.9)
    for _ in range(5):
        model.loss_and_grad(X, y)
        opt.step(model.theta, model.grad, 0.1)
        opt_t.zero_grad()
        torch.nn.functional.cross_entropy(torch_forward(params, torch.tensor(X), "tanh", 2), torch.tensor(y)).backward()
        opt_t.step()
    for k, p in params.items():
        np.testing.assert_allclose(model.params[k], p.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=k)
