"""Plots: every plot renders from a short real run as a PNG of its stated size with visible
content, carries titles and labels, shows the right numbers, and never needs a display."""

import json
import os
import re
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

from steadynet import viz
from steadynet.data.npz import write_npz
from steadynet.metrics import confident_mistakes, confusion_matrix

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(png):
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    assert png[:8] == PNG_SIGNATURE
    assert png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def expected_size(kind):
    w, h = viz.FIGSIZE[kind]
    return round(w * viz.DPI), round(h * viz.DPI)


def assert_visible_png(path, kind):
    """A valid PNG of FIGSIZE[kind] * DPI pixels whose pixels are not all one colour."""
    import matplotlib.image

    with open(path, "rb") as f:
        assert png_size(f.read()) == expected_size(kind)
    pixels = matplotlib.image.imread(path)[..., :3]  # (h, w, 3) floats in [0, 1]
    gray = pixels.mean(axis=2)
    assert gray.var() > 1e-3  # a blank page has variance 0
    assert (gray < 0.5).mean() > 0.002  # some dark ink: text, lines or digits


def add_health(run_dir, dest):
    """Copy a run and write per-epoch health into its metrics.json by hand."""
    shutil.copytree(run_dir, dest)
    with open(os.path.join(dest, "metrics.json")) as f:
        metrics = json.load(f)
    for e in metrics["epochs"]:
        k = e["epoch"]
        e["health"] = {
            "epoch": k,
            "warnings": [],
            "layers": [
                {
                    "layer": 1,
                    "weight_norm": 1.0 + k,
                    "grad_norm": 0.5 / k,
                    "update_ratio": 1e-3 * k,
                    "saturated": 0.1 * k,
                    "dead": 0.0,
                },
                {
                    "layer": 2,
                    "weight_norm": 2.0 + k,
                    "grad_norm": 0.2 / k,
                    "update_ratio": 2e-3,
                    "saturated": 0.0,
                    "dead": 0.05,
                },
            ],
        }
    with open(os.path.join(dest, "metrics.json"), "w") as f:
        json.dump(metrics, f)
    return metrics


def test_health_series_reads_each_layer_and_key(noisy_run, tmp_path):
    metrics = add_health(noisy_run[0], tmp_path / "healthy")
    series = viz.health_series(metrics)
    assert set(series) == {"weight_norm", "grad_norm", "update_ratio", "saturated", "dead"}
    epochs, values = series["grad_norm"]["layer 1"]
    assert epochs == [1, 2, 3]
    np.testing.assert_allclose(values, [0.5, 0.25, 0.5 / 3])
    assert viz.health_series({"epochs": [{"epoch": 1, "train_loss": 1.0}]}) == {}


def test_health_plot_says_which_keys_were_not_recorded():
    metrics = {"epochs": [{"epoch": k, "health": {"layers": [{"layer": 1, "grad_norm": 1.0 / k}]}} for k in (1, 2)]}
    fig = viz.plot_health(metrics)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "update_ratio not recorded" in texts and "saturation not recorded" in texts
    assert fig.axes[0].get_yscale() == "log"
    with pytest.raises(ValueError, match="health"):
        viz.plot_health({"epochs": [{"epoch": 1}]})


def test_health_ticks_are_plain_numbers_and_a_flat_dead_share_stays_flat():
    metrics = {
        "epochs": [
            {
                "epoch": k,
                "health": {
                    "layers": [
                        {
                            "layer": 1,
                            "grad_norm": 0.6 + 0.05 * k,
                            "weight_norm": 3.0,
                            "update_ratio": 1e-3,
                            "saturated": 0.0,
                            "dead": 0.0165 + 0.0009 * k,
                        }
                    ]
                },
            }
            for k in (1, 2, 3)
        ]
    }
    fig = viz.plot_health(metrics)
    fig.canvas.draw()
    grad = fig.axes[0]
    labels = [t.get_text() for t in grad.get_yticklabels(minor=True) + grad.get_yticklabels()]
    assert labels and not any("10^" in t or "\\times" in t or "×" in t for t in labels), labels
    assert any(re.fullmatch(r"0\.\d+", t) for t in labels), labels  # e.g. "0.7"
    lo, hi = fig.axes[3].get_ylim()  # the dead-units panel: 1.74-1.92% on a 0-10% axis
    assert lo == 0 and hi >= 10


def test_curves_plot_the_metrics_with_titles_and_labels(noisy_run):
    _, result = noisy_run
    fig = viz.plot_curves(result)
    ax_loss, ax_acc = fig.axes
    assert fig.get_suptitle() and ax_loss.get_title() == "Loss" and ax_acc.get_title() == "Accuracy"
    assert ax_loss.get_xlabel() == "epoch" and "loss" in ax_loss.get_ylabel()
    assert ax_acc.get_ylabel() == "accuracy (%)"
    lines = {line.get_label(): line for line in ax_acc.get_lines()}
    np.testing.assert_allclose(lines["validation"].get_ydata(), [100 * e["val_accuracy"] for e in result["epochs"]])
    np.testing.assert_allclose(lines["train"].get_xdata(), [1, 2, 3])
    test_line = next(line for label, line in lines.items() if label.startswith("test"))
    assert test_line.get_ydata()[0] == pytest.approx(100 * result["test_accuracy"])


def test_confusion_matrix_matches_sklearn():
    from sklearn.metrics import confusion_matrix as sk_confusion

    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    np.testing.assert_array_equal(confusion_matrix(y, pred, 5), sk_confusion(y, pred, labels=range(5)))
    fig = viz.plot_confusion(y, pred, 5)
    assert fig.axes[0].get_xlabel() == "predicted class" and fig.axes[0].get_ylabel() == "true class"
    assert f"accuracy {(y == pred).mean():.2%}" in fig.get_suptitle()


def test_misclassified_titles_give_predicted_and_true_labels(noisy_run, noisy_data):
    _, result = noisy_run
    P = result.model.predict_proba(noisy_data.x_test)
    worst, _, _ = confident_mistakes(P, noisy_data.y_test, 25)
    assert len(worst) == 20  # the shifted labels
    fig = viz.plot_misclassified(noisy_data.x_test, noisy_data.y_test, P, noisy_data.image_shape)
    for ax, i in zip(fig.axes, worst):
        p = P[i].argmax()
        assert ax.get_title() == f"predicted {p} ({P[i, p]:.0%})\ntrue {noisy_data.y_test[i]}"
        np.testing.assert_allclose(ax.get_images()[0].get_array(), noisy_data.x_test[i].reshape(28, 28))


def test_first_layer_tiles_are_each_units_weights(noisy_run):
    W1 = noisy_run[1].model.state_dict()["W1"]  # (784, 16)
    fig = viz.plot_first_layer(W1, (28, 28))
    tiles = [ax for ax in fig.axes if ax.get_images()][:16]
    assert len(tiles) == 16
    for j, ax in enumerate(tiles):
        np.testing.assert_allclose(ax.get_images()[0].get_array(), W1[:, j].reshape(28, 28), rtol=1e-6)
    assert "16" in fig.get_suptitle()


def test_samples_show_the_labels(noisy_data):
    fig = viz.plot_samples(noisy_data.x_train, noisy_data.y_train, noisy_data.image_shape, n=9)
    assert [ax.get_title() for ax in fig.axes] == [f"label {y}" for y in noisy_data.y_train[:9]]


def test_plots_need_no_display_and_never_import_pyplot(noisy_run, noisy_data, tmp_path):
    """In a fresh interpreter with no display and an interactive backend requested, importing
    steadynet.viz loads no matplotlib, and drawing every plot never touches pyplot."""
    npz = tmp_path / "blobs.npz"
    write_npz(npz, noisy_data)
    script = (
        "import sys, steadynet.viz as viz, steadynet.report as report\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly'\n"
        f"written = report.write_run_plots({noisy_run[0]!r}, data={str(npz)!r}, out={str(tmp_path / 'png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
        "print(sorted(written))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLBACKEND"] = "TkAgg"  # would fail to open a window without a display, if ever used
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "'confusion'" in proc.stdout and "'misclassified'" in proc.stdout
