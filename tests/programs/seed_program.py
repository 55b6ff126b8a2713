"""The seed's program, rewritten: a 784-30-10 sigmoid network with all nine of its mistakes.

Written the way the seed's author wrote it (our own rewrite, for the tests): a params dict,
np.random.rand weights, Python's sum() in the softmax, the integer label column passed to
backprop, the "softmax derivative", z * (1 - z) of Z, y - A2 subtracted, summed gradients,
and the loss divided by the number of classes. Only the data comes in as arguments.
"""

import numpy as np
from numpy import exp

number_of_digits = 10
ny = number_of_digits
Nh = 30
alpha = 0.001


def init_params(nx, seed=0):
    np.random.seed(seed)
    return {
        "W1": np.random.rand(nx, Nh),
        "b1": np.zeros((1, Nh)),
        "W2": np.random.rand(Nh, ny),
        "b2": np.zeros((1, ny)),
    }


def sigmoid(z):
    return 1 / (1 + exp(-z))


def sigmoid_der(z):
    return z * (1 - z)


def softmax(z):
    return 1 / sum(exp(z)) * exp(z)


def softmax_der(z):
    return sigmoid_der(z)


def cross_entropy_error(v, y):
    return -np.log(v[y])


def forward_prop(X, y, params):
    outs = {}
    outs["A0"] = X
    outs["Z1"] = np.matmul(outs["A0"], params["W1"]) + params["b1"]
    outs["A1"] = sigmoid(outs["Z1"])
    outs["Z2"] = np.matmul(outs["A1"], params["W2"]) + params["b2"]
    outs["A2"] = softmax(outs["Z2"])
    outs["error"] = cross_entropy_error(outs["A2"], y)
    return outs


def back_prop(X, y, params, outs):
    grads = {}
    Eo = (y - outs["A2"]) * softmax_der(outs["Z2"])
    Eh = np.matmul(Eo, params["W2"].T) * sigmoid_der(outs["Z1"])
    dW2 = np.matmul(Eo.T, outs["A1"]).T
    dW1 = np.matmul(Eh.T, X).T
    db2 = np.sum(Eo, 0)
    db1 = np.sum(Eh, 0)
    grads["dW2"] = dW2
    grads["dW1"] = dW1
    grads["db2"] = db2
    grads["db1"] = db1
    return grads


def reported_loss(X, y, params):
    outs = forward_prop(X, y, params)
    return 1 / ny * np.sum(outs["error"])
