"""`mmulab lab` (issue 31): the demos live in a browser.

Fast: the vendored JavaScript against its manifest, the line of waiting machines, --listen, and a real server
(no kernel built: nothing boots) refusing a missing or wrong token and paths outside the page, one log line each.
Slow: a real server on the session's build with real QEMUs: Debian's Chromium (through Debian's chromedriver)
runs clone_vm and reads every verdict and a chart, types into both shells and reads both answers, closes the tab
and sees every QEMU gone; then 16 clients at once on 2 slots, a client leaving mid-boot, a flood of input, a frame
too big, a malformed frame and a wrong token: one log line each, no crash, no QEMU left behind.

The browser's screenshot goes to the folder MMULAB_TEST_ARTIFACTS names (made if missing), else to tmp_path;
docs/lab.png is a copy of one."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import caller_variable, clean_environment

from mmulab.lab import server
from mmulab.lab.machines import Limits, Slots

STATIC = server.STATIC
VENDOR = STATIC / "vendor"
DEMO = "clone_vm"
SERVER_START_SECONDS = 1800  # the first start builds the kernels and images it boots


# --- the vendored page files ---


def test_the_vendored_files_are_the_pinned_packages_bytes_with_their_licenses() -> None:
    manifest = json.loads((VENDOR / "manifest.json").read_text())
    listed = {"manifest.json"}
    versions = {}
    for package in manifest["packages"]:
        versions[package["name"]] = package["version"]
        assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", package["integrity"]), package["name"]
        assert any(name.startswith("LICENSE") for name in package["files"]), package["name"]
        for name, entry in package["files"].items():
            assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == entry["sha256"], name
            assert entry["from"].startswith("package/"), name
            listed.add(name)
    assert versions["@xterm/xterm"] == "6.0.0"
    assert listed == {path.name for path in VENDOR.iterdir()}  # nothing unlisted, nothing missing
    assert "Copyright (c)" in (VENDOR / "LICENSE.xterm").read_text()


def test_the_page_loads_only_its_own_files() -> None:
    html = (STATIC / "lab.html").read_text()
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert references
    for reference in references:
        assert reference.startswith("static/"), reference  # no CDN, nothing from elsewhere
        assert (STATIC / reference.removeprefix("static/")).is_file(), reference


# --- the line of machines waiting for a slot ---


def test_slots_run_at_most_the_limit_and_tell_each_waiter_its_place() -> None:
    async def scenario() -> tuple[list[list[int]], list[str]]:
        slots = Slots(2)
        places: list[list[int]] = [[] for _ in range(5)]
        order: list[str] = []
        gates = [asyncio.Event() for _ in range(5)]

        async def machine(index: int) -> None:
            await slots.acquire(places[index].append)
            order.append(f"start {index}")
            assert slots.running <= 2
            await gates[index].wait()
            order.append(f"end {index}")
            slots.release()

        tasks = [asyncio.create_task(machine(i)) for i in range(5)]
        await asyncio.sleep(0)
        assert (slots.running, slots.waiting) == (2, 3)
        tasks[3].cancel()  # a tab closed while it waited
        await asyncio.sleep(0)
        assert slots.waiting == 2
        gates[0].set()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        for gate in gates:
            gate.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert (slots.running, slots.waiting) == (0, 0)
        return places, order

    places, order = asyncio.run(scenario())
    assert places[0] == places[1] == []
    assert places[2] == [1]
    assert places[3] == [2]
    assert places[4] == [3, 2, 1]  # moved up when 3 left, then when 2 started
    assert "start 3" not in order
    assert order.index("start 2") > order.index("end 0")


def test_a_waiter_cancelled_as_its_slot_came_hands_the_slot_on() -> None:
    async def scenario() -> Slots:
        slots = Slots(1)
        await slots.acquire(lambda place: None)
        waiter = asyncio.create_task(slots.acquire(lambda place: None))
        third = asyncio.create_task(slots.acquire(lambda place: None))
        await asyncio.sleep(0)
        slots.release()  # the slot goes to `waiter`...
        waiter.cancel()  # ...which left at that moment: `third` gets it
        await asyncio.gather(waiter, return_exceptions=True)
        await third
        assert slots.running == 1
        slots.release()
        return slots

    slots = asyncio.run(scenario())
    assert (slots.running, slots.waiting) == (0, 0)


def test_a_machine_is_stopped_once_quiet_for_the_idle_timeout_and_traffic_postpones_it() -> None:
    async def scenario() -> tuple[list[str], float]:
        said: list[str] = []
        stopped: list[float] = []
        lab = SimpleNamespace(limits=Limits(1, 0.2), say=said.append)
        terminal = SimpleNamespace(active=time.monotonic())
        runner = SimpleNamespace(stop=lambda: stopped.append(time.monotonic()))
        watch = asyncio.create_task(server._idle(lab, terminal, runner, "shell nommu #1"))  # type: ignore[arg-type]
        begun = time.monotonic()
        await asyncio.sleep(0.1)
        terminal.active = time.monotonic()  # a keystroke
        await asyncio.wait_for(watch, 10)
        assert len(stopped) == 1
        return said, stopped[0] - begun

    said, after = asyncio.run(scenario())
    assert said == ["lab: shell nommu #1: idle for 0.2 s: stopped"]
    assert after >= 0.3  # 0.2 s after the keystroke at 0.1 s, not 0.2 s after the start


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("0.0.0.0:0", ("0.0.0.0", 0)), ("[::1]:9000", ("::1", 9000))],
)
def test_listen_reads_addr_and_port(text: str, expected: tuple[str, int]) -> None:
    assert server.parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8080", "localhost", ":8080", "host:port", "127.0.0.1:70000"])
def test_listen_refuses_what_is_not_addr_and_port(text: str) -> None:
    with pytest.raises(ValueError, match="not ADDR:PORT"):
        server.parse_listen(text)


# --- a real server ---


class LabServer:
    """`mmulab lab` as a user starts it, its log read as it comes."""

    def __init__(self, build_dir: Path, *args: str) -> None:
        self.build_dir = build_dir
        env = {**clean_environment(), "MMULAB_BUILD_DIR": str(build_dir)}
        command = [sys.executable, "-m", "mmulab", "lab", "--demo", DEMO, "--listen", "127.0.0.1:0", *args]
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        self.lines: list[str] = []
        self.errors = ""
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        serving = self.wait_for(lambda line: "lab: serving http://" in line, SERVER_START_SECONDS)
        self.url = serving.split()[-1]
        match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/\?token=(\S+)", self.url)
        assert match, self.url
        self.port, self.token = int(match[1]), match[2]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, wanted: Callable[[str], bool], timeout: float = 60) -> str:
        """The first log line `wanted` accepts, waiting for it as it comes."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((line for line in self.lines if wanted(line)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                ended = self.process.poll() is not None and not self._reader.is_alive()
                assert left > 0 and not ended, "\n".join(self.lines[-40:]) + (self.errors or self._stderr())
                self._changed.wait(min(left, 1.0))

    def _stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        self.errors = self.process.stderr.read()
        return self.errors

    def log_count(self, pattern: str) -> int:
        with self._changed:
            return sum(1 for line in self.lines if re.search(pattern, line))

    def get(self, path: str, cookie: str = "") -> tuple[int, str]:
        """A raw GET (the path exactly as written: no client tidies `..` away)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
            response = connection.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            connection.close()

    def stop(self) -> tuple[int, str]:
        """SIGTERM, as a service manager stops it: its exit code and stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._reader.join(timeout=10)
        assert self.process.stderr is not None
        return self.process.returncode, self.errors + self.process.stderr.read()


def qemus(build_dir: Path) -> list[int]:
    """Every QEMU booting from `build_dir` (found by its command line, wherever its parent is)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"qemu-system" in argv[0] and any(str(build_dir).encode() in part for part in argv):
            found.append(int(entry.name))
    return found


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.needs("qemu-system-riscv64")
def test_without_the_token_nothing_is_served_and_each_refusal_is_one_log_line(tmp_path: Path) -> None:
    lab = LabServer(tmp_path / "build", "--no-build")
    try:
        refused = ["/", f"/?token={lab.token[:-1]}x", "/catalogue.json", "/static/lab.js", "/ws/boot/x", "/?token="]
        for path in refused:
            status, body = lab.get(path)
            assert status == 403, path
            assert "access token" in body
        wait_until(lambda: lab.log_count(r"lab: 403 GET .*no or wrong token") >= len(refused), 30, "403 lines")
        assert lab.log_count(r"lab: 403 GET .*no or wrong token") == len(refused)
        assert lab.token not in "\n".join(lab.lines[1:])  # the log never shows the token again
        status, page = lab.get(f"/?token={lab.token}")
        assert status == 200 and "<title>mmulab lab" in page
        cookie = f"{server.COOKIE}={lab.token}"
        status, text = lab.get("/catalogue.json", cookie)
        catalogue = json.loads(text)
        assert [demo["name"] for demo in catalogue["demos"]] == [DEMO]
        assert sorted(catalogue["shells"]) == ["mmu", "nommu"]
        assert lab.get("/static/vendor/xterm.js", cookie)[0] == 200
        outside = ["/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd"]
        for path in [*outside, "/ws/boot/no-such-case", "/ws/shell/no-such-kernel"]:
            status, body = lab.get(path, cookie)
            assert status in (403, 404), path
            assert "root:" not in body
        lab.wait_for(lambda line: "no-such-kernel" in line)
        assert lab.log_count(r"lab: 40[34] GET") == len(refused) + len(outside) + 2
        assert qemus(lab.build_dir) == []
    finally:
        code, errors = lab.stop()
    assert code == 0
    assert "Traceback" not in errors, errors


# --- with real QEMUs ---


@pytest.fixture(scope="module")
def lab(session_build: Path) -> Iterator[LabServer]:
    """One lab server on the session's build (it builds clone_vm's kernels and images first), 2 QEMUs at once."""
    served = LabServer(session_build, "--machines", "2", "--idle", "120")
    try:
        yield served
    finally:
        code, errors = served.stop()
        assert code == 0, errors
        assert "Traceback" not in errors, errors
        assert qemus(session_build) == []


def artifacts_folder(tmp_path: Path) -> Path:
    named = caller_variable("MMULAB_TEST_ARTIFACTS")
    folder = Path(named) if named else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Debian's Chromium, headless, through Debian's chromedriver (no browser download)."""
    from conftest import needs_module

    webdriver = needs_module("selenium.webdriver", "pip install -e .[test]; ./setup.sh --tests")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1500,1900"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


def _pane(driver: Any, name: str) -> dict[str, str]:
    script = (
        "const box = document.querySelector(`.pane[data-name='${arguments[0]}']`); return box ? {...box.dataset} : {}"
    )
    return dict(driver.execute_script(script, name))


def _wait_in_browser(driver: Any, condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.needs("qemu-system-riscv64", "chromium", "chromedriver")
def test_a_browser_runs_clone_vm_opens_both_shells_and_its_qemus_end_with_the_tab(
    lab: LabServer, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    keep = browser.current_window_handle
    browser.switch_to.new_window("tab")
    browser.get(lab.url)
    _wait_in_browser(browser, lambda: browser.execute_script("return document.body.dataset.ready") == "1", 30, "page")
    browser.find_element(By.ID, f"demo-{DEMO}").click()
    cases = json.loads(lab.get("/catalogue.json", f"{server.COOKIE}={lab.token}")[1])["demos"][0]["cases"]
    names = [case["case"] for case in cases]
    assert len(names) >= 2

    def all_judged() -> bool:
        return all("verdict" in _pane(browser, name) for name in names)

    _wait_in_browser(browser, all_judged, 300, "every case's verdict")
    panes = {name: _pane(browser, name) for name in names}
    assert all(pane["passed"] == "1" for pane in panes.values()), panes
    assert {case["variant"] for case in cases} >= {"nommu", "mmu"}
    charted = [name for name, pane in panes.items() if pane.get("chart") == "1"]
    assert any("-nommu" in name for name in charted) and any(name.endswith("-mmu") for name in charted), panes
    nommu = f"{DEMO}-c-nommu"
    assert "mmulab: parent: shared byte after child exit = B" in browser.execute_script(
        "return lab.text(arguments[0])", nommu
    )
    state = browser.find_element(By.CSS_SELECTOR, f".pane[data-name='{nommu}'] .state").text
    assert nommu in state and "PASS" in state.upper(), state
    screenshot = artifacts_folder(tmp_path) / "lab-clone_vm.png"
    browser.save_screenshot(str(screenshot))
    print(f"lab screenshot: {screenshot}")

    browser.find_element(By.ID, "shell").click()
    shells = ["nommu", "mmu"]

    def prompt(variant: str) -> bool:
        return "'exit' powers off" in browser.execute_script("return lab.text(arguments[0])", variant)

    _wait_in_browser(browser, lambda: all(prompt(v) for v in shells), 180, "both shells' prompts")
    for variant in shells:
        terminal = browser.find_element(By.CSS_SELECTOR, f".pane[data-name='{variant}'] .xterm")
        ActionChains(browser).click(terminal).send_keys(f"echo typed-on-{variant}; cat /proc/meminfo\n").perform()
    for variant in shells:
        _wait_in_browser(
            browser,
            lambda v=variant: "MemTotal:" in browser.execute_script("return lab.text(arguments[0])", v),
            60,
            f"/proc/meminfo in the {variant} shell",
        )
        text = browser.execute_script("return lab.text(arguments[0])", variant)
        assert f"typed-on-{variant}" in text
        other = "mmu" if variant == "nommu" else "nommu"
        assert f"typed-on-{other}" not in text  # typing went to the focused terminal only
    browser.save_screenshot(str(artifacts_folder(tmp_path) / "lab-shells.png"))
    assert len(qemus(lab.build_dir)) == 2
    browser.close()  # the tab: its sockets close, the server stops both shells' QEMUs
    browser.switch_to.window(keep)
    wait_until(lambda: qemus(lab.build_dir) == [], 30, "both QEMUs gone after the tab closed")
    lab.wait_for(lambda line: "shell mmu" in line and line.endswith(": ended"))
    lab.wait_for(lambda line: "shell nommu" in line and line.endswith(": ended"))


async def _client(lab: LabServer, path: str) -> tuple[list[dict[str, Any]], bytes]:
    """One terminal from start to end: its events and console."""
    import aiohttp

    events: list[dict[str, Any]] = []
    console = b""
    async with aiohttp.ClientSession() as session, session.ws_connect(f"ws://127.0.0.1:{lab.port}{path}") as ws:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.BINARY:
                console += message.data
            elif message.type == aiohttp.WSMsgType.TEXT:
                events.append(json.loads(message.data))
    return events, console


@pytest.mark.slow
@pytest.mark.needs("qemu-system-riscv64")
def test_sixteen_tabs_at_once_queue_and_misbehaving_clients_leave_nothing_behind(lab: LabServer) -> None:
    import aiohttp

    case = f"{DEMO}-asm-nommu"
    token = f"?token={lab.token}"
    busiest = 0
    sampling = True

    def sample() -> None:
        nonlocal busiest
        while sampling:
            busiest = max(busiest, len(qemus(lab.build_dir)))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = lab.log_count(r": started \(")
    results = asyncio.run(_many([_client(lab, f"/ws/boot/{case}{token}") for _ in range(16)]))
    sampling = False
    sampler.join()
    assert len(results) == 16
    for events, console in results:
        kinds = [event["event"] for event in events]
        assert "verdict" in kinds and kinds[-1] == "ended", kinds
        verdict = next(event for event in events if event["event"] == "verdict")
        assert verdict["passed"], verdict
        assert b"mmulab: parent: shared byte after child exit = B" in console
    places = [event["place"] for events, _ in results for event in events if event["event"] == "queued"]
    assert sum(1 for events, _ in results if any(e["event"] == "queued" for e in events)) >= 8
    assert max(places) >= 8
    assert 1 <= busiest <= 2
    assert lab.log_count(r": started \(") - started == 16
    assert all(int(m) <= 2 for m in re.findall(r"started \((\d+) of 2", "\n".join(lab.lines)))
    wait_until(lambda: qemus(lab.build_dir) == [], 30, "every QEMU gone after the 16 tabs")

    async def misbehave() -> None:
        async with aiohttp.ClientSession() as session:
            # A client that leaves mid-boot: its QEMU is stopped.
            async with session.ws_connect(f"ws://127.0.0.1:{lab.port}/ws/boot/{DEMO}-c-mmu{token}") as ws:
                while (await ws.receive()).type != aiohttp.WSMsgType.BINARY:
                    pass
            # A flood of input into a shell, then a frame over the size limit: dropped, then closed (1009).
            async with session.ws_connect(f"ws://127.0.0.1:{lab.port}/ws/shell/nommu{token}") as ws:
                while (await ws.receive()).type != aiohttp.WSMsgType.BINARY:
                    pass
                for _ in range(500):
                    await ws.send_bytes(b"y" * 4096)
                await ws.send_bytes(b"z" * 5000)
                while not ws.closed:
                    await ws.receive()
                assert ws.close_code == 1009
            # A wrong token: refused before anything starts.
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(f"ws://127.0.0.1:{lab.port}/ws/shell/mmu?token=wrong")
            assert refused.value.status == 403

    asyncio.run(misbehave())
    malformed_frame(lab)
    wait_until(lambda: qemus(lab.build_dir) == [], 30, "every QEMU gone after the misbehaving clients")
    lab.wait_for(lambda line: "/ws/shell/mmu" in line and "403" in line)
    lab.wait_for(lambda line: "websocket closed with code 1009" in line or "bad websocket message" in line)
    assert lab.log_count(r"shell nommu #\d+: (bad websocket message|websocket closed with code)") >= 2
    assert lab.get("/catalogue.json", f"{server.COOKIE}={lab.token}")[0] == 200  # still serving
    assert lab.process.poll() is None


async def _many(clients: list[Any]) -> list[tuple[list[dict[str, Any]], bytes]]:
    return list(await asyncio.gather(*clients))


def malformed_frame(lab: LabServer) -> None:
    """A websocket opened by hand on a shell, then bytes that are no frame (a reserved opcode, unmasked)."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", lab.port), timeout=30) as raw:
        raw.sendall(
            (
                f"GET /ws/shell/nommu?token={lab.token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += raw.recv(4096)
        assert head.startswith(b"HTTP/1.1 101"), head
        raw.sendall(b"\x8f\x05hello\xff\xff\xff")
        while raw.recv(65536):  # the server closes the connection
            pass


def _lab_command(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**clean_environment(), "MMULAB_BUILD_DIR": str(tmp_path / "build")}
    command = [sys.executable, "-m", "mmulab", "lab", "--no-build", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.needs("qemu-system-riscv64")
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--listen", "8080"], "mmulab: error: lab: --listen '8080': not ADDR:PORT"),
        (["--demo", "nosuch"], "mmulab: error: lab: no demo 'nosuch' (configs/demos.toml has: "),
        (["--machines", "0"], "argument --machines: '0': not a whole number >= 1"),
    ],
)
def test_bad_lab_options_are_one_line_and_exit_2(tmp_path: Path, args: list[str], expected: str) -> None:
    result = _lab_command(tmp_path, *args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.needs("qemu-system-riscv64")
def test_a_taken_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _lab_command(tmp_path, "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 2
    expected = f"mmulab: error: lab: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert result.stderr.strip().splitlines() == [expected]
