"""Stopping a run from outside: the :class:`StopRequest` the training loop polls, the
SIGINT/SIGTERM handlers that set it, and :class:`Interrupted`, what a stopped run raises.

The first SIGINT or SIGTERM asks the run to finish its step, write a checkpoint and raise
:class:`Interrupted`; a second SIGINT raises it at once (every file is written atomically,
so none is left half-written).
"""

import signal
import sys

from ..errors import SteadynetError


class Interrupted(SteadynetError):
    """Training was stopped by SIGINT/SIGTERM; a checkpoint was written."""


class StopRequest:
    """Whether the run has been asked to stop; calling it answers (the loop's ``should_stop``)."""

    def __init__(self):
        self.requested = False

    def __call__(self):
        return self.requested


def install_signal_handlers(stop, out=None):
    """SIGINT/SIGTERM set ``stop.requested``; a second SIGINT raises :class:`Interrupted` at
    once, wherever the run is: every file is written atomically, so none is left half-written.

    Returns the handlers replaced, for :func:`restore_signal_handlers`; outside the main
    thread none can be installed and the dict is empty.
    """

    def handler(signum, frame):
        if stop.requested and signum == signal.SIGINT:
            where = f": resume with `steadynet train --resume {out}`" if out else ""
            raise Interrupted(f"stopped at once by a second Ctrl-C; the last checkpoint written is intact{where}.")
        stop.requested = True
        print(
            f"\n{signal.Signals(signum).name}: finishing this step and writing a checkpoint "
            f"(Ctrl-C again to quit at once)",
            file=sys.stderr,
        )

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            pass
    return previous


def restore_signal_handlers(previous):
    """Put back the handlers :func:`install_signal_handlers` replaced."""
    for sig, h in previous.items():
        signal.signal(sig, h)
