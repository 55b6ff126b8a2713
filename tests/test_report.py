"""The HTML run report and the end-of-training summary table."""

import base64
import html
import json
import os
import re
import shutil

import numpy as np
import pytest

import steadynet
from conftest import NOISY_RUN, make_blobs
from steadynet import viz
from steadynet.errors import DataFormatError
from steadynet.progress import summary_rows, summary_table
from steadynet.report import esc, render_report, run_figures, write_compare, write_report, write_run_plots
from test_viz import add_health, assert_visible_png, png_size

FIGURE = re.compile(r'<figure id="(\w+)"><img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


@pytest.fixture(scope="module")
def page(noisy_run, noisy_data):
    path = write_report(noisy_run[0], data=noisy_data)
    assert path == os.path.join(noisy_run[0], "report.html")
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_report_embeds_every_plot_as_a_png(page):
    figures = dict(FIGURE.findall(page))
    assert list(figures) == list(viz.RUN_PLOTS)
    for name, b64 in figures.items():
        assert png_size(base64.b64decode(b64)) == tuple(round(v * viz.DPI) for v in viz.FIGSIZE[name])


def test_report_notes_the_missing_health_plot(noisy_run, tmp_path):
    dest = tmp_path / "no-health"
    shutil.copytree(noisy_run[0], dest)
    metrics = json.loads((dest / "metrics.json").read_text())
    for e in metrics["epochs"]:
        del e["health"]
    (dest / "metrics.json").write_text(json.dumps(metrics))
    assert "Network health: not shown, because this run recorded no per-epoch health" in render_report(str(dest))


def test_report_shows_the_health_plot_when_recorded(noisy_run, tmp_path):
    add_health(noisy_run[0], tmp_path / "healthy")
    # without data only the plots that need none: curves, weights and health
    page = render_report(str(tmp_path / "healthy"))
    assert list(dict(FIGURE.findall(page))) == ["curves", "weights", "health"]
    assert "Network health: not shown" not in page


def test_report_holds_the_metrics_and_configuration(page, noisy_run):
    _, result = noisy_run
    for e in result["epochs"]:
        row = re.search(rf"<tr[^>]*><td class=key>{e['epoch']}</td>(.*?)</tr>", page).group(1)
        cells = re.findall(r"<td>([^<]*)</td>", row)
        assert cells[:4] == [
            f"{e['train_loss']:.4f}",
            f"{100 * e['train_accuracy']:.2f}%",
            f"{e['val_loss']:.4f}",
            f"{100 * e['val_accuracy']:.2f}%",
        ]
    assert f"<b>{100 * result['test_accuracy']:.2f}%</b>" in page
    assert f"<b>{result['test_loss']:.4f}</b>" in page
    for k, acc in enumerate(result["per_class_accuracy"]):  # the recall column
        row = result["classification"]["classes"][k]
        assert row["recall"] == acc
        assert f"<td class=key>{k}</td><td>{esc(row['precision'], 'percent')}</td><td>{100 * acc:.2f}%</td>" in page
    assert "<td class=key>optimizer</td><td>nesterov</td>" in page
    assert "<td class=key>hidden</td><td>[16]</td>" in page


def test_report_is_self_contained(page):
    refs = re.findall(r'(?:src|href)\s*=\s*["\']?([^"\' >]+)', page)
    assert refs and all(r.startswith(("data:", "#")) for r in refs)  # embedded, or a link within the page
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "@import" not in page and "url(" not in page


def test_report_escapes_text_from_the_run_folder(noisy_run, tmp_path):
    import shutil

    shutil.copytree(noisy_run[0], tmp_path / "run")
    path = tmp_path / "run" / "config.json"
    description = json.loads(path.read_text())
    description["command"] = ["steadynet", "<script>alert('x')</script>"]
    path.write_text(json.dumps(description))
    page = render_report(str(tmp_path / "run"))
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_report_of_a_diverged_run_shows_the_divergence(noisy_data, tmp_path):
    out = str(tmp_path / "diverged")
    with pytest.raises(steadynet.NonFiniteError):
        steadynet.train(
            data=noisy_data, out=out, **{**NOISY_RUN, "optimizer": "sgd", "learning_rate": 1e20, "activation": "relu"}
        )
    with open(os.path.join(out, "divergence.json")) as f:
        report = json.load(f)
    page = render_report(out, data=noisy_data)
    assert '<h2 id="s-divergence-report">Divergence report</h2>' in page
    assert '<a href="#s-divergence-report">Divergence report</a>' in page  # in the table of contents
    # the loop's own reason, not always "became non-finite"; the ranked causes with the first one's fix
    assert f"step {report['step']}: {html.escape(report['reason'])} (first: {html.escape(report['first'])})" in page
    assert "Likely causes, most likely first" in page and html.escape(report["causes"][0]["cause"]) in page
    assert f"Try first: {html.escape(report['causes'][0]['fix'])}" in page
    # no epoch finished: no curves, but the last finite weights are still drawn
    assert "Learning curves: not shown, because no epoch finished" in page
    assert {"weights", "confusion"} <= set(dict(FIGURE.findall(page)))


# ------------------------------------------------------------------------- plot files


def test_every_plot_renders_from_a_real_run(noisy_run, noisy_data, tmp_path):
    run_dir, _ = noisy_run
    notes = []
    written = write_run_plots(run_dir, data=noisy_data, log=notes.append)
    assert list(written) == list(viz.RUN_PLOTS) and notes == []  # training records health
    for name, path in written.items():
        assert path == os.path.join(run_dir, "plots", f"{name}.png")
        assert_visible_png(path, name)


def test_health_plot_renders_when_metrics_have_health(noisy_run, noisy_data, tmp_path):
    run_dir, _ = noisy_run
    add_health(run_dir, tmp_path / "healthy")
    written = write_run_plots(str(tmp_path / "healthy"), data=noisy_data, out=str(tmp_path / "png"))
    assert "health" in written
    assert_visible_png(written["health"], "health")


def test_in_memory_data_cannot_be_reloaded_so_its_plots_are_skipped(noisy_run, tmp_path):
    notes = []
    written = write_run_plots(noisy_run[0], out=str(tmp_path), log=notes.append)
    assert set(written) == {"curves", "weights", "health"}  # need no data
    skipped = [n for n in notes if "--data" in n]
    assert {n.split()[0] for n in skipped} == {"confusion", "misclassified", "samples"}


def test_data_of_the_wrong_size_is_refused(noisy_run):
    with pytest.raises(DataFormatError, match="16 pixels.*expects 784"):
        run_figures(noisy_run[0], data=make_blobs(n_features=16))


def test_compare_overlays_every_run(noisy_run, noisy_data, tmp_path):
    other = steadynet.train(data=noisy_data, out=str(tmp_path / "other"), **{**NOISY_RUN, "hidden": (8,)})
    path = write_compare([noisy_run[0], str(tmp_path / "other")], str(tmp_path / "cmp.png"))
    assert_visible_png(path, "compare")
    fig = viz.plot_compare([("a", noisy_run[1]), ("b", other)])
    labels = {line.get_label() for line in fig.axes[1].get_lines()}
    assert labels == {"a (train)", "a (validation)", "b (train)", "b (validation)"}


# ------------------------------------------------------------------------- summary table


def test_summary_table_lists_each_epoch_and_the_result(noisy_run):
    _, result = noisy_run
    lines = summary_table(result).splitlines()
    assert lines[0].split() == ["epoch", "train", "loss", "train", "acc", "val", "loss", "val", "acc", "lr", "time"]
    end = next(i for i, line in enumerate(lines) if line.startswith("completed"))
    rows, outcome = lines[1:end], " ".join(lines[end:])
    assert all(len(line) <= 79 for line in lines)  # fits an 80-column terminal
    assert [int(r.split()[0].rstrip("*")) for r in rows] == [1, 2, 3]
    for row, e in zip(rows, result["epochs"]):
        assert row.split()[1:5] == [f"{e[k]:.4f}" for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")]
    starred = [r for r in rows if r.split()[0].endswith("*")]
    assert len(starred) == 1 and starred[0].split()[0] == f"{result['best_epoch']}*"
    # the test accuracy says which model it is of: the last epoch's, as there was no early stopping
    assert f"test accuracy of epoch 3's model {result['test_accuracy']:.4f}" in outcome
    assert f"best validation epoch {result['best_epoch']} (* above)" in outcome
    narrow = summary_table(result, width=59).splitlines()
    assert all(len(line) <= 59 for line in narrow) and "time" not in narrow[0] and "val acc" in narrow[0]


def test_summary_of_a_long_run_keeps_first_best_and_last():
    epochs = [
        {
            "epoch": k,
            "train_loss": 1 / k,
            "train_accuracy": 0.5,
            "val_loss": None,
            "val_accuracy": None,
            "learning_rate": 0.1,
            "seconds": 1.0,
        }
        for k in range(1, 151)
    ]
    table = summary_table({"status": "completed", "epochs": epochs, "best_epoch": 77}, max_rows=10)
    shown = [int(line.split()[0].rstrip("*")) for line in table.splitlines()[1:11]]
    assert len(shown) == 10 and {1, 77, 150} <= set(shown) and shown == sorted(shown)
    assert "(10 of 150 epochs shown" in table
    assert " - " in table.splitlines()[1]  # no validation: a dash, not "None"
    for n, best, m in [(5, 2, 12), (40, 39, 6), (100, None, 12), (13, 0, 12)]:
        rows = summary_rows(n, best, m)
        assert len(rows) == min(n, m) and rows[0] == 0 and rows[-1] == n - 1
        assert best is None or best in rows
        assert np.all(np.diff(rows) > 0)


# ------------------------------------------------------------------------- numbers for people


def test_numbers_are_written_for_people():
    from steadynet.report import number

    assert number(12.3045, "seconds") == "12.3 s" and number(61.4, "seconds") == "1:01"
    assert number(0.97623, "percent") == "97.62%"
    assert number(0.05, "rate") == "0.05" and number(7.41e-12, "rate") == "7.41 × 10⁻¹²"
    assert number(1.853e-08) == "1.85 × 10⁻⁸" and number(0.2514) == "0.2514"


def test_report_has_contents_readable_numbers_and_precision_recall_f1(page, noisy_run):
    _, result = noisy_run
    assert "<nav><b>Contents</b><ol>" in page and '<a href="#s-plots">Plots</a>' in page
    assert f"{100 * result['test_accuracy']:.2f}%" in page  # not 0.9850
    assert re.search(r"<td>\d+\.\d s</td>", page)  # epoch times, not 0.0123
    assert "e-0" not in page  # no raw exponents anywhere
    assert "Test precision, recall and F1 per class" in page and "macro mean" in page
    assert "learning_rate</td><td>default (" in page or "learning_rate</td><td>0." in page
    assert f"test accuracy (epoch {result['epochs'][-1]['epoch']}&#x27;s model)" in page
