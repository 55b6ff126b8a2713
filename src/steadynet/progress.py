"""Progress of a run and of a download: one live line on a terminal, a widget in a notebook,
plain per-epoch lines anywhere else.

:class:`LiveLine` is the mechanism both share: the line ``left[####----] right``, redrawn in
place at most every ``interval`` seconds. :class:`ProgressBar` (training) and
:class:`DownloadProgress` (``steadynet.data.fetch``) only say what goes on it.

The live line is drawn by tqdm (the ``progress`` extra, ``pip install 'steadynet[progress]'``),
which knows the terminal's width, notebooks and Windows consoles; without tqdm the same line
is drawn by hand, clipped to the terminal's width. Either way the line never wraps: parts are
dropped from the right as the terminal narrows, so each redraw overwrites the last one.

Written to stderr, so stdout stays for results (``--json``).
"""

import importlib.util
import shutil
import sys
import time

from .tta import tta_line

MIN_BAR = 10  # the bar itself keeps at least this many columns
WARMUP_SECONDS = 0.5  # no rate or time left is shown before this much of an epoch has passed


def has_tqdm():
    return importlib.util.find_spec("tqdm") is not None


def in_notebook():
    """Whether this process is a Jupyter kernel (where ``steadynet.train()`` shows progress)."""
    shell = sys.modules.get("IPython")
    try:
        return shell is not None and type(shell.get_ipython()).__name__ == "ZMQInteractiveShell"
    except Exception:  # an IPython without a running shell
        return False


def terminal_width(stream, default=80):
    """Columns of the terminal ``stream`` writes to, else ``default``."""
    try:
        import os

        return os.get_terminal_size(stream.fileno()).columns or default
    except (AttributeError, OSError, ValueError):
        return shutil.get_terminal_size((default, 24)).columns


class LiveLine:
    """One line redrawn in place on a terminal: ``{left}[####----] {right}``, never wider than
    the terminal, drawn by tqdm where it is installed and by hand otherwise.

    Parameters
    ----------
    stream : file
    interval : float
        Seconds between redraws (see :meth:`due`).
    """

    def __init__(self, stream, interval):
        self.stream, self.interval = stream, interval
        self._last_draw = 0.0
        self._bar = None  # the tqdm bar on screen
        self._drawn = False  # a hand-drawn line is on screen

    def due(self, now, last=False):
        """Whether to redraw at time ``now``: ``interval`` has passed since the last redraw, or
        this is the ``last`` update, which is always drawn."""
        if not last and now - self._last_draw < self.interval:
            return False
        self._last_draw = now
        return True

    def width(self):
        """The columns a line may take: the terminal's, less the last (it would wrap on some)."""
        return terminal_width(self.stream) - 1

    def draw(self, left, right, done, total, width):
        """Draw ``left``, a bar ``done / total`` full (empty when ``total`` is 0) and ``right``
        in ``width`` columns."""
        if has_tqdm():
            if self._bar is None:  # it keeps this total until cleared
                self._bar = text_bar(total=total or None, file=self.stream)
            self._bar.ncols = width
            self._bar.set_description_str(left, refresh=False)
            self._bar.right = right
            self._bar.n = done
            self._bar.refresh()
        else:
            n = max(1, width - len(left) - len(right) - 3)
            filled = int(n * done / total) if total else 0
            line = f"{left}[{'#' * filled}{'-' * (n - filled)}] {right}"[:width]
            self.stream.write("\r" + line + "\x1b[K")
            self._drawn = True

    def clear(self):
        """Erase the line (the next :meth:`draw` starts a new one)."""
        if self._bar is not None:
            self._bar.close()  # leave=False: the line is erased
            self._bar = None
        elif self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False

    def end(self):
        """End the line for good: a hand-drawn line stays on screen, followed by a newline,
        and True is returned; a tqdm bar is erased (False)."""
        if self._bar is not None:
            self.clear()
            return False
        self.stream.write("\n")
        self._drawn = False
        return True


class ProgressBar:
    """Shows epoch, batch, running loss and accuracy, images/s and the run's time left.

    Parameters
    ----------
    epochs : int
    stream : file, default=sys.stderr
    live : bool or None, default=None
        Redraw one line after steps; None: only when ``stream`` is a terminal (or in a notebook).
    interval : float, default=0.1
        Seconds between redraws.
    notebook : bool or None, default=None
        Draw a notebook widget (tqdm.notebook, needs ipywidgets) instead of a text line;
        None: when running in a Jupyter kernel and ipywidgets is installed.
    """

    def __init__(self, epochs, stream=None, live=None, interval=0.1, notebook=None):
        self.epochs = epochs
        self.stream = stream or sys.stderr
        self.notebook = (
            in_notebook() and importlib.util.find_spec("ipywidgets") is not None if notebook is None else notebook
        )
        self.live = (self.notebook or _isatty(self.stream)) if live is None else live
        self.interval = interval
        self._line = LiveLine(self.stream, interval)
        self._bar = None  # the notebook widget of the current epoch
        self._reset_epoch()
        self._run_started = self._first_done = None

    def _reset_epoch(self):
        self._epoch_started = time.perf_counter()
        self._loss = self._correct = self._seen = 0

    def on_step(self, info):
        """Receive a :class:`steadynet.train.loop.StepInfo`."""
        if info.batch == 1 or self._seen == 0:
            self._reset_epoch()
        self._loss += info.loss * info.size
        self._correct += info.correct
        self._seen += info.size
        now = time.perf_counter()
        done = (info.epoch - 1 + info.batch / info.batches) / self.epochs
        if self._run_started is None:  # the time left is measured from the first step seen
            self._run_started, self._first_done = now, done
        if self.live and self._line.due(now, last=info.batch >= info.batches):
            self._draw(info, now, done)

    def status_parts(self, info, now, done):
        """The texts of the live line: ``(left, [right parts, most important first])``."""
        elapsed = now - self._epoch_started
        parts = [
            f"{info.batch}/{info.batches}",
            f"loss {self._loss / self._seen:.4f}",
            f"acc {self._correct / self._seen:.4f}",
        ]
        run_elapsed, run_done = now - self._run_started, done - self._first_done
        if run_elapsed >= WARMUP_SECONDS and run_done > 0:
            parts.insert(1, f"ETA {format_seconds(run_elapsed * (1 - done) / run_done)}")
        if elapsed >= WARMUP_SECONDS:
            parts.append(f"{self._seen / elapsed:,.0f} img/s")
        return f"epoch {info.epoch}/{self.epochs} ", parts

    def _draw(self, info, now, done):
        left, parts = self.status_parts(info, now, done)
        if self.notebook:
            self._notebook_bar(info).set_description_str(left.strip(), refresh=False)
            self._bar.set_postfix_str(" ".join(parts), refresh=False)
            self._bar.n = info.batch
            self._bar.refresh()
            return
        width = self._line.width()
        self._line.draw(left, fit_parts(parts, width - len(left) - MIN_BAR - 1), info.batch, info.batches, width)
        self.stream.flush()

    def _notebook_bar(self, info):
        if self._bar is None:
            from tqdm.notebook import tqdm

            self._bar = tqdm(total=info.batches, leave=False, mininterval=0, miniters=1)
        elif self._bar.total != info.batches:
            self._bar.reset(total=info.batches)
        return self._bar

    def clear(self):
        """Erase the live line, so that a notice can be printed; the next step redraws it."""
        if self._bar is not None:
            self._bar.close()  # leave=False: the widget is removed
            self._bar = None
        self._line.clear()

    def on_epoch(self, result):
        """Print the epoch's line (it replaces the live line on a terminal)."""
        self.clear()
        width = terminal_width(self.stream) - 1 if self.live and not self.notebook else None
        self.stream.write(epoch_line(result, self.epochs, width) + "\n")
        self.stream.flush()
        self._seen = 0

    def notice(self, line):
        """Print ``line`` above the live line (the live line is redrawn at the next step)."""
        self.clear()
        self.stream.write(line + "\n")
        self.stream.flush()

    def close(self):
        self.clear()
        self.stream.flush()


def text_bar(**kwargs):
    """A tqdm bar drawn as ``{desc}{bar} {right}``, where ``right`` is an attribute set by the
    caller (tqdm's own postfix would start with a comma). Redrawn only by ``refresh()``."""
    from tqdm import tqdm

    class TextBar(tqdm):
        right = ""

        @property
        def format_dict(self):
            return dict(super().format_dict, right=self.right)

    return TextBar(
        leave=False, dynamic_ncols=False, bar_format="{desc}{bar} {right}", mininterval=0, miniters=1, **kwargs
    )


def fit_parts(parts, width):
    """``parts`` joined by spaces, keeping as many from the front as fit in ``width`` columns."""
    kept = []
    for p in parts:
        if len(" ".join(kept + [p])) > width:
            break
        kept.append(p)
    return " ".join(kept)


def wrap_parts(parts, sep, width):
    """``parts`` joined by ``sep`` into lines of at most ``width`` characters (a part never splits)."""
    lines = []
    for p in parts:
        if lines and len(lines[-1] + sep + p) <= width:
            lines[-1] += sep + p
        else:
            lines.append(p)
    return lines


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class DownloadProgress:
    """Download progress on stderr: a live bar on a terminal, one line per finished file elsewhere.

    Called as ``progress(filename, done_bytes, total_bytes)``; ``total_bytes`` is 0 when the
    server does not say, and a call with ``done == total`` ends the file.
    """

    def __init__(self, stream=None, live=None, interval=0.1):
        self.stream = stream or sys.stderr
        self.live = _isatty(self.stream) if live is None else live
        self.interval = interval
        self._line = LiveLine(self.stream, interval)

    def __call__(self, filename, done, total):
        finished = total and done >= total
        done_line = f"downloaded {filename} ({done / 1e6:.1f} MB)\n"
        if not self.live:
            if finished:
                self.stream.write(done_line)
                self.stream.flush()
            return
        if not self._line.due(time.perf_counter(), last=bool(finished)):
            return
        width = self._line.width()
        size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
        left = filename[: max(8, width - len(size) - MIN_BAR - 3)] + " "
        self._line.draw(left, size, done, total, width)
        if finished and not self._line.end():  # a tqdm bar is erased: say what it showed
            self.stream.write(done_line)
        self.stream.flush()


def epoch_line(r, epochs, width=None):
    """One line per epoch: ``epoch 3/150  train loss 0.2514 acc 0.9271  val loss ...  0.8s``.

    With ``width`` (a terminal's columns) the line is made to fit: the time and the learning
    rate go first, then the labels are shortened (``3/150  train 0.2514 0.9271  val ...``).
    """
    e = f"{r.epoch:>{len(str(epochs))}}/{epochs}"
    val = [] if r.val_loss is None else [f"val loss {r.val_loss:.4f} acc {r.val_accuracy:.4f}"]
    full = [
        f"epoch {e}",
        f"train loss {r.train_loss:.4f} acc {r.train_accuracy:.4f}",
        *val,
        f"lr {r.learning_rate:.3g}",
        f"{r.seconds:.2f}s",
    ]
    if width is None:
        return "  ".join(full)
    short = [
        f"{e}",
        f"train {r.train_loss:.4f} {r.train_accuracy:.4f}",
        *([] if r.val_loss is None else [f"val {r.val_loss:.4f} {r.val_accuracy:.4f}"]),
    ]
    for parts in (full, full[:-1], full[:-2], short):
        if len("  ".join(parts)) <= width:
            return "  ".join(parts)
    return "  ".join(short)[:width]


def format_seconds(s):
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{s}s"


def summary_rows(n, best, max_rows):
    """Indices (0-based) of the epochs a summary shows: all of them when they fit, else the
    first, the best and the last, and evenly spaced ones between."""
    if n <= max_rows:
        return list(range(n))
    keep = {0, n - 1} | ({best} if best is not None else set())
    spaced = [round(i * (n - 1) / (max_rows - 1)) for i in range(max_rows)]
    for i in spaced:
        if len(keep) >= max_rows:
            break
        keep.add(i)
    return sorted(keep)


def summary_table(metrics, max_rows=12, width=None):
    """The end-of-run summary: a table of epochs, then the test result.

    Parameters
    ----------
    metrics : dict
        A ``metrics.json`` dict (what :func:`steadynet.train` returns).
    max_rows : int, default=12
        Longer runs show the first, best and last epochs and evenly spaced ones between.
        The best validation epoch is starred.
    width : int, optional
        Columns available (a terminal's width): the time, then the learning-rate column are
        left out of a table wider than this, and the outcome is wrapped to it. Default 79.

    Returns
    -------
    str, several lines without a trailing newline.
    """

    def cell(v, spec):
        return "-" if v is None else format(v, spec)

    width = width or 79
    epochs = metrics.get("epochs", [])
    best = metrics.get("best_epoch")
    best_index = next((i for i, e in enumerate(epochs) if e["epoch"] == best), None)
    # (heading, width, cell of an epoch's record), most important first
    columns = [
        ("train loss", 10, lambda e: cell(e["train_loss"], ".4f")),
        ("train acc", 9, lambda e: cell(e["train_accuracy"], ".4f")),
        ("val loss", 8, lambda e: cell(e.get("val_loss"), ".4f")),
        ("val acc", 7, lambda e: cell(e.get("val_accuracy"), ".4f")),
        ("lr", 8, lambda e: cell(e.get("learning_rate"), ".3g")),
        ("time", 7, lambda e: cell(e.get("seconds"), ".2f") + "s"),
    ]
    while len(columns) > 4 and 7 + sum(2 + w for _, w, _ in columns) > width:
        columns.pop()
    lines = [f"{'epoch':>7}" + "".join(f"  {h:>{w}}" for h, w, _ in columns)]
    rows = summary_rows(len(epochs), best_index, max_rows)
    for i in rows:
        e = epochs[i]
        mark = "*" if i == best_index else " "
        lines.append(f"{e['epoch']:>6}{mark}" + "".join(f"  {f(e):>{w}}" for _, w, f in columns))
    if len(rows) < len(epochs):
        lines.extend(
            wrap_parts(
                f"({len(rows)} of {len(epochs)} epochs shown: the first, best, last and evenly spaced ones)".split(" "),
                " ",
                width,
            )
        )

    # the outcome: which model the test accuracy is of (early stopping keeps the best epoch's)
    parts = [metrics.get("status", "unknown")]
    if best is not None:
        parts.append(f"best validation epoch {best} (* above)")
    if metrics.get("test_accuracy") is not None:
        kept = (
            best
            if (metrics.get("config") or {}).get("patience") and best is not None
            else (epochs[-1]["epoch"] if epochs else None)
        )
        which = f" of epoch {kept}'s model" if kept is not None else ""
        tta = metrics.get("tta") or {}
        how = f"loss {metrics['test_loss']:.4f}"
        if tta.get("used") and tta.get("test_accuracy_plain") is not None:  # averaged; the plain result beside it
            how = f"with test-time augmentation, {tta['test_accuracy_plain']:.4f} plain; {how}"
        parts.append(f"test accuracy{which} {metrics['test_accuracy']:.4f} ({how})")
    if metrics.get("train_seconds") is not None:
        s = metrics["train_seconds"]
        parts.append(f"{s:.1f}s of training" if s < 60 else f"{format_seconds(s)} of training")
    if metrics.get("divergence"):
        d = metrics["divergence"]
        what = d.get("reason") or f"the {d['first']} became non-finite"
        parts.append(f"diverged at epoch {d['epoch']}, step {d['step']}: {what}")
    lines.extend(wrap_parts(parts, " · ", width))
    if (metrics.get("tta") or {}).get("setting", "off") != "off":  # the decision, on its own line
        lines.append(tta_line(metrics["tta"]))
    return "\n".join(lines)
