"""``steadynet.metrics.confident_mistakes``: which rows are wrong, and in what order."""

import numpy as np
import pytest

import steadynet
from conftest import make_blobs
from steadynet.metrics import confident_mistakes


def test_most_confident_mistakes_are_ranked_by_wrong_probability():
    P = np.array(
        [
            [0.9, 0.1],  # right
            [0.3, 0.7],  # wrong, 0.7
            [0.05, 0.95],  # wrong, 0.95
            [0.6, 0.4],  # wrong, 0.6
            [0.2, 0.8],
        ]
    )  # right
    y = np.array([0, 0, 0, 1, 1])
    order, predicted, confidence = confident_mistakes(P, y, 10)
    np.testing.assert_array_equal(order, [2, 1, 3])
    np.testing.assert_array_equal(confident_mistakes(P, y, 2)[0], [2, 1])
    np.testing.assert_array_equal(confident_mistakes(P, y)[0], [2, 1, 3])  # no limit: every mistake
    np.testing.assert_array_equal(predicted, [0, 1, 1, 0, 1])
    np.testing.assert_array_equal(confidence, [0.9, 0.7, 0.95, 0.6, 0.8])


def test_equal_confidences_keep_the_rows_order():
    P = np.array([[0.2, 0.8], [0.8, 0.2], [0.2, 0.8], [0.8, 0.2]])
    y = np.array([0, 1, 0, 1])  # every row wrong, all at 0.8
    np.testing.assert_array_equal(confident_mistakes(P, y, 3)[0], [0, 1, 2])


def test_confident_mistakes_of_a_model_are_sorted_and_only_wrong():
    data = make_blobs(n_train=10, n_test=300, n_features=784, n_classes=10, seed=1)
    model = steadynet.MLP((784, 10, 10), seed=0)  # untrained: mostly wrong
    P = model.predict_proba(data.x_test)
    order, predicted, confidence = confident_mistakes(P, data.y_test, 50)
    np.testing.assert_array_equal(predicted, P.argmax(axis=1))
    assert len(order) == min(50, int((predicted != data.y_test).sum()))
    assert (predicted[order] != data.y_test[order]).all()
    assert (np.diff(confidence[order]) <= 0).all()
    assert confidence[order[0]] == pytest.approx(P.max(axis=1)[predicted != data.y_test].max())
