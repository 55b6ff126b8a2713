"""The ``steadynet`` command: one module per subcommand, each a thin wrapper over a library
function. :mod:`.app` builds the parser and turns errors into one-line messages."""
