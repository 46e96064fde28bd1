"""doit entry point: `doit boot:nommu`, `doit all`, `doit list`. The tasks live in mmulab/pipeline/tasks.py."""

import sys

from mmulab.pipeline.run import dodo_globals

globals().update(dodo_globals(sys.argv[1:]))
