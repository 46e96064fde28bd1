"""The tests do not depend on the caller's environment: a caller's pipeline variables never reach a test, each
test has its own HOME, and the fast suite gives the same outcomes under a hostile environment as under a clean
one. Under CI=true a missing tool, module or source fails instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import SESSION_DIR, TEST_LOCALE, _Session, clean_environment, missing, pipeline_variable, under_ci

from mmulab.core.settings import PROJECT_ROOT, Settings

# Every kind of value a caller may have set that would change or break a run if it leaked into a test.
HOSTILE = {
    "MMULAB_BUILD_DIR": "/nonexistent/build",
    "MMULAB_DL_DIR": "/nonexistent/downloads",
    "MMULAB_CONFIGS": "/bogus/configs",
    "MMULAB_CONFIG_OVERLAY": "/bogus/overlay",
    "MMULAB_FRAGMENT_NOMMU": "/bogus/nommu.config",
    "MMULAB_JOBS": "abc",
    "MMULAB_MIRRORS": "ftp://127.0.0.1:1/",
    "MMULAB_APT_SOURCES": "/bogus/sources.list",
    "MMULAB_FETCH_RETRIES": "-1",
    "MMULAB_FETCH_BACKOFF": "nan",
    "MMULAB_PROGRESS": "loud",
    "MMULAB_DPKG_ADMINDIR": "/bogus/dpkg",
    "MMULAB_RELEASE": "../escape",
    "MMULAB_ARTIFACTS_DIR": "/nonexistent/artifacts",
    "MMULAB_ALLOW_DIRTY": "maybe",
    "MMULAB_CCACHE": "0",
    "MMULAB_CCACHE_DIR": "/nonexistent/ccache",
    "MMULAB_CCACHE_REMOTE": "redis://127.0.0.1:1",
    "LINUX_SRC": "/bogus/linux",
    "BUILDROOT_SRC": "/bogus/buildroot",
    "SOURCE_DATE_EPOCH": "bad",
    "HOME": "/nonexistent/home",
    "XDG_CACHE_HOME": "/nonexistent/cache",
    "CCACHE_DIR": "/nonexistent/ccache",
    "CCACHE_PREFIX": "false",
    "CCACHE_DISABLE": "1",
    "DISTCC_HOSTS": "bogus",
    "MAKEFLAGS": "--no-such-make-option",
    "ARCH": "arm",
    "CROSS_COMPILE": "bogus-",
    "CC": "false",
    "CFLAGS": "-DHOSTILE -Werror=all-of-it",
    "KCONFIG_CONFIG": "/bogus/.config",
    "KBUILD_OUTPUT": "/bogus/out",
    "LOCALVERSION": "-hostile",
    "LC_ALL": "tr_TR.UTF-8",
    "LANG": "tr_TR.UTF-8",
    "TZ": "Pacific/Kiritimati",
}
NEEDS_PROBE = """
import pytest
from conftest import missing, needs_module


@pytest.mark.needs("mmulab-no-such-tool")
def test_tool():
    pass


def test_thing():
    missing("a thing", "how to provide it")


def test_module():
    needs_module("mmulab_no_such_module", "pip install it")
"""


def outcomes(args: list[str], env: dict[str, str], work: Path, timeout: float = 1800) -> dict[str, str]:
    """Run pytest in a new process (its own basetemp, no random order) and read each test's outcome from its
    JUnit report: test id -> passed, or JUnit's failure, error (in setup) or skipped."""
    work.mkdir(parents=True, exist_ok=True)
    junit = work / "junit.xml"
    command = [sys.executable, "-m", "pytest", *args, "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    command += [f"--junitxml={junit}", f"--basetemp={work / 'basetemp'}"]
    run = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert junit.is_file(), run.stdout[-3000:] + run.stderr[-3000:]
    found = {}
    for case in ET.parse(junit).iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        found[f"{case.get('classname')}::{case.get('name')}"] = kinds[0] if kinds else "passed"
    assert found, run.stdout[-3000:] + run.stderr[-3000:]
    return found


def outcome_of(call: Callable[[], object]) -> Any:
    """The skip or failure `call` raised, caught here (a skip must not skip this test)."""
    try:
        call()
    except (pytest.skip.Exception, pytest.fail.Exception) as outcome:
        return outcome
    raise AssertionError("neither skipped nor failed")


def hostile_environment() -> dict[str, str]:
    return {**clean_environment(), **HOSTILE}


def test_the_environment_a_test_sees(home: Path) -> None:
    """No pipeline variable but the session's caches and locale, whatever the caller set; its own HOME."""
    leaked = {k: v for k, v in os.environ.items() if pipeline_variable(k) and _Session.variables.get(k) != v}
    assert leaked == {}
    assert os.environ["HOME"] == str(home) and Path.home() == home and list(home.iterdir()) == []
    assert {k: os.environ[k] for k in TEST_LOCALE} == TEST_LOCALE
    settings = Settings.from_environment()  # a bad caller value would raise here
    assert settings.download_dir.parent.name == SESSION_DIR and settings.ccache_dir.parent.name == SESSION_DIR
    assert (settings.linux_src, settings.buildroot_src, settings.config_overlay) == (None, None, None)
    assert (settings.source_date_epoch, settings.jobs, settings.ccache) == (0, os.cpu_count(), True)
    assert settings.mirrors == ()
    assert settings.build_dir == PROJECT_ROOT / "build" and settings.user_fragments == {}


def test_every_test_has_its_own_home(home: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    assert home.parent == tmp_path_factory.getbasetemp() and home != Path(_Session.original.get("HOME", "/"))


def test_clean_environment_drops_what_the_pipeline_reads() -> None:
    given = {**HOSTILE, "PATH": "/usr/bin:/bin", "MMULAB_TEST_REDIS": "redis://127.0.0.1:7", "CI": "true"}
    assert clean_environment(given) == {
        "PATH": "/usr/bin:/bin",
        "MMULAB_TEST_REDIS": "redis://127.0.0.1:7",  # the tests' own input (.ci/run's Redis), kept
        "CI": "true",
        "HOME": HOSTILE["HOME"],  # replaced by each test's own (the `home` fixture)
        **_Session.variables,
    }


def test_a_hostile_environment_never_reaches_a_test(tmp_path: Path) -> None:
    """The quick proof (the whole fast suite under it is the slow test below): this module's own probe and a
    module that loads the project, in a new pytest process started with every hostile value set."""
    probe = "tests/test_environment.py::test_the_environment_a_test_sees"
    found = outcomes([probe, "tests/test_stages.py"], hostile_environment(), tmp_path)
    assert set(found.values()) == {"passed"}, found
    assert len(found) > 1


def test_missing_skips_here_and_fails_under_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    skipped = outcome_of(lambda: missing("a thing", "how to provide it"))
    assert (type(skipped), skipped.msg) == (pytest.skip.Exception, "needs a thing (how to provide it)")
    monkeypatch.setenv("CI", "true")
    failed = outcome_of(lambda: missing("a thing", "how to provide it"))
    assert (type(failed), failed.msg) == (pytest.fail.Exception, "CI=true: needs a thing (how to provide it)")
    # needs(tool), missing() and needs_module() as a test run sees them, in a new pytest process.
    tests = tmp_path / "probe"
    tests.mkdir()
    (tests / "test_needs_probe.py").write_text(NEEDS_PROBE)
    args = [str(tests), "-c", str(PROJECT_ROOT / "pyproject.toml"), "-p", "conftest"]
    env = {**clean_environment(), "PYTHONPATH": str(PROJECT_ROOT / "tests")}
    env.pop("CI", None)
    here = outcomes(args, env, tmp_path / "here")
    assert sorted(here.values()) == ["skipped"] * 3, here
    under_ci = {
        name.rsplit("::", 1)[1]: outcome
        for name, outcome in outcomes(args, {**env, "CI": "true"}, tmp_path / "ci").items()
    }
    assert under_ci == {"test_tool": "error", "test_thing": "failure", "test_module": "failure"}


@pytest.mark.slow
def test_the_fast_suite_passes_in_a_hostile_environment(tmp_path: Path) -> None:
    """The fast suite in a new process started with every hostile value set: no test fails or errors, and under
    CI=true (where every tool is provided) none skips either, so every test ran and passed as it does from a clean
    environment. (One run, not a clean run beside it: this process's own fast tests are that run; on two
    pytest-xdist workers, as the inner loop runs.)"""
    hostile = outcomes(["-m", "not slow", "-n", "2"], hostile_environment(), tmp_path / "hostile")
    broken = {test: outcome for test, outcome in hostile.items() if outcome in ("failure", "error")}
    assert broken == {}, broken
    if under_ci():
        assert [test for test, outcome in hostile.items() if outcome == "skipped"] == []
    assert sum(outcome == "passed" for outcome in hostile.values()) > 100
