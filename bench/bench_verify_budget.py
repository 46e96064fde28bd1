"""Verify's resource budget (issue 28): the worst inputs at the real caps, each verified by `mmulab verify` in a
fresh child; its peak RSS and CPU seconds recorded. Not a test: it measures.

Usage: .venv/bin/python bench/bench_verify_budget.py [--out bench/results/verify_budget.json]
Targets: every case under 256 MiB peak RSS and 10 CPU seconds, exit 0 or 1 (the limits are docs/releases.md's
*Limits*). The inputs are made by tests/test_verify_budget.py's generators, at the sizes issue 28 measured or
the largest the limits let through; about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchlib import ROOT, report

sys.path.insert(0, str(ROOT / "tests"))
from test_verify import write_release, write_sums
from test_verify_budget import block, long_name, pax, regular, tar_xz

from mmulab.boot import series
from mmulab.release import archive, check

MEASURE = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(code, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)
"""


def sparse_map(folder: Path) -> Path:
    """Issue: a 48 KB archive whose pax 1.0 sparse map (in the member's data) tarfile built to 2.7 GB."""
    data = b"%d\n" % (4 << 20) + b"0\n1\n" * (4 << 20)
    sparse = [(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"), (b"GNU.sparse.realsize", b"9" * 12)]
    return _write(folder / "sparse.tar.xz", tar_xz(pax(sparse), regular("r1/s", data)))


def global_headers(folder: Path) -> Path:
    return _write(folder / "global.tar.xz", tar_xz(pax([(b"comment", b"c" * 3000)], tarfile.XGLTYPE), regular("r1/a")))


def negative_size(folder: Path) -> Path:
    """A member of size -1 GiB (base-256), then one declaring 5 TB."""
    negative = (-(1 << 30)) % (256**11)
    field = b"\xff" + negative.to_bytes(11, "big")
    return _write(folder / "negative.tar.xz", tar_xz(block("r1/a", size_field=field), block("r1/b", size=5 << 40)))


def long_names(folder: Path) -> Path:
    """The most long names the limits let through: 9,000 members of 1,000 bytes, each its own parents."""
    members = (long_name(f"r1/{i}/" + "/".join(["n" * 60] * 15)) + regular("r1/x") for i in range(9000))
    return _write(folder / "names.tar.xz", tar_xz(*members))


def pax_digits(folder: Path) -> Path:
    """The costliest pax headers accepted: 4 KiB each of digits (CVE-2024-6232's backtracking), 64 KiB in all."""
    count = archive.MAX_METADATA_BYTES // archive.MAX_HEADER_BYTES
    members = (pax([(b"comment", b"7" * (archive.MAX_HEADER_BYTES - 20))]) + regular(f"r1/{i}") for i in range(count))
    return _write(folder / "pax.tar.xz", tar_xz(*members))


def sums_lines(folder: Path) -> Path:
    """Issue: 63 MiB of `a\\n` in SHA256SUMS was a MemoryError."""
    release = write_release(folder / "sums")
    (release / "SHA256SUMS").write_bytes(b"a\n" * (63 << 19))
    return release


def json_objects(folder: Path) -> Path:
    """The largest SBOM read: 1 MiB of empty objects."""
    release = write_release(folder / "json")
    (release / "sbom.spdx.json").write_text('{"files": [' + "{}," * ((1 << 20) // 3 - 10) + "{}]}")
    write_sums(release)
    return release


def signatures(folder: Path) -> Path:
    """Many signatures beside one (the JSON limit leaves about 30,000)."""
    release = write_release(folder / "sigs")
    statement = (release / "provenance.intoto.json").read_bytes()
    envelope = {"payload": base64.b64encode(statement).decode(), "payloadType": "application/vnd.in-toto+json"}
    envelope["signatures"] = [{"keyid": f"k{i}", "sig": "AAAA"} for i in range(30_000)]
    (release / "provenance.intoto.json").write_text(json.dumps(envelope))
    write_sums(release)
    return release


def big_console(folder: Path) -> Path:
    """Issue: consoles of 60 MiB on the page (1.1 GB for four); here one, consistent with every document."""
    console = b"[    0.000000] Linux version\n" + b"[    1.000000] noise " * (3 << 20) + b"\n"
    return write_release(folder / "console60", {"boots/clone_vm-asm-nommu.log": console})


def console_at_the_limit(folder: Path) -> Path:
    """The largest console verify reads (check.MAX_CONSOLE_BYTES), consistent with every document."""
    line = b"[    1.000000] a console line of a long boot\n"
    console = b"[    0.000000] Linux version\n" + line * ((check.MAX_CONSOLE_BYTES - 100) // len(line))
    return write_release(folder / "console", {"boots/clone_vm-asm-nommu.log": console})


def many_charts(folder: Path) -> Path:
    """The most charts the limits draw: MAX_CHARTS charts of MAX_SERIES series each."""
    lines = "".join(
        f"mmulab: data: c{c} s{s} 1 2\n" for c in range(series.MAX_CHARTS) for s in range(series.MAX_SERIES)
    )
    console = f"[    0.000000] Linux version\n{lines}".encode()
    return write_release(folder / "charts", {"boots/clone_vm-asm-nommu.log": console})


CASES: dict[str, Callable[[Path], Path]] = {
    "sparse_map": sparse_map,
    "global_pax_header": global_headers,
    "negative_size": negative_size,
    "long_names": long_names,
    "pax_digits": pax_digits,
    "sums_63_MiB_of_lines": sums_lines,
    "json_1_MiB_of_objects": json_objects,
    "30000_signatures": signatures,
    "console_60_MiB": big_console,
    "console_16_MiB": console_at_the_limit,
    "charts_at_the_limit": many_charts,
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def measure(target: Path) -> tuple[int, float, float]:
    """Exit code, peak RSS (MiB) and CPU seconds of `mmulab verify target` in a fresh child."""
    command = [sys.executable, "-c", MEASURE, str(ROOT / ".venv" / "bin" / "mmulab"), "verify", str(target)]
    code, rss, seconds = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    return int(code), round(int(rss) / 1024, 1), round(float(seconds), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "verify_budget.json")
    args = parser.parse_args()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="mmulab-bench-budget-") as tmp:
        for name, make in CASES.items():
            folder = Path(tmp) / name
            folder.mkdir()
            target = make(folder)
            size = target.stat().st_size if target.is_file() else sum(f.stat().st_size for f in target.rglob("*"))
            code, rss, seconds = measure(target)
            results[f"{name}_exit"] = code
            results[f"{name}_input_bytes"] = size
            results[f"{name}_peak_rss_mib"] = rss
            results[f"{name}_cpu_s"] = seconds
    rss_values = [v for k, v in results.items() if k.endswith("_peak_rss_mib") and isinstance(v, float)]
    cpu_values = [v for k, v in results.items() if k.endswith("_cpu_s") and isinstance(v, float)]
    results["worst_peak_rss_mib"] = max(rss_values)
    results["worst_cpu_s"] = max(cpu_values)
    results["python"] = sys.version.split()[0]
    report(results, {"worst_peak_rss_mib": ("<", 256.0), "worst_cpu_s": ("<", 10.0)}, args.out)
    if any(results[f"{name}_exit"] not in (0, 1) for name in CASES):
        sys.exit("bench: a verify exited with neither 0 nor 1")


if __name__ == "__main__":
    main()
