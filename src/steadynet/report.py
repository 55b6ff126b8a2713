"""A run folder drawn: its plots as PNG files, and ``report.html``, one self-contained page.

:func:`run_figures` draws every plot a run folder supports (the drawing itself is
:mod:`steadynet.viz`'s); :func:`write_run_plots` writes them into ``RUN_DIR/plots/`` and
:func:`write_compare` overlays the curves of several runs. The folder is read through
:class:`steadynet.runs.RunFolder`.

The report holds the outcome, any warnings and the divergence report, every plot (PNG embedded
as ``data:`` URIs), the per-epoch metrics, the per-class test accuracy and the configuration.
It needs no other file and no network: no scripts, no external style sheets, no fonts.
Every piece of text from the run folder is HTML-escaped.
"""

import base64
import html
import json
import math
import os

from .data import Dataset, load_data
from .errors import ConfigError, DataFormatError
from .persistence import atomic_write
from .runs import RunFolder
from .tta import tta_line
from .viz import (
    RUN_PLOTS,
    figure_png,
    health_series,
    plot_compare,
    plot_confusion,
    plot_curves,
    plot_first_layer,
    plot_health,
    plot_misclassified,
    plot_samples,
    save_figure,
)

CAPTIONS = {
    "curves": "Loss and accuracy per epoch. Validation loss rising while train loss falls means "
    "overfitting; a flat or rising train loss means the step is too small or too large.",
    "confusion": "Rows are the true classes, columns the predictions; the diagonal is right. "
    "Off-diagonal cells show which digits the network confuses.",
    "misclassified": "The test images the network was most sure about and still got wrong, "
    "with the probability it gave its (wrong) answer.",
    "samples": "The first training images and their labels: a check that images and labels "
    "were read and paired correctly.",
    "weights": "Each hidden unit's weights on the 784 pixels, drawn as an image. Smooth "
    "stroke-like patterns mean the unit learned; noise means it barely moved.",
    "health": "Per-layer gradient norms, update/weight ratios and saturated or dead units per "
    "epoch: where a diverging or stalled network shows it first.",
}
TITLES = {
    "curves": "Learning curves",
    "confusion": "Confusion matrix",
    "misclassified": "Most confident mistakes",
    "samples": "Sample inputs",
    "weights": "First-layer weights",
    "health": "Network health",
}
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1180px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: .2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .25em .7em; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f6f6f6; } td.key, th.key { text-align: left; }
tr.best td { background: #eef6ee; font-weight: 600; }
.cards { display: flex; gap: 1em; flex-wrap: wrap; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .5em 1em; }
.card b { display: block; font-size: 1.5em; }
.warning { background: #fff4e5; border-left: 4px solid #f0a020; padding: .5em 1em; margin: .5em 0; }
.error { background: #fdecea; border-left: 4px solid #d33; padding: .5em 1em; margin: .5em 0; }
.note { color: #555; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .93em; }
code { background: #f3f3f3; padding: 0 .3em; }
"""


def number(value, kind=None):
    """A number as a person reads it: ``kind`` "seconds" (``12.3 s``, ``1:01``), "percent"
    (``97.62%``), "rate" (3 significant digits, ``0.05``, ``7.4 × 10⁻¹²``); else 4 decimals
    between 0.001 and 100,000 and 3 significant digits with a power of ten outside."""
    if not math.isfinite(value):
        return str(value)
    if kind == "seconds":
        return f"{value:.1f} s" if value < 60 else f"{int(value // 60)}:{int(round(value % 60)):02d}"
    if kind == "percent":
        return f"{100 * value:.2f}%"
    if value == 0 or (kind != "rate" and 1e-3 <= abs(value) < 1e5) or (kind == "rate" and 1e-3 <= abs(value) < 1e3):
        return f"{value:.3g}" if kind == "rate" else f"{value:.4f}"
    mantissa, exponent = f"{value:.2e}".split("e")
    sup = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
    return f"{float(mantissa):g} × 10{str(int(exponent)).translate(sup)}"


# how the numbers under these keys are written (see :func:`number`)
KINDS = {
    "seconds": "seconds",
    "train_seconds": "seconds",
    "training time": "seconds",
    "train_accuracy": "percent",
    "val_accuracy": "percent",
    "test_accuracy": "percent",
    "accuracy": "percent",
    "precision": "percent",
    "recall": "percent",
    "f1": "percent",
    "test accuracy": "percent",
    "learning_rate": "rate",
    "learning rate": "rate",
    "lr": "rate",
}


def esc(value, kind=None):
    """Any value as escaped HTML text; numbers through :func:`number`, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return html.escape(number(value, kind))
    if isinstance(value, (list, dict)):
        value = json.dumps(value)
    return html.escape(str(value))


def table(header, rows, row_classes=None, kinds=None):
    """An HTML table: the first column left-aligned (a key), the others right-aligned (numbers).
    ``kinds`` gives each column's number kind (default: from the header, see ``KINDS``); a
    two-column (key, value) table takes the kind of each row's key."""
    kinds = kinds or [KINDS.get(h) for h in header]
    head = "".join(f"<th{' class=key' if i == 0 else ''}>{esc(h)}</th>" for i, h in enumerate(header))
    body = []
    for r, row in enumerate(rows):
        cls = f' class="{row_classes[r]}"' if row_classes and row_classes[r] else ""
        row_kinds = [None, KINDS.get(row[0])] if len(header) == 2 and kinds[1] is None else kinds
        cells = "".join(
            f"<td{' class=key' if i == 0 else ''}>{esc(v, row_kinds[i] if i < len(row_kinds) else None)}</td>"
            for i, v in enumerate(row)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def png_data_uri(png):
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def warnings_of(run_dir, metrics):
    """``(level, text)`` for everything a reader should notice before the numbers."""
    found = []
    status = metrics.get("status")
    if status == "interrupted":
        found.append(("warning", f"The run was interrupted; resume it with `steadynet train --resume {run_dir}`."))
    elif status == "running":
        found.append(("warning", "The run has not finished (or stopped without writing its result)."))
    for text in metrics.get("warnings") or []:
        found.append(("warning", text))
    return found


def divergence_of(run, metrics):
    """The divergence report: from metrics.json, else divergence.json; None if the run did not diverge."""
    if metrics.get("divergence"):
        return metrics["divergence"]
    return run.divergence()


def divergence_html(report):
    """What happened (the loop's own reason: a non-finite value, or a loss that rose tenfold),
    the ranked causes of ``divergence.json`` with their evidence, and the first cause's fix."""
    rows = [(k, report[k]) for k in ("epoch", "step", "batch", "loss", "learning_rate", "first") if k in report]
    what = report.get("reason") or f"the {report.get('first')} became non-finite"
    causes = report.get("causes") or []
    fix = (
        f"Try first: {esc(causes[0].get('fix'))}"
        if causes
        else "Try a smaller learning rate or <code>--clip-norm 1</code>."
    )
    parts = [
        f'<div class="error"><b>Training diverged</b> at epoch {esc(report.get("epoch"))}, '
        f"step {esc(report.get('step'))}: {esc(what)} (first: {esc(report.get('first'))}). "
        f"The weights of the step before were kept. {fix}</div>",
        table(("field", "value"), rows),
    ]
    if causes:
        parts.append("<h3>Likely causes, most likely first</h3>")
        parts.append(
            table(
                ("rank", "cause", "score", "evidence", "what to try"),
                [(i, c.get("cause"), c.get("score"), c.get("evidence"), c.get("fix")) for i, c in enumerate(causes, 1)],
                kinds=[None, None, None, None, None],
            )
        )
    if report.get("weight_norms"):
        parts.append("<p>Weight norms at the last finite step:</p>")
        parts.append(table(("parameter", "L2 norm"), list(report["weight_norms"].items())))
    return "\n".join(parts)


def render_report(run_dir, model=None, data=None):
    """The report of a run folder as one HTML string (see :func:`write_report`)."""
    run = RunFolder(run_dir)
    metrics, description = run.metrics(), run.config()
    figures, skipped = figures_of(run, description, metrics, model, data)
    name = run.name
    config = description.get("config") or metrics.get("config") or {}
    epochs = metrics.get("epochs", [])
    out = [
        f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>steadynet run {esc(name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Run <code>{esc(name)}</code></h1>",
    ]
    model_desc = description.get("model", {})
    if model_desc:
        out.append(
            f"<p class=note>{esc('-'.join(map(str, model_desc.get('layer_sizes', []))))} "
            f"{esc(model_desc.get('activation'))} network trained on "
            f"{esc(description.get('data', {}).get('source'))} with steadynet "
            f"{esc(description.get('steadynet_version'))}.</p>"
        )

    # the outcome at a glance; the test accuracy is of the model kept (early stopping: the best epoch's)
    kept = metrics.get("best_epoch") if config.get("patience") else (epochs[-1].get("epoch") if epochs else None)
    cards = [
        ("status", metrics.get("status")),
        (f"test accuracy (epoch {kept}'s model)" if kept else "test accuracy", metrics.get("test_accuracy")),
        ("test loss", metrics.get("test_loss")),
        ("best validation epoch", metrics.get("best_epoch")),
        ("epochs run", len(epochs)),
        ("training time", metrics.get("train_seconds")),
    ]
    out.append(
        "<div class=cards>"
        + "".join(
            f"<div class=card>{esc(k)}<b>{esc(v, 'percent' if k.startswith('test accuracy') else KINDS.get(k))}</b></div>"
            for k, v in cards
        )
        + "</div>"
    )
    # test-time augmentation: the decision, and the plain test accuracy where the cards' is averaged
    tta = metrics.get("tta")
    if isinstance(tta, dict) and tta.get("setting", "off") != "off":
        note = tta_line(tta)
        if tta.get("used") and isinstance(tta.get("test_accuracy_plain"), float):
            plain = number(tta["test_accuracy_plain"], "percent")
            note += f"; the test accuracy above is of the averaged predictions ({plain} plain)"
        out.append(f"<p class=note>{esc(note)}.</p>")
    toc = len(out)  # the table of contents goes here, once the sections are known

    # warnings and divergence
    for level, text in warnings_of(run.path, metrics):
        out.append(f'<div class="{level}">{esc(text)}</div>')
    divergence = divergence_of(run, metrics)
    if divergence:
        out.append("<h2>Divergence report</h2>")
        out.append(divergence_html(divergence))

    # plots
    out.append("<h2>Plots</h2>")
    for plot, fig in figures.items():
        out.append(
            f'<figure id="{plot}"><img alt="{esc(TITLES[plot])}" src="{png_data_uri(figure_png(fig))}">'
            f"<figcaption>{esc(CAPTIONS[plot])}</figcaption></figure>"
        )
    for plot, reason in skipped.items():
        out.append(f"<p class=note>{esc(TITLES[plot])}: not shown, because {esc(reason)}.</p>")

    # metrics
    out.append("<h2>Metrics per epoch</h2>")
    keys = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")
    out.append(
        table(
            keys,
            [[e.get(k) for k in keys] for e in epochs],
            ["best" if e.get("epoch") == metrics.get("best_epoch") else "" for e in epochs],
        )
    )
    if metrics.get("classification"):
        report = metrics["classification"]
        out.append("<h2>Test precision, recall and F1 per class</h2>")
        out.append(
            "<p class=note>Recall is the class's accuracy; precision, how often a prediction of "
            "the class is right; F1, their harmonic mean.</p>"
        )
        rows = [(r["class"], r["precision"], r["recall"], r["f1"], r["support"]) for r in report["classes"]]
        m = report["macro"]
        rows.append(("macro mean", m["precision"], m["recall"], m["f1"], sum(r[4] for r in rows)))
        out.append(table(("class", "precision", "recall", "f1", "support"), rows))
    elif metrics.get("per_class_accuracy"):
        out.append("<h2>Test accuracy per class</h2>")
        out.append(table(("class", "accuracy"), list(enumerate(metrics["per_class_accuracy"]))))

    # the augmentation trial: what each level scored on the validation split, and the choice
    trial = description.get("augmentation_trial")
    if isinstance(trial, dict) and isinstance(trial.get("levels"), list) and trial["levels"]:
        out.append("<h2>Augmentation trial</h2>")
        out.append(
            f"<p class=note>Before training, {esc(trial.get('epochs'))} epochs at each level of augmentation; "
            f"kept: <b>{esc(trial.get('chosen'))}</b>, {esc(trial.get('rule'))}.</p>"
        )
        rows = [
            (level.get("name"), level.get("val_accuracy"), level.get("seconds"))
            for level in trial["levels"]
            if isinstance(level, dict)
        ]
        out.append(
            table(
                ("level", "val_accuracy", "seconds"),
                rows,
                ["best" if r[0] == trial.get("chosen") else "" for r in rows],
            )
        )

    # configuration
    out.append("<h2>Configuration</h2>")
    resolved = description.get("learning_rate")
    settings = [
        (k, f"default ({number(resolved, 'rate')})" if k == "learning_rate" and v is None and resolved else v)
        for k, v in sorted(config.items())
    ]
    out.append(table(("setting", "value"), settings))
    extra = [
        (k, description[k])
        for k in ("learning_rate", "steadynet_version", "python", "numpy", "machine", "command")
        if k in description
    ]
    extra += [(f"data {k}", v) for k, v in description.get("data", {}).items()]
    if extra:
        out.append("<h3>Resolved settings and environment</h3>")
        out.append(table(("item", "value"), extra))
    # the table of contents: every section, linked
    sections = []
    for i, part in enumerate(out):
        if part.startswith("<h2>"):
            title = part[len("<h2>") : -len("</h2>")]
            anchor = "s-" + "-".join(html.unescape(title).lower().split())
            out[i] = f'<h2 id="{html.escape(anchor)}">{title}</h2>'
            sections.append(f'<li><a href="#{html.escape(anchor)}">{title}</a></li>')
    out.insert(toc, f"<nav><b>Contents</b><ol>{''.join(sections)}</ol></nav>")
    out.append(
        f"<p class=note>Generated by <code>steadynet report</code> from {esc(os.path.abspath(run.path))}."
        f"</p></body></html>"
    )
    return "\n".join(out)


def write_report(run_dir, out=None, model=None, data=None):
    """Write the run's self-contained HTML report.

    Parameters
    ----------
    run_dir : str
        A run folder (``metrics.json`` required; the model and data are used when available).
    out : str, optional
        The HTML file; default ``RUN_DIR/report.html``.
    model, data : optional
        As for :func:`run_figures`.

    Returns
    -------
    str, the path written.
    """
    out = out or RunFolder(run_dir).report_path
    page = render_report(run_dir, model, data).encode("utf-8")
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    atomic_write(out, lambda f: f.write(page))
    return out


# ------------------------------------------------------------------------- the plots of a run folder


def run_data(description, data):
    """The data set to draw test-set plots from: ``data`` (a Dataset, a name or a path), else
    the run's own data set (``description``: its ``config.json``). Returns ``(Dataset or None, why not)``."""
    if isinstance(data, Dataset):
        return data, None
    if data is None:
        spec = description.get("config", {}).get("data")
        source = description.get("data", {}).get("source")
        if spec is None or source != spec:
            # trained on arrays passed in memory: config.data does not name them
            return None, (
                f"the run was trained on in-memory data ({source!r}) that cannot be "
                f"reloaded; pass the data set with --data"
            )
        try:  # the run's own data; if it has moved, the plots that need none are still drawn
            return load_data(spec, standardised=bool(description.get("config", {}).get("standardised_inputs"))), None
        except DataFormatError as exc:
            return None, f"the run's data could not be reloaded ({exc}); pass it with --data"
    return load_data(data, standardised=bool(description.get("config", {}).get("standardised_inputs"))), None


def run_figures(run_dir, model=None, data=None):
    """Draw every plot a run folder supports.

    Parameters
    ----------
    run_dir : str
    model : MLP, optional
        Default: the run's model (:meth:`steadynet.runs.RunFolder.model_file` with
        ``prefer="inspect"``: the final model, else a diverged run's last finite weights,
        else the best epoch's).
    data : Dataset or str, optional
        Default: the run's own data set, when it can be reloaded.

    Returns
    -------
    figures : dict of str -> Figure, in ``RUN_PLOTS`` order
    skipped : dict of str -> str, why each other plot was not drawn
    """
    run = RunFolder(run_dir)
    metrics = run.metrics()
    return figures_of(run, run.config(), metrics, model, data)


def figures_of(run, description, metrics, model, data):
    """:func:`run_figures` of a run whose ``config.json`` and ``metrics.json`` are read."""
    if model is None:
        model, _, _ = run.load_model(prefer="inspect")
    dataset, no_data = run_data(description, data)
    if dataset is not None and model is not None and dataset.n_features != model.n_inputs:
        raise DataFormatError(
            f"{dataset.source}: images have {dataset.n_features} pixels, but the "
            f"model of {run.path} expects {model.n_inputs}."
        )
    image_shape = tuple(
        dataset.image_shape if dataset is not None else description.get("data", {}).get("image_shape", ())
    )
    not_images = None if len(image_shape) == 2 else f"the inputs are not 2-D images (shape {image_shape})"
    no_model = run.no_model_file("inspect")
    has_test = dataset is not None and len(dataset.y_test) > 0

    figures, skipped = {}, {}
    if metrics.get("epochs"):
        figures["curves"] = plot_curves(metrics, title=f"Learning curves: {run.name}")
    else:
        skipped["curves"] = "no epoch finished"
    if model is None or not has_test:
        reason = no_model if model is None else (no_data or "the data set has no test images")
        skipped["confusion"] = skipped["misclassified"] = reason
    else:
        P = model.predict_proba(dataset.x_test)  # (n_test, k), shared by both plots
        figures["confusion"] = plot_confusion(dataset.y_test, P.argmax(axis=1), model.n_classes)
        if not_images:
            skipped["misclassified"] = not_images
        else:
            figures["misclassified"] = plot_misclassified(dataset.x_test, dataset.y_test, P, image_shape)
    if dataset is None or not_images:
        skipped["samples"] = no_data or not_images
    else:
        figures["samples"] = plot_samples(dataset.x_train, dataset.y_train, image_shape)
    if model is None or not_images:
        skipped["weights"] = no_model if model is None else not_images
    else:
        figures["weights"] = plot_first_layer(model.state_dict()["W1"], image_shape)
    if health_series(metrics):
        figures["health"] = plot_health(metrics)
    else:
        skipped["health"] = "this run recorded no per-epoch health metrics ('health' in metrics.json)"
    order = {name: i for i, name in enumerate(RUN_PLOTS)}
    return dict(sorted(figures.items(), key=lambda kv: order[kv[0]])), skipped


def write_run_plots(run_dir, model=None, data=None, out=None, log=None):
    """Write every plot a run folder supports as ``<name>.png`` into ``out`` (default ``RUN_DIR/plots``).

    ``model`` and ``data`` are as for :func:`run_figures`; ``log`` receives one line per plot
    that could not be drawn, saying why. Returns a dict of plot name -> path written.
    """
    figures, skipped = run_figures(run_dir, model, data)
    out = out or RunFolder(run_dir).plots_dir
    os.makedirs(out, exist_ok=True)
    for name, reason in skipped.items():
        if log:
            log(f"{name} plot skipped: {reason}")
    return {name: save_figure(fig, os.path.join(out, f"{name}.png")) for name, fig in figures.items()}


def write_compare(run_dirs, out):
    """Overlay the curves of the runs in ``run_dirs`` in one PNG at ``out``. Returns ``out``."""
    if not os.fspath(out).lower().endswith(".png"):
        raise ConfigError(f"--out {out}: expected a .png file name.")
    runs = [RunFolder(d) for d in run_dirs]
    names = [run.name for run in runs]
    if len(set(names)) < len(names):  # same folder names in different places: use the paths
        names = [os.path.normpath(d) for d in run_dirs]
    curves = [(name, run.metrics()) for name, run in zip(names, runs)]
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    return save_figure(plot_compare(curves), out)
