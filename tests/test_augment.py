"""Augmentation: every transform keeps what the image shows and is fixed by its seed (its cost
next to the training it feeds is measured in benchmarks/bench.py)."""

import numpy as np
import pytest

from steadynet.data.augment import (
    elastic_fields,
    gaussian_matrix,
    ground,
    random_affine_matrices,
    random_shifts,
    random_warps,
    shift_images,
    warp,
)

SHAPE = (28, 28)


def images(n=6, seed=0, dtype=np.uint8):
    """Random pixels inside the frame's centre, zero near the border (like MNIST digits)."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, 28, 28))
    X[:, 6:22, 6:22] = rng.integers(0, 256, size=(n, 16, 16))
    X = X.astype(dtype) if dtype == np.uint8 else (X / 255).astype(dtype)
    return X.reshape(n, -1)


def strokes(n=200, seed=0):
    """Smooth random shapes of ink, about 3 pixels across: structure a warp should keep."""
    U = np.random.default_rng(seed).normal(size=(n, 28, 28))
    U[:, :5], U[:, 23:], U[:, :, :5], U[:, :, 23:] = 0, 0, 0, 0
    G = gaussian_matrix(28, 1.5)
    S = G @ U @ G.T
    return np.clip(S / S.std() - 0.5, 0, None).astype(np.float32).reshape(n, -1)


def shifted(X, dy, dx):
    """Image moved down ``dy`` rows and right ``dx`` columns, zero filled: the reference."""
    img = X.reshape(28, 28)
    out = np.zeros_like(img)
    out[max(dy, 0) : 28 + min(dy, 0), max(dx, 0) : 28 + min(dx, 0)] = img[
        max(-dy, 0) : 28 - max(dy, 0), max(-dx, 0) : 28 - max(dx, 0)
    ]
    return out.reshape(-1)


def identity(n):
    A = np.zeros((n, 2, 3))
    A[:, 0, 0] = A[:, 1, 1] = 1
    return A


# ------------------------------------------------------------------ whole-pixel shifts


def test_each_shifted_image_is_its_source_moved_by_its_offset():
    X = images(50)
    index = np.random.default_rng(1).permutation(50)
    out = random_shifts(X, SHAPE, 2, np.random.default_rng(7), index=index)
    offsets = np.random.default_rng(7).integers(-2, 3, size=(50, 2))  # the draw random_shifts makes
    assert len({tuple(o) for o in offsets}) > 10  # many different offsets were exercised
    for j, (dy, dx) in enumerate(offsets):
        assert np.array_equal(out[j], shifted(X[index[j]], dy, dx))


# ------------------------------------------------------------------ warps


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_identity_warp_returns_the_images(dtype):
    X = images(dtype=dtype)
    assert np.array_equal(warp(X, SHAPE, identity(6)), X)


@pytest.mark.parametrize("dy, dx", [(1, -2), (-3, 0), (0, 4)])
def test_whole_pixel_translation_warp_equals_the_shifted_array(dy, dx):
    X = images()
    A = identity(6)
    A[:, :, 2] = (-dy, -dx)  # the output pixel p reads the input at p - (dy, dx)
    out = warp(X, SHAPE, A)
    for i in range(6):
        assert np.array_equal(out[i], shifted(X[i], dy, dx))


def test_quarter_turn_equals_rot90_and_half_pixel_shift_averages_neighbours():
    X = images().astype(np.float32)
    A = np.zeros((6, 2, 3))
    A[:, :, :2] = [[0, -1], [1, 0]]  # rotation by 90 degrees about the centre
    out = warp(X, SHAPE, A).reshape(6, 28, 28)
    assert np.array_equal(out, np.rot90(X.reshape(6, 28, 28), k=-1, axes=(1, 2)))
    A = identity(6)
    A[:, 1, 2] = 0.5  # read half a pixel to the right: the mean of two neighbours
    out = warp(X, SHAPE, A).reshape(6, 28, 28)
    img = X.reshape(6, 28, 28)
    assert np.allclose(out[:, :, :27], (img[:, :, :27] + img[:, :, 1:]) / 2, atol=1e-4)


def test_scaling_grows_a_centred_square_about_the_centre():
    X = np.zeros((1, 28, 28), np.float32)
    X[0, 10:18, 10:18] = 1  # an 8x8 square centred on the image centre (13.5, 13.5)
    A = identity(1)
    A[0, :, :2] /= 1.5  # reading closer to the centre enlarges the picture 1.5 times
    out = warp(X.reshape(1, -1), SHAPE, A).reshape(28, 28)
    assert out.sum() == pytest.approx(64 * 1.5**2, rel=0.05)  # area scales with the square
    rows, cols = np.nonzero(out > 0.5)
    assert rows.mean() == pytest.approx(13.5, abs=0.01) and cols.mean() == pytest.approx(13.5, abs=0.01)


def test_small_random_warps_keep_the_picture():
    """Moderate settings move a shape a little: most ink stays, the centre of mass stays
    within the translation range plus a pixel, and each warped image is still recognisably
    its own source."""
    X = strokes(200)
    out = random_warps(
        X, SHAPE, np.random.default_rng(3), rotate=10, scale=0.1, shear=10, shift=2, elastic_alpha=34, elastic_sigma=5
    )
    ink_in, ink_out = X.sum(axis=1), out.sum(axis=1)
    assert np.all(np.abs(ink_out / ink_in - 1) < 0.5)  # size changes by up to 1.1**2, elastic squeezes
    grid = np.arange(28, dtype=np.float32)

    def centre(I):
        I = I.reshape(-1, 28, 28)
        return np.stack([(I.sum(2) * grid).sum(1), (I.sum(1) * grid).sum(1)], 1) / I.sum((1, 2))[:, None]

    assert np.abs(centre(out) - centre(X)).max() < 2 * np.sqrt(2) + 1


def test_warped_bars_keep_their_orientation():
    """A two-class picture of the label's meaning: upright bars stay upright, lying bars stay
    lying, under the strongest warps the presets use."""
    rng = np.random.default_rng(0)
    n = 100
    X = np.zeros((2 * n, 28, 28), np.float32)
    for i in range(n):
        r, c, length = rng.integers(8, 12), rng.integers(8, 18), rng.integers(10, 14)
        X[i, r : r + length, c : c + 2] = 1  # upright
        X[n + i, c : c + 2, r : r + length] = 1  # lying
    out = random_warps(
        X.reshape(2 * n, -1),
        SHAPE,
        np.random.default_rng(1),
        rotate=10,
        scale=0.1,
        shear=10,
        shift=2,
        elastic_alpha=34,
        elastic_sigma=5,
    ).reshape(2 * n, 28, 28)
    grid = np.arange(28, dtype=np.float32)

    def spread(I, axis):  # variance of the ink's position along rows (axis 1) or columns (axis 2)
        p = I.sum(axis=3 - axis) / I.sum(axis=(1, 2))[:, None]
        mean = (p * grid).sum(1, keepdims=True)
        return (p * (grid - mean) ** 2).sum(1)

    upright = spread(out, 1) > spread(out, 2)
    assert upright[:n].all() and not upright[n:].any()


def test_warps_are_fixed_by_the_seed_and_independent_of_chunking():
    X = images(40)
    kw = dict(rotate=15, scale=0.15, shear=10, shift=2, elastic_alpha=30, elastic_sigma=4)
    a = random_warps(X, SHAPE, np.random.default_rng(5), **kw)
    b = random_warps(X, SHAPE, np.random.default_rng(5), chunk=7, **kw)
    c = random_warps(X, SHAPE, np.random.default_rng(6), **kw)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    index = np.random.default_rng(0).permutation(40)
    d = random_warps(X, SHAPE, np.random.default_rng(5), index=index, **kw)
    assert d.shape == X.shape and d.dtype == np.uint8
    assert np.array_equal(d, random_warps(X[index], SHAPE, np.random.default_rng(5), **kw))


def test_random_affine_matrices_stay_in_their_ranges():
    A = random_affine_matrices(np.random.default_rng(0), 2000, rotate=10, scale=0.1, shear=0, shift=2)
    M = A[:, :, :2]
    zoom = 1 / np.sqrt(np.abs(np.linalg.det(M)))  # a rotation over a zoom: det = 1 / zoom^2
    angle = np.degrees(np.arctan2(M[:, 1, 0], M[:, 0, 0]))
    assert 0.9 - 1e-9 <= zoom.min() and zoom.max() <= 1.1 + 1e-9 and zoom.std() > 0.04
    assert np.abs(angle).max() <= 10 + 1e-9 and np.abs(angle).max() > 9
    assert np.abs(A[:, :, 2]).max() <= 2 and np.abs(A[:, :, 2]).max() > 1.9


# ------------------------------------------------------------------ elastic fields


def test_separable_smoothing_equals_the_2d_gaussian_convolution():
    sigma, h, w = 2.0, 9, 11
    fields = elastic_fields(np.random.default_rng(4), 3, (h, w), alpha=1.0, sigma=sigma)
    U = np.random.default_rng(4).uniform(-1, 1, size=(6, h, w))  # the noise elastic_fields drew
    # the direct 2-D sum over every input pixel, zero outside, kernel truncated at 4 sigma
    taps = np.arange(-8, 9)
    norm = np.exp(-(taps**2) / (2 * sigma**2)).sum() ** 2
    expected = np.zeros_like(U)
    for i in range(h):
        for j in range(w):
            di, dj = np.arange(h)[:, None] - i, np.arange(w)[None, :] - j
            K = np.exp(-(di**2 + dj**2) / (2 * sigma**2)) * (np.abs(di) <= 8) * (np.abs(dj) <= 8) / norm
            expected[:, i, j] = (U * K).sum(axis=(1, 2))
    assert np.allclose(fields.reshape(6, h, w), expected, atol=1e-5)


def test_gaussian_rows_sum_to_one_away_from_the_border():
    G = gaussian_matrix(40, 3.0)
    assert np.allclose(G[15:25].sum(axis=1), 1, atol=1e-5)
    assert G[0].sum() < 0.6  # half the kernel falls outside: zero padding


def test_elastic_strength_follows_alpha_and_no_alpha_means_no_field():
    strong = elastic_fields(np.random.default_rng(1), 50, SHAPE, alpha=34, sigma=4)
    weak = elastic_fields(np.random.default_rng(1), 50, SHAPE, alpha=17, sigma=4)
    assert np.allclose(strong, 2 * weak, rtol=1e-5)
    assert 0.5 < strong.std() < 3  # about a pixel or two: a distortion, not a scramble
    X = images(10)
    plain = random_warps(X, SHAPE, np.random.default_rng(2), shift=0)
    assert np.array_equal(plain, X)


# ------------------------------------------------------------------ the epoch's pass

# How long the shifts take against an epoch of training is measured by benchmarks/bench.py
# (its "shifts" line), not asserted here: a timed test fails on a busy machine.


def test_one_pass_of_shifts_in_epoch_order_equals_gathering_then_shifting():
    """The loop's form of the call (10,000 images, an order, a reused output array) writes
    into ``out`` exactly the images that shifting ``X[order]`` would give."""
    n, rng = 10_000, np.random.default_rng(0)
    X = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
    order, out = rng.permutation(n), np.empty_like(X)
    got = random_shifts(X, SHAPE, 1, np.random.default_rng(1), index=order, out=out)
    assert got is out
    expected = random_shifts(X[order], SHAPE, 1, np.random.default_rng(1))
    assert np.array_equal(out, expected)
    assert not np.array_equal(out, X[order])  # some images did move


@pytest.mark.mnist
# ------------------------------------------------------------------ the ground


def test_what_moves_into_the_frame_is_the_images_ground():
    dark = images(40)  # MNIST-like: ink in the centre, black frame
    light = 255 - dark  # dark ink on white
    assert ground(dark, SHAPE) == 0 and ground(light, SHAPE) == 255 and ground(light, SHAPE).dtype == np.uint8
    assert ground(1.0 - images(40, dtype=np.float32), SHAPE) == np.float32(1.0)
    rng = np.random.default_rng(0)
    moved = random_shifts(light, SHAPE, 2, rng, fill=ground(light, SHAPE)).reshape(-1, 28, 28)
    assert (moved[:, :2].min(), moved[:, -2:].min(), moved[:, :, :2].min(), moved[:, :, -2:].min()) == (255,) * 4
    for dy, dx in ((2, -1), (-3, 3)):  # each shift is the reference shift of the inverse, inverted
        expected = 255 - np.stack([shifted(x, dy, dx) for x in dark])
        np.testing.assert_array_equal(shift_images(light, SHAPE, dy, dx, fill=255), expected)
    A = random_affine_matrices(np.random.default_rng(1), 40, rotate=30, scale=0.2, shift=3)
    warped_light = warp(light, SHAPE, A, fill=255)
    np.testing.assert_allclose(warped_light.astype(int), 255 - warp(dark, SHAPE, A).astype(int), atol=1)
    assert not np.array_equal(warp(light, SHAPE, A), warped_light)  # zeros would have drawn a black border


def test_digits_stay_learnable_under_the_strongest_preset_warps(mnist):
    """On real digits, the warps of ``--preset best`` keep what each digit is: a network
    trained only on warped images reads plain test digits, and warped ones, well (warps that
    scrambled the digits or mismatched them with their labels would leave it near 10%)."""
    from steadynet import train
    from steadynet.data import Dataset

    subset = Dataset(
        mnist.x_train[:20000],
        mnist.y_train[:20000],
        mnist.x_test[:3000],
        mnist.y_test[:3000],
        mnist.image_shape,
        "mnist[:20000]",
    )
    warps = dict(
        augment_rotate=10, augment_scale=0.1, augment_shear=10, augment_shift=2, elastic_alpha=34, elastic_sigma=5
    )
    result = train(data=subset, hidden=(128,), activation="relu", epochs=3, batch_size=64, val_size=0, seed=0, **warps)
    assert result["test_accuracy"] > 0.95
    warped = random_warps(
        subset.x_test,
        SHAPE,
        np.random.default_rng(0),
        rotate=10,
        scale=0.1,
        shear=10,
        shift=2,
        elastic_alpha=34,
        elastic_sigma=5,
    )
    assert (result.model.predict(warped) == subset.y_test).mean() > 0.8  # 0.86 measured
