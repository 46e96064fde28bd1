"""Live progress of long builds: refreshed in place on a terminal, a heartbeat elsewhere, totals remembered."""

from __future__ import annotations

import io
from pathlib import Path

from mmulab.core.progress import HEARTBEAT_SECONDS, Progress, ProgressSpec
from mmulab.core.tools import Runner

PATTERN = r"^\s+CC\s"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, mode: str, estimate: int = 0) -> tuple[Progress, io.StringIO, Clock]:
    stream, clock = io.StringIO(), Clock()
    spec = ProgressSpec("kernel nommu", PATTERN, tmp_path / "progress.json", estimate)
    return Progress(spec, mode, stream, clock), stream, clock


def test_a_terminal_sees_one_line_refreshed_in_place_with_an_estimated_total(tmp_path: Path) -> None:
    progress, stream, clock = make(tmp_path, "tty", estimate=2210)
    for second in range(3):
        clock.now += 1
        progress.line(f"  CC      kernel/file{second}.o")
        progress.line("  (not a file line)")
    progress.finish(succeeded=True)
    shown = stream.getvalue().split("\r\033[K")
    assert shown == [
        "",
        "kernel nommu: 1/~2210 files  0:01",
        "kernel nommu: 2/~2210 files  0:02",
        "kernel nommu: 3/~2210 files  0:03",
        "",
    ]
    assert (tmp_path / "progress.json").read_text().strip() == '{"count": 3}'


def test_the_next_build_shows_the_remembered_total(tmp_path: Path) -> None:
    (tmp_path / "progress.json").write_text('{"count": 1834}\n')
    progress, _stream, clock = make(tmp_path, "tty", estimate=2210)
    clock.now += 52
    progress.line("  CC      mm/nommu.o")
    assert progress.text() == "kernel nommu: 1/1834 files  0:52"


def test_without_a_terminal_a_heartbeat_line_about_every_30_seconds(tmp_path: Path) -> None:
    progress, stream, clock = make(tmp_path, "plain")
    for _ in range(100):
        clock.now += 1
        progress.line("  CC      a.o")
    progress.finish(succeeded=False)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 100 // int(HEARTBEAT_SECONDS)
    assert lines[0] == "kernel nommu: 30 files  0:30"
    assert not (tmp_path / "progress.json").exists(), "a failed build must not become the next total"


def test_off_shows_nothing(tmp_path: Path) -> None:
    progress, stream, clock = make(tmp_path, "off")
    for _ in range(100):
        clock.now += 1
        progress.line("  CC      a.o")
    progress.finish(succeeded=True)
    assert stream.getvalue() == ""


def test_the_runner_feeds_a_real_commands_output_to_progress_and_the_log(tmp_path: Path) -> None:
    progress, _stream, _clock = make(tmp_path, "plain")
    log = tmp_path / "build.log"
    script = "for i in 1 2 3 4 5; do echo \"  CC      f$i.o\"; done; echo '  LD      vmlinux'"
    Runner().log(log).run(["sh", "-c", script], "fake build", progress=progress)
    assert progress.count == 5
    assert [line for line in log.read_text().splitlines() if line.startswith("  CC")] == [
        f"  CC      f{i}.o" for i in range(1, 6)
    ]
    assert (tmp_path / "progress.json").read_text().strip() == '{"count": 5}'


def test_an_incremental_build_keeps_the_full_total_and_never_shows_more_than_it(tmp_path: Path) -> None:
    (tmp_path / "progress.json").write_text('{"count": 1070}\n')
    progress, _stream, _clock = make(tmp_path, "tty", estimate=2210)
    progress.line("  CC      init/version.o")
    progress.finish(succeeded=True)
    assert (tmp_path / "progress.json").read_text().strip() == '{"count": 1070}', "1 file is no total"
    (tmp_path / "progress.json").write_text('{"count": 2}\n')
    progress, _stream, _clock = make(tmp_path, "tty", estimate=2210)
    for _ in range(3):
        progress.line("  CC      a.o")
    assert progress.text() == "kernel nommu: 3 files  0:00", "past the remembered total the total is unknown"
