"""``report.html``: one self-contained page about a run.

It holds the outcome, any warnings and the divergence report, every plot (PNG embedded as
``data:`` URIs), the per-epoch metrics, the per-class test accuracy and the configuration.
It needs no other file and no network: no scripts, no external style sheets, no fonts.
Every piece of text from the run folder is HTML-escaped.
"""

import base64
import html
import json
import os

from .viz import figure_png, read_json_object, read_run, run_figures

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
TITLES = {"curves": "Learning curves", "confusion": "Confusion matrix",
          "misclassified": "Most confident mistakes", "samples": "Sample inputs",
          "weights": "First-layer weights", "health": "Network health"}
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


def esc(value):
    """Any value as escaped HTML text; floats with 4 significant decimals, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if 1e-3 <= abs(value) < 1e5 else f"{value:.4g}"
    if isinstance(value, (list, dict)):
        value = json.dumps(value)
    return html.escape(str(value))


def table(header, rows, row_classes=None):
    """An HTML table: the first column left-aligned (a key), the others right-aligned (numbers)."""
    head = "".join(f'<th{" class=key" if i == 0 else ""}>{esc(h)}</th>' for i, h in enumerate(header))
    body = []
    for r, row in enumerate(rows):
        cls = f' class="{row_classes[r]}"' if row_classes and row_classes[r] else ""
        cells = "".join(f'<td{" class=key" if i == 0 else ""}>{esc(v)}</td>' for i, v in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def png_data_uri(png):
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def warnings_of(run_dir, metrics):
    """``(level, text)`` for everything a reader should notice before the numbers."""
    found = []
    status = metrics.get("status")
    if status == "interrupted":
        found.append(("warning", f"The run was interrupted; resume it with "
                                 f"`steadynet train --resume {run_dir}`."))
    elif status == "running":
        found.append(("warning", "The run has not finished (or stopped without writing its result)."))
    for text in metrics.get("warnings") or []:
        found.append(("warning", text))
    return found


def divergence_of(run_dir, metrics):
    """The divergence report: from metrics.json, else divergence.json; None if the run did not diverge."""
    if metrics.get("divergence"):
        return metrics["divergence"]
    path = os.path.join(run_dir, "divergence.json")
    return read_json_object(path) if os.path.exists(path) else None


def divergence_html(report):
    rows = [(k, report[k]) for k in ("epoch", "step", "batch", "loss", "learning_rate", "first") if k in report]
    parts = [f'<div class="error"><b>Training diverged</b> at epoch {esc(report.get("epoch"))}, '
             f'step {esc(report.get("step"))}: the {esc(report.get("first"))} became non-finite. '
             f'The weights of the step before were kept. Try a smaller learning rate or '
             f'<code>--clip-norm 1</code>.</div>', table(("field", "value"), rows)]
    if report.get("weight_norms"):
        parts.append("<p>Weight norms at the last finite step:</p>")
        parts.append(table(("parameter", "L2 norm"), list(report["weight_norms"].items())))
    return "\n".join(parts)


def render_report(run_dir, model=None, data=None):
    """The report of a run folder as one HTML string (see :func:`write_report`)."""
    description, metrics = read_run(run_dir)
    figures, skipped = run_figures(run_dir, model, data)
    name = os.path.basename(os.path.normpath(run_dir))
    config = description.get("config") or metrics.get("config") or {}
    epochs = metrics.get("epochs", [])
    out = [f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
           f"<title>steadynet run {esc(name)}</title><style>{STYLE}</style></head><body>",
           f"<h1>Run <code>{esc(name)}</code></h1>"]
    model_desc = description.get("model", {})
    if model_desc:
        out.append(f'<p class=note>{esc("-".join(map(str, model_desc.get("layer_sizes", []))))} '
                   f'{esc(model_desc.get("activation"))} network trained on '
                   f'{esc(description.get("data", {}).get("source"))} with steadynet '
                   f'{esc(description.get("steadynet_version"))}.</p>')

    # the outcome at a glance
    cards = [("status", metrics.get("status")), ("test accuracy", metrics.get("test_accuracy")),
             ("test loss", metrics.get("test_loss")), ("best epoch", metrics.get("best_epoch")),
             ("epochs run", len(epochs)), ("training time (s)", metrics.get("train_seconds"))]
    out.append('<div class=cards>' + "".join(f"<div class=card>{esc(k)}<b>{esc(v)}</b></div>"
                                             for k, v in cards) + "</div>")

    # warnings and divergence
    for level, text in warnings_of(run_dir, metrics):
        out.append(f'<div class="{level}">{esc(text)}</div>')
    divergence = divergence_of(run_dir, metrics)
    if divergence:
        out.append("<h2>Divergence report</h2>")
        out.append(divergence_html(divergence))

    # plots
    out.append("<h2>Plots</h2>")
    for plot, fig in figures.items():
        out.append(f'<figure id="{plot}"><img alt="{esc(TITLES[plot])}" src="{png_data_uri(figure_png(fig))}">'
                   f"<figcaption>{esc(CAPTIONS[plot])}</figcaption></figure>")
    for plot, reason in skipped.items():
        out.append(f'<p class=note>{esc(TITLES[plot])}: not shown, because {esc(reason)}.</p>')

    # metrics
    out.append("<h2>Metrics per epoch</h2>")
    keys = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")
    out.append(table(keys, [[e.get(k) for k in keys] for e in epochs],
                     ["best" if e.get("epoch") == metrics.get("best_epoch") else "" for e in epochs]))
    if metrics.get("per_class_accuracy"):
        out.append("<h2>Test accuracy per class</h2>")
        out.append(table(("class", "accuracy"), list(enumerate(metrics["per_class_accuracy"]))))

    # configuration
    out.append("<h2>Configuration</h2>")
    out.append(table(("setting", "value"), sorted(config.items())))
    extra = [(k, description[k]) for k in ("learning_rate", "steadynet_version", "python", "numpy",
                                           "machine", "command") if k in description]
    extra += [(f"data {k}", v) for k, v in description.get("data", {}).items()]
    if extra:
        out.append("<h3>Resolved settings and environment</h3>")
        out.append(table(("item", "value"), extra))
    out.append(f"<p class=note>Generated by <code>steadynet report</code> from {esc(os.path.abspath(run_dir))}."
               f"</p></body></html>")
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
        As for :func:`steadynet.viz.run_figures`.

    Returns
    -------
    str, the path written.
    """
    from .persistence import atomic_write

    out = out or os.path.join(run_dir, "report.html")
    page = render_report(run_dir, model, data).encode("utf-8")
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    atomic_write(out, lambda f: f.write(page))
    return out
