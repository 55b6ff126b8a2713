"""A model trained on MNIST reads MNIST test digits rendered as odd scans: low resolution, few
grey levels, cropped tight, faint ink, RGBA on a transparent canvas, 16-bit PNG.

Measured with the model below on the first 300 test digits (this commit; the numbers before
it, with the preprocessing it replaced, in brackets): tight 8x8 scans at 17 levels, upscaled
to 64x64, 0.653 (0.013: 282 of 300 crashed); the same 8x8 not upscaled 0.607 (0.013); tight
16x16 0.783 (0.060); 8x8 with margins 0.793 (0.807); 14x14 at 4 levels 0.920 (0.920); faint
ink 0.943 (0.943); RGBA 0.950 (0.950); 16-bit 0.953 (0.940); MNIST itself 0.950. The
thresholds are those numbers less about 5 points (n = 200 here).
"""

import io

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from steadynet.pictures import predict_images  # noqa: E402

N = 200


def blocks(A, k):
    return np.kron(A, np.ones((k, k)))


def low_res_scan(digit, side, levels, up):
    """Averaged down to ``side`` x ``side``, quantised to ``levels`` grey levels, upscaled to
    ``up`` by pixel repetition, dark ink on light paper."""
    A = np.asarray(Image.fromarray(digit.reshape(28, 28)).resize((side, side), Image.BOX), dtype=np.float64) / 255
    A = blocks(np.round(A * (levels - 1)) / (levels - 1), up // side)
    return np.round(255 * (1 - A)).astype(np.uint8)


def tight_scan(digit, side=8, up=64):
    """As old scanned digit sets were reduced: binarised, cropped to the ink's box, stretched to
    fill 32x32, and each block's count of ink pixels kept (17 grey levels at 8x8); then
    upscaled by pixel repetition, dark ink on light paper. The ink touches the border."""
    D = digit.reshape(28, 28) > 127
    rows, cols = np.nonzero(D.any(axis=1))[0], np.nonzero(D.any(axis=0))[0]
    D = D[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    big = 4 * side
    B = np.asarray(Image.fromarray(D.astype(np.uint8) * 255).resize((big, big), Image.NEAREST)) > 127
    A = blocks(B.reshape(side, 4, side, 4).mean(axis=(1, 3)), up // side)
    return np.round(255 * (1 - A)).astype(np.uint8)


def bicubic(digit, side):
    im = Image.fromarray(digit.reshape(28, 28)).resize((side, side), Image.BICUBIC)
    return np.asarray(im, dtype=np.float64) / 255


def faint_ink(digit, rng):
    """8% contrast on grey paper, with noise of 1% of full scale."""
    G = 0.75 - 0.08 * bicubic(digit, 84) + rng.normal(0, 0.01, (84, 84))
    return np.round(255 * np.clip(G, 0, 1)).astype(np.uint8)


def png(im):
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def rgba_transparent(digit):
    """Black ink whose coverage is its alpha, on a fully transparent canvas."""
    rgba = np.zeros((56, 56, 4), dtype=np.uint8)
    rgba[..., 3] = np.round(255 * bicubic(digit, 56))
    return Image.fromarray(rgba, "RGBA")


def png16(digit):
    """Dark ink on light paper, 16-bit grey from 60000 down to 1000."""
    return Image.fromarray(np.round(60000 - 59000 * bicubic(digit, 40)).astype(np.uint16))


RENDERINGS = {  # name: (render(digit, rng) -> PIL image, least accuracy)
    "tight 8x8, 17 levels, upscaled to 64": (lambda d, rng: Image.fromarray(tight_scan(d)), 0.58),
    "tight 8x8, 17 levels": (lambda d, rng: Image.fromarray(tight_scan(d, 8, 8)), 0.53),
    "tight 16x16, 17 levels, upscaled to 64": (lambda d, rng: Image.fromarray(tight_scan(d, 16, 64)), 0.72),
    "8x8, 17 levels, upscaled to 64": (lambda d, rng: Image.fromarray(low_res_scan(d, 8, 17, 64)), 0.73),
    "14x14, 4 levels, upscaled to 56": (lambda d, rng: Image.fromarray(low_res_scan(d, 14, 4, 56)), 0.86),
    "faint ink": (lambda d, rng: Image.fromarray(faint_ink(d, rng)), 0.88),
    "RGBA on transparent": (lambda d, rng: rgba_transparent(d), 0.9),
    "16-bit PNG": (lambda d, rng: png16(d), 0.9),
}


@pytest.mark.mnist
@pytest.mark.parametrize("name", list(RENDERINGS))
def test_a_model_reads_odd_scans_of_mnist_digits(mnist, digit_model, tmp_path, name):
    render, least = RENDERINGS[name]
    rng = np.random.default_rng(1)
    paths = []
    for i in range(N):
        path = tmp_path / f"{i}.png"
        path.write_bytes(png(render(mnist.x_test[i], rng)))
        paths.append(path)
    results = predict_images(digit_model, paths, errors="report")
    failed = [r for r in results if "error" in r]
    assert len(failed) <= 0.02 * N, failed[:3]  # a rare "no digit found", never a crash
    accuracy = np.mean([r.get("label") == y for r, y in zip(results, mnist.y_test[:N])])
    assert accuracy >= least, accuracy
