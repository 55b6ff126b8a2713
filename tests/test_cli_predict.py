"""``steadynet predict``: the command-line front of steadynet.pictures.predict_images."""

import json

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

import steadynet  # noqa: E402
from steadynet.cli.app import main  # noqa: E402
from steadynet.pictures import predict_images  # noqa: E402


@pytest.fixture
def run_folder(tmp_path):
    """A run folder holding an (untrained, seeded) 784-16-10 model."""
    folder = tmp_path / "run"
    folder.mkdir()
    model = steadynet.MLP((784, 16, 10), "relu", seed=3)
    model.theta[...] = np.random.default_rng(0).normal(0, 0.3, model.n_params)  # varied outputs
    steadynet.save(folder / "model.npz", model)
    return folder


@pytest.fixture
def pictures(tmp_path):
    """Two dark-on-light pictures: a bar and a ring."""
    bar = np.full((90, 60), 240, dtype=np.uint8)
    bar[10:80, 25:35] = 20
    yy, xx = np.mgrid[:120, :100]
    ring = np.where(np.abs(np.hypot(yy - 60, xx - 50) - 35) < 6, 30, 220).astype(np.uint8)
    paths = [tmp_path / "bar.png", tmp_path / "ring.jpg"]
    Image.fromarray(bar).save(paths[0])
    Image.fromarray(np.stack([ring] * 3, axis=-1)).save(paths[1])
    return paths


def test_prints_label_and_top3(run_folder, pictures, capsys):
    expected = predict_images(run_folder, pictures)
    assert main(["predict", str(run_folder), *map(str, pictures)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line, r in zip(lines, expected):
        ranked = ", ".join(f"{t['label']}: {t['probability']:.3f}" for t in r["top"])
        assert line == f"{r['image']}: {r['label']}  ({ranked})"


def test_json_and_top(run_folder, pictures, capsys):
    assert main(["predict", str(run_folder / "model.npz"), str(pictures[1]), "--json", "--top", "5"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    probabilities = [t["probability"] for t in result["top"]]
    assert result["image"] == str(pictures[1]) and len(result["top"]) == 5
    assert probabilities == sorted(probabilities, reverse=True)
    assert result["label"] == result["top"][0]["label"]
    assert result == predict_images(run_folder, [pictures[1]], top=5)[0]


def test_bad_file_is_one_line_naming_it_and_hides_no_other_result(run_folder, pictures, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    noise = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    files = [str(pictures[0]), str(tmp_path / "notes.txt"), str(tmp_path / "noise.png"), str(pictures[1])]
    assert main(["predict", str(run_folder), *files]) == 1
    captured = capsys.readouterr()
    expected = predict_images(run_folder, [pictures[0], pictures[1]])
    assert [line.split(":")[0] for line in captured.out.splitlines()] == [r["image"] for r in expected]
    errors = captured.err.splitlines()
    assert len(errors) == 2 and all(line.startswith("steadynet predict: error: ") for line in errors)
    assert "notes.txt: not an image" in errors[0]
    assert "noise.png: no digit found" in errors[1]
    # --json: one list, the bad images in their places with their error
    assert main(["predict", str(run_folder), *files, "--json"]) == 1
    results = json.loads(capsys.readouterr().out)
    assert [("error" in r) for r in results] == [False, True, True, False]
    assert results[0] == expected[0] and results[3] == expected[1]


def test_model_that_is_not_28x28_is_refused(tmp_path, pictures, capsys):
    steadynet.save(tmp_path / "small.npz", steadynet.MLP((16, 4, 3)))
    assert main(["predict", str(tmp_path / "small.npz"), str(pictures[0])]) == 1
    assert "takes 16 inputs" in capsys.readouterr().err


def test_top_must_be_positive(run_folder, pictures, capsys):
    assert main(["predict", str(run_folder), str(pictures[0]), "--top", "0"]) == 1
    assert "--top must be an integer >= 1, got 0" in capsys.readouterr().err
