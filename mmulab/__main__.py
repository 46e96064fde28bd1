"""`python -m mmulab ...`: the same as the `mmulab` console script."""

import sys

from mmulab.cli import main

sys.exit(main())
