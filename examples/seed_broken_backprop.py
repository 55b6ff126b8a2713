"""The seed's question, answered by steadynet.check_gradients.

"Is it the sigmoid, or is one of my backprop equations wrong?" Below is a 784-30-10 sigmoid +
softmax network written the way the seed wrote it: plain NumPy, a params dict, a hand-written
backprop. ``backprop(..., mistakes)`` can switch on the seed's backprop mistakes one at a time
(numbers from the seed README); the gradient check then names each one.

Run: python examples/seed_broken_backprop.py
"""

import numpy as np

from steadynet.diagnostics import check_gradients

SEED_MISTAKES = {
    "softmax_axis": "2: softmax normalised over the batch axis, not over the classes",
    "preactivation": "5: sigmoid derivative z * (1 - z) applied to the pre-activation Z1",
    "sign": "6: output error Y - A2 (the negative gradient)",
    "summed": "7: gradient summed over the batch, not averaged",
}


def sigmoid(Z):
    return 1 / (1 + np.exp(-Z))


def softmax(Z, axis=1):
    E = np.exp(Z - Z.max(axis=axis, keepdims=True))
    return E / E.sum(axis=axis, keepdims=True)


def loss(params, X, Y):
    """Mean cross-entropy of the (correct) forward pass; Y one-hot (n, 10)."""
    A1 = sigmoid(X @ params["W1"] + params["b1"])  # (n, 30)
    P = softmax(A1 @ params["W2"] + params["b2"])  # (n, 10), rows sum to 1
    return -np.sum(Y * np.log(P)) / X.shape[0]


def backprop(params, X, Y, mistakes=()):
    """The gradients of :func:`loss`, with the named seed mistakes switched on."""
    n = X.shape[0]
    Z1 = X @ params["W1"] + params["b1"]
    A1 = sigmoid(Z1)
    Z2 = A1 @ params["W2"] + params["b2"]
    P = softmax(Z2, axis=0 if "softmax_axis" in mistakes else 1)
    dZ2 = Y - P if "sign" in mistakes else P - Y  # (n, 10)
    if "summed" not in mistakes:
        dZ2 = dZ2 / n  # the batch mean, taken once
    dA1 = dZ2 @ params["W2"].T  # (n, 30)
    dZ1 = dA1 * (Z1 * (1 - Z1) if "preactivation" in mistakes else A1 * (1 - A1))
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(axis=0), "W2": A1.T @ dZ2, "b2": dZ2.sum(axis=0)}


def main():
    rng = np.random.default_rng(0)
    n = 32
    X = rng.uniform(0, 1, (n, 784))  # stands in for 32 MNIST images scaled to [0, 1]
    Y = np.eye(10)[rng.integers(0, 10, n)]
    params = {
        "W1": rng.uniform(-0.08, 0.08, (784, 30)),
        "b1": np.zeros(30),  # Glorot scale
        "W2": rng.uniform(-0.4, 0.4, (30, 10)),
        "b2": np.zeros(10),
    }

    def check(mistakes):
        return check_gradients(lambda p: loss(p, X, Y), backprop(params, X, Y, mistakes), params, batch_size=n)

    print("== the correct backprop ==")
    print(check(()).report())
    for name, what in SEED_MISTAKES.items():
        print(f"\n== seed mistake {what} ==")
        print(check((name,)).report())


if __name__ == "__main__":
    main()
