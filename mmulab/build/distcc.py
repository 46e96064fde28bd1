"""The build farm: the cross compiles of the kernels, musl, busybox and the programs fanned out over distcc
servers (MMULAB_DISTCC_HOSTS), behind the compile cache (ccache's prefix_command), never changing a byte.

distcc's classic trap is a server whose compiler differs and silently produces other code. Before a stage uses
the servers, each one compiles a small known file that the local compiler compiles too; a server whose object
bytes differ, or that does not answer, is dropped with one warning line naming it (once per run: the verdicts
are kept for the run in the build directory). A server that dies, refuses or hangs in the middle of a build
costs the compiles it had: distcc compiles them locally (DISTCC_FALLBACK) and leaves the server alone for the
rest of the run (DISTCC_BACKOFF_PERIOD); one warning line per run says so. The stage keys never mention the
farm: whichever machines compiled, the objects are the local compiler's bytes.

The compiler is sent by name (the prefix script strips the path ccache resolved), so each server runs its own
`riscv64-linux-gnu-gcc` from its PATH, as distcc's whitelist (/usr/lib/distcc) expects.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from mmulab.build.ccache import run_id, warn_once
from mmulab.core.farmhosts import FarmHost, FarmHosts
from mmulab.core.fsutil import write_atomic

# distcc waits this long on one network read or write of a build compile before it calls the server stuck and
# compiles that file locally: longer than the slowest single kernel file takes on a busy server, far shorter
# than distcc's own 300 s.
IO_TIMEOUT = 60
PROBE_IO_TIMEOUT = 5  # the probe compiles a few lines: a server that needs longer is not worth its slots
PROBE_SECONDS = 20  # the whole probe of one server, connect and both directions (distcc connects within 4 s)
BACKOFF_SECONDS = 3600  # a server that failed once is left alone for the rest of the run
PROBE_FLAGS = ("-O2", "-g", "-c")
# Loops, a switch and a static table: -O0, another -O level or another compiler release each give other bytes.
PROBE_SOURCE = """\
static const int table[8] = {3, 1, 4, 1, 5, 9, 2, 6};
int mmulab_probe(int n)
{
    int sum = 0;
    for (int i = 0; i < n; i++) {
        switch (i & 3) {
        case 0: sum += table[i & 7] * i; break;
        case 1: sum ^= sum << 3; break;
        case 2: sum -= i / 3; break;
        default: sum += 17;
        }
    }
    return sum;
}
"""
# ccache's prefix_command. A compile with debug info (-g...) runs the compiler itself, locally: distcc
# preprocesses locally (-E), and the expanded text moves the tokens after a macro, so the columns DWARF records
# would differ from a direct compile's (found by tests/test_distcc.py on a demo program; the kernels, musl and
# busybox build without -g). -MD/-MMD without -MF: gcc names the dependency file after -o, but distcc's local
# preprocessor run (-E, no -o) would name it after the source, and ccache's depend mode (musl's -MD) would find
# none; an explicit -MF and -MQ give the file and the target gcc itself would have written.
PREFIX_SCRIPT = """\
#!/bin/sh
compiler=$1
shift
dep= mf= out= previous= debug=
for arg do
    [ "$previous" = -o ] && out=$arg
    case $arg in -MD | -MMD) dep=1 ;; -MF*) mf=1 ;; -g0) ;; -g*) debug=1 ;; esac
    previous=$arg
done
PATH=${{PATH#{masquerade}}}
[ -n "$debug" ] && exec "$compiler" "$@"
if [ -n "$dep" ] && [ -z "$mf" ] && [ -n "$out" ]; then
    set -- "$@" -MF "${{out%.*}}.d" -MQ "$out"
fi
exec {distcc} "${{compiler##*/}}" "$@"
"""
_COMPLETED = re.compile(r"^distcc\[\d+\] compile (?!\(null\) )\S+ on (\S+) completed ok$")
_ERROR = re.compile(r"^distcc\[\d+\] (?:\(\w+\) )?ERROR: (.*)$")
_GAVE_UP = "failed to distribute"  # distcc's "Warning: failed to distribute, running locally instead"
# No server's fault: the probe's own, a --version call, a compile that failed here too.
_QUIET = re.compile(r"fallbacks are disabled|compile \(null\) | on localhost failed")
_REFUSED = "failed, retrying locally"  # "remote compilation of 'x.c' failed, retrying locally": a compile error


@dataclass(frozen=True)
class Verdict:
    """What the probe found for one server this run: usable, or why not."""

    host: str
    run: int
    problem: str = ""

    @property
    def usable(self) -> bool:
        return not self.problem


@dataclass(frozen=True)
class FarmStats:
    """One stage's compiles through distcc: how many ran on a server, how many locally, and of those how many
    fell back after a server failed (from distcc's log, one 'completed ok' line per compile)."""

    remote: int = 0
    local: int = 0
    fallbacks: int = 0
    problem: str = ""  # the first server error distcc logged, for the warning line

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)

    def line(self) -> str:
        return f"{self.remote} compiles on servers, {self.local} local ({self.fallbacks} fell back)"


def parse_log(text: str) -> FarmStats:
    """distcc's client log (DISTCC_LOG, info level): 'compile X on HOST completed ok' per compile. A compile
    the server's compiler refused (a configure probe's deliberate error) is retried locally by distcc too, but
    that is no server fault: only the other local runs count as fallbacks, and only their errors name one."""
    lines = text.splitlines()
    refused = {_pid(line) for line in lines if _REFUSED in line}
    ran: Counter[str] = Counter()
    fallbacks = 0
    problem = ""
    for line in lines:
        if match := _COMPLETED.match(line):
            ran["local" if match[1] == "localhost" else "remote"] += 1
        elif _pid(line) in refused:
            continue
        elif _GAVE_UP in line:
            fallbacks += 1
        elif (error := _ERROR.match(line)) and not problem and not _QUIET.search(line):
            problem = error[1]
    return FarmStats(ran["remote"], ran["local"], fallbacks, problem)


def _pid(line: str) -> str:
    return line.split("]", 1)[0]


def elf_sections(data: bytes) -> dict[str, bytes]:
    """The named sections of a 64-bit little-endian ELF object (a riscv64 .o); {} when it is not one."""
    if len(data) < 64 or data[:6] != b"\x7fELF\x02\x01":
        return {}
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = []
    for index in range(shnum):
        name, _, _, _, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + index * shentsize)
        headers.append((name, offset, size))
    names = data[headers[shstrndx][1] : headers[shstrndx][1] + headers[shstrndx][2]]
    sections = {}
    for name, offset, size in headers[1:]:
        label = names[name : names.index(b"\0", name)].decode(errors="replace")
        sections[label] = data[offset : offset + size]
    return sections


def difference(local: bytes, remote: bytes) -> str:
    """What differs between the local compiler's probe object and a server's, in a few words."""
    ours, theirs = elf_sections(local), elf_sections(remote)
    if not theirs:
        return "its object is not an ELF64 object file"
    comment_ours, comment_theirs = (
        s.get(".comment", b"").strip(b"\0").decode(errors="replace") for s in (ours, theirs)
    )
    if comment_ours != comment_theirs:
        return f"its compiler is {comment_theirs or 'unnamed'!r}, ours {comment_ours or 'unnamed'!r}"
    # Code and data first: the debug sections differ whenever they do.
    differing = sorted(
        (name for name in ours.keys() | theirs.keys() if ours.get(name) != theirs.get(name)),
        key=lambda name: (name.startswith((".debug", ".rela.debug")), name),
    )
    shown = ", ".join(differing[:4]) + (f" and {len(differing) - 4} more" if len(differing) > 4 else "")
    return f"same compiler version, other code: sections {shown or '(layout)'} differ"


@dataclass(frozen=True)
class Farm:
    """The servers of MMULAB_DISTCC_HOSTS for one build directory: `state` keeps the run's probe verdicts,
    distcc's lock and backoff files and the prefix script; `compiler` is the cross compiler's name."""

    hosts: FarmHosts
    compiler: str
    state: Path
    masquerade: Path  # the compile cache's folder of compiler links, first on the stages' PATH

    def distcc(self) -> str:
        return shutil.which("distcc") or ""

    def ready(self, cached: bool) -> bool:
        """Whether this machine can use the farm: distcc installed, and the compile cache on (distcc runs as
        its prefix_command). Otherwise one warning line per run, and the stage builds locally."""
        problem = ""
        if not cached:
            problem = "it runs behind the compile cache, which is off (MMULAB_CCACHE=0, or ccache is not installed)"
        elif not self.distcc():
            problem = "distcc is not installed (Debian package distcc)"
        if problem:
            warn_once(self.state / "warned-not-ready", f"build farm: not used: {problem}; building locally")
        return not problem

    def usable(self) -> tuple[FarmHost, ...]:
        """The hosts this run may use: localhost entries, and servers whose probe object is the local
        compiler's bytes. Probed once per run and server (concurrent stages wait for the first one's verdicts);
        each dropped server is one warning line, or one line in all when none is left."""
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.state / "probe.lock", "a+", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            run = run_id()
            verdicts = self._read_verdicts(run)
            servers = [h for h in self.hosts.hosts if not h.local]
            unprobed = [h for h in servers if h.token not in verdicts]
            if unprobed:
                if not verdicts:  # a new run: last run's backoffs must not keep a server that answers now away
                    shutil.rmtree(self.client_dir() / "lock", ignore_errors=True)
                fresh = self._probe_all(unprobed, run)
                verdicts.update(fresh)
                write_atomic(self.state / "probes.json", json.dumps({k: asdict(v) for k, v in verdicts.items()}))
                self._warn(servers, fresh, verdicts)
            return tuple(h for h in self.hosts.hosts if h.local or verdicts[h.token].usable)

    def _read_verdicts(self, run: int) -> dict[str, Verdict]:
        try:
            stored = json.loads((self.state / "probes.json").read_text())
            verdicts = {token: Verdict(**fields) for token, fields in stored.items()}
        except (OSError, ValueError, TypeError):
            return {}
        return {token: v for token, v in verdicts.items() if v.run == run}

    def _warn(self, servers: list[FarmHost], fresh: dict[str, Verdict], verdicts: dict[str, Verdict]) -> None:
        dropped = [h for h in servers if not verdicts[h.token].usable]
        marker = self.state / "warned-none-left"
        if dropped and len(dropped) == len(servers) and not any(h.local for h in self.hosts.hosts):
            reasons = "; ".join(f"{h.name}: {verdicts[h.token].problem}" for h in dropped)
            warn_once(marker, f"build farm: no usable server ({reasons}); building locally")
            return
        for host in dropped:
            if host.token in fresh:
                warn_once(
                    self.state / f"warned-{_safe(host.token)}",
                    f"build farm: dropped {host.name}: {fresh[host.token].problem}",
                )

    def _probe_all(self, hosts: list[FarmHost], run: int) -> dict[str, Verdict]:
        with tempfile.TemporaryDirectory(prefix="probe-", dir=self.state) as scratch:
            folder = Path(scratch)
            (folder / "probe.c").write_text(PROBE_SOURCE)
            local = self._compile(folder, "local.o", {})
            if local.returncode != 0:
                problem = f"the local {self.compiler} cannot compile the probe: {local.stderr.strip()[-200:]}"
                return {h.token: Verdict(h.token, run, problem) for h in hosts}
            expected = (folder / "local.o").read_bytes()
            with ThreadPoolExecutor(max(1, len(hosts))) as pool:
                results = pool.map(lambda h: self._probe(folder, h, expected), hosts)
                return {h.token: Verdict(h.token, run, problem) for h, problem in zip(hosts, results, strict=True)}

    def _probe(self, folder: Path, host: FarmHost, expected: bytes) -> str:
        """Why `host` must not compile for this run ("" when its bytes are the local compiler's)."""
        distcc = self.distcc()
        name = _safe(host.token)
        log = folder / f"{name}.log"
        env = {
            "DISTCC_HOSTS": host.token,
            "DISTCC_FALLBACK": "0",  # a failure must show, not hide behind a local compile
            "DISTCC_IO_TIMEOUT": str(PROBE_IO_TIMEOUT),
            "DISTCC_DIR": str(folder / f"{name}.state"),
            "DISTCC_LOG": str(log),
            "DISTCC_SKIP_LOCAL_RETRY": "1",
        }
        (folder / f"{name}.state").mkdir()
        try:
            result = self._compile(folder, f"{name}.o", env, prefix=[distcc])
        except subprocess.TimeoutExpired:
            return f"no answer within {PROBE_SECONDS} s"
        if result.returncode != 0:
            with contextlib.suppress(OSError):
                if problem := parse_log(log.read_text(errors="replace")).problem:
                    return problem
            return f"distcc exit {result.returncode}: {result.stderr.strip()[-200:]}"
        got = (folder / f"{name}.o").read_bytes()
        return "" if got == expected else difference(expected, got)

    def _compile(
        self, folder: Path, output: str, env: dict[str, str], prefix: list[str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The probe file compiled by `prefix` (distcc, sending the compiler's bare name) or locally; an
        absolute source path and -g, as kbuild's objects have, so distcc's debug-info rewriting is probed too."""
        command = [*(prefix or []), self.compiler, *PROBE_FLAGS, str(folder / "probe.c"), "-o", output]
        return subprocess.run(
            command,
            cwd=folder,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=PROBE_SECONDS,
            check=False,
        )

    def client_dir(self) -> Path:
        return self.state / "client"

    def prefix_script(self) -> Path:
        """ccache's prefix_command: distcc with the compiler's bare name (ccache hands over the path it
        resolved; each server must find its own compiler, as distcc's whitelist expects), and without the
        compile cache's links on PATH, so that a compile distcc runs locally finds the real compiler, not
        ccache again (distcc's recursion guard would fail it with exit 111)."""
        script = self.state / "distcc-prefix"
        masquerade = shlex.quote(f"{self.masquerade}:")
        text = PREFIX_SCRIPT.format(masquerade=masquerade, distcc=shlex.quote(self.distcc()))
        with contextlib.suppress(OSError):
            if script.read_text() == text:
                return script
        write_atomic(script, text, 0o755)
        return script

    def environment(self, log: Path, hosts: tuple[FarmHost, ...]) -> dict[str, str]:
        """The variables that send a stage's compiles (ccache's misses) through distcc to `hosts`, its log
        into `log` (counted afterwards; it also keeps distcc's per-file warnings off the terminal)."""
        (self.client_dir()).mkdir(parents=True, exist_ok=True)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.unlink(missing_ok=True)
        return {
            "CCACHE_PREFIX": str(self.prefix_script()),
            "DISTCC_HOSTS": self.hosts.distcc_value(hosts),
            "DISTCC_DIR": str(self.client_dir()),
            "DISTCC_LOG": str(log),
            "DISTCC_IO_TIMEOUT": str(IO_TIMEOUT),
            "DISTCC_BACKOFF_PERIOD": str(BACKOFF_SECONDS),
            "DISTCC_FALLBACK": "1",
        }

    def report(self, task: str, log: Path, record: Path) -> FarmStats | None:
        """After a stage: its counts from distcc's log into `record` (the end-of-run table reads it) and one
        warning line per run when compiles fell back; the log keeps only its warnings and errors."""
        try:
            text = log.read_text(errors="replace")
        except OSError:
            return None
        stats = parse_log(text)
        kept = [line for line in text.splitlines() if "ERROR" in line or "Warning" in line]
        write_atomic(log, "".join(f"{line}\n" for line in kept))
        write_atomic(record, json.dumps(stats.to_dict()))
        if stats.fallbacks:
            warn_once(
                self.state / "warned-fallback",
                f"build farm: {stats.fallbacks} compiles of {task} fell back to local"
                f" ({stats.problem or 'a server failed'}); the failing server is left alone for this run",
            )
        return stats

    def jobs(self, hosts: tuple[FarmHost, ...], local_jobs: int) -> int:
        """make -j: every slot of the usable hosts (never fewer than the local jobs)."""
        return max(local_jobs, sum(h.limit for h in hosts))


def read_stats(record: Path) -> FarmStats | None:
    try:
        fields = json.loads(record.read_text())
        return FarmStats(**fields)
    except (OSError, ValueError, TypeError):
        return None


def table(stats: dict[str, FarmStats]) -> str:
    """The end-of-run lines: per stage, compiles on servers and locally (and how many of those fell back)."""
    width = max(len("stage"), *(len(name) for name in stats))
    lines = [f"{'stage':<{width}}  {'remote':>7}  {'local':>7}  {'fell back':>9}"]
    for name, s in stats.items():
        lines.append(f"{name:<{width}}  {s.remote:>7}  {s.local:>7}  {s.fallbacks:>9}")
    return "build farm (distcc):\n" + "\n".join(lines)


def _comment(sections: dict[str, bytes]) -> str:
    """The compiler's own name and version, as it writes them into every object's .comment."""
    return sections.get(".comment", b"").strip(b"\0").replace(b"\0", b"; ").decode(errors="replace")


def _safe(token: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", token)
