"""Hand-written NumPy networks the way users write them, right and with chosen mistakes.

``UserNet`` holds a 2-layer (or deeper) MLP in one of four layouts: samples in rows or
columns, weights stored (in, out) or (out, in). Its ``forward``, ``backward`` and ``loss``
take ``(params, X, y)`` like a user's own functions, with ``y`` the integer labels (n,) and
``Y`` built inside; ``mistakes`` switches on known mistakes by name.
"""

import numpy as np

ACT = {
    "sigmoid": (lambda Z: 1 / (1 + np.exp(-Z)), lambda A: A * (1 - A)),
    "tanh": (np.tanh, lambda A: 1 - A**2),
    "relu": (lambda Z: np.maximum(Z, 0), lambda A: (A > 0).astype(A.dtype)),
}


class UserNet:
    def __init__(
        self,
        sizes=(12, 7, 4),
        activation="sigmoid",
        samples="rows",
        weights="in_out",
        output="softmax",
        mistakes=(),
        dtype=np.float64,
        seed=0,
        init="normal",
        dropout=0.0,
        l2=0.0,
    ):
        self.sizes, self.activation, self.samples, self.weights = sizes, activation, samples, weights
        self.output, self.mistakes, self.dtype, self.dropout = output, set(mistakes), dtype, dropout
        self.l2 = l2  # an L2 penalty l2 / 2 * sum(W**2) in the loss
        rng = np.random.default_rng(seed)
        self.params = {}
        for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), 1):
            W = rng.uniform(0, 1, (a, b)) if init == "rand" else rng.normal(0, 1 / np.sqrt(a), (a, b))
            self.params[f"W{l}"] = (W if weights == "in_out" else W.T).astype(dtype)
            bias = rng.normal(0, 0.1, b).astype(dtype)
            self.params[f"b{l}"] = bias if samples == "rows" else bias[:, None]
        n = 16
        X = rng.uniform(0, 1, (n, sizes[0])).astype(dtype)
        self.y = rng.integers(0, sizes[-1], n)
        self.X = X if samples == "rows" else X.T.copy()

    # canonical helpers: samples in rows, W (in, out)
    def _W(self, p, l):
        W = p[f"W{l}"].astype(self.dtype)
        return W if self.weights == "in_out" else W.T

    def _b(self, p, l):
        return p[f"b{l}"].astype(self.dtype).reshape(-1)

    def _X(self, X):
        return X.astype(self.dtype) if self.samples == "rows" else X.T.astype(self.dtype)

    def _values(self, p, X):
        f = ACT[self.activation][0]
        A, As, Zs = self._X(X), [self._X(X)], []
        self.H, self.masks = [None], [None]  # activations before dropout, and the masks (scaled)
        L = len(self.sizes) - 1
        for l in range(1, L + 1):
            Z = A @ self._W(p, l) + self._b(p, l)
            Zs.append(Z)
            if l < L:
                A = f(Z)
                mask = (np.random.rand(*A.shape) > self.dropout) / (1 - self.dropout) if self.dropout else 1.0
                self.H.append(A)
                self.masks.append(mask)
                A = A * mask
            As.append(A)
        Z = Zs[-1]
        if self.output == "sigmoid":
            P = ACT["sigmoid"][0](Z)
        elif "softmax_axis" in self.mistakes:
            E = np.exp(Z - Z.max(axis=0, keepdims=True))
            P = E / E.sum(axis=0, keepdims=True)
        else:
            E = np.exp(Z - Z.max(axis=1, keepdims=True))
            P = E / E.sum(axis=1, keepdims=True)
        return Zs, As, P

    def forward(self, p, X, y=None):
        P = self._values(p, X)[2]
        return P if self.samples == "rows" else P.T

    def loss(self, p, X, y):
        P = self._values(p, X)[2]
        n, k = P.shape
        penalty = 0.5 * self.l2 * sum((p[w] ** 2).sum() for w in p if w.startswith("W"))
        if self.output == "sigmoid":
            return 0.5 * ((P - np.eye(k)[y]) ** 2).sum() / n + penalty
        total = -np.log(P[np.arange(n), y]).sum()
        return total / (k if "loss_classes" in self.mistakes else n) + penalty

    def backward(self, p, X, y):
        m = self.mistakes
        Zs, As, P = self._values(p, X)
        n, k = P.shape
        Y = np.eye(k, dtype=self.dtype)[y]
        if "integer_labels" in m:
            Y = y[:, None].astype(self.dtype)
        dZ = (Y - P) if "sign" in m else (P - Y)
        if self.output == "sigmoid" and "missing_output_derivative" not in m:
            dZ = dZ * P * (1 - P)
        if "extra_softmax_derivative" in m:
            dZ = dZ * P * (1 - P)
        if "batch_sum" not in m:
            dZ = dZ / n
        G = {}
        f_grad = ACT[self.activation][1]
        L = len(self.sizes) - 1
        for l in range(L, 0, -1):
            dW = As[l - 1].T @ dZ
            db = dZ.sum(axis=0)
            if f"transposed{l}" in m:
                dW = dW.T
            G[f"W{l}"] = dW if self.weights == "in_out" else dW.T
            if self.l2 and "missing_weight_decay" not in m:
                G[f"W{l}"] = G[f"W{l}"] + self.l2 * p[f"W{l}"]
            G[f"b{l}"] = db if self.samples == "rows" else db[:, None]
            if f"no_bias{l}" in m:
                G[f"b{l}"] = np.zeros_like(G[f"b{l}"])
            if l > 1:
                dA = dZ @ self._W(p, l).T
                dA = dA * self.masks[l - 1]  # through the dropout mask
                if f"derivative_of_Z{l - 1}" in m:
                    dZ = dA * f_grad(Zs[l - 2])
                elif f"missing_derivative{l - 1}" in m:
                    dZ = dA
                elif f"sigmoid_derivative{l - 1}" in m:
                    dZ = dA * self.H[l - 1] * (1 - self.H[l - 1])
                else:
                    dZ = dA * f_grad(self.H[l - 1])
        return G
