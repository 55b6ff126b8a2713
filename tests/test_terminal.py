"""`steadynet train` as a person sees it: driven in a pseudo-terminal of a given width, its
output replayed through a terminal emulator (pyte), the screen checked after every redraw."""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest

pyte = pytest.importorskip("pyte", reason="needs pyte (pip install 'steadynet[test]')")

LIVE = re.compile(r"\b\d+/\d+ (ETA |loss )")  # the live line's batch counter; epoch lines have none
ROWS = 40


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    centres = rng.uniform(0.2, 0.8, size=(3, 16))

    def draw(n):
        y = rng.integers(0, 3, size=n)
        return np.clip(centres[y] + rng.normal(0, 0.08, size=(n, 16)), 0, 1).astype(np.float32), y

    path = tmp_path_factory.mktemp("data") / "blobs.npz"
    (xtr, ytr), (xte, yte) = draw(500), draw(100)
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return path


def run_in_terminal(args, columns, cwd):
    """Run ``python -m steadynet ARGS`` with a pseudo-terminal of ``columns`` x ROWS as its
    stdout and stderr; return (exit status, everything it wrote, as bytes)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, columns, 0, 0))
    env = dict(os.environ, COLUMNS=str(columns), LINES=str(ROWS), TERM="xterm", LANG="C.UTF-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "steadynet", *map(str, args)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks)


def replay(output, columns):
    """Feed ``output`` to an emulated terminal one write at a time (split at carriage returns
    and newlines) and yield the screen's rows after each."""
    screen = pyte.Screen(columns, ROWS)
    stream = pyte.ByteStream(screen)
    for piece in re.split(rb"(?<=[\r\n])", output):
        stream.feed(piece)
        yield [row.rstrip() for row in screen.display]


@pytest.mark.parametrize("columns", [80, 60])
def test_train_in_a_terminal_shows_one_live_line_and_whole_epoch_lines(data_file, tmp_path, columns):
    status, output = run_in_terminal(
        [
            "train",
            "--data",
            data_file,
            "--out",
            "run",
            "--hidden",
            "8",
            "--epochs",
            "3",
            "--batch-size",
            "4",
            "--val-size",
            "50",
            "--lr",
            "0.1",
            "--augment-shift",
            "0",
            "--no-plots",
        ],
        columns,
        tmp_path,
    )
    assert status == 0, output.decode(errors="replace")
    seen_live = 0
    for rows in replay(output, columns):
        live = [r for r in rows if LIVE.search(r)]
        assert len(live) <= 1, "\n".join(rows)  # never a stack of progress lines
        seen_live += bool(live)
        assert all(len(r) < columns for r in rows), "\n".join(rows)  # nothing reached the edge: no wrap
    assert seen_live, "the live line was never drawn"
    final = [r for r in rows if r]
    assert not any(LIVE.search(r) for r in final)  # the live line is gone at the end
    epoch_rows = [r for r in final if re.match(r"(epoch )?[123]/3  train", r)]
    assert len(epoch_rows) == 3, "\n".join(final)  # each epoch on one whole row
    assert final[-1].startswith("test accuracy")


def test_off_a_terminal_there_are_plain_epoch_lines(data_file, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "steadynet",
            "train",
            "--data",
            str(data_file),
            "--out",
            str(tmp_path / "run"),
            "--hidden",
            "8",
            "--epochs",
            "2",
            "--val-size",
            "50",
            "--no-plots",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "\x1b" not in r.stderr
    assert re.search(r"^epoch 1/2  train loss \d\.\d{4} acc", r.stderr, re.M)


def test_train_shows_progress_by_default_in_a_notebook_and_quiet_turns_it_off(monkeypatch, capsys):
    """In a Jupyter kernel (simulated: ipywidgets may be absent, so the text display is used)
    steadynet.train() prints its epoch lines and notices without being asked."""
    from conftest import make_blobs
    from steadynet import TrainConfig, train
    from steadynet.train import trainer

    config = TrainConfig(epochs=2, hidden=(4,), batch_size=50, val_size=100, augment_shift=0, learning_rate=0.2)
    data = make_blobs()
    train(config, data=data)
    assert capsys.readouterr().err == ""  # a script: silent, as before
    monkeypatch.setattr(trainer, "in_notebook", lambda: True)
    train(config, data=data)
    err = capsys.readouterr().err
    assert re.search(r"^epoch 1/2  train loss", err, re.M) and re.search(r"^epoch 2/2", err, re.M)
    train(config, data=data, quiet=True)
    assert capsys.readouterr().err == ""


def test_the_live_line_both_progress_displays_draw(monkeypatch):
    """ProgressBar and DownloadProgress draw through one LiveLine: throttled redraws, a line
    that never outgrows its width, erased by clear, kept by end when drawn by hand."""
    import io

    from steadynet import progress

    monkeypatch.setattr(progress, "has_tqdm", lambda: False)
    stream = io.StringIO()
    line = progress.LiveLine(stream, interval=0.5)
    assert line.due(1.0) and not line.due(1.2) and line.due(1.2, last=True) and line.due(1.8)
    line.draw("left ", "right", 3, 4, 20)
    assert stream.getvalue() == "\rleft [#####--] right\x1b[K"  # 20 columns
    line.draw("a much longer left part ", "right", 1, 4, 20)
    assert len(stream.getvalue().split("\r")[-1].removesuffix("\x1b[K")) == 20
    line.clear()
    erased = stream.getvalue()
    assert erased.endswith("\x1b[K\r\x1b[K")
    line.clear()  # nothing on screen: nothing written
    assert stream.getvalue() == erased
    line.draw("f ", "1 MB", 0, 0, 12)  # no total: an empty bar
    assert line.end() and stream.getvalue().endswith("\rf [---] 1 MB\x1b[K\n")
