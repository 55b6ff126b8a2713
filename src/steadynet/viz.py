"""Plots of a run: learning curves, sample images, confusion matrix, confident mistakes,
first-layer weights and network health.

Each ``plot_*`` function takes plain arrays or the ``metrics.json`` dict and returns a
matplotlib :class:`~matplotlib.figure.Figure` drawn on the Agg canvas. pyplot is never
imported, so nothing ever opens a window and no display is needed; matplotlib itself is
imported only when a plot is drawn (the core needs only NumPy).

Every figure has a fixed size, ``FIGSIZE[kind]`` inches at ``DPI``, so a PNG is always
``FIGSIZE[kind] * DPI`` pixels whatever it shows.

This module draws only: it reads no run folder. The plots of a run folder
(:func:`steadynet.report.write_run_plots`) and the comparison of several
(:func:`steadynet.report.write_compare`) are drawn in :mod:`steadynet.report`.
"""

import io
import math

import numpy as np

from .errors import DataFormatError, SteadynetError
from .metrics import confident_mistakes, confusion_matrix
from .persistence import atomic_write

DPI = 100
FIGSIZE = {  # (width, height) in inches
    "curves": (11, 4.2),
    "samples": (7, 7.6),
    "confusion": (7.4, 6.4),
    "misclassified": (8, 9),
    "weights": (8.4, 8.4),
    "health": (11, 7.6),
    "compare": (11, 4.2),
}
# the plots of a run, in the order a report shows them
RUN_PLOTS = ("curves", "confusion", "misclassified", "samples", "weights", "health")
# health keys with a panel of their own; saturation/dead-unit fractions share the fourth
HEALTH_PANELS = {  # key -> (title, y label)
    "grad_norm": ("Gradient norm per layer", "gradient norm (L2)"),
    "update_ratio": ("Step size relative to the weights", "update norm / weight norm"),
    "weight_norm": ("Weight norm per layer", "weight norm (L2)"),
}
HEALTH_FRACTIONS = ("saturated", "dead")
INK = "gray_r"  # images as black ink on white paper, as digits are written


# ------------------------------------------------------------------------- figures


def new_figure(kind, figsize=None):
    """An empty Figure of ``FIGSIZE[kind]`` (or ``figsize``) on the Agg canvas (never a window)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise SteadynetError(
            "plots need matplotlib, which is not installed; install it with `pip install 'steadynet[plot]'`."
        ) from None
    fig = Figure(figsize=figsize or FIGSIZE[kind], dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig):
    """The figure as PNG bytes, exactly ``FIGSIZE * DPI`` pixels (no tight bounding box).

    Plots are mostly flat colours, so a 256-colour palette looks the same and makes files
    about a third of the size (weights and digit grids would otherwise pass 100 KB).
    """
    from PIL import Image  # a dependency of matplotlib

    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]  # (height, width, 3) uint8
    buf = io.BytesIO()
    Image.fromarray(rgb).quantize(256, method=Image.Quantize.FASTOCTREE).save(buf, format="png")
    return buf.getvalue()


def save_figure(fig, path):
    """Write ``fig`` as a PNG to ``path``, atomically."""
    png = figure_png(fig)
    atomic_write(path, lambda f: f.write(png))
    return path


def image_grid(fig, n):
    """A square-ish grid of image axes for ``n`` images, without ticks. Returns the axes, flat."""
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    return axes


def as_images(X, image_shape):
    """Rows of ``X`` (n, n_features), uint8 0-255 or float in [0, 1], as (n, h, w) floats in [0, 1]."""
    if len(image_shape) != 2:
        raise DataFormatError(f"images must be 2-D to draw, got image shape {tuple(image_shape)}.")
    X = np.asarray(X)
    scale = 255.0 if X.dtype == np.uint8 else 1.0
    return X.reshape((-1, *image_shape)).astype(np.float32) / scale


# ------------------------------------------------------------------------- learning curves


def epoch_series(metrics, key):
    """``(epochs, values)`` of a per-epoch metric, leaving out epochs where it is None."""
    pairs = [(e["epoch"], e[key]) for e in metrics.get("epochs", []) if e.get(key) is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def plot_curves(metrics, title=None):
    """Loss and accuracy per epoch, train and validation, with the final test accuracy.

    Parameters
    ----------
    metrics : dict
        A ``metrics.json`` dict: ``epochs`` (list of dicts with ``epoch``, ``train_loss``,
        ``train_accuracy``, ``val_loss``, ``val_accuracy``) and optionally ``test_accuracy``,
        ``best_epoch`` and ``divergence``.
    """
    fig = new_figure("curves")
    ax_loss, ax_acc = fig.subplots(1, 2)
    few = len(metrics.get("epochs", [])) <= 30  # markers only while they stay apart
    for split, name, color in (("train", "train", "C0"), ("val", "validation", "C1")):
        x, loss = epoch_series(metrics, f"{split}_loss")
        if x:
            ax_loss.plot(x, loss, color=color, marker="o" if few else None, ms=3, label=name)
        x, acc = epoch_series(metrics, f"{split}_accuracy")
        if x:
            ax_acc.plot(x, 100 * np.asarray(acc), color=color, marker="o" if few else None, ms=3, label=name)
    if metrics.get("test_accuracy") is not None:
        ax_acc.axhline(
            100 * metrics["test_accuracy"],
            color="C2",
            ls="--",
            lw=1,
            label=f"test (final) {metrics['test_accuracy']:.2%}",
        )
    for ax in (ax_loss, ax_acc):
        if metrics.get("best_epoch"):
            ax.axvline(metrics["best_epoch"], color="0.5", ls=":", lw=1, label="best validation epoch")
        if metrics.get("divergence"):
            ax.axvline(
                metrics["divergence"]["epoch"],
                color="C3",
                lw=1.5,
                label=f"diverged (step {metrics['divergence']['step']})",
            )
    label_curve_axes(ax_loss, ax_acc, legend_size=9)
    fig.suptitle(title or "Learning curves", fontsize=13)
    return fig


def label_curve_axes(ax_loss, ax_acc, legend_size):
    """Axis labels, titles, grid and legend of a loss panel and an accuracy panel by epoch."""
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=legend_size)
    ax_loss.set_ylabel("cross-entropy loss (nats per image)")
    ax_loss.set_title("Loss")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_title("Accuracy")


def plot_compare(runs, title=None):
    """Overlay the curves of several runs: validation solid, train dashed, one colour per run.

    Parameters
    ----------
    runs : list of (str, dict)
        ``(label, metrics)`` pairs, ``metrics`` as for :func:`plot_curves`.
    """
    fig = new_figure("compare")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for i, (label, metrics) in enumerate(runs):
        color = f"C{i % 10}"
        for split, ls in (("train", "--"), ("val", "-")):
            x, loss = epoch_series(metrics, f"{split}_loss")
            ax_loss.plot(
                x,
                loss,
                ls=ls,
                color=color,
                lw=1.6 if split == "val" else 1,
                label=f"{label} ({'validation' if split == 'val' else 'train'})",
            )
            x, acc = epoch_series(metrics, f"{split}_accuracy")
            ax_acc.plot(
                x,
                100 * np.asarray(acc),
                ls=ls,
                color=color,
                lw=1.6 if split == "val" else 1,
                label=f"{label} ({'validation' if split == 'val' else 'train'})",
            )
    label_curve_axes(ax_loss, ax_acc, legend_size=8)
    fig.suptitle(title or f"Comparison of {len(runs)} runs (solid: validation, dashed: train)", fontsize=13)
    return fig


# ------------------------------------------------------------------------- images and errors


def plot_samples(X, y, image_shape, n=25, title=None, figsize=None):
    """The first ``n`` images of ``X`` (n_samples, n_features) with their labels ``y`` (n_samples,).

    ``figsize`` (inches) replaces ``FIGSIZE["samples"]``, for grids larger than a run's plot
    (``steadynet data show``).
    """
    images = as_images(X[:n], image_shape)
    fig = new_figure("samples", figsize)
    for ax, img, label in zip(image_grid(fig, n), images, np.asarray(y[:n])):
        ax.imshow(img, cmap=INK, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"label {int(label)}", fontsize=10)
    fig.suptitle(title or "Sample training images and their labels", fontsize=13)
    return fig


def plot_confusion(y_true, y_pred, n_classes, title=None):
    """The confusion matrix: colour is the share of each true class, cells show counts."""
    C = confusion_matrix(y_true, y_pred, n_classes)
    rows = C.sum(axis=1, keepdims=True)  # (k, 1) images per true class
    share = 100 * C / np.maximum(rows, 1)  # (k, k) percent of the true class
    fig = new_figure("confusion")
    ax = fig.subplots()
    # a power scale: the diagonal is near 100% and the errors worth seeing are near 1%
    from matplotlib.colors import PowerNorm

    im = ax.imshow(share, cmap="Blues", norm=PowerNorm(0.4, vmin=0, vmax=100))
    if n_classes <= 20:  # beyond that the numbers no longer fit their cells
        for i in range(n_classes):
            for j in range(n_classes):
                if C[i, j]:
                    ax.text(
                        j,
                        i,
                        str(C[i, j]),
                        ha="center",
                        va="center",
                        fontsize=9,
                        color="white" if share[i, j] > 30 else "black",
                    )
    ticks = np.arange(n_classes) if n_classes <= 20 else np.arange(0, n_classes, max(1, n_classes // 10))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(im, ax=ax, shrink=0.85, label="share of the true class (%)")
    accuracy = np.trace(C) / max(C.sum(), 1)
    fig.suptitle(title or f"Confusion matrix on {C.sum()} test images (accuracy {accuracy:.2%})", fontsize=13)
    return fig


def plot_misclassified(X, y, P, image_shape, n=25, title=None):
    """The test images the model got most confidently wrong, with predicted and true labels.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,), int
    P : ndarray of shape (n_samples, n_classes), the model's probabilities for ``X``
    """
    worst, _, _ = confident_mistakes(P, np.asarray(y), n)
    fig = new_figure("misclassified")
    axes = image_grid(fig, n)
    images = as_images(np.asarray(X)[worst], image_shape)
    for ax, i, img in zip(axes, worst, images):
        p = int(P[i].argmax())
        ax.imshow(img, cmap=INK, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"predicted {p} ({P[i, p]:.0%})\ntrue {int(y[i])}", fontsize=9, color="C3")
    if not len(worst):
        axes[0].text(0, 0.5, "no test image was misclassified", fontsize=12, transform=axes[0].transAxes)
    n_wrong = int((P.argmax(axis=1) != np.asarray(y)).sum())
    fig.suptitle(title or f"The most confident mistakes ({n_wrong} of {len(y)} test images are wrong)", fontsize=13)
    return fig


def plot_first_layer(W1, image_shape, max_units=64, title=None):
    """Each first-layer unit's incoming weights drawn as an image: the pattern it responds to.

    Parameters
    ----------
    W1 : ndarray of shape (n_inputs, n_units)
        First-layer weights; column ``j`` is unit ``j``'s weight on every pixel.
    image_shape : (h, w) with ``h * w == n_inputs``
    """
    W1 = np.asarray(W1, dtype=np.float64)
    units = min(W1.shape[1], max_units)
    tiles = W1[:, :units].T.reshape((units, *image_shape))  # (units, h, w)
    # one colour scale for every tile, so tiles compare; the 99th percentile keeps a few
    # extreme weights from washing out the rest
    limit = float(np.percentile(np.abs(tiles), 99)) or 1.0
    fig = new_figure("weights")
    axes = image_grid(fig, units)
    for j, (ax, tile) in enumerate(zip(axes, tiles)):
        im = ax.imshow(tile, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(f"{j + 1}", fontsize=7, pad=2)
    fig.colorbar(im, ax=list(axes), shrink=0.6, label="weight (red: pixel excites, blue: inhibits)")
    shown = f"the first {units} of {W1.shape[1]}" if units < W1.shape[1] else f"all {units}"
    fig.suptitle(title or f"First-layer weights of {shown} units, one image per unit", fontsize=13)
    return fig


# ------------------------------------------------------------------------- health


def health_series(metrics):
    """The per-epoch ``health`` entries of ``metrics.json`` as time series.

    Returns
    -------
    dict of str -> dict of str -> (list of int, list of float)
        ``series[key]["layer 1"] = (epochs, values)``, for every numeric ``key`` recorded per
        layer (``grad_norm``, ``update_ratio``, ``saturated``, ...); empty when the run
        recorded no health. The entries are
        :meth:`steadynet.diagnostics.health.HealthMonitor.on_epoch`'s records:
        ``{"layers": [{"layer": 1, "grad_norm": ..., ...}, ...], ...}``.
    """
    series = {}
    for e in metrics.get("epochs", []):
        health = e.get("health")
        layers = health.get("layers") if isinstance(health, dict) else None
        for values in layers if isinstance(layers, list) else []:
            if not isinstance(values, dict):
                continue
            layer = f"layer {values.get('layer', '?')}"
            for key, v in values.items():
                if key == "layer":
                    continue
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    xs, vs = series.setdefault(key, {}).setdefault(layer, ([], []))
                    xs.append(e["epoch"])
                    vs.append(float(v))
    return series


def plain_log_ticks(ax, values):
    """Log-axis ticks written as plain numbers (0.6, 2e-3), not 6x10^-1; minor ticks are labelled
    only when the data spans less than a decade (else the major ticks say enough)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    def label(v, _pos):
        return f"{v:g}"

    ax.yaxis.set_major_formatter(FuncFormatter(label))
    lo, hi = min(values), max(values)
    ax.yaxis.set_minor_formatter(FuncFormatter(label) if hi < 10 * lo else NullFormatter())


def plot_health(metrics, title=None):
    """Per-layer gradient norms, update ratios, weight norms and saturated/dead fractions per epoch.

    Norms and ratios use a log axis (they span orders of magnitude); a panel whose key the run
    did not record says so. Raises ValueError when there is no health at all.
    """
    series = health_series(metrics)
    if not series:
        raise ValueError("metrics hold no per-epoch 'health' entries to plot.")
    layers = sorted({layer for per_layer in series.values() for layer in per_layer})
    color = {layer: f"C{i % 10}" for i, layer in enumerate(layers)}
    fig = new_figure("health")
    axes = fig.subplots(2, 2).ravel()
    for ax, (key, (panel_title, label)) in zip(axes, HEALTH_PANELS.items()):
        if key not in series:
            ax.text(0.5, 0.5, f"{key} not recorded", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        for layer, (x, v) in series[key].items():
            ax.plot(x, v, color=color[layer], marker="o", ms=3, label=layer)
        if all(v > 0 for _, vs in series[key].values() for v in vs):
            ax.set_yscale("log")
            plain_log_ticks(ax, [v for _, vs in series[key].values() for v in vs])
        if key == "update_ratio":  # the usual rule of thumb for a healthy step size
            ax.axhline(1e-3, color="0.5", ls=":", lw=1, label="1e-3 rule of thumb")
        ax.set_title(panel_title)
        ax.set_ylabel(label)
    ax = axes[3]
    fractions = [k for k in series if k.startswith(HEALTH_FRACTIONS)]
    for key in fractions:
        for layer, (x, v) in series[key].items():
            ax.plot(
                x,
                100 * np.asarray(v),
                color=color[layer],
                ls="-" if key.startswith("saturated") else "--",
                marker="o",
                ms=3,
                label=f"{layer} {key}",
            )
    if fractions:
        ax.set_title("Saturated (solid) and dead (dashed) units")
        ax.set_ylabel("units (%)")
        # from 0, and at least to 10%: a steady 1.7% of dead units must not look like a swing
        top = max((100 * max(v) for key in fractions for _, v in series[key].values() if len(v)), default=0)
        ax.set_ylim(0, max(10.0, 1.15 * top))
    else:
        ax.text(0.5, 0.5, "saturation not recorded", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    for ax in axes:
        if ax.axison:
            ax.set_xlabel("epoch")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(title or "Network health per layer over training", fontsize=13)
    return fig
