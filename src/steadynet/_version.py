"""The package's version, in one place: the package root re-exports it, ``pyproject.toml``
reads it (setuptools' dynamic ``version``), and run folders record it."""

__version__ = "0.1.0"
