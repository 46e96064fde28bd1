"""The compile cache: ccache in front of every C compiler the build stages run (kernels, musl, busybox,
programs), with a local directory every checkout of the machine shares and, optionally, a remote store
(a Redis server, or any ccache remote_storage URL) that a class or a CI fleet shares.

Output bytes never depend on it: ccache hands back exactly what the compiler wrote, and the builds name no
absolute path. The compilers are reached through ccache's masquerade (a folder of links named like them,
first on PATH), so no command line changes: kbuild rebuilds nothing when the cache is switched on or off,
and no stage's cache key mentions it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import multiprocessing
import os
import shlex
import shutil
import socket
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mmulab.core.fsutil import write_atomic
from mmulab.core.settings import PROJECT_ROOT, Settings

HOST_COMPILERS = ("gcc", "cc")  # kbuild's and busybox's HOSTCC: their host tools compile through it too
# ccache waits 10 s for a Redis that accepts but never answers, on every compile: ask for less when the URL
# does not say (a LAN round trip takes milliseconds).
REDIS_DEFAULTS = ("connect-timeout=500", "operation-timeout=3000")
PROBE_SECONDS = 1.0
REMOTE_SCHEMES = ("redis", "redis+unix", "http", "https")


@dataclass(frozen=True)
class CacheStats:
    """What ccache did for one stage's compiles, from its stats log (one entry per compiler call)."""

    calls: int = 0
    hits: int = 0
    remote_hits: int = 0
    misses: int = 0

    @property
    def uncacheable(self) -> int:
        """Links, preprocessor-only and configure probes: ccache runs the compiler and stores nothing."""
        return self.calls - self.hits - self.misses

    def line(self) -> str:
        return f"{self.hits} hits ({self.remote_hits} remote), {self.misses} misses, {self.uncacheable} not cacheable"

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "uncacheable": self.uncacheable}


def parse_statslog(text: str) -> CacheStats:
    """ccache's stats log: a `# <source>` line per call, then one line per counter it raised."""
    counts = Counter(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return CacheStats(
        calls=sum(line.startswith("# ") for line in text.splitlines()),
        hits=counts["direct_cache_hit"] + counts["preprocessed_cache_hit"],
        remote_hits=counts["remote_storage_hit"],
        misses=counts["cache_miss"],
    )


def read_stats(statslog: Path) -> CacheStats | None:
    """The stats of the stage that wrote `statslog`; None when it compiled nothing through ccache."""
    try:
        return parse_statslog(statslog.read_text(errors="replace"))
    except OSError:
        return None


def with_remote_defaults(url: str) -> str:
    """A Redis URL gets short timeouts unless it names its own; other URLs pass through unchanged."""
    if urlsplit(url.split("|", 1)[0]).scheme not in ("redis", "redis+unix"):
        return url
    given = {part.split("=", 1)[0] for part in url.split("|")[1:]}
    return "|".join([url, *(d for d in REDIS_DEFAULTS if d.split("=", 1)[0] not in given)])


def _connect(url: str, timeout: float) -> socket.socket:
    parts = urlsplit(url.split("|", 1)[0])
    if parts.scheme == "redis+unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(parts.path)
        return sock
    default_port = {"redis": 6379, "http": 80, "https": 443}[parts.scheme]
    return socket.create_connection((parts.hostname or "localhost", parts.port or default_port), timeout=timeout)


@functools.cache
def probe(url: str, timeout: float = PROBE_SECONDS) -> str:
    """Why the remote store of `url` cannot be used now ("" when it can). A Redis server must answer PING
    (an error reply such as NOAUTH counts as an answer); an HTTP one must accept a connection; a file:
    store is ccache's to judge. Bounded by `timeout`: a server that hangs must not hang the build."""
    scheme = urlsplit(url.split("|", 1)[0]).scheme
    if scheme not in REMOTE_SCHEMES:
        return ""
    try:
        with contextlib.closing(_connect(url, timeout)) as sock:
            if scheme in ("redis", "redis+unix"):
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
                if reply[:1] not in (b"+", b"-"):
                    return "no Redis reply to PING" if reply else "connection closed without a reply"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except (OSError, ValueError) as exc:
        return getattr(exc, "strerror", None) or str(exc)
    return ""


def run_id() -> int:
    """The doit run's process: the same in each of `doit -n N`'s workers."""
    return os.getppid() if multiprocessing.parent_process() is not None else os.getpid()


def warn_once(marker: Path, message: str) -> None:
    """Print `message` on stderr once per doit run: the marker file holds the run that last printed it, read
    and rewritten under an exclusive flock (`doit -n 2`'s workers ask at the same moment)."""
    run = str(run_id())
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        with open(marker, "a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            if handle.read() == run:
                return
            handle.seek(0)
            handle.truncate()
            handle.write(run)
            handle.flush()
    except OSError:
        pass  # an unwritable cache folder: warn on every stage rather than never
    sys.stderr.write(f"mmulab: warning: {message}\n")
    sys.stderr.flush()


@dataclass(frozen=True)
class CompileCache:
    """Where the cache lives and how the stages reach it; `enabled` False (MMULAB_CCACHE=0) adds nothing.

    `compilers` are the cross compilers (links to ccache), `host_compilers` the build machine's (kbuild's and
    busybox's HOSTCC: small scripts that run ccache on the real one, never in depend mode)."""

    enabled: bool
    directory: Path
    base_dir: Path
    bin_dir: Path
    compilers: tuple[str, ...]
    remote: str = ""
    host_compilers: tuple[str, ...] = ()

    def ccache(self) -> str:
        """ccache's path when the cache is on and ccache is installed, else ""."""
        return (shutil.which("ccache") or "") if self.enabled else ""

    def environment(self, statslog: Path, depend: bool = False) -> dict[str, str]:
        """The variables a stage's commands run with: its compilers through ccache, its counts into
        `statslog` (one file per stage, so stages running side by side under `doit -n 2` do not mix).

        `depend`: ccache's depend mode, for a stage whose every cross compile writes a complete dependency
        list (the kernel: -nostdinc and -Wp,-MMD; busybox: -Wp,-MD; musl: -MD). A miss then costs no extra
        preprocessor run (the default mode's costs a kernel build about 40 % more compiler time)."""
        ccache = self.ccache()
        if not ccache:
            return {}
        path = os.pathsep.join(
            p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if p != str(self.bin_dir)
        )
        self._links(ccache, path)
        statslog.parent.mkdir(parents=True, exist_ok=True)  # the caller removed the last run's log
        remote = ""
        if self.remote:
            problem = probe(self.remote)
            if problem:
                warn_once(
                    self.directory / "mmulab-remote-warned",
                    f"compile cache: remote storage {self.remote.split('|', 1)[0]} unreachable ({problem}); "
                    "building with the local cache only",
                )
            else:
                remote = with_remote_defaults(self.remote)
        env = {
            "PATH": os.pathsep.join([str(self.bin_dir), path]),
            "CCACHE_DIR": str(self.directory),
            # Absolute paths under base_dir are hashed relative to the compile's directory: a second checkout
            # at another path gets the first one's hits. No hash of the directory itself: no build records it.
            "CCACHE_BASEDIR": str(self.base_dir),
            "CCACHE_NOHASHDIR": "1",
            # A header's hash is kept for the next compile that reads it (a kernel file reads ~200 headers).
            "CCACHE_INODECACHE": "1",
            "CCACHE_STATSLOG": str(statslog),
            "CCACHE_REMOTE_STORAGE": remote,
        }
        if depend:
            env["CCACHE_DEPEND"] = "1"
        return env

    def _links(self, ccache: str, path: str) -> None:
        """The masquerade folder: each cross compiler's name a link to ccache (which then runs the next one of
        that name on PATH); each host compiler's a script running ccache on the real one, without depend mode
        (gcc -MMD leaves the system headers out of the dependency list: a new libc6-dev would go unseen) and never
        through the build farm's distcc (CCACHE_PREFIX): host tools are built for this machine."""
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        for name in self.compilers:
            link = self.bin_dir / name
            with contextlib.suppress(OSError):
                if os.readlink(link) == ccache:
                    continue
            temporary = self.bin_dir / f".{name}.{os.getpid()}.tmp"
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(ccache)
            os.replace(temporary, link)
        for name in self.host_compilers:
            real = shutil.which(name, path=path)
            if real is None:
                continue
            script = (
                f'#!/bin/sh\nunset CCACHE_DEPEND CCACHE_PREFIX\nexec {shlex.quote(ccache)} {shlex.quote(real)} "$@"\n'
            )
            target = self.bin_dir / name
            if target.is_symlink():
                target.unlink()
            write_atomic(target, script, 0o755)


def base_dir_for(build_dir: Path, checkout: Path) -> Path:
    """The checkout when the build directory lies inside it, else the build directory: every compile runs in a
    folder under it (the programs' own folders, the kernel's, musl's and busybox's object directories), and
    no compile command names an absolute path of its own under it (programs reach their sources and the
    sysroot through links, kbuild and musl name their trees relatively), so ccache's rewriting under base_dir
    has nothing to change and its hits are the same wherever a build directory lies."""
    # Never a wider common ancestor (/tmp for a checkout and a build directory both under it): ccache then
    # rewrites paths the prefix maps do not name (a kernel tree elsewhere, the sysroot) and the bytes change.
    return checkout if build_dir.resolve().is_relative_to(checkout.resolve()) else build_dir


def from_settings(settings: Settings, cross_compiler: str) -> CompileCache:
    return CompileCache(
        enabled=settings.ccache,
        directory=settings.ccache_dir,
        base_dir=base_dir_for(settings.build_dir, PROJECT_ROOT),
        bin_dir=settings.build_dir / ".ccache-bin",
        compilers=(cross_compiler,),
        remote=settings.ccache_remote,
        host_compilers=HOST_COMPILERS,
    )
