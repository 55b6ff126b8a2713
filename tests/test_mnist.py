"""Integration tests on real MNIST (fetched once into the cache, then reused)."""

import numpy as np
import pytest

import steadynet
from steadynet.data.fetch import REGISTRY, array_sha256

pytestmark = pytest.mark.mnist


def test_fetched_mnist_is_genuine(mnist):
    assert mnist.x_train.shape == (60000, 784) and mnist.x_test.shape == (10000, 784)
    assert mnist.x_train.dtype == np.uint8  # float32 k/255 pixels compacted losslessly
    for key, expected in REGISTRY["mnist"].array_sha256.items():
        assert array_sha256(getattr(mnist, key).astype(np.uint8)) == expected, key


def test_seed_regime_trains_without_nan(mnist):
    """The seed's regime: full batch over the training set, 30 sigmoid units, 100 iterations.
    With steadynet's defaults the loss falls at every iteration and never goes non-finite."""
    losses = []
    result = steadynet.train(
        data=mnist, batch_size="full", epochs=100, augment_shift=0, on_epoch=lambda r: losses.append(r.train_loss)
    )
    assert np.all(np.isfinite(losses)) and np.all(np.isfinite(result.model.theta))
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < 0.5 * losses[0]
    assert result["test_accuracy"] > 0.85


@pytest.mark.slow
def test_default_training_reaches_97_percent(mnist):
    """`steadynet train` with its defaults: the seed's 784-30-10 sigmoid network."""
    a = steadynet.train(data=mnist)
    assert a["test_accuracy"] >= 0.970
    assert a.model.layer_sizes == (784, 30, 10) and a.model.activation == "sigmoid"
