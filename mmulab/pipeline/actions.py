"""What each doit task does: thin glue from a task to its stage module (module-level functions, so
`doit -n N` can pickle them). A UserError becomes a one-line doit failure; a ConfigError an error (exit 2).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from doit.exceptions import TaskError, TaskFailed

from mmulab.boot import qemu
from mmulab.boot.qemu import stdin_is_terminal
from mmulab.boot.symbolize import Resolver, SymbolTable
from mmulab.build import busybox, ccache, distcc, download, initramfs, kernel, kernelconfig, toolchain
from mmulab.build import extract as build_extract
from mmulab.build import fetch as build_fetch
from mmulab.core.errors import ConfigError, UserError
from mmulab.core.fsutil import JsonRecord, sha256_of, tree_digest, write_atomic
from mmulab.core.paths import Layout, series_root
from mmulab.core.tools import RUNNER, Runner, require
from mmulab.kconfig.version import tree_version
from mmulab.project.model import BootCase, Project, with_cmdline


def user_errors(function: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a UserError into a doit failure carrying just its message (exit 1; exit 2 for a ConfigError)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = function(*args, **kwargs)
        except ConfigError as exc:
            return TaskError(str(exc))
        except UserError as exc:
            return TaskFailed(str(exc))
        return result if result is not None else True

    return wrapper


def layout_of(project: Project) -> Layout:
    return Layout(project.build_root(), project.settings.linux_src)


def kernel_tree(project: Project) -> Path:
    return layout_of(project).kernel_tree(project.toolchain.kernel.source)


@dataclass(frozen=True)
class CompileStage:
    """How a compiling stage runs its commands: `runner` carries the compile cache's (and the farm's)
    variables, `jobs` is make's -j (the farm's slots when it has servers, else MMULAB_JOBS)."""

    runner: Runner
    jobs: int


@contextlib.contextmanager
def compile_cache(project: Project, task: str, depend: bool = False, farm: bool = True) -> Iterator[CompileStage]:
    """A compiling stage's runner: its compilers through ccache (unless MMULAB_CCACHE=0 or ccache is missing)
    and, with MMULAB_DISTCC_HOSTS and `farm`, ccache's misses through distcc to the servers that pass the
    probe; afterwards one line with the stage's hits and misses (its stats log feeds the run's summary)."""
    layout = layout_of(project)
    statslog = layout.ccache_stats(task)
    statslog.unlink(missing_ok=True)  # without ccache this run, the last run's counts must not be shown
    layout.farm_stats(task).unlink(missing_ok=True)  # likewise the farm's
    compiler = toolchain.compiler(project.toolchain)
    cache = ccache.from_settings(project.settings, compiler)
    environment = cache.environment(statslog, depend)
    jobs = project.settings.jobs
    servers = distcc.Farm(project.settings.distcc_hosts, compiler, layout.farm_state(), cache.bin_dir)
    farmed = farm and bool(servers.hosts) and servers.ready(bool(environment))
    if farmed and (hosts := servers.usable()) and any(not h.local for h in hosts):
        environment = {**environment, **servers.environment(layout.farm_log(task), hosts)}
        jobs = servers.jobs(hosts, jobs)
    try:
        yield CompileStage(RUNNER.with_env(environment), jobs)
    finally:
        stats = ccache.read_stats(statslog) if environment else None
        if stats is not None:
            print(f"{task}: compile cache: {stats.line()}")
        if "CCACHE_PREFIX" in environment:
            farm_stats = servers.report(task, layout.farm_log(task), layout.farm_stats(task))
            if farm_stats is not None:
                print(f"{task}: build farm: {farm_stats.line()}")


@dataclass(frozen=True)
class Sysroot(JsonRecord):
    """The C library installed for the programs: which one, where, and a digest of its whole content."""

    libc: str
    sysroot: str
    digest: str


@user_errors
def fetch(project: Project, name: str) -> None:
    fetched = build_fetch.fetch(project, name)
    fetched.write(layout_of(project).fetched(name))
    print(f"{name}: {fetched.version} from {fetched.origin} (sha256 {fetched.sha256[:16]}...)")


@user_errors
def extract(project: Project, name: str) -> None:
    layout = layout_of(project)
    fetched = download.Fetched.read(layout.fetched(name))
    patches = project.source(name).patches
    require("patch") if patches else None
    tree = layout.tree(name)
    build_extract.extract(Path(fetched.path), tree, patches=patches, absolute_links=project.source(name).absolute_links)
    record = build_extract.Extracted(
        str(tree), fetched.sha256, fetched.version, tuple((p.name, sha256_of(p)) for p in patches)
    )
    record.write(layout.extracted(name))


@user_errors
def configure_kernel(project: Project, variant: str) -> None:
    tree = kernel_tree(project)
    if not (tree / "Makefile").is_file():
        raise UserError(f"{tree}: not a kernel source tree (no Makefile); check LINUX_SRC")
    info = project.variants[variant]
    # A broken template is told before any tool runs.
    fragment = kernelconfig.render_fragment(info, project.toolchain, tree_version(tree))
    for tool in ("make", "flex", "bison", toolchain.compiler(project.toolchain)):
        require(tool)
    layout = layout_of(project)
    work = layout.kernel_dir(variant)
    write_atomic(work / "fragment.config", fragment)
    with compile_cache(project, f"kconfig:{variant}", farm=False) as stage:  # host tools and cc-option probes
        final = kernelconfig.configure(
            tree,
            work / "obj",
            info,
            project.toolchain,
            fragment,
            work / "config.log",
            runner=stage.runner,
            user_tree=project.settings.linux_src is not None,
            dropped_record=layout.dropped_options(variant),
        )
    write_atomic(work / "config", final)


@user_errors
def build_kernel(project: Project, variant: str) -> None:
    settings = project.settings
    for tool in ("make", "bc", toolchain.compiler(project.toolchain)):
        require(tool)
    work = layout_of(project).kernel_dir(variant)
    with compile_cache(project, f"kernel:{variant}", depend=True) as stage:
        print(f"kernel {variant}: make -j{stage.jobs} {project.toolchain.kernel.image} (log: {work / 'build.log'})")
        request = kernel.KernelBuild(
            label=variant,
            source=kernel_tree(project),
            config=work / "config",
            work=work,
            toolchain=project.toolchain,
            jobs=stage.jobs,
            source_date_epoch=settings.source_date_epoch,
            progress=settings.progress,
            user_tree=settings.linux_src is not None,
        )
        kernel.build(request, stage.runner)


@user_errors
def build_libc(project: Project, name: str) -> None:
    layout = layout_of(project)
    libc = project.toolchain.libcs[name]
    work = layout.libc_dir()
    require("make")
    print(f"libc {name}: kernel headers + {libc.source} into {layout.sysroot()} (log: {work / 'build.log'})")
    with compile_cache(project, f"libc:{name}", depend=True) as stage:
        request = toolchain.LibcBuild(
            libc,
            project.toolchain,
            layout.tree(libc.source),
            kernel_tree(project),
            work,
            layout.sysroot(),
            stage.jobs,
            project.settings.progress,
            user_tree=project.settings.linux_src is not None,
        )
        toolchain.build_libc(request, stage.runner)
    Sysroot(name, str(layout.sysroot()), tree_digest(layout.sysroot())).write(layout.sysroot_record())


@user_errors
def build_program(project: Project, name: str) -> None:
    layout = layout_of(project)
    output = layout.program(name)
    program = project.programs[name]
    with compile_cache(project, f"program:{name}") as stage:
        toolchain.build_program(
            program,
            project.toolchain,
            output,
            output.with_suffix(".log"),
            layout.sysroot(),
            toolchain.source_roots(project.settings),
            stage.runner,
        )


@user_errors
def build_busybox(project: Project, key: str) -> None:
    """busybox:<key>: the one build every variant of that flavour takes."""
    layout = layout_of(project)
    spec = project.toolchain.busybox
    assert spec is not None
    require("make")
    shared = busybox.shared_builds(project.variants)[key]
    work = layout.busybox_dir(key)
    print(f"busybox {shared.label}: configure and build (log: {work / 'make.log'})")
    with compile_cache(project, f"busybox:{key}", depend=True) as stage:
        request = busybox.BusyboxBuild(
            spec,
            shared.flavour,
            shared.label,
            project.toolchain,
            layout.tree(spec.source),
            layout.sysroot(),
            work,
            stage.jobs,
            project.settings.source_date_epoch,
            project.settings.progress,
        )
        busybox.build(request, stage.runner)


@user_errors
def pack_initramfs(project: Project, variant: str, build: str) -> None:
    layout = layout_of(project)
    entries = initramfs.image_entries(project, layout, variant, build)
    initramfs.write(entries, layout.image(variant, build), project.settings.source_date_epoch)


def boot_files(project: Project, case: BootCase) -> qemu.BootFiles:
    layout = layout_of(project)
    return qemu.BootFiles(
        layout.kernel_output(case.variant, project.toolchain.kernel.image),
        layout.image(case.variant, case.build),
        layout.console_log(case.name),
        layout.trap_log(case.name),
    )


def boot_command(project: Project, case: BootCase, interactive: bool) -> list[str]:
    files = boot_files(project, case)
    return qemu.case_command(project.toolchain, project.variants[case.variant], case, files, interactive)


def resolver(project: Project, case: BootCase) -> Resolver:
    """What a case's faults resolve against: its kernel's System.map and the programs in its image, by the
    file name the kernel prints (init, addrspace-child, busybox)."""
    layout = layout_of(project)
    build = project.builds[case.build]
    programs = {PurePosixPath(path).name: layout.program(program) for path, program in build.helpers}
    if build.init:
        programs["init"] = layout.program(build.init)
    if build.busybox and project.toolchain.busybox is not None:
        programs[PurePosixPath(project.toolchain.busybox.path).name] = busybox.output(
            layout, project.variants[case.variant]
        )
    symbols = SymbolTable.load(layout.kernel_output(case.variant, "System.map"))
    return Resolver(symbols, programs, toolchain.source_roots(project.settings))


@user_errors
def smoke(project: Project, case_name: str) -> None:
    layout = layout_of(project)
    case = project.boots[case_name]
    require(project.toolchain.qemu)
    variant = project.variants[case.variant]
    verdict = qemu.boot_case(project.toolchain, variant, case, boot_files(project, case), resolver(project, case))
    verdict.write(layout.verdict(case_name))
    if not verdict.passed:
        raise UserError(verdict.summary())
    print(verdict.summary())


@user_errors
def publish(project: Project, release: str = "", allow_dirty: bool = False, sign: str = "") -> None:
    """`doit publish`: the name from --release, else MMULAB_RELEASE, else the default; dirty with either flag;
    signed with the key of --sign, else of MMULAB_SIGNING_KEY, else unsigned."""
    from mmulab.release.publish import publish as publish_release

    settings = project.settings
    key = Path(sign).expanduser() if sign else settings.signing_key
    publish_release(project, release or settings.release, allow_dirty or settings.allow_dirty, sign=key)


@user_errors
def repro(project: Project) -> None:
    """`doit repro`: two cold builds compared file by file; any difference fails the task, each named."""
    from mmulab.release import repro as reproducibility

    root = layout_of(project).root / "repro"
    differences = reproducibility.run(project, root)
    for difference in differences:
        print(f"repro: differs: {difference.path} ({difference.first[:16]} vs {difference.second[:16]})")
        if difference.detail:
            print(difference.detail)
    if differences:
        raise UserError(f"repro: {len(differences)} file(s) differ between the two builds; report: {root}/report.json")
    print(f"repro: every release file is bit-identical between the two builds (report: {root}/report.json)")


@user_errors
def catalog(project: Project, source: str = "") -> None:
    """`doit catalog`: docs/demos.md from configs/demos.toml (unchanged content leaves the file alone); with
    `--from <build dir>`, first each case's example chart docs/charts/<case>.svg from that run's consoles.
    Without it the committed charts stay as they are."""
    from mmulab.project import catalog as demo_catalog

    if source:
        catalog_charts(project, Path(source).expanduser())
    write_atomic(demo_catalog.CATALOG, demo_catalog.render(project))
    print(f"catalog: {demo_catalog.CATALOG} ({len(project.demos)} demos, {len(project.boots)} boot cases)")


def catalog_charts(project: Project, root: Path) -> list[Path]:
    """Draw the example chart of every case of a demo that declares charts, from the consoles of the run in
    `root`; the files written. A case whose console is missing or prints no data line keeps its committed one."""
    from mmulab.boot.charts import draw_case
    from mmulab.project import catalog as demo_catalog

    build_dir = root.resolve()
    # A build directory holds one folder per kernel series: the consoles of this project's series (a series'
    # folder itself is taken as it is).
    layout = Layout(series_root(build_dir, project.series))
    if not (layout.root / "boots").is_dir() and (build_dir / "boots").is_dir():
        layout = Layout(build_dir)
    if not (layout.root / "boots").is_dir():
        raise UserError(f"--from {root}: no boot consoles in {layout.root / 'boots'} (run doit all there)")
    written, missing, empty = [], [], []
    for demo in project.demos.values():
        for case_name in demo.cases if demo.charts else ():
            console = layout.console_log(case_name)
            if not console.is_file():
                missing.append(case_name)
                continue
            case = project.boots[case_name]
            svg = draw_case(case_name, case.variant, console.read_text(errors="replace"), demo.charts)
            if svg is None:
                empty.append(case_name)
                continue
            target = demo_catalog.CHARTS / demo_catalog.chart_case(case_name)
            write_atomic(target, svg)
            written.append(target)
    print(f"catalog: {len(written)} chart(s) drawn from {layout.root} into {demo_catalog.CHARTS}")
    for label, cases in (("no console", missing), ("no data line", empty)):
        if cases:
            print(f"catalog: {label} (committed chart kept): {', '.join(cases)}")
    return written


def needs_terminal(scripted: str) -> ConfigError:
    """An interactive boot without a terminal on stdin: QEMU passes no end of input on to the guest, so a shell
    fed from a pipe or /dev/null would wait forever, and a console never ends. Refused, never started."""
    return ConfigError(
        "needs a terminal on stdin (stdin is not one, and QEMU never passes end-of-input on to the guest: "
        f"the boot would wait forever); for a scripted check use doit {scripted}"
    )


@user_errors
def console(project: Project, case_name: str, append: str = "", scripted: str = "") -> None:
    """An interactive boot on the user's terminal (dodo.py refuses a run without one before anything builds;
    this guard covers any other way in)."""
    if not stdin_is_terminal():
        raise needs_terminal(scripted or f"smoke:{case_name}")
    require(project.toolchain.qemu)
    command = boot_command(project, with_cmdline(project, project.boots[case_name], append), True)
    print("mmulab: interactive boot; leave QEMU with Ctrl-A X\n$ " + " ".join(command), flush=True)
    code = qemu.run_interactive(command)
    if code != 0:
        raise UserError(f"QEMU exited with code {code}")


@user_errors
def buildroot_ext(project: Project) -> None:
    """`doit buildroot-ext`: make buildroot_ext/ exactly what configs/ generate; say what changed."""
    from mmulab.buildroot import generate as tree

    changes = tree.write(tree.generate(project))
    for change in changes:
        print(f"buildroot-ext: {change}")
    print(f"buildroot-ext: {tree.TREE} {'updated' if changes else 'already up to date'}")
