"""`python -m mmulab ...`: the same as the `mmulab` console script."""

import sys

from .cli import main

sys.exit(main())
