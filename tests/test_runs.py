"""RunFolder: which file is the run's model for each reader, the run a path belongs to, JSON
read and written (atomically), and errors that name the file."""

import itertools
import json
import os
import shutil

import pytest

from conftest import make_blobs
from steadynet import train
from steadynet.errors import ModelFileError
from steadynet.persistence import CHECKPOINT_FORMAT, MODEL_FORMAT, FileWriteError
from steadynet.runs import MODEL_FILES, PREFER, RunFolder

MODEL, LAST_FINITE, BEST, LAST = "model.npz", "last_finite.npz", "checkpoints/best.npz", "checkpoints/last.npz"
# what each reader takes, in order, written out here rather than read from steadynet.runs
TAKES = {
    "final": [MODEL],
    "best": [MODEL, BEST, LAST],
    "latest": [MODEL, LAST],
    "inspect": [MODEL, LAST_FINITE, BEST],
}
SUBSETS = [set(c) for k in range(5) for c in itertools.combinations([MODEL, LAST_FINITE, BEST, LAST], k)]


def folder_with(root, files):
    """A run folder holding ``files`` (placeholders: model_file looks at names only)."""
    run = root / ("run-" + ("-".join(sorted(f.replace("/", "_") for f in files)) or "empty"))
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    for name in files:
        (run / name).write_bytes(b"placeholder")
    return run


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A finished short run: config.json, metrics.json, model.npz and both checkpoints."""
    out = tmp_path_factory.mktemp("runs") / "done"
    train(data=make_blobs(n_train=120, n_test=30), out=str(out), epochs=1, hidden=(3,), val_size=30, batch_size=30)
    return out


def test_the_readers_choices_are_parts_of_one_order():
    order = list(MODEL_FILES)
    assert [os.path.normpath(p) for p in order] == [os.path.normpath(p) for p in (MODEL, LAST_FINITE, BEST, LAST)]
    for prefer, choice in PREFER.items():
        names = choice.files
        assert [os.path.normpath(n) for n in names] == [os.path.normpath(n) for n in TAKES[prefer]]
        assert [order.index(n) for n in names] == sorted(order.index(n) for n in names)


@pytest.mark.parametrize("prefer", list(TAKES))
def test_model_file_takes_the_first_present_of_its_files_in_every_folder(tmp_path, prefer):
    for files in SUBSETS:
        run = RunFolder(folder_with(tmp_path, files))
        expected = next((name for name in TAKES[prefer] if name in files), None)
        if expected is None and prefer == "inspect":
            assert run.model_file(prefer, missing_ok=True) == (None, None)
        elif expected is None:
            with pytest.raises(ModelFileError, match=r"run-.*: a run folder must hold model\.npz"):
                run.model_file(prefer)
        else:
            path, fmt = run.model_file(prefer)
            assert path == os.path.join(run.path, expected), (prefer, files)
            assert fmt == (CHECKPOINT_FORMAT if expected == LAST else MODEL_FORMAT)


def test_a_folder_without_the_model_says_what_it_needs(tmp_path):
    run = RunFolder(folder_with(tmp_path, set()))
    with pytest.raises(ModelFileError, match=r"must hold model\.npz; it does not \(did the run finish\? checkpoints"):
        run.model_file("final")
    with pytest.raises(ModelFileError, match=r"must hold model\.npz; it does not \(did the run finish\?"):
        run.model_file("latest")
    with pytest.raises(ModelFileError, match=r"must hold model\.npz or checkpoints.last\.npz; it holds neither\.$"):
        run.model_file("best")
    assert run.no_model_file("inspect") == (
        "the run folder holds no model file (model.npz, last_finite.npz or checkpoints/best.npz)"
    )
    with pytest.raises(ValueError, match=r"prefer must be one of 'final', 'best', 'latest', 'inspect'; got 'newest'"):
        run.model_file("newest")
    with pytest.raises(ModelFileError, match=r"nothing\.npz: no such model file or run folder\."):
        RunFolder(tmp_path / "nothing.npz").model_file("best")


def test_load_model_reads_model_files_and_checkpoints(done, tmp_path):
    model, path, meta = RunFolder(done).load_model("best")
    assert path == os.path.join(done, MODEL) and meta["format"] == MODEL_FORMAT
    live = tmp_path / "live"
    shutil.copytree(done, live)
    (live / MODEL).unlink()
    (live / BEST).unlink()
    ckpt, path, meta = RunFolder(live).load_model("latest")
    assert path == os.path.join(live, LAST) and meta["format"] == CHECKPOINT_FORMAT
    assert ckpt.layer_sizes == model.layer_sizes
    # a checkpoint named directly: a model to evaluate, but not a model for load()
    assert RunFolder(live / LAST).load_model("best")[1] == str(live / LAST)
    with pytest.raises(ModelFileError, match="expected a steadynet-model file, found format 'steadynet-checkpoint'"):
        RunFolder(live / LAST).load_model("final")
    assert RunFolder(live).load_model("inspect") == (None, None, None)


def test_containing_finds_the_run_of_a_folder_a_model_or_a_checkpoint(done, tmp_path):
    for path in (done, done / MODEL, done / LAST, done / BEST):
        run = RunFolder.containing(path)
        assert run is not None and os.path.samefile(run.path, done), path
    (tmp_path / "loose.npz").write_bytes(b"")
    assert RunFolder.containing(tmp_path / "loose.npz") is None  # no config.json beside it
    assert RunFolder.containing(tmp_path) is None


def test_config_metrics_and_settings(done, tmp_path):
    run = RunFolder(done)
    assert run.config()["config"]["hidden"] == [3] and run.metrics()["status"] == "completed"
    assert run.data_spec() == run.config()["config"]["data"]
    assert run.completed() and not run.standardised() and run.divergence() is None
    empty = RunFolder(tmp_path)
    assert empty.config() == {} and empty.data_spec() is None and not empty.completed()


def test_bad_json_is_refused_naming_the_file(tmp_path):
    run = RunFolder(tmp_path)
    with pytest.raises(ModelFileError, match=r"must hold metrics\.json; it does not \(did the run finish its first"):
        run.metrics()
    (tmp_path / "metrics.json").write_text("[1, 2]")
    with pytest.raises(ModelFileError, match=r"metrics\.json: expected a JSON object, found list"):
        run.metrics()
    (tmp_path / "metrics.json").write_text('{"epochs": 3}')
    with pytest.raises(ModelFileError, match=r"metrics\.json: 'epochs' must be a list, found int"):
        run.metrics()
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match=r"config\.json: not readable JSON"):
        run.config()
    assert run.data_spec() is None  # the readers that can do without it do
    with pytest.raises(ModelFileError, match=r"missing: not a run folder \(no such folder\)"):
        RunFolder(tmp_path / "missing").metrics()


def test_write_json_is_atomic_and_leaves_the_old_file_on_failure(tmp_path, monkeypatch):
    run = RunFolder(tmp_path)
    run.write_json("metrics.json", {"status": "running"})
    run.write_json(run.config_path, {"config": {}})  # a path is taken as it is
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"status": "running"}
    assert sorted(os.listdir(tmp_path)) == ["config.json", "metrics.json"]
    with pytest.raises(TypeError):  # fails mid-write
        run.write_json("metrics.json", {"status": object()})
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(FileWriteError, match=r"metrics\.json: No space left on device; any previous version"):
        run.write_json("metrics.json", {"status": "completed"})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"status": "running"}
    assert sorted(os.listdir(tmp_path)) == ["config.json", "metrics.json"]  # no temporary file left


def test_record_resume_appends_to_the_resumes_so_far(tmp_path):
    from types import SimpleNamespace

    run = RunFolder(tmp_path)
    first = run.record_resume({"config": {}}, {"epochs": [1, 2]}, SimpleNamespace(epoch=1, step=10))
    run.write_json("config.json", first)
    second = run.record_resume({"config": {}}, {}, SimpleNamespace(epoch=2, step=20))
    assert [(r["epoch"], r["step"], r["changed"]) for r in second["resumes"]] == [
        (1, 10, {"epochs": [1, 2]}),
        (2, 20, {}),
    ]
