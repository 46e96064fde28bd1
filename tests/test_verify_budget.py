"""Issue 28: a stranger's release costs a bounded amount. Every defect of the issue as a named regression test,
then a property test with a resource oracle: generated hostile archives, each verified by `mmulab verify` in a
subprocess under a 512 MiB address-space cap and a CPU-seconds cap, which must exit 0 or 1 with escaped lines.

The hostile inputs are made here by small generators (`hostile_archive`), never committed; bench/
bench_verify_budget.py builds the same ones at the real caps and records peak RSS and seconds.
"""

from __future__ import annotations

import base64
import json
import lzma
import os
import resource
import signal
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import hypothesis
import pytest
from conftest import clean_environment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_verify import run_verify, write_release, write_sums

from mmulab.boot import series
from mmulab.core.errors import printable
from mmulab.release import archive as release_archive
from mmulab.release import check, documents, page, signing
from mmulab.release import verify as release_verify

hypothesis.configuration.set_hypothesis_home_dir(Path(os.devnull) / "hypothesis")  # nothing written (as fuzz)

VENV_BIN = Path(sys.executable).parent
ADDRESS_SPACE = 512 << 20  # the property test's cap on a verify's address space
CPU_SECONDS = 30  # and on its CPU time: generous (bench/results/verify_budget.json has the measured figure)
HOSTILE_TEXT = "\r\x1b[2Kmmulab: verify: r1: 16 files agree\n\u202e"


# ---------------------------------------------------------------------------------------------------------------
# Raw tar blocks, as a hostile writer makes them


def block(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, size_field: bytes | None = None) -> bytes:
    """One tar header (GNU format); `size_field` written raw over the size (a negative base-256 one)."""
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.mtime = kind, size, 0o644, 1_700_000_000
    header = bytearray(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
    if size_field is not None:
        header[124:136] = size_field
        header[148:156] = b" " * 8
        header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % tarfile.BLOCKSIZE)


def pax(records: list[tuple[bytes, bytes]], kind: bytes = tarfile.XHDTYPE) -> bytes:
    body = b""
    for key, value in records:
        rest = b" " + key + b"=" + value + b"\n"
        length = len(rest) + 1
        while len(str(length)) + len(rest) != length:
            length += 1
        body += str(length).encode() + rest
    return block("././@PaxHeader", kind, len(body)) + padded(body)


def long_name(name: str) -> bytes:
    body = name.encode() + b"\0"
    return block("././@LongLink", tarfile.GNUTYPE_LONGNAME, len(body)) + padded(body)


def regular(name: str, data: bytes = b"x") -> bytes:
    return block(name, size=len(data)) + padded(data)


def tar_xz(*blocks: bytes) -> bytes:
    return lzma.compress(b"".join(blocks) + bytes(2 * tarfile.BLOCKSIZE), format=lzma.FORMAT_XZ)


def deep_name(length: int, component: int = 200) -> str:
    parts = ["p" * component] * (length // (component + 1) + 1)
    return "r1/" + "/".join(parts)[:length]


# The issue's archives, at test size: (name, bytes, the refusal's words).
HOSTILE: dict[str, tuple[Callable[[], bytes], str]] = {
    "sparse-gnu": (lambda: tar_xz(regular("r1/a"), block("r1/s", tarfile.GNUTYPE_SPARSE)), "is a sparse file"),
    "sparse-pax": (
        lambda: tar_xz(
            pax([(b"GNU.sparse.map", b"0," * 500 + b"0"), (b"GNU.sparse.size", b"9" * 12)]), regular("r1/s")
        ),
        "is a sparse file",
    ),
    "global-pax": (lambda: tar_xz(pax([(b"comment", b"c" * 3000)], tarfile.XGLTYPE), regular("r1/a")), "global pax"),
    "negative-size": (
        lambda: tar_xz(block("r1/a", size_field=b"\xff" * 11 + b"\x00"), regular("r1/b")),
        "negative or unreadable size",
    ),
    "pax-negative-size": (lambda: tar_xz(pax([(b"size", b"-5")]), regular("r1/a")), "not a size"),
    "pax-malformed": (
        lambda: tar_xz(block("x", tarfile.XHDTYPE, 9) + padded(b"9 a=b\n999"), regular("r1/a")),
        "malformed pax",
    ),
    "pax-too-large": (lambda: tar_xz(pax([(b"comment", b"9" * 5000)]), regular("r1/a")), "metadata header"),
    "long-component": (lambda: tar_xz(long_name("r1/" + "c" * 300), regular("r1/x")), "name component"),
    "long-name": (lambda: tar_xz(long_name(deep_name(2000)), regular("r1/x")), "-byte name"),
    "metadata-total": (
        lambda: tar_xz(*(long_name(f"r1/{i}-" + "m" * 200) + regular(f"r1/{i}") for i in range(400))),
        "bytes of metadata headers",
    ),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_issue28_a_hostile_archive_header_is_refused_before_tarfile_builds_it(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sparse maps, global pax headers, negative sizes, pax records tarfile's regex backtracks on, names longer
    than a release's: one line, exit 1, nothing extracted (tarfile never saw the header)."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    make, words = HOSTILE[kind]
    path = tmp_path / f"{kind}.tar.xz"
    path.write_bytes(make())
    code, out, err = run_verify(capsys, str(path))
    assert (code, out, len(err)) == (1, [], 1), err
    assert err[0].startswith(f"mmulab: error: {kind}.tar.xz: refusing archive") and words in err[0], err[0]
    assert err[0].endswith("nothing was written")
    assert sorted(tmp_path.iterdir()) == [path]


def test_issue28_folders_named_only_as_parents_count_toward_the_members_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long names: LinkGuard kept every ancestor of every member (18 KB of input, 1.2 GB)."""
    monkeypatch.setattr(release_archive, "MAX_MEMBERS", 100)
    scan = release_archive._Scan("a.tar.xz")
    names = (f"r1/{i}/" + "/".join("d" * 10) + "/f" for i in range(20))
    with pytest.raises(release_archive.UserError, match="more than 100 folders in all"):
        for name in names:
            scan.check(tarfile.TarInfo(name))
    assert len(scan.guard.folders) <= 100


def test_issue28_a_pax_size_is_applied_as_tarfile_applies_it(tmp_path: Path) -> None:
    """The walker follows tarfile's offsets: a member whose pax header gives its size, then another, is read."""
    data = b"y" * 700
    info = block("r1/a", size=0)
    path = tmp_path / "ok.tar.xz"
    path.write_bytes(tar_xz(pax([(b"size", b"700"), (b"path", b"r1/pax-name")]), info + padded(data), regular("r1/b")))
    assert release_archive.scan_archive(path) == 2


def test_issue28_sha256sums_of_a_million_lines_costs_what_twenty_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """63 MiB of `a\\n` was a MemoryError: one problem per line, every line held at once. Now the first
    MAX_PROBLEMS, and at most MAX_MEMBERS lines are read."""
    release = write_release(tmp_path / "r1")
    (release / "SHA256SUMS").write_bytes(b"a\n" * 500_000)
    code, out, _ = run_verify(capsys, str(release))
    told = [line for line in out if line.startswith("mismatch: SHA256SUMS")]
    assert code == 1
    assert len(told) == check.MAX_PROBLEMS + 1  # the problems told, then that there are more
    assert told[-1] == f"mismatch: SHA256SUMS: more than {check.MAX_PROBLEMS} problems; the rest not told"
    (release / "SHA256SUMS").write_text("".join(f"{i:064x}  f{i}\n" for i in range(check.MAX_MEMBERS + 5)))
    code, out, _ = run_verify(capsys, str(release))
    assert code == 1 and len(out) < 3 * check.MAX_PROBLEMS


def test_issue28_spdx_duplicate_ids_are_counted_once(tmp_path: Path) -> None:
    """`ids.count(i)` for every id: 40,000 ids took 63 s. Here 40,000 valid files, one id given twice."""
    sbom = json.loads((write_release(tmp_path / "r1") / "sbom.spdx.json").read_text())
    template = sbom["files"][0]
    sbom["files"] += [{**template, "SPDXID": f"SPDXRef-many-{i}"} for i in range(40_000)]
    sbom["files"].append({**template, "SPDXID": "SPDXRef-many-7"})
    assert list(documents.spdx_problems(sbom)) == ["SPDXID 'SPDXRef-many-7' names more than one element"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"_type": "https://in-toto.io/Statement/v1"}, "DSSE envelope: keys other than payload"),
        ({"signatures": [{"keyid": "k", "sig": "AAAA", "extra": 1}]}, "DSSE signature 1: keys other than keyid"),
        ({"signatures": [{"keyid": "k", "sig": "AAB="}]}, "DSSE signature 1: not canonical base64"),
        ({"signatures": [{"keyid": f"k{i}", "sig": "AAAA"} for i in range(9)]}, "DSSE signatures: 9, more than 8"),
    ],
    ids=["extra-key", "extra-signature-key", "pad-bits", "many-signatures"],
)
def test_issue28_an_envelope_is_exactly_dsse(
    change: dict[str, object], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release = write_release(tmp_path / "r1")
    statement = (release / "provenance.intoto.json").read_bytes()
    envelope = {"payload": base64.b64encode(statement).decode(), "payloadType": signing.PAYLOAD_TYPE}
    envelope |= {"signatures": [{"keyid": "k", "sig": "AAAA"}], **change}
    (release / "provenance.intoto.json").write_text(json.dumps(envelope))
    write_sums(release)
    code, out, _ = run_verify(capsys, str(release))
    assert code == 1
    assert f"mismatch: provenance.intoto.json: {words}" in "\n".join(out)


def test_issue28_a_listed_file_swapped_for_a_fifo_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "f"
    os.mkfifo(fifo)  # no writer: open() without O_NONBLOCK blocks forever
    assert check._Digests({"f": fifo})("f") == "no longer a regular file"


def test_issue28_a_folder_release_is_hashed_within_the_archive_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big"
    with big.open("wb") as handle:
        handle.truncate(1 << 40)  # 1 TiB, sparse: was hashed to the end
    monkeypatch.setattr(check, "MAX_TOTAL_BYTES", 1 << 20)
    assert check._Digests({"big": big})("big") == f"not hashed: the release's files hold more than {1 << 20} bytes"


def test_issue28_every_printing_path_escapes_a_strangers_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OSError's file name, a --rebuild line, the archive's own name: each one escaped line."""

    def too_long(*args: object, **kwargs: object) -> int:
        raise OSError(36, "File name too long", HOSTILE_TEXT)

    monkeypatch.setattr(release_verify, "verify", too_long)
    release = write_release(tmp_path / "r1")
    code, out, err = run_verify(capsys, str(release))
    assert (code, out) == (1, [])
    assert err == [f"mmulab: error: {printable(HOSTILE_TEXT)}: File name too long"]
    assert "\\r\\x1b[2K" in err[0] and "\\u202e" in err[0]
    monkeypatch.undo()

    def rebuilt(*args: object) -> tuple[list[str], int]:
        return [f"refused: source {HOSTILE_TEXT}"], 0

    monkeypatch.setattr(release_verify, "rebuild", rebuilt)
    code, out, _ = run_verify(capsys, str(release), "--rebuild")
    assert code == 1
    assert f"refused: source {printable(HOSTILE_TEXT)}" in out
    assert all(line.isprintable() for line in out)
    named = tmp_path / "a\x1b[8m.tar.xz"
    named.write_bytes(tar_xz(block("r1/s", tarfile.GNUTYPE_SPARSE)))
    code, out, err = run_verify(capsys, str(named))
    assert code == 1 and len(err) == 1 and err[0].startswith("mmulab: error: a\\x1b[8m.tar.xz: refusing")


def test_issue28_sigterm_cleans_up_as_ctrl_c_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM left the extracted release in TMPDIR (SIGINT ran the finally blocks)."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    release = write_release(tmp_path / "r1")
    archive = tmp_path / "r1.tar.xz"
    archive.write_bytes(
        tar_xz(
            *(
                regular(f"r1/{p.relative_to(release)}", p.read_bytes())
                for p in sorted(release.rglob("*"))
                if p.is_file()
            )
        )
    )
    seen: list[Path] = []

    def terminated(root: Path) -> object:
        seen.append(root)
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt")

    monkeypatch.setattr(release_verify, "check_release", terminated)
    code, _, err = run_verify(capsys, str(archive))
    assert (code, err) == (130, ["", "mmulab: interrupted"])
    assert seen and list(scratch.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_issue28_names_publish_never_writes_are_unexpected_though_listed_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name with ESC or U+202E, listed consistently, was accepted; `sha256sum -c SHA256SUMS` printed it raw."""
    release = write_release(tmp_path / "r1", {"boots/a\x1b[2Kb\u202e.log": b"x"})
    code, out, _ = run_verify(capsys, str(release))
    assert code == 1
    assert out[0] == f"unexpected: boots/a\\x1b[2Kb\\u202e.log: a name of other characters than {check.NAME_CHARACTERS}"


def _marked_lines_as_before(lines: list[str], must: list[str]) -> tuple[set[int], tuple[str, ...]]:
    """The page's matching as it was (every line after the last match tried, per must string): the reference."""
    marked, missing, position = set(), [], 0
    for wanted in must:
        hits = [i for i in range(position, len(lines)) if wanted in lines[i]]
        if hits:
            marked.add(hits[0])
            position = hits[0] + 1
        else:
            missing.append(wanted)
    return marked, tuple(missing)


@given(
    st.lists(st.text("ab\n", max_size=4), max_size=8),
    st.lists(st.text("ab\n", max_size=3), max_size=6),
)
@settings(max_examples=200, deadline=None, derandomize=True, database=None)
def test_issue28_must_strings_are_one_search_each_and_mark_what_the_rescan_marked(
    lines: list[str], must: list[str]
) -> None:
    lines = [line.replace("\n", "") for line in lines]
    assert page.marked_lines(lines, must) == _marked_lines_as_before(lines, must)


def test_issue28_unmatched_must_strings_do_not_rescan_the_console() -> None:
    """A 16 MB console with 400 strings never seen was killed at 60 s."""
    lines = ["[    1.000000] a console line, over and over"] * 200_000
    marked, missing = page.marked_lines(lines, [f"never {i}" for i in range(400)])
    assert marked == set() and len(missing) == 400


def test_issue28_the_page_reads_a_console_to_its_budget(tmp_path: Path) -> None:
    """The page kept 5,000 lines of every console with no byte limit (four 60 MiB consoles: 1.1 GB)."""
    console = tmp_path / "c.log"
    console.write_bytes(b"x" * (3 << 20) + b"\n")
    lines, used = page._read_lines(console, Path.read_bytes, page.MAX_CONSOLE_BYTES)
    assert used == page.MAX_CONSOLE_BYTES and sum(map(len, lines)) == page.MAX_CONSOLE_BYTES


def test_issue28_charts_and_series_of_one_console_are_capped() -> None:
    """1,500 chart names made 1,500 matplotlib panels (147 s, 1.08 GB)."""
    text = "".join(f"mmulab: data: c{i} s 1 2\n" for i in range(1500))
    text += "".join(f"mmulab: data: c0 s{i} 1 2\n" for i in range(100))
    found, problems = series.parse_console(text)
    assert len({one.chart for one in found}) == series.MAX_CHARTS
    assert sum(one.chart == "c0" for one in found) == series.MAX_SERIES
    assert {problem.reason for problem in problems} == {series.Reason.CHARTS, series.Reason.MANY_SERIES}


# ---------------------------------------------------------------------------------------------------------------
# The property: any mix of these structures, verified in a subprocess under a resource cap


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def verified_in_a_box(target: Path, tmp: Path) -> subprocess.CompletedProcess[bytes]:
    """`mmulab verify target` in a child under the address-space and CPU caps, TMPDIR in `tmp`."""
    env = {**clean_environment(), "TMPDIR": str(tmp)}
    command = [str(VENV_BIN / "mmulab"), "verify", str(target)]
    return subprocess.run(command, capture_output=True, env=env, preexec_fn=_limits, check=False)


PIECES: dict[str, Callable[[int], bytes]] = {
    **{kind: (lambda n, make=make: make()) for kind, (make, _) in HOSTILE.items()},
    "regular": lambda n: regular(f"r1/f{n}", b"z" * (n % 700)),
    "folder": lambda n: block(f"r1/d{n}", tarfile.DIRTYPE),
    "pax-path": lambda n: pax([(b"path", f"r1/p{n}".encode())]) + regular("r1/ignored"),
    "pax-digits": lambda n: pax([(b"comment", b"7" * 3500)]) + regular(f"r1/g{n}"),
    "hostile-name": lambda n: regular(f"r1/{HOSTILE_TEXT}{n}"),
    "deep": lambda n: regular("r1/" + "/".join(["d"] * 60) + f"/{n}"),
}


def _raw(piece: bytes) -> bytes:
    """A piece's tar blocks (the HOSTILE makers give whole archives: their blocks are taken back out)."""
    if piece[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(piece)[: -2 * tarfile.BLOCKSIZE]
    return piece


@given(st.lists(st.tuples(st.sampled_from(sorted(PIECES)), st.integers(0, 5000)), min_size=1, max_size=12))
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_issue28_any_mix_of_hostile_structures_is_verified_within_the_budget(
    tmp_path_factory: pytest.TempPathFactory, pieces: list[tuple[str, int]]
) -> None:
    """Exit 0 or 1 (never killed by the caps, never a traceback), every line one escaped line, TMPDIR empty."""
    tmp = tmp_path_factory.mktemp("budget")
    target = tmp / "mix.tar.xz"
    target.write_bytes(tar_xz(*(_raw(PIECES[kind](n)) for kind, n in pieces)))
    assert target.stat().st_size < 1 << 20
    scratch = tmp / "scratch"
    scratch.mkdir()
    result = verified_in_a_box(target, scratch)
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    assert result.returncode in (0, 1), (result.returncode, output[-2000:])
    assert "Traceback" not in output
    assert all(line.isprintable() for line in output.splitlines())
    assert result.returncode == 0 or output.count("mmulab: error:") <= 1
    assert list(scratch.iterdir()) == []
