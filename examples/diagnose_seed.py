"""The seed's question, answered in one call: ``steadynet.diagnose`` on the seed's program.

The program below is the seed's 784-30-10 network as its author wrote it (indentation
restored; our own rewrite): a params dict from ``np.random.rand``, Python's ``sum`` in the
softmax, the integer label column passed to backprop, a "softmax derivative", ``z * (1 - z)``
of ``Z``, ``y - A2`` subtracted, summed gradients and a loss divided by the number of classes.
Only the last lines are new: the glue that hands it to ``steadynet.diagnose``.

Run: python examples/diagnose_seed.py [path/to/MNISTdata.hdf5]
(default: steadynet's MNIST in the seed's HDF5 layout, fetched once into the cache)
"""

import sys

import h5py
import numpy as np
from numpy import exp

import steadynet

# LOAD DATASET (the seed's HDF5 layout: x_train (60000, 784) floats in [0, 1], y_train (60000, 1))
if len(sys.argv) > 1:
    path = sys.argv[1]
else:
    from steadynet.data.fetch import cached_path

    steadynet.load_data("mnist")  # fetches it once
    path = cached_path("mnist")
MNIST_data = h5py.File(path, "r")
x_train = np.float32(MNIST_data["x_train"][:])
y_train = np.int32(np.array(MNIST_data["y_train"][:, 0]))
MNIST_data.close()

# PARAMETERS
number_of_digits = 10
nx = x_train.shape[1]
ny = number_of_digits
Nh = 30
alpha = 0.001
y_train = np.array([y_train]).T  # the label column (60000, 1)

# INITIALISE WEIGHTS & BIASES
np.random.seed(0)
params = {"W1": np.random.rand(nx, Nh), "b1": np.zeros((1, Nh)), "W2": np.random.rand(Nh, ny), "b2": np.zeros((1, ny))}


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
    grads["dW2"] = np.matmul(Eo.T, outs["A1"]).T
    grads["dW1"] = np.matmul(Eh.T, X).T
    grads["db2"] = np.sum(Eo, 0)
    grads["db1"] = np.sum(Eh, 0)
    return grads


# the glue: five lines
result = steadynet.diagnose(
    params,
    x_train,
    y_train,
    lr=alpha,
    forward=lambda p, X, y: forward_prop(X, y, p)["A2"],
    backward=lambda p, X, y: back_prop(X, y, p, forward_prop(X, y, p)),
    loss=lambda p, X, y: 1 / ny * np.sum(forward_prop(X, y, p)["error"]),
)
print(result.report())
