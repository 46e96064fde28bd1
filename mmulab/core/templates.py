"""The one Jinja2 setup every generated file uses (kernel and busybox fragments, the catalogue, the release page,
the Buildroot tree): an undefined name is an error, block tags leave no blank lines, the last newline stays."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2


def environment(folder: Path, autoescape: bool = False) -> jinja2.Environment:
    """Templates loaded from `folder`; `autoescape` for HTML. jinja2 is imported only when something is rendered,
    so a run with nothing to render never loads it."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
