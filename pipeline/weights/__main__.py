"""``python -m pipeline.weights``: runs :func:`pipeline.weights.cli.main`."""

import sys

from .cli import main

sys.exit(main())
