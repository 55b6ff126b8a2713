"""Test-time augmentation (steadynet/tta.py): the average over an image and its four one-pixel
shifts, edges repeated; the auto rule (more than one paired standard error on validation)."""

import numpy as np
import pytest

from steadynet import MLP
from steadynet.data.augment import shift_images_edge
from steadynet.errors import ConfigError
from steadynet.tta import NO_RECORD, OFFSETS, choose_tta, tta_proba, use_tta


def hand_shifted(X, shape, dy, dx):
    """``X`` (n, h * w) moved down ``dy`` and right ``dx``, written independently of the
    library: pad every side by one pixel repeating the edge, then cut the window."""
    h, w = shape
    padded = np.pad(X.reshape(-1, h, w), ((0, 0), (1, 1), (1, 1)), mode="edge")  # (n, h + 2, w + 2)
    return padded[:, 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w].reshape(len(X), h * w)


def one_hot_probs(pred, k=3):
    """Probabilities that put 0.9 on each row's predicted class."""
    P = np.full((len(pred), k), 0.1 / (k - 1))
    P[np.arange(len(pred)), pred] = 0.9
    return P


# ---------------------------------------------------------------------------- the average


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_tta_is_the_mean_over_the_hand_shifted_copies(dtype):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (7, 20)).astype(np.uint8)  # 7 images of 4x5
    X = X if dtype == "uint8" else (X / 255).astype(np.float32)
    model = MLP((20, 6, 3), "relu", dtype="float64", seed=2)
    P = tta_proba(model, X, (4, 5), chunk=3)  # three chunks, the last of one image
    assert P.shape == (7, 3) and P.dtype == np.float64
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    shifts = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]
    assert sorted(OFFSETS) == sorted(shifts)
    expected = np.mean([model.predict_proba(hand_shifted(X, (4, 5), dy, dx)) for dy, dx in shifts], axis=0)
    np.testing.assert_allclose(P, expected, rtol=1e-12, atol=1e-15)
    # not the plain prediction: the shifts change it
    assert not np.allclose(P, model.predict_proba(X), atol=1e-6)
    # 28x28 images given as (n, 28, 28) are read as flattened rows
    images = rng.integers(0, 256, (3, 28, 28)).astype(np.uint8)
    mnist_model = MLP((784, 8, 10), seed=0)
    np.testing.assert_array_equal(
        tta_proba(mnist_model, images, (28, 28)), tta_proba(mnist_model, images.reshape(3, 784), (28, 28))
    )


def test_a_light_ground_keeps_its_ground_when_shifted():
    light = np.full((1, 6, 6), 255, np.uint8)
    light[0, 2:4, 2:4] = 10  # a dark stroke in the middle of a white field
    X = light.reshape(1, 36)
    for dy, dx in OFFSETS:
        S = shift_images_edge(X, (6, 6), dy, dx).reshape(6, 6)
        border = np.concatenate([S[0], S[-1], S[:, 0], S[:, -1]])
        assert (border == 255).all(), (dy, dx)  # no black row or column comes in
        assert (S == 10).sum() == 4  # the stroke moved whole
    np.testing.assert_array_equal(shift_images_edge(X, (6, 6), 1, 0).reshape(6, 6)[1:], light[0, :-1])

    class Spy:  # a model that keeps what it was shown
        n_classes, dtype, seen = 2, np.float32, []

        def predict_proba(self, Xb):
            self.seen.append(Xb.copy())
            return np.full((len(Xb), 2), 0.5, np.float32)

    spy = Spy()
    tta_proba(spy, X, (6, 6))
    assert len(spy.seen) == 5 and all(s.dtype == np.uint8 and s.min() == 10 for s in spy.seen)


# ---------------------------------------------------------------------------- the auto rule


def test_auto_uses_tta_only_beyond_one_paired_standard_error():
    n = 1000
    y = np.zeros(n, dtype=np.int64)
    plain = np.zeros(n, dtype=np.int64)
    plain[:100] = 1  # 100 mistakes without TTA
    # clearly better: TTA mends 40 of them and breaks none
    mended = plain.copy()
    mended[:40] = 0
    record = choose_tta("auto", y, one_hot_probs(plain), one_hot_probs(mended))
    assert record["used"] is True and record["val_accuracy_tta"] - record["val_accuracy_plain"] == pytest.approx(0.04)
    d = np.r_[np.ones(40), np.zeros(n - 40)]
    assert record["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(n), rel=1e-12)
    # a wash: it mends 10 and breaks 9, +0.001 against a standard error of 0.0044
    mixed = plain.copy()
    mixed[:10] = 0
    mixed[500:509] = 1
    record = choose_tta("auto", y, one_hot_probs(plain), one_hot_probs(mixed))
    se = np.sqrt((19 - n * 0.001**2) / (n - 1) / n)
    assert record["se"] == pytest.approx(se, rel=1e-12) and record["used"] is False
    # one image mended, none broken, is exactly one standard error: not more
    one = plain.copy()
    one[0] = 0
    record = choose_tta("auto", y, one_hot_probs(plain), one_hot_probs(one))
    assert record["se"] == pytest.approx(1 / n, rel=1e-9) and record["used"] is False
    # no difference at all
    record = choose_tta("auto", y, one_hot_probs(plain), one_hot_probs(plain))
    assert record["se"] == 0 and record["used"] is False
    # on is on, even where it hurts
    assert choose_tta("on", y, one_hot_probs(mended), one_hot_probs(plain))["used"] is True
    assert set(record) == {"setting", "rule", "n", "val_accuracy_plain", "val_accuracy_tta", "se", "used"}


def test_use_tta_follows_the_record_and_refuses_on_without_images():
    assert use_tta("auto", {"used": True}, (28, 28)) == (True, "the run's choice")
    assert use_tta("auto", {"used": False}, (28, 28)) == (False, "the run's choice")
    assert use_tta("auto", None, (28, 28)) == (False, NO_RECORD)
    assert use_tta("off", {"used": True}, (28, 28))[0] is False
    assert use_tta("on", None, (28, 28))[0] is True
    assert use_tta("auto", {"used": True}, (10,))[0] is False
    with pytest.raises(ConfigError, match=r"^tta on needs images .* holds samples of shape \(10,\); use tta off\.$"):
        use_tta("on", None, (10,))
    with pytest.raises(ConfigError, match=r"^tta must be one of \['off', 'on', 'auto'\], got 'yes'"):
        use_tta("yes", None, (28, 28))
