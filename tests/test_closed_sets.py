"""Closed sets of values are StrEnums: parsed once from configs/ or the environment, held and compared as
members, and written (JSON, text, pages) as the very strings they were before."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import checkout_configs, clean_environment

from mmulab.boot.judge import Verdict
from mmulab.build.download import Fetched
from mmulab.core.progress import Progress, ProgressMode, ProgressSpec
from mmulab.core.settings import Settings
from mmulab.project.model import ElfRules, Expect, LanguageKind, Origin, OriginKind
from mmulab.release.check import Problem, ProblemKind


def test_the_loaded_project_holds_members_not_strings() -> None:
    project = checkout_configs()
    assert {type(case.expect) for case in project.boots.values()} == {Expect}
    assert {case.expect for case in project.boots.values()} >= {Expect.PASS, Expect.HANG, Expect.PANIC}
    origins = [origin for source in project.all_sources().values() for origin in source.origins]
    assert {type(origin.kind) for origin in origins} == {OriginKind}
    assert {type(language.kind) for language in project.toolchain.languages.values()} == {LanguageKind}
    assert project.toolchain.languages["busybox"].kind is LanguageKind.BUSYBOX
    assert project.toolchain.languages["c"].kind is LanguageKind.COMPILED
    assert {variant.elf_rules for variant in project.variants.values()} == {ElfRules.STATIC_PIE}
    assert {type(variant.elf_rules) for variant in project.variants.values()} == {ElfRules}


@pytest.mark.parametrize(("value", "member"), [("", ProgressMode.AUTO), ("plain", ProgressMode.PLAIN)])
def test_mmulab_progress_is_read_as_a_member(value: str, member: ProgressMode) -> None:
    progress = Settings.from_environment({**clean_environment(), "MMULAB_PROGRESS": value}).progress
    assert progress is member


def test_a_value_given_as_its_string_becomes_its_member() -> None:
    """Records built by hand (tests, benches, older callers) hold members too, so `is` comparisons hold."""
    case = next(iter(checkout_configs().boots.values()))
    assert replace(case, expect="hang").expect is Expect.HANG
    origin = Origin("local-file", "0" * 64, "1", "f", path="/f", package="linux-source-6.12", package_version="6.12-1")
    assert origin.kind is OriginKind.LOCAL_FILE
    assert origin.describe() == "/f (Debian package linux-source-6.12 6.12-1)"
    assert Problem("missing", "SHA256SUMS").kind is ProblemKind.MISSING
    settings = Settings.from_environment(clean_environment())
    assert replace(settings, progress="off").progress is ProgressMode.OFF
    with pytest.raises(ValueError, match="'maybe' is not a valid Expect"):
        replace(case, expect="maybe")


def test_members_are_written_as_their_values(tmp_path: Path) -> None:
    project = checkout_configs()
    case = next(c for c in project.boots.values() if c.expect is Expect.HANG)
    verdict = Verdict.not_run(case)
    verdict.write(tmp_path / "verdict.json")
    assert json.loads((tmp_path / "verdict.json").read_text())["expected"] == "hang"
    assert '"expected": "hang"' in (tmp_path / "verdict.json").read_text()
    assert "(expected hang, observed not-run" in verdict.summary()
    fetched = Fetched("demo", "/f", "0" * 64, "1", "https://example.invalid/f", OriginKind.URL)
    fetched.write(tmp_path / "fetched.json")
    assert '"origin_kind": "url"' in (tmp_path / "fetched.json").read_text()
    assert Fetched.read(tmp_path / "fetched.json") == fetched
    assert Problem(ProblemKind.UNEXPECTED, "x", "not in SHA256SUMS").line() == "unexpected: x: not in SHA256SUMS"
    assert f"{ElfRules.STATIC_PIE} {Expect.PANIC} {ProgressMode.TTY}" == "static-pie panic tty"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("setting", "stream", "mode"),
    [
        ("auto", io.StringIO(), ProgressMode.PLAIN),
        (ProgressMode.AUTO, _Terminal(), ProgressMode.TTY),
        ("off", _Terminal(), ProgressMode.OFF),
        (ProgressMode.PLAIN, _Terminal(), ProgressMode.PLAIN),
    ],
)
def test_auto_progress_is_tty_on_a_terminal_and_plain_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, setting: str, stream: io.StringIO, mode: ProgressMode
) -> None:
    monkeypatch.setattr(sys, "__stderr__", stream)
    spec = ProgressSpec("kernel nommu", r"^\s+CC\s", tmp_path / "progress.json")
    assert Progress.for_terminal(spec, setting).mode is mode  # type: ignore[arg-type]  # a string, as a member
