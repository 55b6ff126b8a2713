"""``python -m steadynet`` is the ``steadynet`` command."""

import sys

from .cli.app import main

sys.exit(main())
