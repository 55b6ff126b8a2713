"""A scikit-learn classifier backed by steadynet: ``steadynet.sklearn.MLPClassifier``.

It takes the constructor arguments of ``sklearn.neural_network.MLPClassifier`` and gives the
same fitted attributes (``classes_``, ``loss_curve_``, ``n_iter_``, ``coefs_``, ...), so a
script can swap one import for the other. The network, its loss and its optimisers are
steadynet's own (:class:`steadynet.MLP`, :func:`steadynet.functional.softmax_cross_entropy`,
:mod:`steadynet.optim`), and so is each step (:func:`steadynet.train.step.train_step`); this
module only adds scikit-learn's conventions around them: label encoding, input validation,
the epoch loop with ``tol``/``n_iter_no_change`` stopping, and early stopping on a
validation split.

Inputs are arbitrary real features: they are used as given (float32 stays float32, anything
else becomes float64) and, unlike :meth:`steadynet.MLP.predict_proba`, uint8 input is *not*
divided by 255. Scale features yourself (``StandardScaler``, or ``X / 255`` for pixels), as
with scikit-learn's own estimator. Features whose mean exceeds their spread (pixels on a light
ground, unscaled measurements) have the first layer trained as if they were centred
(``centre_inputs``, :mod:`steadynet.train.centring`): the fitted network still takes ``X``
as given.

scikit-learn is an optional dependency: ``pip install steadynet[sklearn]``.
"""

import math
import numbers
import sys
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_array, check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .config import CENTRE_INPUTS
from .errors import ConfigError, NonFiniteError, need
from .model import MLP
from .optim import SGD, Adam, Momentum
from .train.centring import CentredFirstLayer, centred_start_, centring
from .train.step import train_step

# scikit-learn's activation names -> steadynet's (steadynet's own names are accepted too)
ACTIVATION_NAMES = {
    "identity": "identity",
    "logistic": "sigmoid",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "leaky_relu": "leaky_relu",
}
SOLVERS = ("adam", "sgd")
LEARNING_RATES = ("constant", "invscaling", "adaptive")


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier with scikit-learn's interface, trained by steadynet.

    The parameters mean what they mean for ``sklearn.neural_network.MLPClassifier``.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(100,)
        Width of each hidden layer.
    activation : {"relu", "logistic", "tanh", "identity", "sigmoid", "leaky_relu"}, default="relu"
        Hidden activation; "logistic" is scikit-learn's name for the sigmoid.
    solver : {"adam", "sgd"}, default="adam"
        "sgd" uses (Nesterov) momentum when ``momentum > 0``. "lbfgs" is not available.
    alpha : float, default=0.0001
        L2 penalty ``alpha / 2 * ||W||^2``, divided (like scikit-learn) by the batch's total
        sample weight, on weights only.
    batch_size : int or "auto", default="auto"
        Samples per step; "auto" is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Step-size schedule for ``solver="sgd"`` (ignored by adam): "invscaling" uses
        ``learning_rate_init / (t + 1) ** power_t`` with ``t`` the samples seen; "adaptive"
        divides the rate by 5 whenever ``n_iter_no_change`` epochs bring no improvement.
    learning_rate_init : float, default=0.001
    power_t : float, default=0.5
    max_iter : int, default=200
        Maximum number of epochs.
    shuffle : bool, default=True
        Shuffle the samples every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the batch order and the validation split.
    tol : float, default=1e-4
        Improvement of the training loss (or validation score with ``early_stopping``) that
        counts as progress.
    verbose : bool, default=False
        Print the loss of every epoch on stderr.
    warm_start : bool, default=False
        ``fit`` continues from the previous weights instead of starting afresh.
    momentum : float, default=0.9
        In [0, 1), for ``solver="sgd"``.
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified), stop when its accuracy
        stops improving, and keep the weights of the best epoch.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's parameters.
    n_iter_no_change : int, default=10
        Epochs without progress before stopping (or, with "adaptive", lowering the rate).
    max_fun : int, default=15000
        Accepted for compatibility; only scikit-learn's "lbfgs" solver uses it.
    centre_inputs : {"auto", "on", "off"}, default="auto"
        Train the first layer as if every feature had mean 0 (a change of the optimiser's
        coordinates; the model still takes ``X`` as given). "auto" does it when the features'
        mean exceeds their spread, as for pixels on a light ground. Not in scikit-learn.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted; any labels numpy can sort (integers, strings, ...).
    model_ : steadynet.MLP
        The trained network, in the dtype of the training data (float32 or float64).
    loss_ : float
        Training loss (cross-entropy plus the L2 term) of the last epoch.
    loss_curve_ : list of float, length n_iter_
        Training loss of each epoch.
    best_loss_ : float or None
        Lowest training loss (None with ``early_stopping``).
    validation_scores_ : list of float or None
        Validation accuracy after each epoch (None without ``early_stopping``).
    best_validation_score_ : float or None
    n_iter_ : int
        Epochs run.
    t_ : int
        Training samples seen.
    coefs_ : list of ndarray
        ``coefs_[i]`` of shape (n_units[i], n_units[i + 1]): views of the model's weights.
    intercepts_ : list of ndarray
        ``intercepts_[i]`` of shape (n_units[i + 1],): views of the model's biases.
    input_centring_ : dict
        ``{"setting", "mean", "std", "centred"}``: the centring decision and its evidence.
    n_features_in_ : int
    n_layers_ : int
        Layers, input and output included.
    n_outputs_ : int
        Output units (one per class; binary problems use two softmax outputs).
    out_activation_ : str
        Always "softmax".
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        centre_inputs="auto",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.centre_inputs = centre_inputs

    # ------------------------------------------------------------------ public methods

    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (n_samples, n_features) and labels ``y`` (n_samples,).

        ``sample_weight`` (n_samples,), non-negative, weights each sample's loss. Returns self.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``(X, y)``, continuing from the current weights.

        ``classes`` (all labels that will ever be seen) is required on the first call.
        Returns self.
        """
        first = not hasattr(self, "classes_")
        if first and classes is None:
            raise ConfigError("partial_fit needs classes=... (every label) on its first call.")
        if not first and classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ConfigError(
                f"classes={list(classes)} differs from the classes of the first "
                f"partial_fit call, {list(self.classes_)}."
            )
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities of shape (n_samples, n_classes) in the model's dtype; columns
        follow ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        return self.model_.predict_proba(X)

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, shape (n_samples, n_classes)."""
        return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable label of each row, shape (n_samples,), taken from ``classes_``."""
        P = self.predict_proba(X)  # (n, k); checks that the model is fitted
        return self.classes_[P.argmax(axis=1)]

    @property
    def coefs_(self):
        check_is_fitted(self)
        return [self.model_.params[f"W{i}"] for i in range(1, self.n_layers_)]

    @property
    def intercepts_(self):
        check_is_fitted(self)
        return [self.model_.params[f"b{i}"] for i in range(1, self.n_layers_)]

    # ------------------------------------------------------------------ pickling

    def __getstate__(self):
        # the MLP holds its array module (numpy), which cannot be pickled: store its
        # constructor arguments and parameters instead, and rebuild it on load
        state = dict(super().__getstate__())  # a copy: the base class may return __dict__ itself
        if "model_" in state:
            state["model_"] = {"config": self.model_.config(), "params": self.model_.state_dict()}
        return state

    def __setstate__(self, state):
        if isinstance(state.get("model_"), dict):
            saved = state["model_"]
            state["model_"] = MLP(**saved["config"])
            state["model_"].load_state_dict(saved["params"])
        super().__setstate__(state)

    # ------------------------------------------------------------------ training

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        self._validate_hyperparameters()
        continuing = hasattr(self, "model_") and (incremental or self.warm_start)
        X, y = validate_data(self, X, y, reset=not continuing, dtype=(np.float64, np.float32))
        check_classification_targets(y)
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, X.shape[0], X.dtype)

        # labels -> class indices 0..k-1
        if not continuing:
            self.classes_ = np.unique(y if classes is None else classes)
            if len(self.classes_) < 2:
                raise ConfigError(
                    f"y contains {len(self.classes_)} class ({self.classes_[:1].tolist()}); "
                    f"a classifier needs at least 2 classes."
                )
        unseen = np.setdiff1d(y, self.classes_)
        if unseen.size:
            raise ConfigError(
                f"y holds labels {unseen[:5].tolist()} that are not in classes_ "
                f"{self.classes_.tolist()}; refit, or list every class in the first partial_fit."
            )
        y = np.searchsorted(self.classes_, y)  # (n,) int64

        if not continuing:
            self._initialize(X, sample_weight)
        rng = self._random_state
        X_val = y_val = w_val = None
        if self.early_stopping and not incremental:
            X, X_val, y, y_val, sample_weight, w_val = self._split_validation(X, y, sample_weight, rng)
        self._run_epochs(X, y, sample_weight, X_val, y_val, w_val, rng, incremental)
        return self

    def _validate_hyperparameters(self):
        """Raise :class:`ConfigError` (a ValueError) naming the first bad parameter."""

        def is_int(v):
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        sizes = self._hidden_sizes()
        need(
            all(is_int(s) and s >= 1 for s in sizes), "hidden_layer_sizes", "positive integers", self.hidden_layer_sizes
        )
        need(self.activation in ACTIVATION_NAMES, "activation", f"one of {sorted(ACTIVATION_NAMES)}", self.activation)
        if self.solver == "lbfgs":
            raise ConfigError("solver='lbfgs' is not available in steadynet; use 'adam' or 'sgd'.")
        need(self.solver in SOLVERS, "solver", f"one of {list(SOLVERS)}", self.solver)
        need(
            self.learning_rate in LEARNING_RATES, "learning_rate", f"one of {list(LEARNING_RATES)}", self.learning_rate
        )
        need(
            self.batch_size == "auto" or (is_int(self.batch_size) and self.batch_size >= 1),
            "batch_size",
            "'auto' or an integer >= 1",
            self.batch_size,
        )
        need(self.alpha >= 0, "alpha", ">= 0", self.alpha)
        need(
            0 < self.learning_rate_init < math.inf, "learning_rate_init", "a finite number > 0", self.learning_rate_init
        )
        need(self.power_t >= 0, "power_t", ">= 0", self.power_t)
        need(is_int(self.max_iter) and self.max_iter >= 1, "max_iter", "an integer >= 1", self.max_iter)
        need(self.tol >= 0, "tol", ">= 0", self.tol)
        need(0 <= self.momentum < 1, "momentum", "in [0, 1)", self.momentum)
        need(0 < self.validation_fraction < 1, "validation_fraction", "in (0, 1)", self.validation_fraction)
        need(0 <= self.beta_1 < 1, "beta_1", "in [0, 1)", self.beta_1)
        need(0 <= self.beta_2 < 1, "beta_2", "in [0, 1)", self.beta_2)
        need(self.epsilon > 0, "epsilon", "> 0", self.epsilon)
        need(
            is_int(self.n_iter_no_change) and self.n_iter_no_change >= 1,
            "n_iter_no_change",
            "an integer >= 1",
            self.n_iter_no_change,
        )
        need(self.centre_inputs in CENTRE_INPUTS, "centre_inputs", f"one of {list(CENTRE_INPUTS)}", self.centre_inputs)

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        return (sizes,) if np.isscalar(sizes) else tuple(sizes)

    def _initialize(self, X, sample_weight=None):
        """A fresh network and optimiser; every fitted attribute starts over."""
        self._random_state = check_random_state(self.random_state)
        sizes = (X.shape[1], *self._hidden_sizes(), len(self.classes_))
        self.model_ = MLP(
            sizes,
            ACTIVATION_NAMES[self.activation],
            dtype=X.dtype.name,
            seed=int(self._random_state.randint(np.iinfo(np.int32).max)),
        )
        self._input_mean, self.input_centring_ = centring(self.centre_inputs, X, sample_weight)
        if self._input_mean is not None:
            centred_start_(self.model_, self._input_mean)
        n_weights = self.model_.n_weights
        if self.solver == "adam":
            self._optimizer = Adam(n_weights, 0.0, self.beta_1, self.beta_2, self.epsilon)
        elif self.momentum > 0:
            self._optimizer = Momentum(n_weights, 0.0, self.momentum, nesterov=self.nesterovs_momentum)
        else:
            self._optimizer = SGD(n_weights)
        self._learning_rate = float(self.learning_rate_init)
        self.n_layers_ = len(sizes)
        self.n_outputs_ = len(self.classes_)
        self.out_activation_ = "softmax"
        self.n_iter_, self.t_ = 0, 0
        self.loss_ = None
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self.best_loss_ = None if self.early_stopping else math.inf
        self.validation_scores_ = [] if self.early_stopping else None
        self.best_validation_score_ = -math.inf if self.early_stopping else None

    def _split_validation(self, X, y, sample_weight, rng):
        """Stratified hold-out of ``validation_fraction`` of the samples."""
        seed = int(rng.randint(np.iinfo(np.int32).max))
        try:
            parts = train_test_split(
                X,
                y,
                *(() if sample_weight is None else (sample_weight,)),
                test_size=self.validation_fraction,
                random_state=seed,
                stratify=y,
            )
        except ValueError as exc:
            raise ConfigError(
                f"early_stopping: cannot hold out validation_fraction="
                f"{self.validation_fraction} of {len(y)} samples with every class "
                f"represented ({exc}); use more data or early_stopping=False."
            ) from None
        X, X_val, y, y_val = parts[:4]
        w, w_val = (None, None) if sample_weight is None else parts[4:]
        return X, X_val, y, y_val, w, w_val

    def _run_epochs(self, X, y, sample_weight, X_val, y_val, w_val, rng, incremental):
        """The loop: epochs of shuffled mini-batches, with scikit-learn's stopping rules."""
        model, optimizer = self.model_, self._optimizer
        mu = getattr(self, "_input_mean", None)  # None in estimators pickled before centring
        stepper = optimizer if mu is None else CentredFirstLayer(optimizer, model, mu)
        n = X.shape[0]
        batch_size = min(200, n) if self.batch_size == "auto" else self.batch_size
        if batch_size > n:
            warnings.warn(f"batch_size={batch_size} is larger than the {n} samples; using {n}.")
            batch_size = n
        W = model.theta[: model.n_weights]
        best_theta = None
        for _ in range(1 if incremental else self.max_iter):
            order = rng.permutation(n) if self.shuffle else np.arange(n)
            epoch_loss = 0.0
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                w = None if sample_weight is None else sample_weight[idx]
                total_weight = len(idx) if w is None else float(w.sum())
                if total_weight == 0:  # every sample weighs 0: this batch has no gradient
                    continue

                # the step; the L2 term is divided by the batch's total weight, as scikit-learn
                # does, and applied by the optimiser to the weights only
                optimizer.weight_decay = self.alpha / total_weight
                penalty = 0.5 * optimizer.weight_decay * float(W @ W)
                step = train_step(model, stepper, X[idx], y[idx], self._learning_rate, sample_weight=w, penalty=penalty)
                if step.refused:
                    raise NonFiniteError(
                        f"training produced a non-finite loss or gradient at epoch {self.n_iter_ + 1} "
                        f"(learning_rate_init={self.learning_rate_init}); scale the features "
                        f"(e.g. StandardScaler) or lower learning_rate_init."
                    )
                epoch_loss += step.loss * len(idx)

            # bookkeeping, in scikit-learn's order
            self.n_iter_ += 1
            self.t_ += n
            self.loss_ = epoch_loss / n
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}", file=sys.stderr)
            if X_val is not None:
                score = self.score(X_val, self.classes_[y_val], w_val)
                self.validation_scores_.append(score)
                improved = score >= self.best_validation_score_ + self.tol
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best_theta = model.theta.copy()
            else:
                improved = self.loss_ <= self.best_loss_ - self.tol
                self.best_loss_ = min(self.best_loss_, self.loss_)
            self._no_improvement_count = 0 if improved else self._no_improvement_count + 1
            if self.solver == "sgd" and self.learning_rate == "invscaling":
                self._learning_rate = self.learning_rate_init / (self.t_ + 1) ** self.power_t

            # stop, or with "adaptive" lower the rate and go on
            if self._no_improvement_count > self.n_iter_no_change:
                if self.solver == "sgd" and self.learning_rate == "adaptive" and self._learning_rate > 1e-6:
                    self._learning_rate /= 5
                    self._no_improvement_count = 0
                else:
                    break
        else:
            if not incremental:
                warnings.warn(
                    f"steadynet MLPClassifier: max_iter={self.max_iter} epochs reached "
                    f"and the loss has not converged yet.",
                    ConvergenceWarning,
                )
        if best_theta is not None:  # early stopping keeps the best epoch's weights
            model.theta[...] = best_theta


def check_sample_weight(sample_weight, n_samples, dtype):
    """``sample_weight`` as a float array of shape (n_samples,): a number weighs every sample
    alike; weights must be finite and >= 0, and not all 0."""
    if isinstance(sample_weight, numbers.Real):
        sample_weight = np.full(n_samples, sample_weight, dtype=dtype)
    sample_weight = check_array(sample_weight, ensure_2d=False, dtype=dtype, input_name="sample_weight")
    if sample_weight.shape != (n_samples,):
        raise ConfigError(
            f"sample_weight must have shape ({n_samples},), one weight per sample, got {sample_weight.shape}."
        )
    if (sample_weight < 0).any():
        raise ConfigError(f"sample_weight must be >= 0, got {float(sample_weight.min()):g}.")
    if not sample_weight.any():
        raise ConfigError("sample_weight is zero for every sample; at least one needs a positive weight.")
    return sample_weight
