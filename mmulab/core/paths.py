"""Where every stage's outputs live under the build directory: one place, so tasks, actions and tests agree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

USER_TREE_FOLDER = "linux-src"


def series_root(build_dir: Path, series: str, user_tree: bool = False) -> Path:
    """Where one kernel series' outputs live in the build directory: `linux-<series>/`, or `linux-src/` for a user's
    own tree (LINUX_SRC). Everything built depends on the kernel tree (the kernels, and through its headers musl,
    busybox and every program), so a series' folder holds all of it, its doit database and its lock: two series
    never share a build product, and switching back to one rebuilds nothing."""
    return build_dir / (USER_TREE_FOLDER if user_tree else f"linux-{series}")


def matrix_reports(build_dir: Path) -> Path:
    """The version matrix's reports (every series at once): beside the series' folders."""
    return build_dir / "reports"


@dataclass(frozen=True)
class Layout:
    """Paths of every stage's outputs under `root`: one kernel series' folder of the build directory
    (`series_root`)."""

    root: Path
    linux_src: Path | None = None

    @classmethod
    def of_series(cls, build_dir: Path, series: str, linux_src: Path | None = None) -> Layout:
        return cls(series_root(build_dir, series, linux_src is not None), linux_src)

    def fetched(self, source: str) -> Path:
        return self.root / "sources" / f"{source}.fetched.json"

    def extracted(self, source: str) -> Path:
        return self.root / "sources" / f"{source}.extracted.json"

    def tree(self, source: str) -> Path:
        return self.root / "src" / source

    def kernel_tree(self, source: str) -> Path:
        """The kernel source tree: the user's own (LINUX_SRC) or the pipeline's extracted one."""
        return self.linux_src or self.tree(source)

    def kernel_dir(self, variant: str) -> Path:
        return self.root / variant / "kernel"

    def dropped_options(self, variant: str) -> Path:
        """The requested options the variant's last kernel config run lost in olddefconfig, with the tree's reasons
        (JSON; absent when none were)."""
        return self.kernel_dir(variant) / "dropped-options.json"

    def failed_tasks(self) -> Path:
        """Each task the last doit run saw fail, with its message (JSON): what `doit matrix` reads of a series."""
        return self.reports() / "failed-tasks.json"

    def kernel_output(self, variant: str, name: str) -> Path:
        return self.kernel_dir(variant) / "out" / name

    def program(self, name: str) -> Path:
        return self.root / "programs" / name / name

    def libc_dir(self) -> Path:
        return self.root / "libc"

    def sysroot(self) -> Path:
        return self.root / "sysroot"

    def sysroot_record(self) -> Path:
        return self.root / "sources" / "sysroot.json"

    def busybox_dir(self, key: str) -> Path:
        """One busybox build, named by its key (build.busybox.Flavour.key), not by a variant: every variant of
        that flavour takes its binary (build.busybox.output finds a variant's)."""
        return self.root / "busybox" / key

    def busybox_output(self, key: str, name: str = "busybox") -> Path:
        return self.busybox_dir(key) / "out" / name

    def image(self, variant: str, build: str) -> Path:
        return self.root / variant / "initramfs" / f"{build}.cpio"

    def verdict(self, case: str) -> Path:
        return self.root / "boots" / f"{case}.json"

    def console_log(self, case: str) -> Path:
        return self.root / "boots" / f"{case}.log"

    def trap_log(self, case: str) -> Path:
        """QEMU's log of every trap the CPU took (-d int), for the cases that watch traps."""
        return self.root / "boots" / f"{case}.traps"

    def reports(self) -> Path:
        """The run's reports: the boot summary, the compile cache's counts."""
        return self.root / "reports"

    def bisect_dir(self) -> Path:
        """`mmulab bisect`'s own folder: its clone of LINUX_SRC, its state file, each step's log and consoles."""
        return self.root / "bisect"

    def bisect_state(self) -> Path:
        return self.bisect_dir() / "state.json"

    def ccache_stats_dir(self) -> Path:
        return self.reports() / "ccache"

    def ccache_stats(self, task: str) -> Path:
        """The compile cache's counts for the last run of `task` (kernel:nommu...): ccache's stats log."""
        return self.ccache_stats_dir() / f"{task.replace(':', '-')}.stats"

    def farm_stats_dir(self) -> Path:
        return self.reports() / "distcc"

    def farm_stats(self, task: str) -> Path:
        """The build farm's counts for the last run of `task`: remote and local compiles (JSON)."""
        return self.farm_stats_dir() / f"{task.replace(':', '-')}.json"

    def farm_log(self, task: str) -> Path:
        """distcc's client log of `task`'s last run (its warnings and errors once the stage ends)."""
        return self.farm_stats_dir() / f"{task.replace(':', '-')}.log"

    def farm_state(self) -> Path:
        """The build farm's run state: probe verdicts, distcc's lock and backoff files, the prefix script."""
        return self.root / ".distcc"

    def tool_versions(self) -> Path:
        return self.root / ".tool-versions.json"

    def lock(self) -> Path:
        return self.root / ".lock"

    def doit_db(self) -> Path:
        return self.root / ".doit.db"
