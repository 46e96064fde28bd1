"""Helpers the end-to-end tests share (test_pipeline, test_demos): what doit's output says it ran."""

from __future__ import annotations


def executed(output: str) -> list[str]:
    """Tasks doit ran (".  name"), as opposed to skipped as up to date ("-- name")."""
    return [line[3:].strip() for line in output.splitlines() if line.startswith(".  ")]
