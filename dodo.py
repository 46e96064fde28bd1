"""doit entry point: `doit boot:nommu`, `doit all`, `doit list`. The tasks live in mmulab/tasks.py."""

import sys

from mmulab.errors import UserError
from mmulab.report import MmulabReporter

try:
    from mmulab.configdata import load_project
    from mmulab.tasks import doit_task_functions

    PROJECT = load_project()
    PROJECT.settings.build_dir.mkdir(parents=True, exist_ok=True)
    globals().update(doit_task_functions(PROJECT))
except UserError as error:
    sys.stderr.write(f"mmulab: error: {error}\n")
    sys.exit(2)

DOIT_CONFIG = {
    "default_tasks": ["boot"],
    "reporter": MmulabReporter,
    "dep_file": str(PROJECT.settings.build_dir / ".doit.db"),
    "verbosity": 2,
}
