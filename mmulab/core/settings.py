"""Where things live and what the user overrides: every environment variable is read and checked here only.

A bad value stops the run before any task with one line naming the variable and what it accepts (exit 2).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from mmulab.core import farmhosts
from mmulab.core.errors import EnvError
from mmulab.core.progress import ProgressMode

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FRAGMENT_PREFIX = "MMULAB_FRAGMENT_"
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")  # Debian package debian-archive-keyring
DEFAULT_APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
# A release name becomes a directory and a file name: a safe name, never "." or ".." (no leading dot).
RELEASE_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*")
RELEASE_NAME_ACCEPTS = "a name of letters, digits and . _ + - (not starting with .)"
# A kernel series' name (configs/kernels.toml, MMULAB_KERNEL): part of a folder name, build/linux-<series>/.
SERIES_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]*")
SERIES_NAME_ACCEPTS = "letters, digits and . _ + -"
_URL_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*:[^|]")  # scheme:rest, as ccache's remote_storage takes them

T = TypeVar("T")

# Characters a path must not hold, each with the reason, found by real builds (docs/environment.md, Paths).
# A path reaching make (the build directory, LINUX_SRC): O=, -C, srctree, musl's DESTDIR, the compilers' PATH.
_SHELL_UNQUOTED = "kbuild's shell commands do not quote it"
MAKE_BREAKS = {
    " ": "make splits paths at whitespace, and kbuild refuses such a source tree or O= directory",
    ":": "kbuild refuses a source tree holding it, musl's and busybox's make rules split at it, and it splits PATH",
    "%": "make takes it for a pattern in musl's install rules and in kbuild's srctree",
    "$": "make expands it, so the build would land in another directory",
    **{character: _SHELL_UNQUOTED for character in "'\"\\;()&|<>`"},
}


@dataclass(frozen=True)
class Settings:
    """The resolved locations and overrides for one run of the pipeline."""

    configs_dir: Path
    build_dir: Path
    download_dir: Path
    config_overlay: Path | None
    linux_src: Path | None
    mirrors: tuple[str, ...]
    apt_sources: tuple[Path, ...]
    jobs: int
    source_date_epoch: int
    fetch_retries: int = 2
    fetch_backoff: float = 1.0
    progress: ProgressMode = ProgressMode.AUTO
    dpkg_admindir: Path = Path("/var/lib/dpkg")
    user_fragments: dict[str, Path] = field(default_factory=dict)
    release: str = ""
    artifacts_dir: Path = PROJECT_ROOT / "artifacts"
    allow_dirty: bool = False
    signing_key: Path | None = None  # an Ed25519 private key (PEM) that signs what doit publish writes
    buildroot_src: Path | None = None
    ccache: bool = True
    ccache_dir: Path = Path.home() / ".cache" / "mmulab" / "ccache"
    ccache_remote: str = ""
    distcc_hosts: farmhosts.FarmHosts = field(default_factory=farmhosts.FarmHosts)  # MMULAB_DISTCC_HOSTS
    kernel_series: str = ""  # MMULAB_KERNEL: a series of configs/kernels.toml ("" for its default)
    # What `mmulab pins` checks signatures with: Debian's archive keyring, and kernel.org's autosigner key (none by
    # default: kernel.org's sums are then shown as unverified and never written).
    debian_keyring: Path = DEBIAN_KEYRING
    kernel_org_keyring: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "progress", ProgressMode(self.progress))  # a member, also when given a string

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check MMULAB_*, LINUX_SRC, BUILDROOT_SRC and SOURCE_DATE_EPOCH; raise EnvError on the first bad
        one."""
        env = _Environment(os.environ if environ is None else environ)
        cache_home = env.raw("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        settings = cls(
            configs_dir=env.path("MMULAB_CONFIGS", PROJECT_ROOT / "configs", must_exist=True),
            build_dir=env.path("MMULAB_BUILD_DIR", PROJECT_ROOT / "build"),
            download_dir=env.path("MMULAB_DL_DIR", Path(cache_home) / "mmulab" / "downloads"),
            config_overlay=env.path("MMULAB_CONFIG_OVERLAY", None, must_exist=True),
            linux_src=env.path("LINUX_SRC", None, must_exist=True),
            mirrors=env.urls("MMULAB_MIRRORS"),
            apt_sources=tuple(Path(p) for p in env.raw("MMULAB_APT_SOURCES").split(":") if p) or DEFAULT_APT_SOURCES,
            jobs=env.number("MMULAB_JOBS", int, os.cpu_count() or 1, minimum=1, accepts="a whole number >= 1"),
            source_date_epoch=env.number(
                "SOURCE_DATE_EPOCH", int, 0, minimum=0, accepts="seconds since 1970 (a whole number >= 0)"
            ),
            fetch_retries=env.number("MMULAB_FETCH_RETRIES", int, 2, minimum=0, accepts="a whole number >= 0"),
            fetch_backoff=env.number("MMULAB_FETCH_BACKOFF", float, 1.0, minimum=0, accepts="seconds >= 0"),
            progress=ProgressMode(env.choice("MMULAB_PROGRESS", tuple(ProgressMode), ProgressMode.AUTO)),
            dpkg_admindir=env.path("MMULAB_DPKG_ADMINDIR", Path("/var/lib/dpkg")),
            user_fragments=env.fragments(),
            release=env.matching("MMULAB_RELEASE", RELEASE_NAME, RELEASE_NAME_ACCEPTS),
            artifacts_dir=env.path("MMULAB_ARTIFACTS_DIR", PROJECT_ROOT / "artifacts"),
            allow_dirty=env.choice("MMULAB_ALLOW_DIRTY", ("0", "1"), "0") == "1",
            signing_key=env.file("MMULAB_SIGNING_KEY", "an Ed25519 private key file (PEM; mmulab keygen makes one)"),
            buildroot_src=env.path("BUILDROOT_SRC", None, must_exist=True),
            ccache=env.choice("MMULAB_CCACHE", ("0", "1"), "1") == "1",
            ccache_dir=env.path("MMULAB_CCACHE_DIR", Path(cache_home) / "mmulab" / "ccache"),
            ccache_remote=env.remote_storage("MMULAB_CCACHE_REMOTE"),
            distcc_hosts=env.distcc_hosts("MMULAB_DISTCC_HOSTS"),
            kernel_series=env.matching("MMULAB_KERNEL", SERIES_NAME, f"a kernel series name ({SERIES_NAME_ACCEPTS})"),
            debian_keyring=env.file("MMULAB_DEBIAN_KEYRING", "an OpenPGP keyring file (gpgv --keyring)")
            or DEBIAN_KEYRING,
            kernel_org_keyring=env.file("MMULAB_KERNELORG_KEYRING", "an OpenPGP keyring file (gpgv --keyring)"),
        )
        settings.check_paths(env)
        return settings

    def check_paths(self, env: _Environment) -> None:
        """Refuse, before any build, a path that make cannot handle: one line naming the path, the character and
        why (exit 2). The real path counts (symlinks resolved): that is what the tools see. The checkout, the
        configs and an overlay may lie anywhere: no make or compile command names them (programs reach their
        sources through links in their own folder); download and compile cache folders are read by Python and
        ccache only."""
        if self.linux_src:
            env.check_path("LINUX_SRC", self.linux_src, MAKE_BREAKS)
        env.check_path("MMULAB_BUILD_DIR", self.build_dir, MAKE_BREAKS)


def unsafe_character(path: Path, breaks: Mapping[str, str]) -> str:
    """'a space (why)' for the first character of `path` in `breaks` (any whitespace counts as a space), else ""."""
    for character in str(path):
        key = " " if character.isspace() else character
        if key in breaks:
            shown = {" ": "a space", "\t": "a tab", "\n": "a newline"}.get(character, repr(character))
            return f"{shown}: {breaks[key]}"
    return ""


def breaks_accepts(breaks: Mapping[str, str]) -> str:
    listed = " ".join(sorted(c for c in breaks if c != " "))
    return f"a path without whitespace or {listed}"


class _Environment:
    """Typed, checked reads of environment variables: each failure names the variable and what it accepts."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def raw(self, name: str) -> str:
        return self.environ.get(name, "").strip()

    def path(self, name: str, default: T, must_exist: bool = False) -> Path | T:
        value = self.raw(name)
        if not value:
            return default
        path = Path(value).expanduser().resolve()
        if must_exist and not path.is_dir():
            raise EnvError(variable=name, value=value, problem="no such directory", accepts="an existing directory")
        if path.exists() and not path.is_dir():
            raise EnvError(variable=name, value=value, problem="not a directory", accepts="a directory path")
        return path

    def file(self, name: str, accepts: str) -> Path | None:
        """An existing file (what is in it is its reader's to check), or None when unset."""
        value = self.raw(name)
        if not value:
            return None
        path = Path(value).expanduser().resolve()
        if not path.is_file():
            problem = "not a file" if path.exists() else "no such file"
            raise EnvError(variable=name, value=value, problem=problem, accepts=accepts)
        return path

    def check_path(self, name: str, path: Path, breaks: Mapping[str, str]) -> None:
        """`path` (the variable's value, or its default when unset) must hold none of `breaks`."""
        problem = unsafe_character(path, breaks)
        if not problem:
            return
        value = self.raw(name)
        shown = value if value else f"{path} (the default)"
        if value and Path(value).expanduser().absolute() != path:
            shown = f"{value} (really {path})"
        raise EnvError(variable=name, value=shown, problem=f"holds {problem}", accepts=breaks_accepts(breaks))

    def number(self, name: str, kind: Callable[[str], T], default: T, minimum: float, accepts: str) -> T:
        value = self.raw(name)
        if not value:
            return default
        try:
            number = kind(value)
        except ValueError:
            raise EnvError(variable=name, value=value, problem="not a number", accepts=accepts) from None
        if isinstance(number, float) and not math.isfinite(number):  # nan passes every comparison, inf waits forever
            raise EnvError(variable=name, value=value, problem="not a finite number", accepts=accepts)
        if number < minimum:  # type: ignore[operator]
            raise EnvError(variable=name, value=value, problem="out of range", accepts=accepts)
        return number

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.raw(name) or default
        if value not in choices:
            raise EnvError(variable=name, value=value, problem="unknown value", accepts=" or ".join(choices))
        return value

    def matching(self, name: str, pattern: re.Pattern[str], accepts: str) -> str:
        value = self.raw(name)
        if value and not pattern.fullmatch(value):
            raise EnvError(variable=name, value=value, problem="not a safe name", accepts=accepts)
        return value

    def urls(self, name: str) -> tuple[str, ...]:
        urls = tuple(u for u in self.raw(name).replace(",", " ").split() if u)
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise EnvError(
                    variable=name, value=url, problem="not an http(s) URL", accepts="space-separated http(s) URLs"
                )
        return urls

    def remote_storage(self, name: str) -> str:
        """ccache remote_storage: space-separated URLs (redis://host:port, http://..., file:/dir), each may
        carry |attribute=value parts; passed to ccache as they are."""
        value = self.raw(name)
        for url in value.split():
            if not _URL_SCHEME.match(url):
                raise EnvError(
                    variable=name,
                    value=url,
                    problem="not a URL",
                    accepts="ccache remote storage URLs such as redis://HOST:PORT, http://HOST/PATH or file:/DIR",
                )
        return value

    def distcc_hosts(self, name: str) -> farmhosts.FarmHosts:
        """distcc's host list (HOST/LIMIT, HOST:PORT/LIMIT, localhost/N...): a token distcc would reject, or
        that mmulab does not support, is told here rather than as a build that quietly stays local."""
        try:
            return farmhosts.parse(self.raw(name))
        except farmhosts.HostSyntaxError as exc:
            raise EnvError(variable=name, value=exc.token, problem=exc.problem, accepts=farmhosts.ACCEPTS) from None

    def fragments(self) -> dict[str, Path]:
        fragments = {}
        for key, value in sorted(self.environ.items()):
            if key.startswith(FRAGMENT_PREFIX) and value.strip():
                path = Path(value.strip()).expanduser().resolve()
                if not path.is_file():
                    raise EnvError(
                        variable=key, value=value, problem="no such file", accepts="a kernel config fragment file"
                    )
                fragments[key.removeprefix(FRAGMENT_PREFIX).lower()] = path
        return fragments
