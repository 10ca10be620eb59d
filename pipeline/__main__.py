"""``python -m pipeline``: the command-line face (see :mod:`pipeline.cli`)."""

import sys

from .cli import main

sys.exit(main())
