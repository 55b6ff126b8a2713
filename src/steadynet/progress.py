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
