"""The build farm (MMULAB_DISTCC_HOSTS): real distccd servers on loopback addresses (tests/distcc_server.py),
the version-skew probe, the faults (a server killed mid-build, refused, hung) and the bytes, which never change."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import clean_environment, default_root, make_project, run_doit
from distcc_server import DistccServer

from mmulab.build import ccache, distcc, toolchain
from mmulab.core import farmhosts
from mmulab.core.doitcli import doit_argv
from mmulab.core.errors import EnvError
from mmulab.core.paths import Layout
from mmulab.core.settings import Settings
from mmulab.pipeline import actions

ASM_PROGRAMS = ["program:fork-asm", "program:clone_vm-asm"]  # no C library: seconds to build
CROSS = "riscv64-linux-gnu-gcc"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "warning" in line]


def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when this returns: nothing listens there


# -- MMULAB_DISTCC_HOSTS -----------------------------------------------------------------------------------------


def test_hosts_in_distccs_own_syntax() -> None:
    hosts = farmhosts.parse("--randomize 10.0.0.5/8 build2:4000/16,lzo build3/6:4001 localhost/2 plain")
    assert [(h.host, h.port, h.limit, h.local) for h in hosts.hosts] == [
        ("10.0.0.5", 3632, 8, False),
        ("build2", 4000, 16, False),
        ("build3", 4001, 6, False),
        ("localhost", 3632, 2, True),
        ("plain", 3632, 4, False),
    ]
    assert hosts.distcc_value(hosts.hosts[:2]) == "--randomize 10.0.0.5/8 build2:4000/16,lzo"
    assert not farmhosts.parse("  ")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("build1/0", "a limit of 0 slots"),
        ("build1:99999/4", "port out of range"),
        ("build1:4000/4:4001", "names two ports"),
        ("build1/4,cpp,lzo", "pump mode (,cpp) is not supported"),
        ("build1/4,gzip", "unknown host option 'gzip'"),
        ("user@build1/4", "ssh and zeroconf hosts are not supported"),
        ("+zeroconf", "ssh and zeroconf hosts are not supported"),
        ("build1/four", "not a distcc host"),
        ("--localslots=0 build1", "not a distcc global option"),
        ("--randomize", "names no host"),
    ],
)
def test_bad_distcc_hosts_is_one_line_naming_the_variable(value: str, problem: str) -> None:
    with pytest.raises(EnvError) as caught:
        Settings.from_environment({"MMULAB_DISTCC_HOSTS": value})
    message = str(caught.value)
    assert message.startswith("MMULAB_DISTCC_HOSTS=") and problem in message and "\n" not in message, message
    assert "HOST:PORT/LIMIT" in message  # and what it accepts


def test_bad_distcc_hosts_stops_doit_before_any_task(tmp_path: Path) -> None:
    result = run_doit(ASM_PROGRAMS, {"MMULAB_BUILD_DIR": str(tmp_path / "b"), "MMULAB_DISTCC_HOSTS": "build1/0"})
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "MMULAB_DISTCC_HOSTS='build1/0': a limit of 0 slots" in lines[0], result.stderr
    assert not (tmp_path / "b" / "programs").exists()


def test_setup_derives_the_servers_network_from_its_own_address() -> None:
    """./setup.sh --distcc-server's --allow: the network of the machine's own address, never a fixed one."""
    import ipaddress

    shown = subprocess.run(
        ["bash", "-c", "source ./setup.sh && own_network"],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
    )
    routes = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"], capture_output=True, text=True)
    if not routes.stdout.strip():
        assert shown.returncode != 0 and shown.stdout == ""
        return
    network, address = shown.stdout.split()
    first = ipaddress.ip_interface(routes.stdout.split()[3])
    assert ipaddress.ip_network(network) == first.network and ipaddress.ip_address(address) == first.ip
    assert ipaddress.ip_address(address) in ipaddress.ip_network(network)


# -- unset: nothing changes; set: no stage key changes ------------------------------------------------------------


@pytest.mark.needs("ccache")
def test_unset_farm_changes_nothing_the_runner_sees(tmp_path: Path) -> None:
    """Without MMULAB_DISTCC_HOSTS every compiling stage's runner has exactly the compile cache's variables and
    make -j stays MMULAB_JOBS: the same command lines and environment as before the farm existed."""
    project = make_project(tmp_path / "build", jobs=3)
    layout = Layout(project.build_root())
    for task, depend in (("kernel:nommu", True), ("libc:musl", True), ("program:fork-c", False)):
        cache = ccache.from_settings(project.settings, toolchain.compiler(project.toolchain))
        expected = cache.environment(layout.ccache_stats(task), depend)
        with actions.compile_cache(project, task, depend) as stage:
            assert dict(stage.runner.env) == expected and stage.jobs == 3
        assert not any(k.startswith("DISTCC_") or k == "CCACHE_PREFIX" for k in stage.runner.env)
    assert not layout.farm_state().exists() and not layout.farm_stats_dir().exists()


def test_switching_the_farm_changes_no_stage_key(tmp_path: Path) -> None:
    """Its objects are the local compiler's bytes: the farm on, off or elsewhere reruns nothing."""
    from mmulab.pipeline import tasks

    keys = []
    for hosts in ("", "127.0.0.2/2 127.0.0.3/2", "build9:4000/64"):
        project = make_project(tmp_path / "build", distcc_hosts=farmhosts.parse(hosts))
        keys.append(
            [
                tasks.kernel_inputs(project, "nommu"),
                tasks.libc_inputs(project, "musl"),
                tasks.program_inputs(project, "fork-c"),
                tasks.busybox_inputs(project, "nommu"),
            ]
        )
    assert keys[0] == keys[1] == keys[2]


# -- distcc's log and the probe's comparison ----------------------------------------------------------------------


def test_log_counts_remote_local_and_fallbacks_not_compile_errors() -> None:
    log = "\n".join(
        [
            "distcc[1] compile a.c on 127.0.0.2:3632/2 completed ok",
            "distcc[2] compile b.c on 127.0.0.3/4 completed ok",
            "distcc[3] cpp c.c on localhost completed ok",  # the local preprocessor: not a compile
            "distcc[3] ERROR: nonblocking connect to 127.0.0.9:3632 failed: Connection refused",
            "distcc[3] (dcc_build_somewhere) Warning: failed to distribute, running locally instead",
            "distcc[3] compile c.c on localhost completed ok",
            "distcc[4] compile (null) on localhost completed ok",  # riscv64-linux-gnu-gcc --version
            # musl's configure probing a flag the compiler refuses: an error there and here, no server fault
            "distcc[5] ERROR: compile ./conf1-2-1.c on 127.0.0.2:3632/2 failed",
            "distcc[5] (dcc_build_somewhere) Warning: remote compilation of './conf1-2-1.c' failed, retrying locally",
            "distcc[5] Warning: failed to distribute ./conf1-2-1.c to 127.0.0.2:3632/2, running locally instead",
            "distcc[5] ERROR: compile ./conf1-2-1.c on localhost failed",
        ]
    )
    stats = distcc.parse_log(log)
    assert (stats.remote, stats.local, stats.fallbacks) == (2, 1, 1)
    assert stats.problem == "nonblocking connect to 127.0.0.9:3632 failed: Connection refused"


@pytest.mark.needs(CROSS)
def test_difference_names_the_sections_or_the_compiler(tmp_path: Path) -> None:
    (tmp_path / "p.c").write_text(distcc.PROBE_SOURCE)
    objects = {}
    for level in ("-O2", "-O0"):
        subprocess.run([CROSS, level, "-g", "-c", "p.c", "-o", f"{level}.o"], cwd=tmp_path, check=True)
        objects[level] = (tmp_path / f"{level}.o").read_bytes()
    said = distcc.difference(objects["-O2"], objects["-O0"])
    assert said.startswith("same compiler version, other code: sections .rela.text") or ".text" in said, said
    renamed = objects["-O0"].replace(b"GCC: (Debian", b"GCC: (Skewed")
    assert "its compiler is 'GCC: (Skewed" in distcc.difference(objects["-O2"], renamed)
    assert distcc.difference(objects["-O2"], b"garbage") == "its object is not an ELF64 object file"


# -- real servers: the probe ---------------------------------------------------------------------------------------


@pytest.mark.needs("distccd", CROSS)
def test_skewed_server_is_dropped_by_name(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A server whose compiler appends -O0 answers the probe with other code: dropped, one warning naming it and
    the sections that differ; the honest one stays. Asked again in the same run: no second probe, no line."""
    with DistccServer("127.0.0.2") as honest, DistccServer("127.0.0.3", skewed=True) as skewed:
        hosts = farmhosts.parse(f"{honest.token} {skewed.token}")
        farm = distcc.Farm(hosts, CROSS, tmp_path / "state", tmp_path / "bin")
        assert farm.usable() == hosts.hosts[:1]
        lines = warnings_of(capfd.readouterr().err)
        assert len(lines) == 1, lines
        assert f"build farm: dropped {skewed.name}: same compiler version, other code: sections .rela.text" in lines[0]
        assert honest.compiled() == skewed.compiled() == 1  # each compiled the probe once
        assert farm.usable() == hosts.hosts[:1]
        assert warnings_of(capfd.readouterr().err) == [] and honest.compiled() == skewed.compiled() == 1


@pytest.mark.needs("distcc", "ccache", CROSS)
def test_no_server_reachable_builds_locally_with_one_line(tmp_path: Path, hung_port: int) -> None:
    """Two refused servers and one that accepts but never answers, two stages at once (doit -n 2): one warning
    line for the run, naming each, and the programs are the local build's bytes."""
    hosts = f"127.0.0.1:{refused_port()}/4 127.0.0.1:{hung_port}/4 127.0.0.1:{refused_port()}/4"
    built = {}
    for name, env in {"local": {}, "farm": {"MMULAB_DISTCC_HOSTS": hosts}}.items():
        build = tmp_path / name
        result = run_doit(["-n", "2", *ASM_PROGRAMS], {"MMULAB_BUILD_DIR": str(build), **env})
        assert result.returncode == 0, result.stdout + result.stderr
        built[name] = {p: digest(default_root(build) / "programs" / p[8:] / p[8:]) for p in ASM_PROGRAMS}
        lines = warnings_of(result.stderr)
        if name == "farm":
            assert len(lines) == 1, result.stderr
            assert "build farm: no usable server (" in lines[0] and lines[0].endswith("; building locally")
            assert lines[0].count("Connection refused") == 2
            assert f"127.0.0.1:{hung_port}: " in lines[0] and "build farm (distcc)" not in result.stdout
        else:
            assert lines == []
    assert built["local"] == built["farm"]


@pytest.mark.needs("distccd", "ccache", "gcc", CROSS)
def test_host_compilers_never_go_through_distcc(tmp_path: Path) -> None:
    """With the farm on, a stage's cross compile reaches the server, its HOSTCC (kbuild's host tools) does not:
    the host compiler's script drops ccache's prefix_command. make -j becomes the slots."""
    with DistccServer("127.0.0.2", slots=3) as server:
        project = make_project(tmp_path / "build", jobs=1, distcc_hosts=farmhosts.parse(server.token))
        with actions.compile_cache(project, "kernel:nommu", depend=True) as stage:
            env = {**os.environ, **stage.runner.env}
            assert stage.jobs == 3 and env["CCACHE_PREFIX"].endswith("distcc-prefix")
            (tmp_path / "t.c").write_text("int host_tool(int x) { return x * 3; }\n")
            after_probe = server.compiled()
            subprocess.run(["gcc", "-c", "t.c", "-o", "host.o"], cwd=tmp_path, env=env, check=True)
            assert server.compiled() == after_probe == 1
            subprocess.run([CROSS, "-MD", "-c", "t.c", "-o", "cross.o"], cwd=tmp_path, env=env, check=True)
            give_up = time.monotonic() + 30  # distccd logs the job after answering: polled, a bound, not a measure
            while server.compiled() < 2 and time.monotonic() < give_up:
                time.sleep(0.05)
            assert server.compiled() == 2
            assert (tmp_path / "cross.d").read_text().startswith("cross.o: t.c")  # musl's -MD, through distcc
        stats = distcc.read_stats(Layout(default_root(tmp_path / "build")).farm_stats("kernel:nommu"))
        assert stats is not None and (stats.remote, stats.fallbacks) == (1, 0), stats


@pytest.mark.needs("distccd", "ccache", CROSS)
def test_macro_columns_in_debug_info_never_differ_through_the_farm(tmp_path: Path) -> None:
    """distcc's local -E moves the tokens after a macro's expansion: compiled remotely with -g, DWARF's column
    numbers differed from a direct compile's (a demo program's bytes changed). A -g compile stays local; the
    same file without -g goes to the server, and both are the local compiler's bytes."""
    source = tmp_path / "m.c"
    source.write_text("#define TWICE(x) ((x) + (x))\nint f(int a) { return TWICE(a) * TWICE(a + 1) + a; }\n")
    with DistccServer("127.0.0.2") as server:
        project = make_project(tmp_path / "build", distcc_hosts=farmhosts.parse(server.token))
        with actions.compile_cache(project, "program:fork-c") as stage:
            env = {**os.environ, **stage.runner.env, "PWD": str(tmp_path)}
            for flags, compiles in ((["-g", "-O2"], 1), (["-O2"], 2)):
                objects = []
                for name, environment in (("local", {**os.environ, "PWD": str(tmp_path)}), ("farm", env)):
                    command = [CROSS, *flags, "-c", "m.c", "-o", f"{name}{len(flags)}.o"]
                    subprocess.run(command, cwd=tmp_path, env=environment, check=True)
                    objects.append((tmp_path / f"{name}{len(flags)}.o").read_bytes())
                assert objects[0] == objects[1], flags
                assert server.compiled() == compiles, (flags, server.compiled())  # 1: the probe


@pytest.mark.needs("ccache")
def test_farm_without_the_compile_cache_warns_once_and_builds_locally(tmp_path: Path) -> None:
    result = run_doit(
        ["-n", "2", *ASM_PROGRAMS],
        {"MMULAB_BUILD_DIR": str(tmp_path / "b"), "MMULAB_CCACHE": "0", "MMULAB_DISTCC_HOSTS": "127.0.0.2/2"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = warnings_of(result.stderr)
    assert len(lines) == 1 and "build farm: not used: it runs behind the compile cache, which is off" in lines[0]


# -- real servers: whole builds -----------------------------------------------------------------------------------


def build_outputs(build: Path) -> dict[str, str]:
    paths = ("sysroot/lib/libc.a", "programs/fork-c/fork-c")
    root = default_root(build)
    return {path: digest(root / path) for path in paths if (root / path).exists()}


@pytest.mark.slow
@pytest.mark.needs("distccd", "ccache", CROSS)
def test_kernel_libc_and_program_identical_through_the_farm_though_a_server_dies(
    tmp_path: Path, session_build: Path
) -> None:
    """The NOMMU kernel, libc.a and a C program: built locally (the session's build directory, where the other slow
    tests build them too), then in another build directory through two loopback servers with an empty cache so
    every compile runs, one server killed (SIGKILL, its children too) once it has compiled 100 files: the build
    finishes with the same bytes, both servers' logs show compiles, the run's table counts them, make -j follows
    the slots (2 x 3), and at most one line says compiles fell back. (One farm build proves both the farm's bytes
    and its faults: a second whole build would cost the suite minutes; the fast tests above cover a healthy farm's
    silence and the probe.)"""
    tasks = ["kernel:nommu", "program:fork-c"]
    common = {"MMULAB_PROGRESS": "off", "MMULAB_JOBS": "2"}
    reference = run_doit(tasks, {**common, "MMULAB_BUILD_DIR": str(session_build)})
    assert reference.returncode == 0, reference.stdout[-3000:] + reference.stderr[-3000:]
    build = tmp_path / "farm"
    with DistccServer("127.0.0.2", slots=3) as survivor, DistccServer("127.0.0.3", slots=3) as victim:
        env = {
            **clean_environment(),
            **common,
            "MMULAB_BUILD_DIR": str(build),
            "MMULAB_CCACHE_DIR": str(tmp_path / "empty-cache"),  # every compile must really run
            "MMULAB_DISTCC_HOSTS": f"{survivor.token} {victim.token}",
        }
        started = time.monotonic()
        process = subprocess.Popen(doit_argv(tasks), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            while victim.compiled() < 100 and process.poll() is None:
                time.sleep(0.2)
            assert process.poll() is None, "the build ended before the victim compiled 100 files"
            victim.kill()
            stdout, stderr = process.communicate(timeout=3600)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        print(f"farm build: {time.monotonic() - started:.0f} s")  # for the lead's notes, never asserted
        assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
        assert survivor.compiled() > 300 and victim.compiled() >= 100, (survivor.compiled(), victim.compiled())
    lines = warnings_of(stderr)
    assert len(lines) <= 1 and all("fell back to local" in line for line in lines), stderr
    assert "kernel nommu: make -j6 Image" in stdout
    image = "nommu/kernel/out/Image"
    assert digest(default_root(build) / image) == digest(default_root(session_build) / image)
    assert build_outputs(build) == build_outputs(session_build) and len(build_outputs(build)) == 2
    kernel = distcc.read_stats(Layout(default_root(build)).farm_stats("kernel:nommu"))
    musl = distcc.read_stats(Layout(default_root(build)).farm_stats("libc:musl"))
    assert kernel is not None and musl is not None and kernel.remote + musl.remote > 1000, (kernel, musl)
    assert "build farm (distcc):" in stdout and "kernel:nommu" in stdout.split("build farm")[-1]
    # distcc's own lock files stay in the build directory
    assert os.listdir(Layout(default_root(build)).farm_state() / "client")
