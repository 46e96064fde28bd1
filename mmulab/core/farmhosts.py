"""MMULAB_DISTCC_HOSTS: the build farm's servers in distcc's own host syntax, checked before any task runs so a
typo is one line naming the variable, not a build that silently compiles everything locally."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PORT = 3632
DEFAULT_LIMIT = 4  # distcc's own default slots for a TCP host
DEFAULT_LOCAL_LIMIT = 2  # and for localhost
ACCEPTS = (
    "space-separated distcc hosts: HOST, HOST/LIMIT, HOST:PORT/LIMIT (optionally ,lzo), localhost/N, "
    "--randomize, --localslots=N, --localslots_cpp=N"
)
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
# distcc's TCP_HOST (HOST[:PORT][/LIMIT]) and its OLDSTYLE_TCP_HOST (HOST[/LIMIT][:PORT]), then ,OPTIONS.
_TCP = re.compile(rf"(?P<host>{_NAME})(?::(?P<port>\d+))?(?:/(?P<limit>\d+))?(?::(?P<oldport>\d+))?(?:,(?P<opts>.*))?")
_LOCAL = re.compile(r"localhost(?:/(?P<limit>\d+))?")
_GLOBAL = re.compile(r"--randomize|--localslots(?:_cpp)?=[1-9]\d*")


class HostSyntaxError(ValueError):
    """One token of the host list that distcc (or mmulab's use of it) cannot take, and why."""

    def __init__(self, token: str, problem: str) -> None:
        super().__init__(problem)
        self.token = token
        self.problem = problem


@dataclass(frozen=True)
class FarmHost:
    """One server (or localhost) of the list: `token` is passed to distcc as written."""

    token: str
    host: str
    port: int = DEFAULT_PORT
    limit: int = DEFAULT_LIMIT

    @property
    def local(self) -> bool:
        return self.host == "localhost"

    @property
    def name(self) -> str:
        """How messages name it: host, with the port when it is not distcc's."""
        return self.host if self.port == DEFAULT_PORT else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class FarmHosts:
    """The parsed list: the hosts in order and distcc's global options (--randomize...) kept as given."""

    hosts: tuple[FarmHost, ...] = ()
    options: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.hosts)

    def distcc_value(self, hosts: tuple[FarmHost, ...]) -> str:
        """DISTCC_HOSTS for `hosts` (a subset of this list, the servers that passed the probe)."""
        return " ".join([*self.options, *(h.token for h in hosts)])


def parse(text: str) -> FarmHosts:
    """The hosts of `text`; HostSyntaxError on the first token distcc would not take, or that mmulab does not
    support (ssh and zeroconf hosts, pump mode)."""
    hosts: list[FarmHost] = []
    options: list[str] = []
    for token in text.split():
        if token.startswith("-"):
            if not _GLOBAL.fullmatch(token):
                raise HostSyntaxError(token, "not a distcc global option")
            options.append(token)
            continue
        hosts.append(_host(token))
    if options and not hosts:
        raise HostSyntaxError(text.strip(), "names no host")
    return FarmHosts(tuple(hosts), tuple(options))


def _host(token: str) -> FarmHost:
    if "@" in token or token.startswith("+"):
        raise HostSyntaxError(token, "ssh and zeroconf hosts are not supported (mmulab reaches servers over TCP)")
    if local := _LOCAL.fullmatch(token):
        return FarmHost(token, "localhost", DEFAULT_PORT, _count(token, local["limit"], DEFAULT_LOCAL_LIMIT))
    match = _TCP.fullmatch(token)
    if match is None:
        raise HostSyntaxError(token, "not a distcc host")
    if match["port"] and match["oldport"]:
        raise HostSyntaxError(token, "names two ports")
    for option in (match["opts"] or "").split(",") if match["opts"] is not None else ():
        if option == "cpp":
            raise HostSyntaxError(token, "pump mode (,cpp) is not supported: mmulab preprocesses locally")
        if option != "lzo":
            raise HostSyntaxError(token, f"unknown host option {option!r}")
    port = int(match["port"] or match["oldport"] or DEFAULT_PORT)
    if not 1 <= port <= 65535:
        raise HostSyntaxError(token, "port out of range")
    return FarmHost(token, match["host"], port, _count(token, match["limit"], DEFAULT_LIMIT))


def _count(token: str, value: str | None, default: int) -> int:
    if value is None:
        return default
    if int(value) < 1:
        raise HostSyntaxError(token, "a limit of 0 slots")
    return int(value)
