"""`mmulab bisect`: the loop on real git repositories of a few commits, with the pipeline's build and boot
replaced by a fake doit that reads what each commit's tree says it does (configure fails, the kernel does not
build, the boot passes, fails, fails outside the kernel N times); the bad inputs through the command; and, slow,
a real regression in a git tree made from the pinned kernel."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import make_project
from kernel_series import git

from mmulab.boot.judge import Outcome as Observed
from mmulab.boot.judge import Verdict
from mmulab.boot.qemu import SLOW_HOST_LIMIT
from mmulab.cli import main
from mmulab.core.errors import ConfigError
from mmulab.pipeline import bisect, bisectstep
from mmulab.pipeline.actions import layout_of
from mmulab.project.model import Project

pytestmark = pytest.mark.needs("git")
CASE = "clone_vm-asm-nommu"


def series(tree: Path, behaviours: Sequence[str]) -> list[str]:
    """A repository whose commit i has `behave` saying what the fake pipeline does at it; the hashes, oldest
    first. Commit 0 is the base (the good one in most tests)."""
    tree.mkdir(parents=True)
    git(tree, "init", "--quiet", "--initial-branch=main")
    hashes = []
    for number, behaviour in enumerate(behaviours):
        (tree / "behave").write_text(behaviour + "\n")
        (tree / "Makefile").write_text(f"# commit {number}\n")
        git(tree, "add", "-A")
        git(tree, "commit", "--quiet", "-m", f"commit {number}: {behaviour}")
        hashes.append(git(tree, "rev-parse", "HEAD"))
    return hashes


class FakeDoit:
    """doit's tasks as the commit checked out in LINUX_SRC says: `kconfig-fails`, `kernel-fails`, `pass`, `fail`,
    `qemu-error N` (QEMU fails N times, then the boot passes), `starved N`, `qemu-error-always`; `interrupt:<task
    prefix>` raises KeyboardInterrupt when that task starts (Ctrl-C)."""

    def __init__(self, project: Project, interrupt: str = "") -> None:
        self.project, self.interrupt = project, interrupt
        self.calls: list[tuple[str, str]] = []  # (commit's behaviour, task)

    def __call__(self, tasks: Sequence[str], log: Path, environment: dict[str, str]) -> int:
        tree = Path(environment["LINUX_SRC"])
        behaviour = (tree / "behave").read_text().strip()
        (task,) = tasks
        self.calls.append((behaviour, task))
        if self.interrupt and task.startswith(self.interrupt):
            raise KeyboardInterrupt
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as sink:
            sink.write(f"$ doit {task}\nerror: an earlier run's line\n" if task.startswith("kconfig") else "")
        if task.startswith("kconfig:") and behaviour == "kconfig-fails":
            with log.open("a") as sink:  # after an earlier run's line that must not be taken for this one's reason
                sink.write("$ doit kconfig:nommu\nmmulab: error: kconfig:nommu: 1 option did not survive:\n"
                           "  - CONFIG_BINFMT_ELF_FDPIC=y requested\n")  # fmt: skip
            return 1
        if task.startswith("kernel:") and behaviour == "kernel-fails":
            with log.open("a") as sink:
                sink.write("$ doit kernel:nommu\nkernel/fork.c:1: error: #error broken\n")
            return 1
        if task.startswith("smoke:"):
            return self.boot(task.removeprefix("smoke:"), behaviour, tree)
        return 0

    def boot(self, name: str, behaviour: str, tree: Path) -> int:
        layout = layout_of(replace(self.project, settings=replace(self.project.settings, linux_src=tree)))
        case = self.project.boots[name]
        tries = sum(1 for b, task in self.calls if b == behaviour and task == f"smoke:{name}")
        console = layout.console_log(name)
        console.parent.mkdir(parents=True, exist_ok=True)
        kind, _, count = behaviour.partition(" ")
        infra_left = kind == "qemu-error-always" or (kind in ("qemu-error", "starved") and tries <= int(count or 0))
        if infra_left and kind == "starved":
            console.write_text("[    0.000000] Linux version 6.12\n")
            verdict = Verdict(name, "", "", "", "", "pass", Observed.HANG, False, case.timeout * SLOW_HOST_LIMIT)
        elif infra_left:
            console.write_text("qemu-system-riscv64: cannot set up guest memory 'riscv_virt_board.ram'\n")
            verdict = Verdict(name, "", "", "", "", "pass", Observed.QEMU_ERROR, False, 0.1, "QEMU exited with code 1")
        elif kind == "fail":
            console.write_text(
                "[    0.100000] Linux version 6.12 (#2)\n[    0.200000] Run /init as init process\n"
                "[    0.300000] mmulab: clone failed: -22\n"
            )
            verdict = Verdict(
                name, "", "", "", "", "pass", Observed.INCOMPLETE, False, 0.5, "QEMU exited (code 0) without printing",
                notes=("init: clone returned -EINVAL at kernel_clone+0x10",),
            )  # fmt: skip
        else:
            console.write_text(
                "[    0.100000] Linux version 6.12 (#1)\n[    0.200000] Run /init as init process\n"
                "[    0.300000] mmulab: parent: shared byte after child exit = B\n"
            )
            verdict = Verdict(name, "", "", "", "", "pass", Observed.PASS, True, 0.5)
        verdict.write(layout.verdict(name))
        return 0 if verdict.passed else 1


def start(
    tmp_path: Path, behaviours: Sequence[str], good: int = 0, bad: int = -1, interrupt: str = "", retries: int = 2
) -> tuple[Project, list[str], FakeDoit, list[str], bisect.Git, bisect.Outcome]:
    tree = tmp_path / "linux"
    hashes = series(tree, behaviours)
    project = make_project(tmp_path / "build", linux_src=tree)
    doit = FakeDoit(project, interrupt)
    said: list[str] = []
    oracle_of = functools.partial(bisectstep.PipelineOracle.of, run_tasks=doit)
    work, outcome, _path = bisectstep.bisect(
        project, hashes[good], hashes[bad], [CASE], retries, False, said.append, oracle_of
    )
    return project, hashes, doit, said, work, outcome


def steps(outcome: bisect.Outcome) -> list[bisect.Step]:
    return [step for step in outcome.steps if step.role == "step"]


def test_the_culprit_is_found_in_log2_steps_and_the_users_tree_is_untouched(tmp_path: Path) -> None:
    behaviours = ["pass"] * 7 + ["fail"] * 5
    tree = tmp_path / "linux"
    project, hashes, _doit, said, work, outcome = start(tmp_path, behaviours)
    assert outcome.first_bad is not None
    assert outcome.first_bad.hash == hashes[7]
    assert outcome.first_bad.subject == "commit 7: fail"
    assert len(steps(outcome)) <= 4  # ceil(log2(11 candidates))
    assert said[:2] == [
        f"bisect: checking --good {hashes[0][:12]} ...",
        f"bisect: --good {hashes[0][:12]} is good (0 s)",
    ]
    # The user's tree: same branch, same HEAD, no change, no bisect state; the work happened in the clone.
    assert git(tree, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(tree, "rev-parse", "HEAD") == hashes[-1]
    assert git(tree, "status", "--porcelain") == ""
    assert not list((tree / ".git").glob("BISECT_*"))
    assert work.tree == layout_of(project).bisect_dir() / "tree"
    text = bisect.text(work, outcome)
    assert f"bisect: first bad commit: {hashes[7]} 'commit 7: fail' (author date 2026-01-01T00:00:00+00:00)" in text
    assert "init: clone returned -EINVAL at kernel_clone+0x10" in text
    # Side by side from the first line that differs beyond time stamps and the version banner.
    assert "from console line 3:" in text
    assert "mmulab: parent: shared byte after child exit = B" in text and "mmulab: clone failed: -22" in text
    report = json.loads((layout_of(project).reports() / "bisect.json").read_text())
    assert report["first_bad"]["hash"] == hashes[7]
    assert report["case"] == CASE
    assert [s["mark"] for s in report["steps"]][:2] == ["good", "bad"]


@pytest.mark.parametrize("culprit", [1, 5, 11])
def test_the_first_and_last_commits_can_be_the_culprit(tmp_path: Path, culprit: int) -> None:
    behaviours = ["pass"] * culprit + ["fail"] * (12 - culprit)
    _project, hashes, _doit, _said, _work, outcome = start(tmp_path, behaviours)
    assert outcome.first_bad is not None and outcome.first_bad.hash == hashes[culprit]
    assert len(steps(outcome)) <= 4


def test_skips_next_to_the_culprit_leave_it_ambiguous_said_plainly(tmp_path: Path) -> None:
    behaviours = ["pass"] * 4 + ["kernel-fails", "kconfig-fails", "fail"] + ["fail"] * 3
    _project, hashes, _doit, _said, work, outcome = start(tmp_path, behaviours)
    assert outcome.first_bad is None
    assert [c.hash for c in outcome.candidates] == [hashes[5], hashes[4], hashes[6]] or {
        c.hash for c in outcome.candidates
    } == {hashes[4], hashes[5], hashes[6]}
    skips = {s.commit: s.reason for s in outcome.steps if s.mark is bisect.Mark.SKIP}
    assert skips[hashes[4]] == "kernel:nommu: kernel/fork.c:1: error: #error broken"
    assert skips[hashes[5]] == "kconfig:nommu: 1 option did not survive: CONFIG_BINFMT_ELF_FDPIC=y requested"
    text = bisect.text(work, outcome)
    assert "the first bad commit could be any of these 3" in text


def test_a_skip_away_from_the_culprit_still_finds_it(tmp_path: Path) -> None:
    behaviours = ["pass"] * 6 + ["kconfig-fails"] + ["pass"] * 2 + ["fail"] * 3
    _project, hashes, _doit, _said, _work, outcome = start(tmp_path, behaviours)
    assert outcome.first_bad is not None and outcome.first_bad.hash == hashes[9]
    marks = {s.commit: s.mark for s in outcome.steps}
    assert marks.get(hashes[6]) in (bisect.Mark.SKIP, None)
    assert len(steps(outcome)) <= 6


def test_flaky_boots_are_retried_then_counted(tmp_path: Path) -> None:
    behaviours = ["qemu-error 2", "starved 1", "fail"]
    _project, hashes, doit, _said, _work, outcome = start(tmp_path, behaviours)
    assert outcome.first_bad is not None and outcome.first_bad.hash == hashes[2]
    good, step = outcome.steps[0], steps(outcome)[0]
    assert (good.mark, good.attempts) == (bisect.Mark.GOOD, 3)
    assert (step.commit, step.mark, step.attempts) == (hashes[1], bisect.Mark.GOOD, 2)
    assert doit.calls.count(("qemu-error 2", f"smoke:{CASE}")) == 3


def test_a_boot_failing_outside_the_kernel_every_time_is_skip(tmp_path: Path) -> None:
    behaviours = ["pass", "pass", "qemu-error-always", "fail"]
    _project, hashes, doit, _said, _work, outcome = start(tmp_path, behaviours, retries=1)
    assert outcome.first_bad is None
    assert {c.hash for c in outcome.candidates} == {hashes[2], hashes[3]}
    (skip,) = [s for s in outcome.steps if s.mark is bisect.Mark.SKIP]
    assert skip.attempts == 2 and skip.reason.startswith(f"{CASE}: booted 2 times, each failed outside the kernel")
    assert doit.calls.count(("qemu-error-always", f"smoke:{CASE}")) == 2


def test_all_good_and_all_bad_are_told_at_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--bad \w{12} passes: it is not a bad commit"):
        start(tmp_path / "a", ["pass"] * 4)
    with pytest.raises(ConfigError, match=r"--good \w{12} fails \(clone_vm-asm-nommu: incomplete: .*\): it is not"):
        start(tmp_path / "b", ["fail"] * 4)


def test_a_variant_the_good_commit_cannot_build_is_told(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--good \w{12} cannot be tested: kconfig:nommu: .*did not survive"):
        start(tmp_path, ["kconfig-fails", "pass", "fail"])


@pytest.mark.parametrize("phase", ["kconfig:", "kernel:", "initramfs:", "smoke:"])
@pytest.mark.parametrize("when", ["check", "step"])
def test_ctrl_c_at_each_phase_leaves_the_tree_and_resumes(tmp_path: Path, phase: str, when: str) -> None:
    behaviours = ["pass"] * 5 + ["fail"] * 3
    tree = tmp_path / "linux"
    hashes = series(tree, behaviours)
    project = make_project(tmp_path / "build", linux_src=tree)
    said: list[str] = []

    class Interrupting(FakeDoit):
        def __call__(self, tasks: Sequence[str], log: Path, environment: dict[str, str]) -> int:
            checks_done = len(bisect.State.read(layout_of(project).bisect_state()).steps)
            if tasks[0].startswith(phase) and (when == "check" or checks_done >= 2):
                raise KeyboardInterrupt
            return super().__call__(tasks, log, environment)

    interrupting = functools.partial(bisectstep.PipelineOracle.of, run_tasks=Interrupting(project))
    with pytest.raises(KeyboardInterrupt):
        bisectstep.bisect(project, hashes[0], hashes[-1], [CASE], 2, False, said.append, interrupting)
    assert said[-1].startswith(f"bisect: interrupted after {0 if when == 'check' else 2} step(s); {tree} is as it")
    assert said[-1].endswith("continue with `mmulab bisect --resume`")
    assert git(tree, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(tree, "rev-parse", "HEAD") == hashes[-1]
    assert git(tree, "status", "--porcelain") == "" and not list((tree / ".git").glob("BISECT_*"))
    fake = functools.partial(bisectstep.PipelineOracle.of, run_tasks=FakeDoit(project))
    _work, outcome, _path = bisectstep.bisect(project, "", "", [], 2, True, said.append, fake)
    assert outcome.first_bad is not None and outcome.first_bad.hash == hashes[5]


def test_resume_without_a_bisect_is_one_line(tmp_path: Path) -> None:
    project = make_project(tmp_path / "build")
    with pytest.raises(ConfigError, match=r"bisect --resume: no bisect to resume \(.*state.json does not exist\)"):
        bisectstep.bisect(project, "", "", [], 2, True)


# --- bad input, through the command: one line, exit 2, nothing built ---


def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp: Path, tree: Path | None,
            *args: str) -> tuple[int, str]:  # fmt: skip
    monkeypatch.setenv("MMULAB_BUILD_DIR", str(tmp / "build"))
    if tree is not None:
        monkeypatch.setenv("LINUX_SRC", str(tree))
    code = main(["bisect", *args])
    err = capsys.readouterr().err
    return code, err


def test_bad_inputs_are_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "linux"
    hashes = series(tree, ["pass", "pass", "fail"])
    plain = tmp_path / "plain"
    plain.mkdir()
    base = ["--case", CASE]
    expectations = [
        (plain, ["--good", "a", "--bad", "b", *base], f"bisect: LINUX_SRC={plain}: not a git repository"),
        (None, ["--good", "a", "--bad", "b", *base], "bisect: LINUX_SRC is not set"),
        (tree, ["--good", "v9.9", "--bad", "main", *base], f"bisect: --good v9.9: no such commit in {tree}"),
        (tree, ["--good", hashes[2], "--bad", hashes[0], *base], "is not an ancestor of --bad"),
        (tree, ["--good", "main~2", "--bad", "main", "--case", "nope"], "bisect: --case nope: no such boot case"),
    ]
    for where, args, message in expectations:
        monkeypatch.delenv("LINUX_SRC", raising=False)
        code, err = run_cli(capsys, monkeypatch, tmp_path, where, *args)
        assert (code, err.count("\n")) == (2, 1), err
        assert err.startswith("mmulab: error: ") and message in err, err
    (tree / "Makefile").write_text("# changed\n")
    code, err = run_cli(capsys, monkeypatch, tmp_path, tree, "--good", "main~2", "--bad", "main", *base)
    assert (code, err) == (2, f"mmulab: error: bisect: {tree} has uncommitted changes (Makefile): commit or stash "
                               "them (a bisect tests commits, so the change would be silently left out)\n")  # fmt: skip
    assert not (tmp_path / "build" / "bisect").exists()


def test_usage_mistakes_are_told_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--good", "a"], ["--resume", "--good", "a"], ["--retries", "-1", "--resume"]):
        with pytest.raises(SystemExit) as stopped:
            main(["bisect", *args])
        assert stopped.value.code == 2
    assert "mmulab bisect: error:" in capsys.readouterr().err


def test_what_counts_as_a_failure_outside_the_kernel() -> None:
    project = make_project(Path("/nonexistent"))
    case = project.boots[CASE]

    def verdict(observed: Observed, seconds: float = 1.0) -> Verdict:
        return Verdict(CASE, "", "", "", "", "pass", observed, observed is Observed.PASS, seconds, "why")

    command = "$ qemu-system-riscv64 -M virt -kernel Image"
    no_start = [command, "qemu-system-riscv64: -kernel Image: No such file or directory"]
    kernel_said = [command, "[    0.000000] Linux version 6.12", "[    0.1] Run /init as init process"]
    assert bisectstep.infrastructure(None, case, []) == "the boot left no verdict (QEMU could not start?)"
    infra = bisectstep.infrastructure
    assert infra(verdict(Observed.INCOMPLETE), case, no_start) == f"QEMU did not start: {no_start[1]}"
    assert bisectstep.infrastructure(verdict(Observed.QEMU_ERROR), case, kernel_said) == "qemu-error: why"
    starved = verdict(Observed.HANG, case.timeout * SLOW_HOST_LIMIT)
    assert bisectstep.infrastructure(starved, case, kernel_said).startswith("the host starved the boot")
    for observed in (Observed.INCOMPLETE, Observed.PANIC, Observed.FORBIDDEN_LINE, Observed.PASS):
        assert bisectstep.infrastructure(verdict(observed), case, kernel_said) == ""
    assert bisectstep.infrastructure(verdict(Observed.HANG, case.timeout), case, kernel_said) == ""


def test_side_by_side_starts_at_the_first_real_difference() -> None:
    good = ["[    0.1] Linux version 6.12-g1 #1", "[    0.2] at 0x80001000", "[    0.3] ratio 7.31", "[  0.4] good end"]
    bad = ["[  0.5] Linux version 6.12-g2 #1", "[  0.7] at 0x80002000", "[  0.9] ratio 7.08", "[  1.1] bad end", "x"]
    shown = bisect.side_by_side(good, bad)
    assert shown.splitlines()[0] == "from console line 4:"
    row = shown.splitlines()[3]
    assert row.startswith("good end ") and row.endswith("| bad end")
    assert shown.splitlines()[4].strip() == "| x"
