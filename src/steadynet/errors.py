"""Errors a user can act on.

Every error steadynet raises for a user's mistake is a :class:`SteadynetError`. Its message is
one line that names the file or option, what was expected and what was found, and, where there
is one, what to do. The command-line tool prints that line and exits non-zero; it never shows a
traceback for these.
"""


class SteadynetError(Exception):
    """Base class: a problem with the user's input, settings or files."""


class ConfigError(SteadynetError, ValueError):
    """A setting is out of its allowed range or unknown."""


class DataFormatError(SteadynetError, ValueError):
    """A data file is missing, unreadable or holds data of the wrong shape, type or range."""


class ChecksumError(SteadynetError):
    """A downloaded or stored file does not match its known SHA-256."""


class DownloadError(SteadynetError):
    """No source of a data set could be reached."""


class ModelFileError(SteadynetError):
    """A model or checkpoint file is not a valid steadynet file, or does not fit the data."""


class NonFiniteError(SteadynetError, FloatingPointError):
    """Training produced a NaN or infinity; the message says where and what to try."""
