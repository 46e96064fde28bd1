"""The memory demos swap, buddy and numa: their verdicts on recorded consoles of both outcomes. (Their real boots,
repeated on a loaded host, are tests/test_soak.py's; longer soaks are bench/bench_soak.py's.)"""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path

import pytest
from conftest import LazyProject, checkout_configs

from mmulab.boot import judge as boot_judge

DATA = Path(__file__).parent / "data" / "boots"
PROJECT = LazyProject()
DEMOS = ("swap", "buddy", "numa")
CASES = sorted(case for demo in DEMOS for case in checkout_configs().demos[demo].cases)


def judge(name: str, lines: list[str]) -> boot_judge.Verdict:
    return boot_judge.judge(PROJECT.boots[name], lines, timed_out=False, exit_code=0, seconds=1)


def recorded(name: str) -> list[str]:
    return (DATA / f"{name}.log").read_text().splitlines()


def test_every_demo_runs_on_both_kernels() -> None:
    for demo in DEMOS:
        variants = {PROJECT.boots[case].variant for case in PROJECT.demos[demo].cases}
        assert {PROJECT.variants[v].mmu for v in variants} == {True, False}, demo


@pytest.mark.parametrize("name", CASES)
def test_recorded_console_passes(name: str) -> None:
    verdict = judge(name, recorded(name))
    assert verdict.passed, verdict.summary()


# What a case's program found, where its markers are not `...: yes` judgements: the marker and the line the
# other finding would print (numa-c-nommu reports facts, ENOSYS and one node, not yes/no answers).
OTHER_FINDING = {
    "numa-c-nommu": {
        "mmulab: numa: no /sys/devices/system/node: one node": "mmulab: numa: nodes in /sys/devices/system/node: 2",
        "mmulab: numa: mbind(MPOL_BIND, node 1) = -38 (ENOSYS)": "mmulab: numa: mbind(MPOL_BIND, node 1) = 0",
    },
}


def findings(name: str) -> dict[str, str]:
    """The case's findings: each marker the program judges, with the line of the other answer."""
    must = PROJECT.boots[name].must
    answers = {marker: marker.removesuffix("yes") + "no" for marker in must if marker.endswith(": yes")}
    return answers | OTHER_FINDING.get(name, {})


@pytest.mark.parametrize("name", CASES)
def test_a_check_the_program_answered_no_fails_the_boot(name: str) -> None:
    """Every finding (a `...: yes` marker, or what the program reports instead) is judged: the same console
    showing the other answer must fail, naming the marker. Every case has at least one."""
    checks = findings(name)
    assert checks, f"{name}: no finding of its program is checked"
    for marker, other in checks.items():
        assert marker in PROJECT.boots[name].must, marker
        assert any(marker in line for line in recorded(name)), marker
        lines = [line.replace(marker, other) for line in recorded(name)]
        verdict = judge(name, lines)
        assert not verdict.passed and marker in verdict.missing, marker


def test_the_kernels_differ_where_the_notes_say() -> None:
    """NOMMU: no swap (ENOSYS), a 20 KiB mmap costs 32 KiB untrimmed, one node; MMU: swap, compaction, two nodes."""
    nommu = {demo: "\n".join(recorded(f"{demo}-c-nommu")) for demo in DEMOS}
    mmu = {demo: "\n".join(recorded(f"{demo}-c-mmu-full")) for demo in DEMOS}
    assert "swapon(/dev/ram0) = -38 (ENOSYS)" in nommu["swap"] and "SwapTotal: 0 kB" in nommu["swap"]
    assert "swapon(/dev/zram0) = 0" in mmu["swap"]
    assert "an mmap of 20 KiB costs 32 KiB" in nommu["buddy"] and "MmapCopy" not in mmu["buddy"]
    assert "a 64 KiB request fails although MemFree >= 32 MiB: yes" in nommu["buddy"]
    assert "the 64 KiB request succeeds from scattered frames" in mmu["buddy"]
    assert "one node" in nommu["numa"] and "nodes in /sys/devices/system/node: 2" in mmu["numa"]


@pytest.mark.parametrize(
    ("name", "before", "after"),
    [
        ("swap-c-mmu-full", "every value read back intact: yes", "every value read back intact: no"),
        ("swap-c-mmu-full", "swapon(/dev/zram0) = 0", "swapon(/dev/zram0) = -22 (Invalid argument)"),
        ("buddy-c-nommu", "order>=4 free blocks: 0 while", "order>=4 free blocks: 3 while"),
        ("numa-c-mmu-full", "nodes in /sys/devices/system/node: 2", "nodes in /sys/devices/system/node: 1"),
        ("numa-c-nommu", "mbind(MPOL_BIND, node 1) = -38 (ENOSYS)", "mbind(MPOL_BIND, node 1) = 0"),
    ],
)
def test_a_console_that_shows_the_other_outcome_fails(name: str, before: str, after: str) -> None:
    lines = recorded(name)
    assert any(before in line for line in lines)
    verdict = judge(name, [line.replace(before, after) for line in lines])
    assert not verdict.passed


# ---------------------------------------------------------------------------------------------------------------
# Chart data lines (issue 19): `mmulab: data: <chart> <series> <x> <y>`, on the recorded real consoles of every C
# case of the memory demos. Read with a small regex of this file's own (mmulab/boot/series.py is the real parser):
# the lines must be there, well formed, and mean what each chart claims.

DATA_LINE = re.compile(r"mmulab: data: (?P<rest>.*)$")
NAME = r"[a-z0-9][a-z0-9_.-]{0,31}"
NUMBER = r"-?(?:0x[0-9a-fA-F]+|\d+(?:\.\d+)?)"
POINT = re.compile(rf"({NAME}) ({NAME}) ({NUMBER}|[A-Za-z][A-Za-z0-9_.:-]{{0,31}}) ({NUMBER}|none)")
CHART_DEMOS = ("addrspace", "fork", "clone_vm", "pagetables", "kspace", "slab", "oom", "swap", "buddy", "numa")
C_CASES = sorted(case for demo in CHART_DEMOS for case in checkout_configs().demos[demo].cases if "-c-" in case)
# The charts each demo's C build prints (the contract's table); kspace's MMU chart is the kernel's own lines.
CHARTS = {
    "addrspace": {"maps"},
    "fork": {"maps"},
    "clone_vm": {"maps"},
    "pagetables": {"pagetables"},
    "kspace": set(),
    "slab": {"slab"},
    "oom": {"oom"},
    "swap": {"swap"},
    "buddy": {"buddy"},
    "numa": {"numa"},
}
MMU_ONLY_CHARTS = {"pagetables": {"vaddr", "frame"}}
NOMMU_ONLY_CHARTS = {"kspace": {"kspace"}}

Value = int | float | str | None


def value(text: str) -> Value:
    if text == "none":
        return None
    if re.fullmatch(NUMBER, text):
        return int(text, 16) if "0x" in text else float(text) if "." in text else int(text)
    return text


def points(name: str) -> dict[tuple[str, str], list[tuple[Value, Value]]]:
    """(chart, series) -> its points in console order; a malformed data line fails the test that reads it."""
    series: dict[tuple[str, str], list[tuple[Value, Value]]] = {}
    for line in recorded(name):
        if found := DATA_LINE.search(line):
            point = POINT.fullmatch(found["rest"].strip())
            assert point, f"{name}: malformed data line {line!r}"
            chart, label, x, y = point.groups()
            series.setdefault((chart, label), []).append((value(x), value(y)))
    return series


def ranges(name: str, prefix: str) -> list[tuple[int, int]]:
    """The maps chart's ranges of one process (`parent`, `child`), targets left out."""
    found = [p for (c, s), pts in points(name).items() if c == "maps" and s.startswith(f"{prefix}.") for p in pts]
    spans = [(int(x), int(y)) for x, y in found if isinstance(x, int) and isinstance(y, int) and x != y]
    assert all(low < high for low, high in spans), spans
    return spans


def target(name: str) -> int:
    (only,) = points(name)[("maps", "child.target")]
    assert only[0] == only[1] and isinstance(only[0], int)
    return only[0]


def inside(address: int, spans: list[tuple[int, int]]) -> bool:
    return any(low <= address < high for low, high in spans)


def is_mmu(name: str) -> bool:
    return PROJECT.variants[PROJECT.boots[name].variant].mmu


@pytest.mark.parametrize("name", C_CASES)
def test_every_c_case_prints_the_charts_the_contract_names(name: str) -> None:
    demo = PROJECT.boots[name].demo
    extra = MMU_ONLY_CHARTS if is_mmu(name) else NOMMU_ONLY_CHARTS
    # a boot that hangs before Linux runs (the MMU kernel on a CPU without satp) prints none
    expected = set() if PROJECT.boots[name].expect == "hang" else CHARTS[demo] | extra.get(demo, set())
    assert {chart for chart, _ in points(name)} == expected
    if demo == "kspace" and is_mmu(name):  # drawn from the kernel's own memory-layout lines
        assert any(re.search(r"vmalloc : 0x[0-9a-f]+ - 0x[0-9a-f]+", line) for line in recorded(name))


def test_a_malformed_data_line_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local reader is strict: a data line with a bad y (or none at all) is not silently skipped."""
    lines = [*recorded("oom-c-mmu"), "mmulab: data: oom score 9 lots"]
    monkeypatch.setattr(sys.modules[__name__], "recorded", lambda name: lines)
    with pytest.raises(AssertionError, match="malformed data line"):
        points("oom-c-mmu")


@pytest.mark.parametrize("demo", ["addrspace", "fork", "clone_vm"])
def test_nommu_childs_target_lies_in_the_parents_memory(demo: str) -> None:
    """No MMU: the address the child writes to is inside one of the parent's own regions (one address space)."""
    name = f"{demo}-c-nommu"
    assert inside(target(name), ranges(name, "parent"))


def test_nommu_addrspace_child_is_a_separate_block_of_the_same_memory() -> None:
    """A separate program without an MMU: its own block, next to the parent's (no overlap, same address space)."""
    parent, child = ranges("addrspace-c-nommu", "parent"), ranges("addrspace-c-nommu", "child")
    assert child and not any(inside(low, parent) or inside(high - 1, parent) for low, high in child)
    assert not inside(target("addrspace-c-nommu"), child)


def test_nommu_fork_child_has_no_mappings_of_its_own() -> None:
    """NOMMU's clone without CLONE_VM copies no mappings (nommu's dup_mmap): the child's maps are empty."""
    assert ranges("fork-c-nommu", "parent") and not ranges("fork-c-nommu", "child")
    assert any("lists no mappings of my own" in line for line in recorded("fork-c-nommu"))


@pytest.mark.parametrize("demo", ["addrspace", "fork", "clone_vm"])
def test_mmu_parent_and_child_use_the_same_virtual_addresses(demo: str) -> None:
    """With an MMU each process has the same layout of virtual addresses (norandmaps), behind different frames."""
    name = f"{demo}-c-mmu"
    parent, child = ranges(name, "parent"), ranges(name, "child")
    stacks = {
        role: [p for (c, s), pts in points(name).items() if s == f"{role}.stack" for p in pts]
        for role in ("parent", "child")
    }
    assert stacks["parent"] and stacks["parent"] == stacks["child"]
    if demo == "addrspace":  # a separate program: the parent's page is not in the child's address space
        assert inside(target(name), parent) and not inside(target(name), child)
    else:
        assert set(parent) == set(child) and inside(target(name), child)


def test_oom_score_rises_with_an_mmu_and_stays_flat_without() -> None:
    mmu = [y for _, y in points("oom-c-mmu")[("oom", "score")]]
    nommu = [y for _, y in points("oom-c-nommu")[("oom", "score")]]
    assert [x for x, _ in points("oom-c-mmu")[("oom", "score")]] == list(range(9))
    assert all(isinstance(y, int) for y in mmu + nommu)
    assert all(b > a for a, b in itertools.pairwise(mmu)), mmu  # type: ignore[operator]
    assert len(set(nommu)) == 1, nommu


@pytest.mark.parametrize("name", ["pagetables-c-mmu", "pagetables-c-mmu-sv39"])
def test_pagetables_fields_put_back_together_give_the_address_printed(name: str) -> None:
    """The vaddr chart's VPN fields and offset are the address the program names (`virtual 0x... is physical`)."""
    mode = "sv39" if name.endswith("sv39") else "sv57"
    fields = dict(points(name)[("vaddr", mode)])
    assert list(fields) == [f"vpn{level}" for level in range(len(fields) - 2, -1, -1)] + ["offset"]
    assert len(fields) == {"sv57": 6, "sv39": 4}[mode]
    address = sum(int(fields[f"vpn{level}"] or 0) << (12 + 9 * level) for level in range(len(fields) - 1))
    address += int(fields["offset"] or 0)
    (printed,) = [
        re.search(r"virtual (0x[0-9a-f]+) is physical", line) for line in recorded(name) if "is physical 0x" in line
    ]
    assert printed and address == int(printed[1], 16)


def test_pagetables_frames_and_growth_mean_what_the_charts_say() -> None:
    frames = dict(points("pagetables-c-mmu")[("frame", "pfn")])
    assert frames["page1-read"] == frames["page2-read"]  # the zero page
    assert len({frames["page1-read"], frames["page1-written"], frames["page3-written"]}) == 3
    growth = points("pagetables-c-mmu")[("pagetables", "kb")]
    assert [x for x, _ in growth] == list(range(0, 65, 8))
    assert int(growth[-1][1] or 0) - int(growth[0][1] or 0) >= 128
    assert points("pagetables-c-nommu") == {("pagetables", "kb"): [(0, None)]}


def test_kspace_nommu_identity_range_holds_the_kernel_text() -> None:
    ((low, high),) = points("kspace-c-nommu")[("kspace", "ram.identity")]
    (text,) = [
        re.search(r"_stext at (0x[0-9a-f]+)", line) for line in recorded("kspace-c-nommu") if "_stext at" in line
    ]
    assert text and isinstance(low, int) and isinstance(high, int) and low <= int(text[1], 16) < high


@pytest.mark.parametrize("name", ["slab-c-mmu", "slab-c-nommu"])
def test_slab_objects_grow_with_the_files_and_come_back(name: str) -> None:
    for cache in ("dentry", "inode"):
        bars = dict(points(name)[("slab", cache)])
        assert list(bars) == ["before", "created", "reclaimed"]
        before, created, reclaimed = (int(v or 0) for v in bars.values())
        assert created - before >= 750 and created - reclaimed >= 500, (cache, bars)


def test_swap_chart_steps_go_on_across_the_child_and_show_swap_used() -> None:
    """MMU: the child's points continue the parent's steps (one counter in shared memory); SwapFree falls while
    the child holds more than was free, and MemFree falls with it."""
    for name in ("swap-c-mmu-full", "swap-c-nommu"):
        for line in ("memfree", "swapfree"):
            steps = [x for x, _ in points(name)[("swap", line)]]
            assert steps == list(range(len(steps))), (name, line, steps)
    swap_free = [int(y or 0) for _, y in points("swap-c-mmu-full")[("swap", "swapfree")]]
    assert max(swap_free) > 0 and min(swap_free[swap_free.index(max(swap_free)) :]) < max(swap_free)
    assert all(y == 0 for _, y in points("swap-c-nommu")[("swap", "swapfree")])


def blocks_of_order_4_or_more(name: str, when: str) -> int:
    return sum(int(y or 0) for x, y in points(name)[("buddy", when)] if isinstance(x, int) and x >= 4)


def test_buddy_chart_shows_fragmenting_and_compaction() -> None:
    for name in ("buddy-c-mmu-full", "buddy-c-nommu"):
        assert [x for x, _ in points(name)[("buddy", "before")]] == list(range(11))
        assert blocks_of_order_4_or_more(name, "fragmented") < blocks_of_order_4_or_more(name, "before")
    assert blocks_of_order_4_or_more("buddy-c-mmu-full", "compacted") > blocks_of_order_4_or_more(
        "buddy-c-mmu-full", "fragmented"
    )
    assert ("buddy", "compacted") not in points("buddy-c-nommu")


def test_numa_chart_has_a_free_bar_per_node_and_the_bound_page_on_node_1() -> None:
    mmu = points("numa-c-mmu-full")
    assert [x for x, _ in mmu[("numa", "free")]] == ["node0", "node1"]
    assert dict(mmu[("numa", "bound")]) == {"node0": 0, "node1": 1}
    nommu = points("numa-c-nommu")
    assert [x for x, _ in nommu[("numa", "free")]] == ["node0"] and nommu[("numa", "bound")] == [("node1", None)]


# The new verdict lines of issue 20 (questions 3-5), judged: the other answer, or the line missing, fails the boot.
@pytest.mark.parametrize(
    ("name", "before", "after"),
    [
        ("pagetables-c-mmu", "virtual is bigger than physical under Sv57 and Sv39: yes", "... and Sv39: no"),
        ("pagetables-c-mmu-sv39", "virtual under Sv39 (this boot)", "virtual under Sv39"),
        ("pagetables-c-nommu", "virtual is physical: MemTotal", "virtual is not physical"),
        ("fork-c-nommu", "riscv defines no fork system call", "riscv defines a fork system call"),
        ("fork-asm-mmu", "what libc's fork() turns into: returned a child pid", "what libc's fork() turns into: -38"),
        (
            "swap-c-nommu",
            "pages read twice become active (Active(file) grew by >= 1 MiB on the second read): yes",
            "pages read twice become active (Active(file) grew by >= 1 MiB on the second read): no",
        ),
    ],
)
def test_the_lecture_questions_verdicts_are_judged(name: str, before: str, after: str) -> None:
    lines = recorded(name)
    assert any(before in line for line in lines)
    assert not judge(name, [line.replace(before, after) for line in lines]).passed
