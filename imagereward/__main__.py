"""`python -m imagereward score|eval ...` (see `imagereward.cli`)."""

import sys

from .cli import main

sys.exit(main())
