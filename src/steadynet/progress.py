"""A live progress line on a terminal; plain per-epoch lines anywhere else.

Written to stderr, so stdout stays for results (``--json``).
"""

import sys
import time


class ProgressBar:
    """Shows epoch, batch, running loss and accuracy, samples/s and time left.

    Parameters
    ----------
    epochs : int
    stream : file, default=sys.stderr
    live : bool or None, default=None
        Redraw a line after steps; None: only when ``stream`` is a terminal.
    """

    def __init__(self, epochs, stream=None, live=None, interval=0.1):
        self.epochs = epochs
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.interval = interval
        self._last_draw = 0.0
        self._reset_epoch()
        self._run_started = time.perf_counter()

    def _reset_epoch(self):
        self._epoch_started = time.perf_counter()
        self._loss = self._correct = self._seen = 0

    def on_step(self, info):
        """Receive a :class:`steadynet.train.loop.StepInfo`."""
        if info.batch == 1:
            self._reset_epoch()
        self._loss += info.loss * info.size
        self._correct += info.correct
        self._seen += info.size
        if not self.live:
            return
        now = time.perf_counter()
        if now - self._last_draw < self.interval and info.batch < info.batches:
            return
        self._last_draw = now
        elapsed = now - self._epoch_started
        rate = self._seen / elapsed if elapsed > 0 else 0.0
        done = (info.epoch - 1 + info.batch / info.batches) / self.epochs
        total_elapsed = now - self._run_started
        left = total_elapsed * (1 - done) / done if done > 0 else 0.0
        width = 20
        filled = int(width * info.batch / info.batches)
        bar = "#" * filled + "-" * (width - filled)
        line = (f"epoch {info.epoch}/{self.epochs} [{bar}] {info.batch}/{info.batches} "
                f"loss {self._loss / self._seen:.4f} acc {self._correct / self._seen:.4f} "
                f"{rate:,.0f} samples/s, {format_seconds(left)} left")
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()

    def on_epoch(self, result):
        """Print the epoch's line (it replaces the live line on a terminal)."""
        prefix = "\r\x1b[K" if self.live else ""
        self.stream.write(prefix + epoch_line(result, self.epochs) + "\n")
        self.stream.flush()

    def close(self):
        if self.live:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def epoch_line(r, epochs):
    """One line per epoch: ``epoch 3/150  train loss 0.2514 acc 0.9271  val loss ... 0.8s``."""
    val = "" if r.val_loss is None else f"  val loss {r.val_loss:.4f} acc {r.val_accuracy:.4f}"
    return (f"epoch {r.epoch:>{len(str(epochs))}}/{epochs}  train loss {r.train_loss:.4f} "
            f"acc {r.train_accuracy:.4f}{val}  lr {r.learning_rate:.3g}  {r.seconds:.2f}s")


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


def summary_table(metrics, max_rows=12):
    """The end-of-run summary: a table of epochs, then the test result.

    Parameters
    ----------
    metrics : dict
        A ``metrics.json`` dict (what :func:`steadynet.train` returns).
    max_rows : int, default=12
        Longer runs show the first, best and last epochs and evenly spaced ones between.
        The best validation epoch is starred.

    Returns
    -------
    str, several lines without a trailing newline.
    """
    def cell(v, spec):
        return "-" if v is None else format(v, spec)

    epochs = metrics.get("epochs", [])
    best = metrics.get("best_epoch")
    best_index = next((i for i, e in enumerate(epochs) if e["epoch"] == best), None)
    lines = [f"{'epoch':>7}  {'train loss':>10}  {'train acc':>9}  {'val loss':>8}  {'val acc':>7}  "
             f"{'lr':>8}  {'time':>7}"]
    rows = summary_rows(len(epochs), best_index, max_rows)
    for i in rows:
        e = epochs[i]
        mark = "*" if i == best_index else " "
        lines.append(f"{e['epoch']:>6}{mark}  {cell(e['train_loss'], '.4f'):>10}  "
                     f"{cell(e['train_accuracy'], '.4f'):>9}  {cell(e.get('val_loss'), '.4f'):>8}  "
                     f"{cell(e.get('val_accuracy'), '.4f'):>7}  {cell(e.get('learning_rate'), '.3g'):>8}  "
                     f"{cell(e.get('seconds'), '.2f') + 's':>7}")
    if len(rows) < len(epochs):
        lines.append(f"({len(rows)} of {len(epochs)} epochs shown: the first, best, last and evenly spaced ones)")

    # the outcome
    parts = [metrics.get("status", "unknown")]
    if best is not None:
        parts.append(f"best epoch {best} (* above)")
    if metrics.get("test_accuracy") is not None:
        parts.append(f"test accuracy {metrics['test_accuracy']:.4f} (loss {metrics['test_loss']:.4f})")
    if metrics.get("train_seconds") is not None:
        s = metrics["train_seconds"]
        parts.append(f"{s:.1f}s of training" if s < 60 else f"{format_seconds(s)} of training")
    if metrics.get("divergence"):
        d = metrics["divergence"]
        parts.append(f"diverged at epoch {d['epoch']}, step {d['step']}: the {d['first']} became non-finite")
    lines.append(" · ".join(parts))
    return "\n".join(lines)
