"""busybox: its config fragment per variant, verification after oldconfig, and (slow) the interactive
shell driven through a real pty."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from conftest import DOIT, LazyProject, default_root, make_project, run_doit, user_tree_root
from helpers_pipeline import executed

from mmulab.build import busybox, extract, kernelconfig, toolchain
from mmulab.core.errors import ConfigError, UserError
from mmulab.core.paths import Layout
from mmulab.core.settings import PROJECT_ROOT
from mmulab.kconfig import dotconfig
from mmulab.kconfig import tree as kconfig_tree
from mmulab.kconfig.tree import KconfigSource, KconfigTree

PROJECT = LazyProject()


def fragment(variant: str, **extra) -> dict[str, str]:
    assert PROJECT.toolchain.busybox is not None
    spec = replace(PROJECT.toolchain.busybox, kconfig=extra)
    text = busybox.render_fragment(spec, PROJECT.variants[variant], PROJECT.toolchain)
    return dotconfig.parse_config(text)


def test_nommu_busybox_uses_hush_vfork_and_proc_self_exe() -> None:
    values = fragment("nommu")
    assert values["NOMMU"] == "y" and values["SH_IS_HUSH"] == "y" and values["HUSH"] == "y"
    assert values["FEATURE_PREFER_APPLETS"] == "y"
    assert values["BUSYBOX_EXEC_PATH"] == '"/proc/self/exe"'
    assert "ASH" not in values


def test_mmu_busybox_uses_ash_and_both_link_static_pie_against_the_sysroot() -> None:
    values = fragment("mmu")
    assert values["NOMMU"] == "n" and values["SH_IS_ASH"] == "y" and values["ASH_JOB_CONTROL"] == "y"
    for variant in ("mmu", "nommu"):
        ldflags = fragment(variant)["EXTRA_LDFLAGS"]
        assert "-static-pie" in ldflags and "--no-dynamic-linker" in ldflags and "-B{sysroot}/lib/" in ldflags


# --- one build per flavour ----------------------------------------------------------------------------------


def test_variants_with_the_same_busybox_inputs_share_one_build_and_others_get_their_own() -> None:
    """mmu and mmu-full differ in kernel options only: one busybox build; nommu's inputs differ: a build of its
    own. A variant whose flavour changes moves to the build of its new flavour."""
    builds = busybox.shared_builds(PROJECT.variants)
    assert sorted(build.variants for build in builds.values()) == [("mmu", "mmu-full"), ("nommu",)]
    assert all(key == build.flavour.key for key, build in builds.items()) and len(set(builds)) == 2
    without_mmu = {**PROJECT.variants, "mmu-full": replace(PROJECT.variants["mmu-full"], mmu=False)}
    moved = busybox.shared_builds(without_mmu)
    assert sorted(build.variants for build in moved.values()) == [("mmu",), ("nommu", "mmu-full")]
    assert set(moved) == set(builds)  # named by what they are made from, not by who takes them


def test_variants_share_a_build_exactly_when_their_rendered_fragments_are_the_same() -> None:
    """The key is computed from declared data without rendering: it must still split the builds exactly where
    the rendered fragments differ (a name the template sees but the flavour lacks would show here)."""
    spec = PROJECT.toolchain.busybox
    assert spec is not None
    variants = [
        *PROJECT.variants.values(),
        replace(PROJECT.variants["mmu"], name="mmu-other", features=("swap",), kconfig={"SWAP": True}, cmdline="x"),
    ]
    for first in variants:
        for second in variants:
            same_key = busybox.Flavour.of(first).key == busybox.Flavour.of(second).key
            same_text = busybox.render_fragment(spec, first, PROJECT.toolchain) == busybox.render_fragment(
                spec, second, PROJECT.toolchain
            )
            assert same_key == same_text, (first.name, second.name)


def test_one_busybox_task_per_build_and_each_variant_names_the_one_its_images_take(tmp_path: Path) -> None:
    from mmulab.pipeline import tasks

    project = make_project(tmp_path / "build")
    layout = Layout(project.build_root())
    declared = {
        f"{t['basename']}:{t['name']}": t for t in tasks.all_tasks(project) if "name" in t and not tasks.is_group(t)
    }
    builds = busybox.shared_builds(project.variants)
    compiling = {name for name, task in declared.items() if name.startswith("busybox:") and task["actions"]}
    assert compiling == {f"busybox:{key}" for key in builds}
    for key in builds:
        assert declared[f"busybox:{key}"]["targets"] == [layout.busybox_output(key, o) for o in busybox.OUTPUTS]
    for name, variant in project.variants.items():
        alias = declared[f"busybox:{name}"]
        assert alias["actions"] is None and alias["task_dep"] == [f"busybox:{busybox.Flavour.of(variant).key}"]
    shared = busybox.output(layout, project.variants["mmu"])
    assert (
        shared
        == busybox.output(layout, project.variants["mmu-full"])
        != busybox.output(layout, project.variants["nommu"])
    )
    for variant in ("mmu", "mmu-full"):
        assert shared in declared[f"initramfs:shell-busybox-{variant}"]["file_dep"], variant
    assert busybox.output(layout, project.variants["nommu"]) in declared["initramfs:shell-busybox-nommu"]["file_dep"]


def test_a_busybox_template_naming_the_variant_fails_in_one_line_naming_file_and_name(tmp_path: Path) -> None:
    """A build serves several variants, so its template sees no variant's name (nor its kernel features)."""
    assert PROJECT.toolchain.busybox is not None
    template = tmp_path / "busybox.config.j2"
    template.write_text("CONFIG_ASH=y\n# for {{ variant }}\n")
    spec = replace(PROJECT.toolchain.busybox, template=template)
    with pytest.raises(ConfigError) as error:
        busybox.render_fragment(spec, PROJECT.variants["mmu"], PROJECT.toolchain)
    message = str(error.value)
    assert message.startswith(f"{template}:") and message.endswith(": template error: 'variant' is undefined")
    assert "\n" not in message


@pytest.mark.slow
@pytest.mark.needs("make", "riscv64-linux-gnu-gcc", "cpio")
def test_the_mmu_and_mmu_full_images_hold_the_one_busybox_compiled_for_both(tmp_path: Path, kernel_tree: Path) -> None:
    """Both images from a fresh build directory: doit runs one busybox build, the build directory holds that
    build only, and both images carry its binary byte for byte."""
    build = tmp_path / "build"
    env = {"MMULAB_BUILD_DIR": str(build), "LINUX_SRC": str(kernel_tree), "MMULAB_PROGRESS": "off"}
    result = run_doit(["initramfs:shell-busybox-mmu", "initramfs:shell-busybox-mmu-full"], env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    compiled = [name for name in executed(result.stdout) if name.startswith("busybox:")]
    assert len(compiled) == 1 and result.stdout.count(": configure and build (log: ") == 1, result.stdout
    layout = Layout(user_tree_root(build))
    folders = [folder.name for folder in (layout.root / "busybox").iterdir()]
    assert folders == [compiled[0].removeprefix("busybox:")]
    binary = busybox.output(layout, PROJECT.variants["mmu"]).read_bytes()
    assert binary.startswith(b"\x7fELF") and len(binary) > 100_000
    for variant in ("mmu", "mmu-full"):
        unpacked = tmp_path / variant
        unpacked.mkdir()
        with layout.image(variant, "shell-busybox").open("rb") as image:
            subprocess.run(["cpio", "-id", "--quiet", "bin/busybox"], stdin=image, cwd=unpacked, check=True)
        assert (unpacked / "bin" / "busybox").read_bytes() == binary, variant


def test_merge_replaces_rather_than_appends() -> None:
    merged = dotconfig.merge("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=1\n", "CONFIG_B=y\n# CONFIG_A is not set\n")
    assert dotconfig.parse_config(merged) == {"A": "n", "B": "y", "C": "1"}
    assert merged.count("CONFIG_A") == 1 and merged.count("CONFIG_B") == 1


def test_applet_links_are_relative_paths(tmp_path: Path) -> None:
    links = tmp_path / "busybox.links"
    links.write_text("/bin/sh\n/sbin/poweroff\n/usr/bin/free\n/bin/sh\n")
    assert busybox.applet_links(links) == ["bin/sh", "sbin/poweroff", "usr/bin/free"]


# --- what busybox itself leaves out on NOMMU ---------------------------------------------------------------
# busybox generates its Config.in files and include/applets.h from the //config: and //applet: lines of
# its sources (scripts/gen_build_files.sh, run by every make); the tests run that script on the real tree.
APPLET_LINE = re.compile(r"^IF_([A-Z0-9_]+)\(\s*APPLET[A-Z_]*\(([^,]+),", re.M)
BUSYBOX_DOC = PROJECT_ROOT / "docs" / "busybox.md"
DOC_LEFT_OUT = "## Left out on NOMMU"


@dataclass(frozen=True)
class BusyboxKconfig:
    """busybox's own Kconfig tree and its applet table (symbol -> applet names), generated from its sources."""

    tree: KconfigTree
    applets: dict[str, frozenset[str]]


@pytest.fixture(scope="module")
def busybox_kconfig(tmp_path_factory: pytest.TempPathFactory, busybox_tree: Path) -> BusyboxKconfig:
    """The real busybox tree, fetched (sha256-checked against the pin) and extracted by the pipeline into the
    session's build directory, never a tree that happens to lie in the caller's build/."""
    work = tmp_path_factory.mktemp("busybox-kconfig")
    source = busybox_tree
    objdir = work / "obj"
    objdir.mkdir()
    subprocess.run(
        ["sh", str(source / "scripts" / "gen_build_files.sh"), str(source), str(objdir)],
        check=True,
        capture_output=True,
    )
    applets: dict[str, set[str]] = {}
    for symbol, name in APPLET_LINE.findall((objdir / "include" / "applets.h").read_text()):
        applets.setdefault(symbol, set()).add(name.strip())
    tree = KconfigSource((objdir, source), "Config.in").load()
    assert not tree.missing, tree.missing
    return BusyboxKconfig(tree, {symbol: frozenset(names) for symbol, names in applets.items()})


def mmu_only_symbols(tree: KconfigTree) -> dict[str, str]:
    """Symbols busybox's Kconfig makes unavailable with NOMMU=y, each with the condition that does it: a
    condition (its own `depends on`, an enclosing `if` or menu) that holds with NOMMU=n and fails with
    NOMMU=y, every other symbol y except those already found (so what depends on them follows)."""
    everything = {symbol: "y" for symbol in tree.entries}
    with_mmu = everything | {"NOMMU": "n"}
    found: dict[str, str] = {}
    while True:
        without_mmu = everything | {"NOMMU": "y"} | dict.fromkeys(found, "n")
        more = {
            entry.symbol: condition.expression
            for entries in tree.entries.values()
            for entry in entries
            for condition in (*entry.depends, *entry.conditions)
            if entry.symbol not in found
            and kconfig_tree.evaluate(condition.expression, with_mmu)
            and not kconfig_tree.evaluate(condition.expression, without_mmu)
        }
        if not more:
            return found
        found |= more


def requested(variant: str) -> set[str]:
    return {symbol for symbol, value in fragment(variant).items() if value == "y"}


def applets_of(symbols: set[str], table: dict[str, frozenset[str]]) -> set[str]:
    return {name for symbol in symbols for name in table.get(symbol, ())}


def doc_left_out_rows() -> dict[str, str]:
    """docs/busybox.md's table of applets left out on NOMMU: applet name (first column) -> the whole row."""
    text = BUSYBOX_DOC.read_text()
    assert DOC_LEFT_OUT in text, f"docs/busybox.md has no section {DOC_LEFT_OUT!r}"
    section = text.split(DOC_LEFT_OUT, 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name: row for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])}


def test_nommu_busybox_requests_nothing_busybox_marks_as_needing_an_mmu(busybox_kconfig: BusyboxKconfig) -> None:
    mmu_only = mmu_only_symbols(busybox_kconfig.tree)
    # ash and unshare are marked `depends on !NOMMU` in busybox 1.35: a parser that finds none is broken.
    assert mmu_only and all("NOMMU" in condition for condition in mmu_only.values())
    assert requested("nommu") & set(mmu_only) == set()
    # NOMMU's choice of shell is one busybox allows without an MMU.
    assert "SH_IS_HUSH" in requested("nommu") and "SH_IS_HUSH" not in mmu_only


def test_busybox_doc_lists_what_nommu_leaves_out_and_why(busybox_kconfig: BusyboxKconfig) -> None:
    table, mmu_only = busybox_kconfig.applets, mmu_only_symbols(busybox_kconfig.tree)
    nommu_applets = applets_of(requested("nommu"), table)
    left_out = applets_of(requested("mmu"), table) - nommu_applets
    rows = doc_left_out_rows()
    assert set(rows) == left_out, (
        "docs/busybox.md's table must list exactly the applets the MMU shell has and NOMMU lacks"
    )
    busybox_marked = applets_of(set(mmu_only), table) - nommu_applets
    for name, row in rows.items():
        assert ("`depends on !NOMMU`" in row) == (name in busybox_marked), row


@pytest.fixture(scope="module")
def busybox_tree(session_build: Path) -> Path:
    """The pinned busybox source as the pipeline extracts it: its extraction record names the pinned sha256."""
    result = run_doit(["extract:busybox"], {"MMULAB_BUILD_DIR": str(session_build)})
    assert result.returncode == 0, result.stdout + result.stderr
    layout = Layout(default_root(session_build))
    record = extract.Extracted.read(layout.extracted("busybox"))
    assert record.sha256 == PROJECT.sources["busybox"].sha256, record
    assert Path(record.tree) == layout.tree("busybox")
    return Path(record.tree)


@pytest.mark.slow
def test_dropped_busybox_option_fails_by_name(tmp_path: Path, busybox_tree: Path) -> None:
    assert PROJECT.toolchain.busybox is not None
    spec = replace(PROJECT.toolchain.busybox, kconfig={"ASH": True})
    project = make_project(tmp_path)
    text = toolchain.resolve(
        busybox.render_fragment(spec, project.variants["nommu"], project.toolchain),
        project.toolchain,
        tmp_path / "sysroot",
    )
    objdir = tmp_path / "obj"
    with pytest.raises(UserError) as error:
        kernelconfig.apply_fragment(
            ["make", "-C", str(busybox_tree), f"O={objdir}"],
            objdir,
            spec.base_config,
            text,
            tmp_path / "log",
            "busybox config nommu",
            ["oldconfig"],
            KconfigSource((objdir, busybox_tree), "Config.in"),
        )
    message = str(error.value)
    assert message.startswith("busybox config nommu: 1 requested option(s) did not survive oldconfig:")
    assert "CONFIG_ASH=y requested, but the final .config has # CONFIG_ASH is not set" in message
    assert "unmet 'depends on !NOMMU'" in message and "NOMMU=y" in message


def read_until(fd: int, pattern: str, timeout: float, seen: list[str]) -> str:
    """Read the pty until `pattern` (a regex) shows up in everything read so far; fail at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen.append(chunk.decode(errors="replace"))
            if re.search(pattern, "".join(seen)):
                return "".join(seen)
    raise AssertionError(f"never saw {pattern!r}; last output:\n{''.join(seen)[-2000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["nommu", "mmu"])
def test_interactive_shell_through_a_pty(variant: str, session_build: Path) -> None:
    env = {**os.environ, "MMULAB_BUILD_DIR": str(session_build)}
    built = run_doit(
        [f"initramfs:shell-busybox-{variant}", f"kernel:{variant}"], {"MMULAB_BUILD_DIR": str(session_build)}
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*DOIT, f"shell:{variant}"], stdin=terminal, stdout=terminal, stderr=terminal, env=env, start_new_session=True
    )
    os.close(terminal)
    seen: list[str] = []
    try:
        read_until(controller, r"'exit' powers off", 60, seen)
        read_until(controller, r"[#$] $", 30, seen)
        os.write(controller, b"echo answer-$((6 * 7)) from $(uname -m)\r")
        read_until(controller, r"answer-42 from riscv64", 30, seen)
        os.write(controller, b"exit\r")
        read_until(controller, r"reboot: Power down", 30, seen)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
    assert "Kernel panic" not in "".join(seen)
