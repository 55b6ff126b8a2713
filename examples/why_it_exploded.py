"""Measure, on real MNIST, what each of the seed network's mistakes does.

The seed (shared question): a 784-30-10 network, sigmoid hidden layer, softmax output,
cross-entropy, trained by full-batch gradient descent. This script writes that network's
training step once, with steadynet's own functions, and lets each of the nine mistakes be
switched on by number. It then trains

- the seed as written (all nine mistakes, learning rate 0.001, 3 iterations), and
- the correct network with one mistake switched on at a time (100 iterations),

and prints a table: loss, test accuracy, the largest weight, and the first iteration at which
anything went non-finite. Run: ``python examples/why_it_exploded.py`` (about 2 minutes).
"""

import argparse
import warnings

import numpy as np

from steadynet.data import load_data
from steadynet.functional import log_softmax, one_hot, sigmoid, sigmoid_grad, softmax
from steadynet.init import glorot_uniform

MISTAKES = {
    1: "integer labels used where one-hot Y is needed",
    2: "softmax over the batch axis, without the max subtracted",
    3: "cross-entropy picks rows v[y], not each sample's class",
    4: "extra 'softmax derivative' factor at the output",
    5: "sigmoid derivative applied to Z instead of A",
    6: "error y - A2 subtracted: gradient ascent",
    7: "gradients summed over the batch, not averaged",
    8: "weights uniform on [0, 1) (np.random.rand)",
    9: "reported loss divided by the number of classes",
}


def init(mistakes, rng, n_in=784, n_hidden=30, n_out=10):
    if 8 in mistakes:
        return [
            rng.uniform(0, 1, (n_in, n_hidden)),
            np.zeros(n_hidden),
            rng.uniform(0, 1, (n_hidden, n_out)),
            np.zeros(n_out),
        ]
    return [
        glorot_uniform(rng, n_in, n_hidden),
        np.zeros(n_hidden),
        glorot_uniform(rng, n_hidden, n_out),
        np.zeros(n_out),
    ]


def forward(params, X, mistakes):
    W1, b1, W2, b2 = params
    Z1 = X @ W1 + b1
    A1 = sigmoid(Z1)
    Z2 = A1 @ W2 + b2
    if 2 in mistakes:
        E = np.exp(Z2)  # overflows for large Z2
        A2 = E / E.sum(axis=0, keepdims=True)  # normalised over the samples of the batch
    else:
        A2 = softmax(Z2)
    return Z1, A1, Z2, A2


def loss_value(Z2, A2, y, mistakes):
    n = len(y)
    if 3 in mistakes:
        picked = -np.log(A2[y])  # whole rows, indexed by the labels
        total = picked.sum()
    else:
        total = -log_softmax(Z2)[np.arange(n), y].sum() if 2 not in mistakes else -np.log(A2[np.arange(n), y]).sum()
    return total / (10 if 9 in mistakes else n)


def step(params, X, y, lr, mistakes):
    W1, b1, W2, b2 = params
    n = len(y)
    Z1, A1, Z2, A2 = forward(params, X, mistakes)
    Y = y[:, None].astype(float) if 1 in mistakes else one_hot(y, 10, dtype=float)
    dZ2 = A2 - Y  # (n, 10): the gradient at the logits
    if 6 in mistakes:
        dZ2 = -dZ2  # the seed's y - A2, then subtracted below
    if 4 in mistakes:  # the seed's softmax_der was its sigmoid_der, taken of Z2 (mistake 5)
        dZ2 = dZ2 * (Z2 * (1 - Z2) if 5 in mistakes else A2 * (1 - A2))
    dA1 = dZ2 @ W2.T
    dZ1 = dA1 * (Z1 * (1 - Z1) if 5 in mistakes else sigmoid_grad(A1))
    scale = 1.0 if 7 in mistakes else 1.0 / n
    grads = [X.T @ dZ1 * scale, dZ1.sum(axis=0) * scale, A1.T @ dZ2 * scale, dZ2.sum(axis=0) * scale]
    for p, g in zip(params, grads):
        p -= lr * g
    return loss_value(Z2, A2, y, mistakes)


def run(mistakes, X, y, Xt, yt, iterations, lr, seed=0):
    params = init(mistakes, np.random.default_rng(seed))
    first_nan, losses = None, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflow warnings are part of what we measure
        for it in range(1, iterations + 1):
            losses.append(step(params, X, y, lr, mistakes))
            if first_nan is None and not all(np.isfinite(p).all() for p in params):
                first_nan = it
        A2 = forward(params, Xt, set())[3]
    acc = float((A2.argmax(axis=1) == yt).mean()) if np.isfinite(A2).all() else float("nan")
    max_w = max(float(np.abs(p).max()) for p in params[::2])
    return {"loss": losses[-1], "accuracy": acc, "max_w": max_w, "first_nan": first_nan}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1.0, help="learning rate of the correct network")
    args = parser.parse_args()
    data = load_data(args.data)
    X = data.x_train.astype(np.float64) / 255
    Xt = data.x_test.astype(np.float64) / 255

    print("| run | loss | test accuracy | max abs(W) | first non-finite iteration |")
    print("|---|---|---|---|---|")

    def row(name, r):
        nan = r["first_nan"] or "-"
        print(f"| {name} | {r['loss']:.4g} | {r['accuracy']:.4f} | {r['max_w']:.3g} | {nan} |", flush=True)

    row(
        "the seed as written: all 9 mistakes, lr 0.001, 3 iterations",
        run(set(MISTAKES), X, data.y_train, Xt, data.y_test, 3, 0.001),
    )
    row(
        f"correct network, lr {args.lr:g}, {args.iterations} iterations",
        run(set(), X, data.y_train, Xt, data.y_test, args.iterations, args.lr),
    )
    for k, text in MISTAKES.items():
        row(f"only mistake {k}: {text}", run({k}, X, data.y_train, Xt, data.y_test, args.iterations, args.lr))


if __name__ == "__main__":
    main()
