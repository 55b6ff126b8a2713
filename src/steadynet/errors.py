"""Errors a user can act on, and how they name the setting they concern.

Every error steadynet raises for a user's mistake is a :class:`SteadynetError`. Its message is
one line that names the file or setting, what was expected and what was found, and, where there
is one, what to do. The command-line tool prints that line and exits non-zero; it never shows a
traceback for these.

A setting is named as the reader knows it: a Python caller by its field
(``batch_size must be ...``), the command line by its flag (``--batch-size must be ...``). Such
an error is raised with a template that writes each setting as ``{field_name}`` and the values
it quotes as keyword arguments::

    raise ConfigError("{batch_size} must be at most {n}, got {value}.", field="batch_size", n=n, value=v)

``str(exc)`` names the fields; ``exc.render(names)`` names them by ``names(field)`` instead
(:func:`steadynet.config.option_flag` for the command line). :func:`need` is the one-line check
that every settings validator is written with.
"""


class _Names(dict):
    """The values of a message template; any other ``{name}`` is a setting, shown by ``show``."""

    def __init__(self, values, show):
        super().__init__(values)
        self.show = show

    def __missing__(self, key):
        return self.show(key)


class SteadynetError(Exception):
    """Base class: a problem with the user's input, settings or files.

    Parameters
    ----------
    message : str
        The one-line message; with ``field`` given, a template (``str.format`` syntax) that
        writes each setting it names as ``{field_name}`` and each value as ``{key}`` of ``values``.
    field : str, optional
        The setting the error concerns (a :class:`~steadynet.config.TrainConfig` field, or a
        command's own setting), kept as ``exc.field`` for programs that point at it.
    **values
        The values the template quotes; they are never read as a template themselves.
    """

    def __init__(self, message="", field=None, **values):
        self.template, self.field, self.values = message, field, values
        super().__init__(message if field is None else self.render())

    def render(self, names=None):
        """The message, each setting named by ``names(field)`` (default: the field's own name)."""
        if self.field is None:  # a plain message (which a handler may have reworded in ``args``)
            return str(self)
        return self.template.format_map(_Names(self.values, names or str))

    def within(self, context):
        """The same error with ``context`` before its message (``"trial 3: <message>"``),
        still naming its setting however it is rendered."""
        if self.field is None:
            return type(self)(f"{context}: {self}")
        return type(self)("{_context}: " + self.template, self.field, **self.values, _context=context)


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


def need(ok, field, rule, value):
    """Raise :class:`ConfigError` ``"<field> must be <rule>, got <value!r>."`` unless ``ok``."""
    if not ok:
        raise ConfigError("{%s} must be {rule}, got {value!r}." % field, field=field, rule=rule, value=value)
