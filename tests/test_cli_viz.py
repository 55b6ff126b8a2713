"""``steadynet plot``, ``report`` and ``compare`` end to end, from runs trained by the CLI."""

import json
import os

import pytest

from conftest import noisy_blobs
from steadynet import viz
from steadynet.cli.app import main
from steadynet.data.npz import write_npz
from test_viz import assert_visible_png

TRAIN = [
    "--hidden",
    "16",
    "--epochs",
    "3",
    "--batch-size",
    "32",
    "--val-size",
    "100",
    "--augment-shift",
    "0",
    "--quiet",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two short runs trained through the CLI on a data file, so plots can reload the data."""
    folder = tmp_path_factory.mktemp("cli_viz")
    npz = str(folder / "blobs.npz")
    write_npz(npz, noisy_blobs())
    paths = []
    for name, seed in (("a", "0"), ("b", "1")):
        out = str(folder / name)
        assert main(["train", "--data", npz, "--out", out, "--seed", seed, *TRAIN]) == 0
        paths.append(out)
    return folder, paths


def test_plot_writes_every_plot_of_the_run(runs, capsys):
    _, (run, _) = runs
    capsys.readouterr()
    assert main(["plot", run]) == 0
    out, err = capsys.readouterr()
    expected = list(viz.RUN_PLOTS)
    assert out.split() == [os.path.join(run, "plots", f"{name}.png") for name in expected]
    assert err == ""  # every plot drawn: no notice on stderr
    for name in expected:
        assert_visible_png(os.path.join(run, "plots", f"{name}.png"), name)


def test_plot_json_and_out_folder(runs, capsys, tmp_path):
    _, (run, _) = runs
    capsys.readouterr()
    assert main(["plot", run, "--out", str(tmp_path / "png"), "--json"]) == 0
    written = json.loads(capsys.readouterr().out)["plots"]
    assert set(written) == {"curves", "confusion", "misclassified", "samples", "weights", "health"}
    assert all(os.path.dirname(p) == str(tmp_path / "png") and os.path.exists(p) for p in written.values())


def test_report_writes_one_html_file(runs, capsys, tmp_path):
    _, (run, _) = runs
    capsys.readouterr()
    target = str(tmp_path / "r" / "report.html")
    assert main(["report", run, "--out", target]) == 0
    assert capsys.readouterr().out.strip() == target
    with open(target, encoding="utf-8") as f:
        page = f.read()
    assert page.count('src="data:image/png;base64,') == len(viz.RUN_PLOTS)
    with open(os.path.join(run, "metrics.json")) as f:
        metrics = json.load(f)
    assert f"<b>{100 * metrics['test_accuracy']:.2f}%</b>" in page


def test_compare_overlays_two_runs(runs, capsys):
    folder, paths = runs
    capsys.readouterr()
    target = str(folder / "compare.png")
    assert main(["compare", *paths, "--out", target]) == 0
    assert capsys.readouterr().out.strip() == target
    assert_visible_png(target, "compare")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["plot", "{missing}"], "not a run folder"),
        (["report", "{empty}"], "must hold metrics.json"),
        (["compare", "{run}", "--out", "{folder}/curves.jpg"], "expected a .png file name"),
        (["plot", "{run}", "--data", "{folder}/nope.npz"], "no such file"),
    ],
)
def test_user_mistakes_give_one_line(runs, capsys, tmp_path, argv, message):
    folder, (run, _) = runs
    (tmp_path / "empty").mkdir()
    argv = [a.format(missing=tmp_path / "missing", empty=tmp_path / "empty", run=run, folder=folder) for a in argv]
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"steadynet {argv[0]}: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_compare_needs_an_output_file(runs, capsys):
    _, paths = runs
    with pytest.raises(SystemExit) as exc:
        main(["compare", *paths])
    assert exc.value.code == 2
    assert "--out" in capsys.readouterr().err
