"""Model and checkpoint files: round trips, refusal of every kind of bad file, atomic writes."""

import errno
import io
import json
import os
import pathlib
import pickle
import struct
import zipfile

import numpy as np
import pytest

from conftest import make_blobs
from steadynet import MLP, load, save, train
from steadynet.errors import ModelFileError
from steadynet.persistence import (
    CHECKPOINT_FORMAT,
    FORMAT_VERSION,
    MODEL_FORMAT,
    FileWriteError,
    atomic_write,
    file_sha256,
    load_arrays,
)


@pytest.fixture
def model():
    return MLP((16, 5, 3), "tanh", dropout=0.2, dtype="float64", seed=4)


def write_npz(path, members, meta=None):
    """A hand-made steadynet-like file: ``members`` as given, ``meta`` as its __meta__ JSON."""
    if meta is not None:
        members = dict(members, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    np.savez(path, **members)
    return path


def valid_meta(net, arrays, **changes):
    """Metadata with a correct checksum: what a forger who knows the format would write."""
    meta = dict({"format": MODEL_FORMAT, "version": FORMAT_VERSION, "model": net.config()}, **changes)
    return dict(meta, sha256=file_sha256(arrays, meta))


# ------------------------------------------------------------------ round trips


def test_model_round_trip_is_exact(model, tmp_path):
    save(tmp_path / "m.npz", model, note="hello")
    back = load(tmp_path / "m.npz")
    assert np.array_equal(back.theta, model.theta) and back.theta.dtype == np.float64
    assert back.config() == model.config()
    _, meta = load_arrays(tmp_path / "m.npz", MODEL_FORMAT)
    assert meta["note"] == "hello" and meta["version"] == FORMAT_VERSION


def test_file_holds_only_numeric_arrays_and_json(model, tmp_path):
    save(tmp_path / "m.npz", model)
    with zipfile.ZipFile(tmp_path / "m.npz") as z:
        names = sorted(z.namelist())
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
    assert names == ["W1.npy", "W2.npy", "__meta__.npy", "b1.npy", "b2.npy"]
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:  # numpy alone can read it
        meta = json.loads(z["__meta__"].tobytes())
        assert all(z[n].dtype.kind in "biuf" for n in z.files)
    assert meta["format"] == MODEL_FORMAT and meta["model"]["layer_sizes"] == [16, 5, 3]


def test_run_folder_stands_for_its_model(tmp_path):
    out = tmp_path / "run"
    result = train(data=make_blobs(), out=str(out), epochs=1, hidden=(4,), val_size=50, augment_shift=0)
    assert np.array_equal(load(out).theta, result.model.theta)
    os.remove(out / "model.npz")
    with pytest.raises(ModelFileError, match=r"must hold model.npz.*did the run finish"):
        load(out)


# ------------------------------------------------------------------ refusals


class Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


@pytest.mark.parametrize("member", ["W1", "__meta__"])
def test_pickle_payload_is_refused_and_never_runs(member, model, tmp_path):
    marker = tmp_path / "pwned"
    arrays = model.state_dict()
    payload = np.array([Payload(str(marker))], dtype=object)
    members = dict(arrays, **{member: payload})
    path = write_npz(tmp_path / "evil.npz", members, None if member == "__meta__" else valid_meta(model, arrays))

    # the payload is live: numpy with pickles allowed would run it
    with np.load(path, allow_pickle=True) as z:
        z[member]
    assert marker.exists()
    marker.unlink()

    for read in (
        lambda: load(path),
        lambda: load_arrays(path, MODEL_FORMAT),
        lambda: load_arrays(path, CHECKPOINT_FORMAT),
    ):
        with pytest.raises(ModelFileError, match=rf"member '{member}.npy' has dtype object; only numeric"):
            read()
    assert not marker.exists()


def test_raw_pickle_file_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps(Payload(str(marker))))
    with pytest.raises(ModelFileError, match="not a readable steadynet file"):
        load(path)
    assert not marker.exists()


def test_wrong_format_version_is_refused(model, tmp_path):
    arrays = model.state_dict()
    path = write_npz(tmp_path / "m.npz", arrays, valid_meta(model, arrays, version=FORMAT_VERSION + 1))
    with pytest.raises(ModelFileError, match=rf"format version {FORMAT_VERSION + 1} is not supported"):
        load(path)


def test_wrong_format_is_refused(model, tmp_path):
    arrays = model.state_dict()
    path = write_npz(tmp_path / "m.npz", arrays, valid_meta(model, arrays, format="something-else"))
    with pytest.raises(ModelFileError, match="expected a steadynet-model file, found format 'something-else'"):
        load(path)


def test_file_without_meta_is_refused(model, tmp_path):
    path = write_npz(tmp_path / "m.npz", model.state_dict())
    with pytest.raises(ModelFileError, match="not a steadynet file"):
        load(path)


def test_wrong_shapes_are_refused_even_with_a_valid_checksum(model, tmp_path):
    arrays = model.state_dict()
    arrays["W1"] = arrays["W1"].T.copy()  # (5, 16) instead of (16, 5)
    path = write_npz(tmp_path / "m.npz", arrays, valid_meta(model, arrays))
    with pytest.raises(ModelFileError, match=r"does not fit its own description.*W1 must have shape \(16, 5\)"):
        load(path)


def test_forged_architecture_cannot_make_the_reader_allocate(model, tmp_path):
    arrays = model.state_dict()
    config = dict(model.config(), layer_sizes=[10**6, 10**6, 3])  # ~4 TB of weights
    path = write_npz(tmp_path / "m.npz", arrays, valid_meta(model, arrays, model=config))
    with pytest.raises(ModelFileError, match="need 1000004000003 parameters, the file holds 103"):
        load(path)


def test_non_finite_weights_are_refused(model, tmp_path):
    arrays = model.state_dict()
    arrays["b2"][1] = np.nan
    path = write_npz(tmp_path / "m.npz", arrays, valid_meta(model, arrays))
    with pytest.raises(ModelFileError, match=r"parameters \['b2'\] hold NaN or infinity"):
        load(path)


def test_altered_array_fails_the_checksum(model, tmp_path):
    save(tmp_path / "m.npz", model)
    arrays, meta = load_arrays(tmp_path / "m.npz", MODEL_FORMAT)
    arrays["W2"][0, 0] += 1e-12  # one ulp-sized change, with a correct zip CRC
    path = write_npz(tmp_path / "altered.npz", arrays, meta)
    with pytest.raises(ModelFileError, match="checksum mismatch: the file is corrupted or was altered"):
        load(path)


def test_altered_metadata_fails_the_checksum(tmp_path):
    out = tmp_path / "run"
    train(data=make_blobs(), out=str(out), epochs=1, hidden=(4,), val_size=50, augment_shift=0)
    arrays, meta = load_arrays(out / "checkpoints" / "last.npz", CHECKPOINT_FORMAT)
    meta["state"]["lr_scale"] = 0.5  # would silently change the resumed run
    path = write_npz(tmp_path / "altered.npz", arrays, meta)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load_arrays(path, CHECKPOINT_FORMAT)


def test_bit_flips_and_truncation_are_refused(model, tmp_path):
    save(tmp_path / "m.npz", model)
    raw = (tmp_path / "m.npz").read_bytes()
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad.npz"
    for cut in sorted(rng.choice(len(raw), size=20, replace=False)):
        bad.write_bytes(raw[:cut])
        with pytest.raises(ModelFileError):
            load(bad)
    # a flipped bit inside the stored data: the zip CRC or the checksum catches it
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        info = z.getinfo("W1.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for pos in rng.integers(start + 128, start + info.file_size, size=20):
        flipped = bytearray(raw)
        flipped[pos] ^= 1 << int(rng.integers(8))
        bad.write_bytes(bytes(flipped))
        with pytest.raises(ModelFileError):
            load(bad)


def test_compressed_or_foreign_members_are_refused(model, tmp_path):
    arrays = model.state_dict()
    meta = np.frombuffer(json.dumps(valid_meta(model, arrays)).encode(), dtype=np.uint8)
    np.savez_compressed(tmp_path / "c.npz", __meta__=meta, **arrays)
    with pytest.raises(ModelFileError, match="compressed or encrypted"):
        load(tmp_path / "c.npz")
    with zipfile.ZipFile(tmp_path / "f.npz", "w") as z:
        z.writestr("notes.txt", "hello")
    with pytest.raises(ModelFileError, match=r"member 'notes.txt' is not a .npy array"):
        load(tmp_path / "f.npz")


def test_header_promising_more_data_than_the_file_holds_is_refused(tmp_path):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (10000000000,), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"  # pad the header to 64 bytes
    forged = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(16)
    with zipfile.ZipFile(tmp_path / "h.npz", "w") as z:
        z.writestr("W1.npy", forged)
    with pytest.raises(ModelFileError, match=r"promises shape \(10000000000,\) \(40000000000 bytes\), but 16"):
        load(tmp_path / "h.npz")


def test_missing_file_is_one_clear_line(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file or run folder") as info:
        load(tmp_path / "nope.npz")
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ atomic writes and a full disk


class FullDisk:
    """A file that accepts ``budget`` bytes and then fails as a full disk does."""

    def __init__(self, f, budget):
        self.f, self.budget = f, budget

    def write(self, b):
        if len(b) > self.budget:
            self.f.write(bytes(b)[: self.budget])
            self.budget = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.budget -= len(b)
        return self.f.write(b)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def fill_disk_after(monkeypatch, budget):
    """Every file ``steadynet.persistence`` opens from now on fails after ``budget`` bytes."""
    import builtins

    from steadynet import persistence

    monkeypatch.setattr(
        persistence, "open", lambda path, mode="r": FullDisk(builtins.open(path, mode), budget), raising=False
    )


def test_atomic_write_keeps_the_previous_file_on_a_full_disk(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    atomic_write(path, lambda f: f.write(b"old contents"))
    fill_disk_after(monkeypatch, 100)
    with pytest.raises(FileWriteError) as info:
        atomic_write(path, lambda f: f.write(b"x" * 1000))
    assert (
        str(info.value)
        == f"could not write {path}: No space left on device; any previous version of it is left intact."
    )
    assert path.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["f.bin"]  # no temporary file left behind


@pytest.mark.skipif(os.name != "posix", reason="leftovers are recognised by their process id on POSIX")
def test_a_write_clears_what_killed_writers_left_and_nothing_else(tmp_path):
    import subprocess
    import sys

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(gone.stdout)  # that process has exited
    path = tmp_path / "last.npz"
    (tmp_path / f"last.npz.tmp-{dead_pid}").write_bytes(b"half a checkpoint")  # a writer killed mid-write
    (tmp_path / f"last.npz.tmp-{os.getppid()}").write_bytes(b"in progress")  # a live writer's
    (tmp_path / f"other.npz.tmp-{dead_pid}").write_bytes(b"another file's")
    atomic_write(path, lambda f: f.write(b"new"))
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["last.npz", f"last.npz.tmp-{os.getppid()}", f"other.npz.tmp-{dead_pid}"]
    )
    assert path.read_bytes() == b"new"


def test_full_disk_during_training_keeps_the_last_checkpoint_and_resumes(tmp_path, monkeypatch):
    data = make_blobs()
    config = dict(
        epochs=3, hidden=(6,), batch_size=40, val_size=100, augment_shift=0, optimizer="adam", learning_rate=0.01
    )
    ref = train(data=data, out=str(tmp_path / "ref"), **config)
    out = tmp_path / "run"

    def disk_fills(result):
        if result.epoch == 2:
            fill_disk_after(monkeypatch, 500)

    with pytest.raises(FileWriteError) as info:
        train(data=data, out=str(out), on_epoch=disk_fills, **config)
    message = str(info.value)
    assert "\n" not in message and "No space left on device" in message
    assert f"`steadynet train --resume {out}` continues from the last checkpoint" in message
    assert not [n for n in os.listdir(out / "checkpoints") if ".tmp-" in n]
    monkeypatch.undo()
    _, meta = load_arrays(out / "checkpoints" / "last.npz", CHECKPOINT_FORMAT)
    assert meta["state"]["epoch"] == 1  # epoch 2's checkpoint never replaced epoch 1's
    result = train(None, str(out), data=data, resume=True)
    assert np.array_equal(result.model.theta, ref.model.theta)


def test_full_disk_through_the_cli_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    from steadynet.cli.app import main
    from steadynet.data.npz import write_npz as write_data

    write_data(tmp_path / "d.npz", make_blobs())
    fill_disk_after(monkeypatch, 200)
    code = main(
        [
            "train",
            "--data",
            str(tmp_path / "d.npz"),
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "1",
            "--hidden",
            "4",
            "--val-size",
            "100",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    # the run's notices (here: the centring of blobs on a light ground) may come first; the error is one line, the last
    errors = [line for line in err.splitlines() if line.startswith("steadynet train: error:")]
    assert len(errors) == 1 and err.splitlines()[-1] == errors[0]
    assert errors[0].startswith("steadynet train: error: could not write")
    assert "No space left on device" in errors[0] and "Traceback" not in err
