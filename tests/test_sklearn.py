"""steadynet.sklearn.MLPClassifier: scikit-learn's own estimator checks, pipelines, grid search,
and the behaviours scikit-learn users rely on."""

import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import steadynet  # noqa: E402
from conftest import make_blobs  # noqa: E402
from steadynet.errors import ConfigError  # noqa: E402
from steadynet.sklearn import MLPClassifier  # noqa: E402


@parametrize_with_checks([MLPClassifier()])
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    # Every check runs; none is skipped or expected to fail. The array-API check only runs
    # when SCIPY_ARRAY_API is set (it checks NumPy input with array-API dispatch switched on).
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


def test_grid_search_over_hidden_sizes_and_learning_rates(digits):
    X_train, X_test, y_train, y_test = digits
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", MLPClassifier(max_iter=40, random_state=0))])
    grid = {"mlp__hidden_layer_sizes": [(16,), (64,)], "mlp__learning_rate_init": [1e-4, 1e-2]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(pipe, grid, cv=3).fit(X_train, y_train)
    assert len(search.cv_results_["params"]) == 4
    # 40 epochs at 1e-4 leave the network under-trained: the search must prefer 1e-2
    assert search.best_params_["mlp__learning_rate_init"] == 1e-2
    assert search.best_score_ > 0.93
    assert search.score(X_test, y_test) > 0.93


def typical_script(Classifier, X_train, X_test, y_train, y_test):
    """What a scikit-learn user writes; only ``Classifier`` changes."""
    clf = make_pipeline(StandardScaler(), Classifier(hidden_layer_sizes=(64,), max_iter=60, random_state=0))
    clf.fit(X_train, y_train)
    mlp = clf[-1]
    proba = clf.predict_proba(X_test)
    return clf.score(X_test, y_test), proba, mlp.classes_, mlp.loss_curve_, mlp.n_iter_


def test_drop_in_replacement_for_sklearn_mlp(digits):
    from sklearn.neural_network import MLPClassifier as SkMLP

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = typical_script(MLPClassifier, *digits)
        theirs = typical_script(SkMLP, *digits)
    for acc, proba, classes, curve, n_iter in (ours, theirs):
        assert acc > 0.94
        assert proba.shape == (len(digits[1]), 10)
        assert list(classes) == list(range(10))
        assert len(curve) == n_iter and curve[-1] < curve[0]
    assert abs(ours[0] - theirs[0]) < 0.03


def test_string_labels_any_number_of_features_and_classes():
    rng = np.random.default_rng(0)
    names = np.array(["ant", "bee", "cat", "dog", "eel", "fox", "gnu"])
    centres = rng.normal(0, 3, size=(7, 5))
    k = rng.integers(0, 7, size=700)
    X = centres[k] + rng.normal(0, 0.5, size=(700, 5))
    y = names[k]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=100, random_state=0).fit(X, y)
    assert list(clf.classes_) == list(names)
    assert clf.model_.layer_sizes == (5, 32, 7)
    assert clf.predict(X).dtype == y.dtype
    assert clf.score(X, y) > 0.95


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype, blobs):
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(blobs.x_train.astype(dtype), blobs.y_train)
    assert clf.model_.dtype == dtype
    assert all(W.dtype == dtype for W in clf.coefs_ + clf.intercepts_)
    assert clf.predict_proba(blobs.x_test).dtype == dtype


def test_uint8_features_are_not_rescaled(blobs):
    # Features are used as given, like scikit-learn; only steadynet.MLP scales uint8 pixels.
    X = (blobs.x_train * 255).astype(np.uint8)
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, blobs.y_train)
    Z = X[:5].astype(np.float64) @ clf.coefs_[0] + clf.intercepts_[0]
    H = np.maximum(Z, 0) @ clf.coefs_[1] + clf.intercepts_[1]
    P = np.exp(H - H.max(axis=1, keepdims=True))
    np.testing.assert_allclose(clf.predict_proba(X[:5]), P / P.sum(axis=1, keepdims=True), rtol=1e-10)


def test_integer_sample_weights_equal_repeated_samples(blobs):
    # Full-batch steps without shuffling: weighting a sample by 2 must be the same as
    # listing it twice (the weighted mean and the L2 term's divisor agree).
    X, y = blobs.x_train[:60].astype(np.float64), blobs.y_train[:60]
    w = np.random.default_rng(1).integers(0, 3, size=60)
    params = dict(hidden_layer_sizes=(6,), batch_size=500, shuffle=False, max_iter=5, alpha=0.1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weighted = MLPClassifier(**params).fit(X, y, sample_weight=w)
        repeated = MLPClassifier(**params).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    np.testing.assert_allclose(weighted.model_.theta, repeated.model_.theta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-9)


@pytest.mark.parametrize(
    "weights, message",
    [
        (-1.0, r"sample_weight must be >= 0, got -1"),
        ("negative", r"sample_weight must be >= 0, got -0.5"),
        ("short", r"sample_weight must have shape \(30,\), one weight per sample, got \(29,\)"),
        (0.0, r"sample_weight is zero for every sample"),
    ],
)
def test_bad_sample_weights_say_what_is_wrong(blobs, weights, message):
    X, y = blobs.x_train[:30].astype(np.float64), blobs.y_train[:30]
    w = {"negative": np.r_[np.ones(29), -0.5], "short": np.ones(29)}.get(weights, weights)
    with pytest.raises(ValueError, match=message):
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=1).fit(X, y, sample_weight=w)


def test_a_number_weighs_every_sample_alike(blobs):
    X, y = blobs.x_train[:40].astype(np.float64), blobs.y_train[:40]
    params = dict(hidden_layer_sizes=(4,), batch_size=40, shuffle=False, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scalar = MLPClassifier(**params).fit(X, y, sample_weight=2.0)
        ones = MLPClassifier(**params).fit(X, y)
    np.testing.assert_allclose(scalar.model_.theta, ones.model_.theta, rtol=1e-6, atol=1e-9)


def test_l2_penalty_follows_sklearn_scaling(blobs):
    # one full-batch plain-SGD step: theta1 = theta0 - lr * (grad + alpha / n * W0 on weights)
    X, y = blobs.x_train[:50].astype(np.float64), blobs.y_train[:50]
    clf = MLPClassifier(
        hidden_layer_sizes=(5,),
        solver="sgd",
        momentum=0,
        alpha=2.0,
        batch_size=50,
        shuffle=False,
        max_iter=1,
        learning_rate_init=0.1,
        warm_start=True,
        random_state=0,
        centre_inputs="off",  # the plain step; blobs (mean 0.5, std 0.2) would be centred
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        model = clf.model_
        theta0 = model.theta.copy()
        model.loss_and_grad(X, y)
        expected = theta0 - 0.1 * model.grad
        expected[: model.n_weights] -= 0.1 * 2.0 / 50 * theta0[: model.n_weights]
        clf.fit(X, y)
    assert clf.n_iter_ == 2
    np.testing.assert_allclose(model.theta, expected, rtol=1e-12)


def test_warm_start_continues_and_cold_start_restarts(blobs):
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=4, random_state=0, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(blobs.x_train, blobs.y_train)
        first = list(clf.loss_curve_)
        clf.fit(blobs.x_train, blobs.y_train)
        assert clf.n_iter_ == 8 and clf.loss_curve_[:4] == first
        assert clf.loss_curve_[4] < first[-1]
        clf.set_params(warm_start=False).fit(blobs.x_train, blobs.y_train)
    assert clf.n_iter_ == 4 and clf.loss_curve_ == first


def test_partial_fit(blobs):
    clf = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    with pytest.raises(ConfigError, match="classes="):
        clf.partial_fit(blobs.x_train, blobs.y_train)
    for _ in range(10):
        clf.partial_fit(blobs.x_train, blobs.y_train, classes=[0, 1, 2, 3])
    assert clf.n_iter_ == 10 and clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert list(clf.classes_) == [0, 1, 2, 3] and clf.predict_proba(blobs.x_test).shape[1] == 4
    with pytest.raises(ConfigError, match=r"labels \[7\]"):
        clf.partial_fit(blobs.x_train[:3], np.array([0, 1, 7]))


def test_early_stopping_keeps_the_best_epoch(blobs):
    clf = MLPClassifier(
        hidden_layer_sizes=(8,),
        early_stopping=True,
        n_iter_no_change=3,
        max_iter=300,
        learning_rate_init=0.05,
        random_state=0,
    )
    clf.fit(blobs.x_train, blobs.y_train)
    assert clf.n_iter_ < 300  # blobs are separable: the validation accuracy saturates fast
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.best_loss_ is None
    assert clf.score(blobs.x_test, blobs.y_test) > 0.95


def test_logistic_alias_and_pickle_and_steadynet_save(blobs, tmp_path):
    clf = MLPClassifier(hidden_layer_sizes=(6,), activation="logistic", max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(blobs.x_train, blobs.y_train)
    assert clf.model_.activation == "sigmoid"
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(blobs.x_test), clf.predict_proba(blobs.x_test))
    steadynet.save(tmp_path / "m.npz", clf.model_)
    loaded = steadynet.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict_proba(blobs.x_test), clf.predict_proba(blobs.x_test))


def test_convergence_warning_when_max_iter_is_reached(blobs):
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        MLPClassifier(max_iter=2, random_state=0).fit(blobs.x_train, blobs.y_train)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(solver="lbfgs"), "lbfgs.* use 'adam' or 'sgd'"),
        (dict(activation="softplus"), "activation must be one of"),
        (dict(hidden_layer_sizes=(10, 0)), "hidden_layer_sizes must be positive integers"),
        (dict(learning_rate_init=0), "learning_rate_init must be a finite number > 0"),
        (dict(momentum=1.5, solver="sgd"), r"momentum must be in \[0, 1\)"),
        (dict(centre_inputs="yes"), r"centre_inputs must be one of \['auto', 'on', 'off'\], got 'yes'"),
    ],
)
def test_bad_parameters_give_one_line_errors(params, match, blobs):
    with pytest.raises(ConfigError, match=match):
        MLPClassifier(**params).fit(blobs.x_train, blobs.y_train)


def light_blobs():
    d = make_blobs(n_features=64, n_classes=4)
    return 0.8 + 0.2 * d.x_train, d.y_train, 0.8 + 0.2 * d.x_test, d.y_test  # every value in [0.8, 1]


def test_features_on_a_light_ground_are_centred():
    # Inputs near 1 move every first-layer weight of a unit together; as they are, SGD at
    # this rate stays near chance (0.27 measured), centred it separates the blobs.
    X, y, X_test, y_test = light_blobs()
    params = dict(hidden_layer_sizes=(32,), solver="sgd", learning_rate_init=0.1, max_iter=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        auto = MLPClassifier(**params).fit(X, y)
        off = MLPClassifier(**params, centre_inputs="off").fit(X, y)
    assert auto.input_centring_["centred"] and auto.input_centring_["mean"] > 0.8
    assert off.input_centring_ == {"setting": "off", "centred": False}
    assert auto.score(X_test, y_test) > 0.95 and off.score(X_test, y_test) < 0.7
    # the fitted network is a plain MLP on the raw features
    Z = X_test[:5] @ auto.coefs_[0] + auto.intercepts_[0]
    H = np.maximum(Z, 0) @ auto.coefs_[1] + auto.intercepts_[1]
    np.testing.assert_array_equal(auto.predict(X_test[:5]), auto.classes_[H.argmax(axis=1)])


def test_a_centred_fit_does_not_see_a_constant_offset_of_the_features(blobs):
    X, y = blobs.x_train.astype(np.float64), blobs.y_train
    params = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0, centre_inputs="on")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        near = MLPClassifier(**params).fit(X, y)
        far = MLPClassifier(**params).fit(X + 50.0, y)
    np.testing.assert_allclose(far.loss_curve_, near.loss_curve_, rtol=1e-6)
    np.testing.assert_allclose(far.coefs_[0], near.coefs_[0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(far.predict_proba(X + 50.0), near.predict_proba(X), rtol=1e-5, atol=1e-9)


def test_a_pickled_centred_estimator_continues_as_the_original(blobs):
    X, y = light_blobs()[:2]
    clf = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    for _ in range(2):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    again = pickle.loads(pickle.dumps(clf))
    clf.partial_fit(X, y)
    again.partial_fit(X, y)
    assert again.input_centring_["centred"]
    np.testing.assert_array_equal(again.model_.theta, clf.model_.theta)


def test_one_class_is_refused():
    with pytest.raises(ConfigError, match="1 class.*at least 2 classes"):
        MLPClassifier().fit(np.zeros((4, 2)), ["a"] * 4)


def test_divergence_is_a_clear_error():
    # float32 features near 1e20: the squared gradient norm overflows float32 at once
    X = np.array([[1e20, -1e20], [-1e20, 1e20]] * 5, dtype=np.float32)
    with pytest.raises(steadynet.NonFiniteError, match="non-finite loss or gradient at epoch 1.*StandardScaler"):
        MLPClassifier(activation="identity", random_state=0).fit(X, [0, 1] * 5)
