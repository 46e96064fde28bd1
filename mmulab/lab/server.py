"""`mmulab lab`: the demos live in a browser. aiohttp serves the page and one websocket per terminal; each
websocket is one QEMU (a demo's case, judged, or a variant's busybox shell) that ends when the websocket does.

Every request needs the access token (in the URL the server prints, then a same-site cookie): without it,
403 and nothing starts. A bad request is one line of the server's log. Websocket protocol: the server sends
the console as binary messages and events as JSON text ({"event": "queued", "place": 2}, "started",
"verdict", "chart", "ended"); the page sends keystrokes (a shell's only: they go to the guest's serial line).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hmac
import json
import os
import secrets
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from mmulab.core.errors import ConfigError, ExitCode, UserError
from mmulab.lab import machines
from mmulab.lab.machines import Limits, LiveRunner, Slots
from mmulab.project.model import Project

STATIC = Path(__file__).parent / "static"
COOKIE = "mmulab_lab"
Say = Callable[[str], None]


@dataclass
class Lab:
    """The server's state: the project, its limits and token, the line of waiting machines, the open sockets."""

    project: Project
    demos: tuple[str, ...]
    limits: Limits
    token: str
    say: Say
    folder: Path
    slots: Slots = field(init=False)
    pool: concurrent.futures.ThreadPoolExecutor = field(init=False)
    sockets: set[web.WebSocketResponse] = field(default_factory=set)
    serial: int = 0

    def __post_init__(self) -> None:
        self.slots = Slots(self.limits.machines)
        self.pool = concurrent.futures.ThreadPoolExecutor(self.limits.machines, thread_name_prefix="lab-qemu")

    def catalogue(self) -> dict[str, Any]:
        demos = []
        for name in self.demos:
            demo = self.project.demos[name]
            cases = [
                {
                    "case": case,
                    "variant": self.project.boots[case].variant,
                    "build": self.project.boots[case].build,
                    "qemu": self.project.boots[case].qemu_options,
                    "expect": self.project.boots[case].expect,
                }
                for case in demo.cases
            ]
            demos.append({"name": name, "description": demo.description, "cases": cases})
        return {"demos": demos, "shells": list(self.shells()), "machines": self.limits.machines}

    def shells(self) -> dict[str, machines.Shell]:
        """The shells of the kernels the offered demos boot on."""
        return offered_shells(self.project, self.demos)


LAB: web.AppKey[Lab] = web.AppKey("lab", Lab)


def _peer(request: web.Request) -> str:
    return str(request.remote or "?")


@web.middleware
async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    """The token (query or cookie) before anything; a refused or unknown request is one log line."""
    lab = request.app[LAB]
    given = request.query.get("token") or request.cookies.get(COOKIE) or ""
    if not hmac.compare_digest(given.encode(), lab.token.encode()):
        lab.say(f"lab: 403 {request.method} {request.path[:200]!r} from {_peer(request)}: no or wrong token")
        raise web.HTTPForbidden(text="mmulab lab: this page needs the access token the server printed\n")
    try:
        response = await handler(request)
    except web.HTTPNotFound:
        lab.say(f"lab: 404 {request.method} {request.path[:200]!r} from {_peer(request)}: not a page of the lab")
        raise
    if request.query.get("token") and not response.prepared:  # a websocket's headers are long sent
        response.set_cookie(COOKIE, lab.token, httponly=True, samesite="Strict")
    return response


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "lab.html", headers={"Cache-Control": "no-store"})


async def catalogue(request: web.Request) -> web.Response:
    return web.json_response(request.app[LAB].catalogue())


class Terminal:
    """One websocket and its machine: what goes out (in order, from any thread) and the last moment of traffic."""

    def __init__(self, socket: web.WebSocketResponse, loop: asyncio.AbstractEventLoop) -> None:
        self.socket, self.loop = socket, loop
        self.outgoing: asyncio.Queue[bytes | dict[str, Any] | None] = asyncio.Queue()
        self.active = time.monotonic()

    def put(self, message: bytes | dict[str, Any] | None) -> None:
        self.outgoing.put_nowait(message)

    def from_thread(self, chunk: bytes) -> None:
        self.loop.call_soon_threadsafe(self._output, chunk)

    def _output(self, chunk: bytes) -> None:
        self.active = time.monotonic()
        self.put(chunk)

    async def write(self) -> None:
        while (message := await self.outgoing.get()) is not None:
            if isinstance(message, bytes):
                await self.socket.send_bytes(message)
            else:
                await self.socket.send_str(json.dumps(message))


async def _machine(request: web.Request, kind: str, name: str) -> web.WebSocketResponse:
    lab = request.app[LAB]
    socket = web.WebSocketResponse(max_msg_size=lab.limits.input_bytes + 1, heartbeat=30)  # aiohttp: < max
    await socket.prepare(request)
    lab.sockets.add(socket)
    lab.serial += 1
    label = f"{kind} {name} #{lab.serial}"
    loop = asyncio.get_running_loop()
    terminal = Terminal(socket, loop)
    runner = LiveRunner(terminal.from_thread)
    writer = asyncio.create_task(terminal.write())
    work = asyncio.create_task(_run(lab, kind, name, label, terminal, runner))
    reader = asyncio.create_task(_read(lab, kind, label, socket, terminal, runner))
    idle = asyncio.create_task(_idle(lab, terminal, runner, label))
    try:
        await asyncio.wait([work, reader], return_when=asyncio.FIRST_COMPLETED)
    finally:
        runner.stop()
        for task in (work, idle):
            task.cancel()
        await asyncio.gather(work, idle, return_exceptions=True)
        terminal.put(None)
        await asyncio.gather(writer, return_exceptions=True)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await socket.close()
        lab.sockets.discard(socket)
    return socket


async def _run(lab: Lab, kind: str, name: str, label: str, terminal: Terminal, runner: LiveRunner) -> None:
    """Wait for a slot, run the machine in a thread, send what it ended with; the slot is given back however
    it ends (a closed tab cancels this while the thread still finishes: the slot waits for QEMU to be gone)."""
    await lab.slots.acquire(lambda place: terminal.put({"event": "queued", "place": place}))
    loop = asyncio.get_running_loop()
    try:
        terminal.put({"event": "started"})
        terminal.active = time.monotonic()
        lab.say(f"lab: {label}: started ({lab.slots.running} of {lab.limits.machines} machines busy)")
        if kind == "boot":
            call: Callable[[], machines.Judged | int | None] = functools.partial(
                machines.boot, lab.project, name, lab.folder, runner
            )
        else:
            command = machines.shell_command(lab.project, lab.shells()[name])
            call = functools.partial(machines.run_shell, command, runner)
        future = loop.run_in_executor(lab.pool, call)
        try:
            result = await asyncio.shield(future)
        except asyncio.CancelledError:
            runner.stop()
            await asyncio.gather(future, return_exceptions=True)  # QEMU gone before the slot is free
            raise
        except (UserError, OSError) as error:  # QEMU missing, a console that cannot be read back
            terminal.put({"event": "ended", "reason": str(error)})
            lab.say(f"lab: {label}: {error}")
            return
        if isinstance(result, machines.Judged):
            verdict = result.verdict
            terminal.put(
                {
                    "event": "verdict",
                    "passed": verdict.passed,
                    "outcome": str(verdict.observed),
                    "line": verdict.summary().splitlines()[0],
                }
            )
            if result.chart is not None:
                terminal.put({"event": "chart", "svg": result.chart.decode()})
            lab.say(f"lab: {label}: {verdict.summary().splitlines()[0]}")
        terminal.put({"event": "ended", "reason": "stopped: idle" if runner.stopped else "the machine stopped"})
    finally:
        lab.slots.release()
        lab.say(f"lab: {label}: ended")


async def _read(
    lab: Lab, kind: str, label: str, socket: web.WebSocketResponse, terminal: Terminal, runner: LiveRunner
) -> None:
    """What the page sends: a shell's keystrokes to the guest's serial line (at most what the pipe takes; the rest
    of a flood is dropped), nothing else anywhere. Ends when the socket does."""
    async for message in socket:
        if message.type in (WSMsgType.BINARY, WSMsgType.TEXT):
            data = message.data if isinstance(message.data, bytes) else str(message.data).encode()
            if kind == "shell" and data:
                terminal.active = time.monotonic()
                runner.send(data[: lab.limits.input_bytes])
        elif message.type == WSMsgType.ERROR:
            lab.say(f"lab: {label}: bad websocket message: {socket.exception()}")
            return
    if socket.close_code not in (None, 1000, 1001):
        lab.say(f"lab: {label}: websocket closed with code {socket.close_code}")


async def _idle(lab: Lab, terminal: Terminal, runner: LiveRunner, label: str) -> None:
    while True:
        left = terminal.active + lab.limits.idle - time.monotonic()
        if left <= 0:
            lab.say(f"lab: {label}: idle for {lab.limits.idle:g} s: stopped")
            runner.stop()
            return
        await asyncio.sleep(left)


async def boot_socket(request: web.Request) -> web.WebSocketResponse:
    lab, case = request.app[LAB], request.match_info["case"]
    if not any(case in lab.project.demos[demo].cases for demo in lab.demos):
        raise web.HTTPNotFound()
    return await _machine(request, "boot", case)


async def shell_socket(request: web.Request) -> web.WebSocketResponse:
    lab, variant = request.app[LAB], request.match_info["variant"]
    if variant not in lab.shells():
        raise web.HTTPNotFound()
    return await _machine(request, "shell", variant)


async def _close_sockets(app: web.Application) -> None:
    for socket in list(app[LAB].sockets):
        await socket.close(code=1001, message=b"the lab server stops")


def application(lab: Lab) -> web.Application:
    app = web.Application(middlewares=[guard])
    app[LAB] = lab
    app.router.add_get("/", page)
    app.router.add_get("/catalogue.json", catalogue)
    app.router.add_get("/ws/boot/{case}", boot_socket)
    app.router.add_get("/ws/shell/{variant}", shell_socket)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    app.on_shutdown.append(_close_sockets)
    return app


def new_token() -> str:
    return secrets.token_urlsafe(18)


def parse_listen(text: str) -> tuple[str, int]:
    """ADDR:PORT (an IPv6 address in brackets); a ValueError names what is wrong."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{text!r}: not ADDR:PORT (e.g. 127.0.0.1:8080 or 0.0.0.0:8080)")
    return host, int(port)


async def _serve(lab: Lab, host: str, port: int) -> int:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[int] = loop.create_future()

    def stopping(code: int) -> None:
        if not stop.done():
            stop.set_result(code)

    loop.add_signal_handler(signal.SIGINT, stopping, ExitCode.INTERRUPTED)
    loop.add_signal_handler(signal.SIGTERM, stopping, ExitCode.OK)
    runner = web.AppRunner(application(lab), access_log=None, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as error:
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise ConfigError(f"lab: cannot listen on {host}:{port}: {reason}") from None
        for address in runner.addresses:
            shown = f"[{address[0]}]" if ":" in str(address[0]) else address[0]
            lab.say(f"lab: serving http://{shown}:{address[1]}/?token={lab.token}")
        lab.say(f"lab: {len(lab.demos)} demo(s), at most {lab.limits.machines} QEMU at once; Ctrl-C stops")
        return await stop
    finally:
        await runner.cleanup()
        lab.pool.shutdown(wait=True)


def offered_shells(project: Project, demos: tuple[str, ...]) -> dict[str, machines.Shell]:
    variants = {project.boots[case].variant for demo in demos for case in project.demos[demo].cases}
    return {name: shell for name, shell in machines.shells(project).items() if name in variants}


def boots_needed(project: Project, demos: tuple[str, ...]) -> list[str]:
    """Every case the lab may boot: the demos' cases and the shells' cases."""
    cases = [case for demo in demos for case in project.demos[demo].cases]
    return [*cases, *(shell.case for shell in offered_shells(project, demos).values())]


def serve(
    project: Project, demos: tuple[str, ...], limits: Limits, listen: tuple[str, int], build: bool, say: Say
) -> int:
    """Build what the demos and shells boot (through doit, as `mmulab soak` does), then serve the lab until
    SIGINT (exit 130) or SIGTERM (exit 0), holding the build directory's lock (no doit run rebuilds a kernel
    under a boot); every machine is gone when this returns."""
    from mmulab.core.lock import BuildLock
    from mmulab.core.tools import require
    from mmulab.pipeline import soak
    from mmulab.pipeline.actions import layout_of

    require(project.toolchain.qemu)
    if build:
        soak.build_first(project, boots_needed(project, demos), limits.machines, who="lab")
    lock = BuildLock(layout_of(project).lock())
    lock.acquire()
    try:
        with tempfile.TemporaryDirectory(prefix="mmulab-lab-") as folder:
            lab = Lab(project, demos, limits, new_token(), say, Path(folder))
            return asyncio.run(_serve(lab, *listen))
    finally:
        if lock.handle is not None:
            lock.handle.close()
