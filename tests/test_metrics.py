"""``steadynet.metrics.confident_mistakes``: which rows are wrong, and in what order."""

import numpy as np

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
