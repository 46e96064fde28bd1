"""The test harness's own promises (tests/conftest.py): a test, passed or failed, leaves no process running."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import TESTS_DIR, clean_environment, live_descendants

LEAKING = textwrap.dedent(
    """\
    import subprocess
    from pathlib import Path

    def test_a_holder_started_without_try_finally_then_a_failed_assertion(tmp_path_factory):
        holder = subprocess.Popen(["sleep", "600"])
        Path(__file__).with_name("pid").write_text(str(holder.pid))
        assert False, "the test failed before it ended its holder"
    """
)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(") ")[2][:1] != "Z"


def test_the_processes_under_pytest_are_seen_until_they_end() -> None:
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        assert live_descendants()[sleeper.pid] == "sleep"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sleeper.pid not in live_descendants()


def test_a_failed_test_that_leaves_a_process_running_errors_naming_it_and_the_process_is_ended(tmp_path: Path):
    (tmp_path / "test_leaking.py").write_text(LEAKING)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:randomly", "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path,
        env={**clean_environment(), "PYTHONPATH": str(TESTS_DIR)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    pid = int((tmp_path / "pid").read_text())
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"the test left process(es) running: sleep (pid {pid})" in result.stdout, result.stdout
    assert "1 failed, 1 error" in result.stdout, result.stdout
    assert not alive(pid), "the process the test left was not ended"
