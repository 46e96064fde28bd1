"""The compile cache: real ccache in front of the real cross compiler, a real redis-server as the shared store.

Bytes never change: what a warm cache gives is compared with a build without ccache. An unreachable or hung
Redis costs one warning line, never a failure or a hang."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import multiprocessing.synchronize
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from checkout_copy import copy_checkout, run_doit_in
from conftest import checkout_configs, default_root, make_project, run_doit, user_tree_root
from redis_server import RedisServer, ask

from mmulab.boot import summary
from mmulab.build import busybox, ccache
from mmulab.core.errors import EnvError
from mmulab.core.settings import PROJECT_ROOT, Settings

PROGRAMS = ["program:fork-asm", "program:clone_vm-asm"]  # no C library needed: seconds to build


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_statslog_counts() -> None:
    text = (
        "# a.c\ncache_miss\ndirect_cache_miss\nlocal_storage_write\n"
        "# b.c\ndirect_cache_hit\nremote_storage_hit\n# c.c\npreprocessed_cache_hit\n# x.o\ncalled_for_link\n"
    )
    stats = ccache.parse_statslog(text)
    assert (stats.calls, stats.hits, stats.remote_hits, stats.misses, stats.uncacheable) == (4, 2, 1, 1, 1)


def test_cache_table_per_stage_and_totals(tmp_path: Path) -> None:
    (tmp_path / "kernel-nommu.stats").write_text("# a.c\ndirect_cache_hit\nremote_storage_hit\n# b.c\ncache_miss\n")
    (tmp_path / "program-fork-c.stats").write_text("# c.c\ncache_miss\n# c.o\ncalled_for_link\n")
    stages = summary.cache_stats(tmp_path)
    assert list(stages) == ["kernel:nommu", "program:fork-c"]
    lines = summary.cache_table(stages).splitlines()
    assert lines[1].split() == ["stage", "hits", "remote", "misses", "not", "cacheable"]
    assert lines[2].split() == ["kernel:nommu", "1", "1", "1", "0"]
    assert lines[-1].split() == ["total", "1", "1", "2", "1"]
    data = json.loads(summary.write_cache(stages, tmp_path).read_text())
    assert data["program:fork-c"] == {"calls": 2, "hits": 0, "remote_hits": 0, "misses": 1, "uncacheable": 1}


def test_redis_urls_get_short_timeouts_unless_they_name_theirs() -> None:
    assert ccache.with_remote_defaults("redis://h:1") == "redis://h:1|connect-timeout=500|operation-timeout=3000"
    given = "redis://h:1|operation-timeout=100"
    assert ccache.with_remote_defaults(given) == given + "|connect-timeout=500"
    assert ccache.with_remote_defaults("http://h/c|layout=bazel") == "http://h/c|layout=bazel"
    assert ccache.with_remote_defaults("file:/srv/cache") == "file:/srv/cache"


def test_base_dir_is_the_checkout_or_an_outside_build_dir(tmp_path: Path) -> None:
    checkout = tmp_path / "mmulab"
    assert ccache.base_dir_for(checkout / "build", checkout) == checkout
    assert ccache.base_dir_for(Path("/var/tmp/b"), Path("/home/me/mmulab")) == Path("/var/tmp/b")
    # both under /tmp: still the build directory, never /tmp itself
    assert ccache.base_dir_for(Path("/tmp/pytest/b"), Path("/tmp/clone")) == Path("/tmp/pytest/b")


def test_settings() -> None:
    settings = Settings.from_environment({"XDG_CACHE_HOME": "/c"})
    assert (settings.ccache, settings.ccache_dir, settings.ccache_remote) == (True, Path("/c/mmulab/ccache"), "")
    remote = "redis://127.0.0.1:7000|connect-timeout=50 file:/srv/c"
    assert Settings.from_environment({"MMULAB_CCACHE_REMOTE": remote, "MMULAB_CCACHE": "0"}).ccache_remote == remote
    for bad in ({"MMULAB_CCACHE": "yes"}, {"MMULAB_CCACHE_REMOTE": "127.0.0.1:6379"}):
        with pytest.raises(EnvError, match=next(iter(bad))):
            Settings.from_environment(bad)


def test_probe_refused_and_hung_servers_are_told_quickly() -> None:
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(1)  # accepts (the kernel does) but never answers
        port = hung.getsockname()[1]
        # Told by probe's own deadline (bench/bench_timings.py measures how soon).
        assert ccache.probe(f"redis://127.0.0.1:{port}", 0.5) == "no answer within 0.5 s"
    assert ccache.probe(f"redis://127.0.0.1:{port}|connect-timeout=10")  # closed now: refused
    assert ccache.probe("file:/nonexistent") == ""  # ccache's to judge


def _warn_from_worker(marker: Path, log: Path, barrier: multiprocessing.synchronize.Barrier) -> None:
    with open(log, "a") as sys.stderr:
        barrier.wait()
        ccache.warn_once(marker, "remote unreachable")


def test_workers_of_one_run_warn_once_even_at_the_same_moment(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """doit -n N's workers probe together: exactly one of them prints; a later run prints again."""
    fork = multiprocessing.get_context("fork")
    for attempt in range(5):  # the race window is narrow: several rounds, each with a new marker
        marker, log = tmp_path / str(attempt) / "warned", tmp_path / f"stderr-{attempt}"
        barrier = fork.Barrier(8)
        workers = [fork.Process(target=_warn_from_worker, args=(marker, log, barrier)) for _ in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)
        assert [w.exitcode for w in workers] == [0] * 8
        assert log.read_text().splitlines() == ["mmulab: warning: remote unreachable"]
    ccache.warn_once(marker, "remote unreachable")  # the run itself (the workers' parent): already told
    assert capfd.readouterr().err == ""
    marker.write_text("1")  # an earlier run's mark
    ccache.warn_once(marker, "remote unreachable")
    assert capfd.readouterr().err == "mmulab: warning: remote unreachable\n"


@pytest.mark.needs("redis-server")
def test_probe_real_redis() -> None:
    with RedisServer() as url:
        assert ccache.probe(url) == ""


@pytest.mark.needs("ccache", "gcc")
def test_environment_masquerades_the_compilers(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    cache = ccache.CompileCache(
        True, tmp_path / "c", tmp_path, bin_dir, ("riscv64-linux-gnu-gcc",), host_compilers=("gcc",)
    )
    env = cache.environment(tmp_path / "stats" / "x.stats", depend=True)
    assert env["PATH"].split(os.pathsep)[0] == str(bin_dir)
    assert os.readlink(bin_dir / "riscv64-linux-gnu-gcc") == ccache.shutil.which("ccache")
    assert (env["CCACHE_DIR"], env["CCACHE_BASEDIR"], env["CCACHE_REMOTE_STORAGE"], env["CCACHE_DEPEND"]) == (
        str(tmp_path / "c"),
        str(tmp_path),
        "",
        "1",
    )
    assert "CCACHE_DEPEND" not in cache.environment(tmp_path / "stats" / "x.stats")
    assert ccache.CompileCache(False, tmp_path, tmp_path, tmp_path / "off", ("gcc",)).environment(tmp_path) == {}
    # Real host compiles through the masquerade, in a depend-mode stage: the host compiler's script leaves
    # depend mode (its -MMD lists no system header) and ccache hits the second time; counted in the stage's log.
    source = tmp_path / "t.c"
    source.write_text("#include <stdio.h>\nint f(void) { return BUFSIZ; }\n")
    for _ in range(2):
        command = ["gcc", "-MMD", "-c", "-o", tmp_path / "t.o", source]
        subprocess.run(command, env={**os.environ, **env}, check=True, cwd=tmp_path)
    stats = ccache.read_stats(tmp_path / "stats" / "x.stats")
    assert stats is not None and (stats.calls, stats.hits, stats.misses) == (2, 1, 1)
    log = (tmp_path / "stats" / "x.stats").read_text()
    assert "preprocessed_cache_miss" in log  # the default mode ran the preprocessor: not depend mode


@pytest.mark.needs("ccache", "riscv64-linux-gnu-gcc")
def test_programs_same_bytes_with_and_without_cache_and_a_hung_remote(tmp_path: Path, hung_port: int) -> None:
    """Off, then a cold cache, then warm (from another build directory): the same binaries. A Redis that
    never answers (doit -n 2, two stages at once): one warning line, the build goes on with local hits."""
    cache = str(tmp_path / "cache")
    built = {}
    runs = {
        "off": {"MMULAB_CCACHE": "0"},
        "cold": {"MMULAB_CCACHE_DIR": cache},
        "warm": {"MMULAB_CCACHE_DIR": cache, "MMULAB_CCACHE_REMOTE": f"redis://127.0.0.1:{hung_port}"},
    }
    for name, env in runs.items():
        build = tmp_path / name / "build"
        result = run_doit(["-n", "2", *PROGRAMS], {"MMULAB_BUILD_DIR": str(build), "MMULAB_PROGRESS": "off", **env})
        assert result.returncode == 0, result.stdout + result.stderr
        built[name] = {p: digest(default_root(build) / "programs" / p[8:] / p[8:]) for p in PROGRAMS}
        warnings = [line for line in result.stderr.splitlines() if "warning" in line]
        if name == "warm":
            assert len(warnings) == 1 and f"127.0.0.1:{hung_port} unreachable" in warnings[0], result.stderr
            # ccache was never pointed at it (each compile would wait for it): no remote counter in any stage
            stats = default_root(build) / "reports" / "ccache"
            logs = [(stats / f"{p.replace(':', '-')}.stats").read_text() for p in PROGRAMS]
            assert not any("remote_storage" in log for log in logs), logs
            assert "compile cache (ccache):" in result.stdout
            assert "0 misses" in result.stdout and "hits (0 remote)" in result.stdout
        else:
            assert warnings == []
        if name == "off":
            assert "compile cache" not in result.stdout
    assert built["off"] == built["cold"] == built["warm"]


@pytest.mark.slow
@pytest.mark.needs("ccache", "redis-server", "riscv64-linux-gnu-gcc")
def test_redis_shares_the_cache_between_build_dirs(tmp_path: Path, kernel_tree: Path) -> None:
    """A kernel, musl, busybox and a C program, built two ways: with ccache, a local cache of its own and Redis in a
    checkout's own build/ (every compile a miss); with an empty local cache and the
    same Redis in a build directory outside the checkout, on another filesystem (tmpfs) where there is one. Remote
    hits, and every file identical, naming none of those paths. (That a build without ccache gives the same bytes
    is test_programs_same_bytes_with_and_without_cache_and_a_hung_remote's: a third whole kernel build here would
    cost the suite minutes.)"""
    tasks = ["kernel:mmu", "program:fork-c", "busybox:mmu"]
    outputs = [
        "mmu/kernel/out/Image",
        "sysroot/lib/libc.a",
        "sysroot/lib/rcrt1.o",
        "programs/fork-c/fork-c",
        f"busybox/{busybox.Flavour.of(checkout_configs().variants['mmu']).key}/out/busybox",
    ]
    common = {"LINUX_SRC": str(kernel_tree), "MMULAB_PROGRESS": "off", "MMULAB_JOBS": "2"}
    tmpfs = Path("/dev/shm")
    outside_root = Path(tempfile.mkdtemp(dir=tmpfs)) if os.access(tmpfs, os.W_OK) else tmp_path / "outside"
    checkouts = {"first": tmp_path / "first" / "at" / "another" / "mmulab"}
    try:
        with RedisServer() as url:
            runs = {
                "first": {"MMULAB_CCACHE_DIR": str(tmp_path / "cache-first"), "MMULAB_CCACHE_REMOTE": url},
                "second": {
                    "MMULAB_CCACHE_DIR": str(tmp_path / "cache-second"),
                    "MMULAB_CCACHE_REMOTE": url,
                    "MMULAB_BUILD_DIR": str(outside_root / "build"),
                },
            }
            built, stdout, builds = {}, {}, {}
            for name, env in runs.items():
                if name in checkouts:
                    checkout = copy_checkout(checkouts[name])
                    result = run_doit_in(checkout, tasks, {**common, **env})
                    build = checkout / "build"
                else:
                    result = run_doit(tasks, {**common, **env})
                    build = Path(env["MMULAB_BUILD_DIR"])
                assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
                built[name] = {output: digest(user_tree_root(build) / output) for output in outputs}
                stdout[name], builds[name] = result.stdout, build
                stats = ccache.read_stats(user_tree_root(build) / "reports" / "ccache" / "kernel-mmu.stats")
                if name == "first":
                    assert stats is not None and stats.misses > 300 and stats.remote_hits == 0
                    assert int(ask(url, "DBSIZE")[1:]) > 300
                else:
                    assert stats is not None and stats.remote_hits > 300 and stats.misses < stats.hits / 20, stats
                    libc = ccache.read_stats(user_tree_root(build) / "reports" / "ccache" / "libc-musl.stats")
                    assert libc is not None and libc.remote_hits > 500, libc
            program = (user_tree_root(builds["second"]) / "programs" / "fork-c" / "fork-c").read_bytes()
    finally:
        shutil.rmtree(outside_root, ignore_errors=True)
    assert built["first"] == built["second"]
    assert b"/sysroot/include/bits" in program  # the C library's headers, prefix-mapped
    for path in [*checkouts.values(), outside_root, PROJECT_ROOT]:
        assert str(path).encode() not in program
    assert "warning" not in stdout["second"]


def test_switching_the_cache_changes_no_stage_key(tmp_path: Path) -> None:
    """Its outputs are the same bytes either way: turning ccache on or off, or pointing it elsewhere, reruns nothing."""
    from mmulab.pipeline import tasks

    keys = []
    for overrides in (
        {"ccache": True},
        {"ccache": False},
        {"ccache": True, "ccache_dir": tmp_path / "elsewhere", "ccache_remote": "redis://127.0.0.1:1"},
    ):
        project = make_project(tmp_path / "build", **overrides)
        keys.append(
            [
                tasks.kconfig_inputs(project, "nommu"),
                tasks.kernel_inputs(project, "nommu"),
                tasks.libc_inputs(project, "musl"),
                tasks.program_inputs(project, "fork-c"),
                tasks.busybox_inputs(project, "nommu"),
            ]
        )
    assert keys[0] == keys[1] == keys[2]
