"""`mmulab verify`: a release checked from its own bytes, hostile archives refused before anything is written,
and `--rebuild`'s choice of sources (the slow test rebuilds a published release bit for bit elsewhere)."""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from checkout_copy import copy_checkout, run_doit_in
from conftest import default_root

import mmulab.release
from mmulab import cli
from mmulab.boot.judge import Outcome, Verdict
from mmulab.build import busybox
from mmulab.core.fsutil import remove_tree
from mmulab.core.paths import Layout
from mmulab.core.settings import PROJECT_ROOT, Settings
from mmulab.project.loader import load_project
from mmulab.release import archive as release_archive
from mmulab.release import documents as release_documents
from mmulab.release import figures as release_figures
from mmulab.release import format as release_format
from mmulab.release import rebuild as release_rebuild
from mmulab.release.check import NAME_CHARACTERS

VENV_BIN = Path(sys.executable).parent
MUSL_PATCH = PROJECT_ROOT / "configs" / "patches" / "musl" / "0001-riscv64-add-vfork.patch"
PINNED = {  # this checkout's pins (configs/sources.toml), by origin
    "linux-url": "c92591d896e79ecddbc3319136f0c2f855e832b397de7593f013ad7590a43e53",
    "linux-known": "585a4a074597aefa2b1a68ada83a3184ba351c127544dea80618bbcceaa3961f",
    "busybox": "faeeb244c35a348a334f4a59e44626ee870fb07b6884d68c10ae8bc19f83a694",
    "musl": "7d5b0b6062521e4627e099e4c9dc8248d32a30285e959b7eecaa780cf8cfd4a4",
}
IMAGE = b"\x00kernel image\x01" * 64
BOOT_KEYS = ("case", "demo", "variant", "qemu", "expected", "observed", "passed")
BOOT = ("clone_vm-asm-nommu", "clone_vm", "nommu", "default", "pass", "pass", True)
SOURCE_FILES = {  # fake tarballs: nothing here pins these bytes
    "linux": "sources/linux-source-6.12.tar.xz",
    "busybox": "sources/busybox_1.35.0.orig.tar.bz2",
    "musl": "sources/musl_1.2.3.orig.tar.gz",
}


UNSIGNED = "unsigned: proves integrity, not who published it (a signed release needs --key PUB)"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dumps(document: object) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write_release(root: Path, extra: dict[str, bytes] | None = None) -> Path:
    """A small release in the published format: files, manifest, SBOM, statement, page, run.json and SHA256SUMS
    agreeing (the documents made from the manifest as publish makes them)."""
    files = {
        "nommu/Image": IMAGE,
        "nommu/config": b"CONFIG_MMU=n\n",
        "programs/clone_vm-asm": b"\x7fELF program",
        "boots/clone_vm-asm-nommu.log": b"[    0.000000] Linux version\n",
        "boots/summary.json": b"{}\n",
        "sources/patches/musl/0001-riscv64-add-vfork.patch": MUSL_PATCH.read_bytes(),
        **{path: f"fake {name} tarball".encode() for name, path in SOURCE_FILES.items()},
        **(extra or {}),
    }
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    digests = {path: sha(data) for path, data in sorted(files.items())}
    sources = []
    for name, path in SOURCE_FILES.items():
        patches = []
        if name == "musl":
            patch = "sources/patches/musl/0001-riscv64-add-vfork.patch"
            patches = [{"name": MUSL_PATCH.name, "file": patch, "sha256": digests[patch]}]
        sources.append(
            {"name": name, "version": "1", "file": path, "sha256": digests[path], "license": "MIT", "patches": patches}
        )
    manifest = {
        "format": "mmulab-release/1",
        "release": "r1",
        "project": {"name": "mmulab", "version": "0.1.0", "commit": "", "describe": "", "dirty": False},
        "source_date_epoch": 0,
        "sources": sources,
        "tools": {},
        "configs": {"kernel-nommu": {"fragment_sha256": "", "config_sha256": digests["nommu/config"]}},
        "boots": [dict(zip(BOOT_KEYS, BOOT, strict=True))],
        "demos": [{"name": "clone_vm", "description": "d", "cases": [{"case": BOOT[0], "must": ["Linux"]}]}],
        "files": digests,
    }
    run = {"published_at": "2026-01-02T03:04:05Z", "host": "somewhere", "boot_seconds": {BOOT[0]: 1.5}}
    charts, troubles = release_figures.draw(manifest, lambda p: files.get(p), run["boot_seconds"])  # as publish
    assert not troubles
    for path, svg in charts.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(svg)
    manifest["files"] = dict(sorted({**digests, **{path: sha(svg) for path, svg in charts.items()}}.items()))
    manifest["charts"] = release_figures.record()
    (root / "manifest.json").write_text(dumps(manifest))
    for name, text in release_documents.made_from_manifest(root, manifest).items():  # as publish makes them
        (root / name).write_text(text)
    (root / "provenance.intoto.json").write_text(dumps(release_documents.made_statement(manifest)))
    (root / "run.json").write_text(dumps(run))
    write_sums(root)
    return root


def write_sums(root: Path) -> None:
    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    text = "".join(f"{sha((root / p).read_bytes())}  {p}\n" for p in paths if p != "SHA256SUMS")
    (root / "SHA256SUMS").write_text(text)


def run_verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], list[str]]:
    code = cli.main(["verify", *args])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return write_release(tmp_path / "r1")


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where verify's temporary directories go: the tests check that it is left empty."""
    directory = tmp_path / "scratch"
    directory.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(directory))
    return directory


# --- a release directory ---


def test_a_good_release_verifies_with_the_console_script(release: Path) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "mmulab"), "verify", str(release)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"mmulab: verify: {release}: 16 files agree with SHA256SUMS, manifest.json, sbom.spdx.json, "
        "provenance.intoto.json",
        f"mmulab: verify: {release}: {UNSIGNED}",
    ]
    assert result.stderr == ""
    module = subprocess.run(
        [sys.executable, "-m", "mmulab", "verify", str(release)], capture_output=True, text=True, check=False
    )
    assert (module.returncode, module.stdout) == (0, result.stdout)


def test_a_flipped_byte_is_named(release: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = release / "nommu" / "Image"
    data = bytearray(image.read_bytes())
    data[100] ^= 1
    image.write_bytes(bytes(data))
    code, out, err = run_verify(capsys, str(release))
    assert code == 1
    problems = [line for line in out if not line.startswith("mmulab: verify:")]
    assert problems and all(line.startswith("mismatch: nommu/Image: sha256 ") for line in problems)
    assert {line.rsplit(" says ", 1)[0].rsplit(", ", 1)[1] for line in problems} == {
        "SHA256SUMS",
        "manifest.json",
        "sbom.spdx.json",
        "provenance.intoto.json",
    }
    assert out[-1] == f"mmulab: verify: {release}: 4 problem(s) in 16 files"
    assert err == []


def test_a_missing_file_is_named(release: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (release / "programs" / "clone_vm-asm").unlink()
    code, out, _ = run_verify(capsys, str(release))
    assert code == 1
    assert "missing: programs/clone_vm-asm: SHA256SUMS lists it" in out
    assert all("programs/clone_vm-asm" in line for line in out[:-1])


def test_an_extra_file_is_named(release: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (release / "nommu" / "extra.bin").write_bytes(b"smuggled")
    code, out, _ = run_verify(capsys, str(release))
    assert code == 1
    assert out[:2] == [
        "unexpected: nommu/extra.bin: not in SHA256SUMS",
        "mismatch: manifest.json: files does not list nommu/extra.bin",
    ]


def test_a_manifest_that_lies_is_caught_though_SHA256SUMS_agrees(
    release: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads((release / "manifest.json").read_text())
    manifest["files"]["nommu/config"] = sha(b"CONFIG_MMU=y\n")
    (release / "manifest.json").write_text(dumps(manifest))
    write_sums(release)  # SHA256SUMS vouches for the lying manifest
    code, out, _ = run_verify(capsys, str(release))
    assert code == 1
    assert out[:-1] == [
        f"mismatch: nommu/config: sha256 {sha(b'CONFIG_MMU=n' + bytes([10]))}, manifest.json says "
        f"{sha(b'CONFIG_MMU=y' + bytes([10]))}"
    ]


def test_missing_sbom_and_provenance_are_reported(release: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (release / "sbom.spdx.json").unlink()
    (release / "provenance.intoto.json").unlink()
    write_sums(release)
    code, out, _ = run_verify(capsys, str(release))
    assert code == 1
    assert out[:-1] == ["missing: sbom.spdx.json", "missing: provenance.intoto.json"]


def test_sums_naming_paths_outside_and_fifos_are_problems_not_reads(
    release: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (release / "SHA256SUMS").open("a") as handle:
        handle.write(f"{'0' * 64}  ../../etc/passwd\n")
    os.mkfifo(release / "boots" / "pipe")  # opening it would block forever
    code, out, _ = run_verify(capsys, str(release))
    assert code == 1
    assert "unexpected: boots/pipe: not a regular file" in out
    assert "mismatch: SHA256SUMS: line 16: not '<sha256>  <relative path>': '" + "0" * 64 + "  ../../etc/passwd'" in out


def test_bad_usage_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], release: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["verify", str(tmp_path / "nothing-here")])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["verify", str(release), "--accept-source", "linux"])  # without --rebuild
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr().err.splitlines()[-1] == "mmulab: error: verify: --accept-source only matters with --rebuild"
    )
    code, _, err = run_verify(capsys, str(release), "--rebuild", "--accept-source", "gcc")
    assert (code, err) == (2, ["mmulab: error: --accept-source gcc: the release has no source 'gcc'"])


# --- a release archive ---


def write_tar_xz(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for info, data in members:
            info.size = len(data) if data is not None else 0
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    path.write_bytes(lzma.compress(buffer.getvalue(), format=lzma.FORMAT_XZ))
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    return info


def test_a_good_archive_verifies_and_leaves_nothing(
    release: Path, tmp_path: Path, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    members = []
    for path in sorted(release.rglob("*")):
        info = member(f"r1/{path.relative_to(release).as_posix()}", tarfile.DIRTYPE if path.is_dir() else b"0")
        members.append((info, None if path.is_dir() else path.read_bytes()))
    archive = write_tar_xz(tmp_path / "r1.tar.xz", [(member("r1", tarfile.DIRTYPE), None), *members])
    code, out, err = run_verify(capsys, str(archive))
    assert (code, err) == (0, [])
    assert out == [
        f"mmulab: verify: {archive}: 16 files agree with SHA256SUMS, manifest.json, sbom.spdx.json, "
        "provenance.intoto.json",
        f"mmulab: verify: {archive}: {UNSIGNED}",
    ]
    assert list(scratch.iterdir()) == []


HOSTILE: dict[str, Callable[[], list[tuple[tarfile.TarInfo, bytes | None]]]] = {
    "absolute": lambda: [(member("/tmp/mmulab-verify-owned"), b"x")],
    "dotdot": lambda: [(member("r1/../../owned"), b"x")],
    "symlink-out": lambda: [(member("r1/link", tarfile.SYMTYPE, "../../outside"), None)],
    "symlink-absolute": lambda: [(member("r1/link", tarfile.SYMTYPE, "/etc"), None)],
    "symlink-through-symlink": lambda: [
        (member("r1/here", tarfile.SYMTYPE, "."), None),
        (member("r1/up", tarfile.SYMTYPE, "here/../.."), None),  # lexically r1/.. but really r1/../..
    ],
    "behind-symlink": lambda: [
        (member("r1/sub", tarfile.DIRTYPE), None),
        (member("r1/d", tarfile.SYMTYPE, "sub"), None),
        (member("r1/d/file"), b"x"),
    ],
    "hardlink-out": lambda: [(member("r1/hard", tarfile.LNKTYPE, "../etc/passwd"), None)],
    "hardlink-absolute": lambda: [(member("r1/hard", tarfile.LNKTYPE, "/etc/passwd"), None)],
    "device": lambda: [(member("r1/null", tarfile.CHRTYPE), None)],
    "fifo": lambda: [(member("r1/pipe", tarfile.FIFOTYPE), None)],
    "bomb": lambda: [(member("r1/a"), bytes(40_000)), (member("r1/zeros"), bytes(3 << 20))],
    "many-members": lambda: [(member(f"r1/f{i}"), b"") for i in range(60)],
    "long-header": lambda: [(member("r1/" + "n" * 5000), b"x")],
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_hostile_archive_is_refused_before_anything_is_written(
    kind: str, tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(release_archive, "MAX_TOTAL_BYTES", 1 << 20)
    monkeypatch.setattr(release_archive, "MAX_MEMBERS", 50)
    monkeypatch.setattr(release_archive, "MAX_HEADER_BYTES", 4096)
    target = tmp_path / "target"
    target.mkdir()
    good = [(member("r1/ok"), b"fine")]
    archive = write_tar_xz(target / "evil.tar.xz", [*good, *HOSTILE[kind]()])
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, out, err = run_verify(capsys, str(archive))
    assert code == 1
    assert out == []
    assert len(err) == 1 and err[0].startswith("mmulab: error: evil.tar.xz: refusing archive"), err
    assert err[0].endswith("nothing was written")
    assert list(scratch.iterdir()) == []  # no temporary extraction directory was even made
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not Path("/tmp/mmulab-verify-owned").exists()


def test_the_xz_stream_itself_is_capped(tmp_path: Path) -> None:
    """What comes out of xz is counted while streaming: a bomb is refused without holding its bytes."""
    bomb = tmp_path / "bomb.xz"
    bomb.write_bytes(lzma.compress(bytes(8 << 20), format=lzma.FORMAT_XZ))
    assert bomb.stat().st_size < 4096
    with bomb.open("rb") as handle:
        stream = release_archive._CappedXz(handle, 1 << 20, bomb.name)
        with pytest.raises(release_rebuild.UserError, match="decompresses to more than 1048576 bytes"):
            while stream.read(64 << 10):
                pass
        assert stream.total <= (1 << 20) + (64 << 10)


def test_not_an_xz_archive_is_one_line(tmp_path: Path, scratch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "r1.tar.xz"
    archive.write_bytes(b"not xz at all" * 100)
    code, out, err = run_verify(capsys, str(archive))
    assert (code, out) == (1, [])
    assert len(err) == 1 and "refusing archive: not valid xz data" in err[0]
    assert list(scratch.iterdir()) == []


# --- --rebuild: which sources may be used ---


def test_every_origin_pins_including_known_package_versions() -> None:
    checkout = load_project(Settings.from_environment({}))
    manifest = {
        "sources": [
            {"name": "linux", "file": "sources/linux-source-6.12.tar.xz", "sha256": PINNED["linux-known"]},
            {"name": "busybox", "file": "sources/busybox_1.35.0.orig.tar.bz2", "sha256": PINNED["busybox"]},
            {"name": "musl", "file": "sources/musl_1.2.3.orig.tar.gz", "sha256": PINNED["musl"]},
        ]
    }
    seeds, refusals = release_rebuild.plan_seeds(manifest, checkout, ())
    assert refusals == []
    assert [(s.name, s.cache_name, s.pinned) for s in seeds] == [
        ("busybox", "busybox_1.35.0.orig.tar.bz2", True),  # the origin the release's file came from
        ("linux", "linux-source-6.12.tar.xz", True),  # a known version of the local-file origin
        ("musl", "musl_1.2.3.orig.tar.gz", True),
    ]
    manifest["sources"][0] |= {"file": "sources/linux-6.12.80.tar.xz", "sha256": PINNED["linux-url"]}
    seeds, refusals = release_rebuild.plan_seeds(manifest, checkout, ())
    assert (refusals, seeds[1].cache_name) == ([], "linux-6.12.80.tar.xz")
    del manifest["sources"][2]
    _, refusals = release_rebuild.plan_seeds(manifest, checkout, ())
    assert refusals == ["missing: sources/musl-1.2.3.tar.gz: this checkout builds source musl"]


def test_rebuild_refuses_sources_this_checkout_does_not_pin(
    release: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_build(env: dict[str, str]) -> int:
        raise AssertionError("the refusal must come before any build")

    monkeypatch.setattr(release_rebuild, "run_pipeline", no_build)
    code, out, err = run_verify(capsys, str(release), "--rebuild", "--accept-source", "musl")
    assert (code, err) == (1, [])
    refused = [line for line in out if line.startswith("refused:")]
    assert [line.split()[2] for line in refused] == ["busybox", "linux"]
    assert refused[1] == (
        f"refused: source linux (sources/linux-source-6.12.tar.xz, sha256 {sha(b'fake linux tarball')}): not pinned "
        "by this checkout's configs/kernels.toml (series 6.12); check it yourself, then --accept-source linux uses it"
    )
    assert out[-1] == f"mmulab: verify: {release}: rebuild not attempted: 2 problem(s)"


def fake_publisher(monkeypatch: pytest.MonkeyPatch, files: Callable[[Path], dict[str, Path]]) -> None:
    """A stand-in for mmulab.release.publish (its real release_files needs a real build)."""
    module = types.SimpleNamespace(
        VOLATILE=("run.json", "boots/", "charts/"), release_files=lambda project, layout: files(layout.root)
    )
    monkeypatch.setitem(sys.modules, "mmulab.release.publish", module)
    monkeypatch.setattr(mmulab.release, "publish", module, raising=False)


BUILT = ("nommu/Image", "nommu/config", "programs/clone_vm-asm")  # what the stand-in pipeline builds


def built_from(tarballs: dict[str, bytes]) -> dict[str, bytes]:
    """The stand-in pipeline's outputs: a deterministic function of the source tarballs' bytes (the kernel and
    its config from linux, the program from musl), as a real build's outputs are of its sources."""
    linux, musl = tarballs["linux"], tarballs["musl"]
    return {
        "nommu/Image": b"\x00kernel image\x01" + hashlib.sha512(linux).digest() * 8,
        "nommu/config": b"CONFIG_MMU=n\n# from " + sha(linux).encode() + b"\n",
        "programs/clone_vm-asm": b"\x7fELF program linked against " + sha(musl).encode(),
    }


def fake_tarballs(changed: str = "") -> dict[str, bytes]:
    """The release's source tarballs (write_release's bytes); `changed` names one whose bytes differ."""
    return {name: f"fake {name} tarball{' (changed)' if name == changed else ''}".encode() for name in SOURCE_FILES}


def write_built_release(root: Path, tarballs: dict[str, bytes], built: dict[str, bytes]) -> Path:
    """A release that ships `tarballs` as its sources and `built` as its outputs, every sum agreeing."""
    return write_release(root, {**{SOURCE_FILES[n]: data for n, data in tarballs.items()}, **built})


def test_accepted_sources_seed_an_offline_cache_and_the_rebuild_is_compared(
    release: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import requests

    seen: dict[str, object] = {}

    def pipeline(env: dict[str, str]) -> int:
        """Instead of doit all: fetch every source as the pipeline would (offline), then 'build' the outputs
        from the fetched tarballs' bytes (never from the release's own outputs)."""
        from mmulab.build.fetch import fetch

        monkeypatch.setattr(requests, "Session", lambda: pytest.fail("a network fetch was tried"))
        project = load_project(Settings.from_environment(env))
        fetched = {name: fetch(project, name) for name in project.sources}
        seen["fetched"] = {name: (f.origin, Path(f.path).name) for name, f in fetched.items()}
        seen["env"] = {k: env[k] for k in ("MMULAB_MIRRORS", "MMULAB_APT_SOURCES", "SOURCE_DATE_EPOCH")}
        build = default_root(Path(env["MMULAB_BUILD_DIR"]))
        for path, data in built_from({name: Path(f.path).read_bytes() for name, f in fetched.items()}).items():
            (build / path).parent.mkdir(parents=True, exist_ok=True)
            (build / path).write_bytes(data)
        (build / "boots").mkdir()
        (build / "boots" / "clone_vm-asm-nommu.log").write_text("another boot, other timestamps\n")
        return 0

    def rebuilt(root: Path) -> dict[str, Path]:
        files = {name: root / name for name in [*BUILT, "boots/clone_vm-asm-nommu.log"]}
        files["boots/summary.json"] = root / "nonexistent"  # volatile: never compared
        files["sources/patches/musl/0001-riscv64-add-vfork.patch"] = MUSL_PATCH
        for name, path in SOURCE_FILES.items():
            files[path] = root.parent.parent / "downloads" / name / Path(path).name  # root: <work>/build/linux-<series>
        return files

    fake_publisher(monkeypatch, rebuilt)
    monkeypatch.setattr(release_rebuild, "run_pipeline", pipeline)
    monkeypatch.setattr(release_rebuild, "compare_facts", lambda manifest, project, layout: [])  # no boots here
    accept = [arg for name in ("linux", "busybox", "musl") for arg in ("--accept-source", name)]
    tarballs = fake_tarballs()
    write_built_release(release, tarballs, built_from(tarballs))
    code, out, err = run_verify(capsys, str(release), "--rebuild", *accept)
    assert err == []
    assert code == 0, out
    assert seen["env"] == {"MMULAB_MIRRORS": "", "MMULAB_APT_SOURCES": "/nonexistent", "SOURCE_DATE_EPOCH": "0"}
    assert seen["fetched"] == {
        "linux": ("download cache", "linux-source-6.12.tar.xz"),
        "busybox": ("download cache", "busybox_1.35.0.orig.tar.bz2"),
        "musl": ("download cache", "musl_1.2.3.orig.tar.gz"),
    }
    used = [line for line in out if line.startswith("mmulab: verify: source ")]
    assert [line.split()[3] for line in used] == ["busybox:", "linux:", "musl:"]
    assert all(line.endswith("NOT pinned here; accepted with --accept-source") for line in used)
    # 3 built files, the patch and 3 tarballs; the boot log (volatile) and summary.json are not compared.
    assert out[-1] == f"mmulab: verify: {release}: rebuilt bit for bit: 7 files identical"
    assert list(scratch.iterdir()) == []  # the temporary build and download directories are gone

    # A release whose musl tarball is not the one its program was built from, all its sums agreeing: the
    # rebuild from the shipped tarball links another program, and verify names exactly that file.
    other = fake_tarballs(changed="musl")
    write_built_release(release, other, built_from(tarballs))
    code, out, _ = run_verify(capsys, str(release), "--rebuild", *accept)
    assert code == 1
    program = "programs/clone_vm-asm"
    assert [line for line in out if line.startswith("mismatch:")] == [
        f"mismatch: {program}: the rebuild made {sha(built_from(other)[program])}, the release has "
        f"{sha(built_from(tarballs)[program])}"
    ]
    assert out[-1] == f"mmulab: verify: {release}: rebuild does not match: 1 problem(s)"

    forged = built_from(tarballs)["nommu/Image"][:-1] + b"X"  # a kernel that its sources do not build
    write_built_release(release, tarballs, {**built_from(tarballs), "nommu/Image": forged})
    code, out, _ = run_verify(capsys, str(release), "--rebuild", *accept)
    assert code == 1
    assert [line for line in out if line.startswith("mismatch:")] == [
        f"mismatch: nommu/Image: the rebuild made {sha(built_from(tarballs)['nommu/Image'])}, the release has "
        f"{sha(forged)}"
    ]


def test_the_checkout_patches_must_be_the_release_patches(
    release: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads((release / "manifest.json").read_text())
    manifest["sources"][2]["patches"][0]["sha256"] = "0" * 64
    problems = release_rebuild.check_patches(manifest, load_project(Settings.from_environment({})))
    assert [p.line() for p in problems] == [
        "mismatch: sources/patches/musl/0001-riscv64-add-vfork.patch: this checkout's "
        f"configs/patches/musl/0001-riscv64-add-vfork.patch is {sha(MUSL_PATCH.read_bytes())}"
    ]
    manifest["sources"][2]["patches"] = []
    problems = release_rebuild.check_patches(manifest, load_project(Settings.from_environment({})))
    assert [p.line() for p in problems] == [
        "missing: sources/patches/musl/0001-riscv64-add-vfork.patch: this checkout applies "
        "configs/patches/musl/0001-riscv64-add-vfork.patch to musl"
    ]


def test_the_manifest_boots_and_busybox_fragments_are_compared_with_the_rebuild(tmp_path: Path) -> None:
    project = load_project(Settings.from_environment({}))
    layout = Layout(tmp_path)
    boots = []
    for case in project.boots.values():
        observed = Outcome(case.expect)
        Verdict(
            case.name, case.demo, case.build, case.variant, case.qemu_options, case.expect, observed, True, 1.0
        ).write(layout.verdict(case.name))
        boots.append({"case": case.name, "observed": observed.value, "passed": True})
    configs = {}
    for variant in project.variants:
        fragment = busybox.build_dir(layout, project.variants[variant]) / "fragment.config"
        if not fragment.is_file():  # one per busybox build: the variants of one flavour share it
            fragment.parent.mkdir(parents=True)
            fragment.write_text(f"CONFIG_{variant.upper()}=y\n")
        configs[f"busybox-{variant}"] = {"fragment_sha256": sha(fragment.read_bytes())}
    manifest = {"boots": boots, "configs": configs}
    assert release_rebuild.compare_facts(manifest, project, layout) == []
    boots[0]["observed"] = "hang" if boots[0]["observed"] == "pass" else "pass"
    configs["busybox-nommu"]["fragment_sha256"] = "0" * 64
    del boots[1]
    lines = [p.line() for p in release_rebuild.compare_facts(manifest, project, layout)]
    assert len(lines) == 3 and all(line.startswith("mismatch: manifest.json: ") for line in lines)
    assert lines[0].startswith("mismatch: manifest.json: configs.busybox-nommu.fragment_sha256 0000")
    assert f"boots: {boots[0]['case']}: observed '{boots[0]['observed']}', the rebuild " in "\n".join(lines)


# --- the real thing ---


@pytest.mark.slow
def test_published_release_rebuilds_bit_for_bit_elsewhere(tmp_path: Path) -> None:
    """As a user does: `doit publish` in a checkout's own build/ (the default build directory, inside the
    checkout, compile cache on), the release copied to another path, then `mmulab verify --rebuild` there with
    no MMULAB_* setting (its build directory a temporary one, outside any checkout, through the compile cache):
    every file the release holds, but the boots' consoles, the charts drawn from them and what describes the rest, is
    rebuilt identical."""
    cache = {k: v for k, v in os.environ.items() if k == "MMULAB_CCACHE_DIR"}  # the session's compile cache
    checkout = copy_checkout(tmp_path / "publisher" / "mmulab")
    env = {"MMULAB_RELEASE": "verify-test", "MMULAB_ALLOW_DIRTY": "1", **cache}
    result = run_doit_in(checkout, ["publish"], env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    published = checkout / "artifacts" / "verify-test"
    assert (default_root(checkout / "build") / "boots").is_dir()  # built in the checkout's own build/
    elsewhere = tmp_path / "elsewhere" / "deeper" / "verify-test"
    shutil.copytree(published, elsewhere)
    archive = checkout / "artifacts" / "verify-test.tar.xz"
    quick = subprocess.run([str(VENV_BIN / "mmulab"), "verify", str(archive)], capture_output=True, text=True)
    assert quick.returncode == 0, quick.stdout + quick.stderr
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MMULAB_")}
    rebuild = subprocess.run(
        [str(VENV_BIN / "mmulab"), "verify", "--rebuild", str(elsewhere)],
        capture_output=True,
        text=True,
        env={**clean, **cache},
        cwd=tmp_path,
        timeout=3600,
        check=False,
    )
    lines = rebuild.stdout.splitlines()  # verify's own lines only (the pipeline's output goes to stderr)
    assert rebuild.returncode == 0, "\n".join([*lines, "--- stderr (end) ---", *rebuild.stderr.splitlines()[-15:]])
    summed = [line.split("  ", 1)[1] for line in (elsewhere / "SHA256SUMS").read_text().splitlines()]
    volatile = ("boots/", release_format.CHARTS)  # the consoles, and the charts drawn from them
    compared = [path for path in summed if path not in release_format.METADATA and not path.startswith(volatile)]
    programs = [path for path in compared if path.startswith("programs/")]
    assert len(programs) >= 18 and sum(path.endswith(".cpio") for path in compared) >= 30
    assert lines[-1] == f"mmulab: verify: {elsewhere}: rebuilt bit for bit: {len(compared)} files identical"
    assert sum(line.startswith("mmulab: verify: source ") for line in lines) == 3


# --- assertions that kill surviving mutants of verify's checks (bench/bench_mutation.py) ---


def scanned(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> str:
    """What verify's per-archive rules say of these members, one after another: '' when accepted."""
    scan = release_archive._Scan("a.tar.xz")
    try:
        for info, data in members:
            info.size = len(data) if data is not None else 0
            scan.check(info)
    except release_rebuild.UserError as refused:
        return str(refused).removeprefix("a.tar.xz: ").removesuffix("; nothing was written")
    return ""


SCAN_REASONS = {
    "absolute": "refusing archive member '/tmp/mmulab-verify-owned': it escapes the release (absolute or `..` path)",
    "dotdot": "refusing archive member 'r1/../../owned': it escapes the release (absolute or `..` path)",
    "symlink-out": "refusing archive member 'r1/link': its symlink to '../../outside' points out of the release",
    "symlink-absolute": "refusing archive member 'r1/link': its symlink to '/etc' points out of the release",
    "symlink-through-symlink": (
        "refusing archive member 'r1/up': its target 'here/../..' goes through the symlink 'r1/here'"
    ),
    "behind-symlink": "refusing archive member 'r1/d/file': it lies behind the symlink 'r1/d'",
    "hardlink-out": "refusing archive member 'r1/hard': its hard link to '../etc/passwd' points out of the release",
    "hardlink-absolute": (
        "refusing archive member 'r1/hard': its hard link to '/etc/passwd' points out of the release"
    ),
    "device": ("refusing archive member 'r1/null': a device node, fifo or other special file (a release holds files)"),
    "fifo": "refusing archive member 'r1/pipe': a device node, fifo or other special file (a release holds files)",
    "bomb": "refusing archive: its members hold more than 1048576 bytes (a decompression bomb?)",
    "many-members": "refusing archive: more than 50 members",
}


@pytest.mark.parametrize("kind", list(SCAN_REASONS))
def test_each_hostile_member_is_refused_for_its_own_reason(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(release_archive, "MAX_TOTAL_BYTES", 1 << 20)
    monkeypatch.setattr(release_archive, "MAX_MEMBERS", 50)
    assert scanned([(member("r1/ok"), b"fine"), *HOSTILE[kind]()]) == SCAN_REASONS[kind]


def test_what_a_release_archive_may_hold_and_the_limits_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    inside = [
        (member("r1", tarfile.DIRTYPE), None),
        (member("./r1/sub/", tarfile.DIRTYPE), None),
        (member("r1/sub/file"), b"data"),
        (member("r1/same", tarfile.LNKTYPE, "r1/sub/file"), None),
        (member("r1/up", tarfile.SYMTYPE, "sub/../sub/file"), None),
        (member("r1/sub/back", tarfile.SYMTYPE, "../same"), None),
    ]
    assert scanned(inside) == ""
    assert scanned([(member("r1/a"), b"x"), (member("./r1/a"), b"y")]) == (
        "refusing archive member './r1/a': it appears twice"
    )
    assert scanned([(member("r1/hard", tarfile.LNKTYPE, "r1/later"), None), (member("r1/later"), b"x")]) == (
        "refusing archive member 'r1/hard': its hard link to 'r1/later' is not to a file before it"
    )
    assert scanned([(member("r1/dir", tarfile.DIRTYPE), None), (member("r1/h", tarfile.LNKTYPE, "r1/dir"), None)]) == (
        "refusing archive member 'r1/h': its hard link to 'r1/dir' is not to a file before it"
    )
    assert scanned([(member("."), b"x")]) == "refusing archive member '.': a file without a name"
    assert scanned([(member(".", tarfile.DIRTYPE), None)]) == ""
    monkeypatch.setattr(release_archive, "MAX_MEMBERS", 2)
    assert scanned([(member("a"), b""), (member("b"), b"")]) == ""  # exactly the limit is allowed
    assert scanned([(member(n), b"") for n in "abc"]) == "refusing archive: more than 2 members"
    monkeypatch.setattr(release_archive, "MAX_TOTAL_BYTES", 4)
    assert scanned([(member("a"), b"12"), (member("b"), b"34")]) == ""
    assert scanned([(member("a"), b"12"), (member("b"), b"345")]).startswith("refusing archive: its members hold")


def test_the_rebuilt_files_are_compared_one_by_one(tmp_path: Path) -> None:
    def files(folder: str, contents: dict[str, bytes]) -> dict[str, Path]:
        for name, data in contents.items():
            (tmp_path / folder / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / folder / name).write_bytes(data)
        return {name: tmp_path / folder / name for name in contents}

    released = files(
        "release", {"a": b"same", "b": b"1234", "c": b"only here", "boots/x.log": b"one", "SHA256SUMS": b"s"}
    )
    rebuilt = files("rebuild", {"a": b"same", "b": b"1235", "d": b"only rebuilt", "boots/x.log": b"two"})
    rebuilt["e"] = tmp_path / "rebuild" / "never made"
    released["e"] = released["a"]
    lines = [problem.line() for problem in release_rebuild.compare_rebuilt(released, rebuilt, ("boots/",))]
    assert lines == [
        f"mismatch: b: the rebuild made {sha(b'1235')}, the release has {sha(b'1234')}",
        "unexpected: c: the rebuild does not make it",
        "missing: d: the rebuild makes it, the release lacks it",
        f"mismatch: e: the rebuild made nothing, the release has {sha(b'same')}",
    ]
    longer = files("longer", {"a": b"same and more"})
    assert [p.line() for p in release_rebuild.compare_rebuilt({"a": released["a"]}, longer, ())] == [
        f"mismatch: a: the rebuild made {sha(b'same and more')}, the release has {sha(b'same')}"
    ]
    assert release_rebuild.compare_rebuilt({"a": released["a"]}, {"a": rebuilt["a"]}, ()) == []


def test_patches_the_release_has_and_the_checkout_does_not_or_in_another_order() -> None:
    project = load_project(Settings.from_environment({}))
    patch = {"name": MUSL_PATCH.name, "file": "sources/patches/musl/0001-riscv64-add-vfork.patch"}
    good = {"name": "musl", "patches": [patch | {"sha256": sha(MUSL_PATCH.read_bytes())}]}
    assert (
        release_rebuild.check_patches({"sources": [good, "not a source", {"name": "gcc", "patches": []}]}, project)
        == []
    )
    extra = {"name": "0002-more.patch", "file": "sources/patches/musl/0002-more.patch", "sha256": "1" * 64}
    first = {**good, "patches": [extra, *good["patches"]]}
    assert [p.line() for p in release_rebuild.check_patches({"sources": [first]}, project)] == [
        "unexpected: sources/patches/musl/0002-more.patch: this checkout does not patch musl with it",
        "mismatch: manifest.json: source musl: patches in another order",
    ]


# --- issue 18's defects, each a regression test ---


def good_archive(release: Path, tmp_path: Path) -> Path:
    """The release as the published `.tar.xz` (one `r1/` folder), as test_a_good_archive_verifies... makes it."""
    members = [(member("r1", tarfile.DIRTYPE), None)]
    for path in sorted(release.rglob("*")):
        info = member(f"r1/{path.relative_to(release).as_posix()}", tarfile.DIRTYPE if path.is_dir() else b"0")
        members.append((info, None if path.is_dir() else path.read_bytes()))
    return write_tar_xz(tmp_path / "r1.tar.xz", members)


def test_an_archive_cut_short_is_refused_though_its_tar_end_came_first(
    release: Path, tmp_path: Path, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 5: tar stops at its end marker, so the last 40 bytes (xz's index and footer) were never read."""
    archive = good_archive(release, tmp_path)
    archive.write_bytes(archive.read_bytes()[:-40])
    code, out, err = run_verify(capsys, str(archive))
    assert (code, out) == (1, [])
    assert len(err) == 1 and "refusing archive:" in err[0] and "xz data" in err[0], err
    assert list(scratch.iterdir()) == []


def test_zero_padding_between_xz_streams_is_dropped_as_it_is_read(release: Path, tmp_path: Path) -> None:
    """Defect 4: zero padding between two streams (legal xz) was gathered and scanned again and again (quadratic;
    256 MiB took 124 s and 549 MB). Now it is dropped as it is read: the reader's peak does not grow with it
    (about 13 MB here with 16 or 48 MiB of padding, decoder and chunks; it was twice the padding)."""
    import tracemalloc

    padding = 32 << 20
    plain = good_archive(release, tmp_path).read_bytes()
    tar = lzma.decompress(plain)
    half = len(tar) // 2
    padded = tmp_path / "padded.tar.xz"
    padded.write_bytes(
        lzma.compress(tar[:half], format=lzma.FORMAT_XZ)
        + bytes(16 << 20)
        + lzma.compress(tar[half:], format=lzma.FORMAT_XZ)
    )
    chunks = []
    tracemalloc.start()
    try:
        with padded.open("rb") as handle:
            stream = release_archive._CappedXz(handle, 1 << 30, padded.name)
            while data := stream.read(64 << 10):
                chunks.append(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert b"".join(chunks) == tar
    assert peak < padding // 2, f"peak {peak} bytes while reading past {padding} bytes of padding"


def test_a_manifest_nested_too_deeply_is_one_problem(release: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Defect 2: 100,000 `[` made json raise RecursionError, which only ValueError was caught for: a traceback."""
    (release / "manifest.json").write_text("[" * 100_000)
    write_sums(release)
    code, out, err = run_verify(capsys, str(release))
    assert (code, err) == (1, [])
    assert "mismatch: manifest.json: not valid JSON (nested too deeply)" in out


def test_a_source_path_written_with_dot_slash_is_read_as_the_checks_read_it() -> None:
    """Defect 3: the checks normalized `./sources/...`, plan_seeds kept it raw, and the rebuild hit a KeyError."""
    checkout = load_project(Settings.from_environment({}))
    manifest = {
        "sources": [
            {"name": "busybox", "file": "./sources/busybox_1.35.0.orig.tar.bz2", "sha256": PINNED["busybox"]},
            {"name": "linux", "file": "sources/../../linux-source-6.12.tar.xz", "sha256": PINNED["linux-known"]},
            {"name": "musl", "file": "sources//musl_1.2.3.orig.tar.gz", "sha256": PINNED["musl"]},
        ]
    }
    seeds, refusals = release_rebuild.plan_seeds(manifest, checkout, ())
    assert [(s.name, s.release_path) for s in seeds] == [
        ("busybox", "sources/busybox_1.35.0.orig.tar.bz2"),
        ("musl", "sources/musl_1.2.3.orig.tar.gz"),
    ]
    assert refusals == [
        "refused: source linux (sources/../../linux-source-6.12.tar.xz): not a path inside the release",
    ]


CLIMB = [(f"r1/l{n}", tarfile.SYMTYPE, f"l{n - 1}/..") for n in range(2, 7)]
ARCHIVE_LINK_TRICKS = {
    # the tarball (defect 1): each `lN -> lN-1/..` is lexically `.`, really one level up
    "links-that-climb": (
        [("r1/l1", tarfile.SYMTYPE, "."), *CLIMB, ("r1/x", tarfile.SYMTYPE, "l6/outside/f"), ("r1/x", b"0", "o")],
        "refusing archive member 'r1/l2': its target 'l1/..' goes through the symlink 'r1/l1'",
    ),
    "links-that-climb-made-backwards": (
        [*reversed(CLIMB), ("r1/l1", tarfile.SYMTYPE, "."), ("r1/x", tarfile.SYMTYPE, "l6/outside/f")],
        "refusing archive member 'r1/l5': the target of an earlier symlink goes through it",
    ),
    "file-over-an-absolute-link": (
        [("r1/x", tarfile.SYMTYPE, "{outside}/victim"), ("r1/x", b"0", "o")],
        "refusing archive member 'r1/x': its symlink to '{outside}/victim' points out of the release",
    ),
    "file-over-a-link-spelled-otherwise": (
        [("r1/sub/f", b"0", "in"), ("r1/x", tarfile.SYMTYPE, "sub/f"), ("r1/./x", b"0", "o")],
        "refusing archive member 'r1/./x': it appears twice",
    ),
    "a-folder-then-a-link-in-its-place": (
        [("r1/d/f", b"0", "in"), ("r1/d", tarfile.SYMTYPE, "sub")],
        "refusing archive member 'r1/d': it replaces the directory 'r1/d'",
    ),
}


def crafted(info: tuple[str, bytes, str], outside: Path) -> tuple[tarfile.TarInfo, bytes | None]:
    name, kind, text = info
    if kind == b"0":
        return member(name), text.encode()
    return member(name, kind, text.format(outside=outside)), None


@pytest.mark.parametrize("trick", list(ARCHIVE_LINK_TRICKS))
def test_an_archive_member_is_never_written_through_a_link_made_earlier(
    trick: str, tmp_path: Path, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 1 in verify's reader: refused in the first pass, and each member is refused by the per-member
    rules alone, before it is written (they needed a last pass over all members: the second pass, which
    extracts, relied on tarfile's filter)."""
    members, refusal = ARCHIVE_LINK_TRICKS[trick]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"precious\n")
    tricks = [crafted(info, outside) for info in members]
    archive = write_tar_xz(tmp_path / "evil.tar.xz", [(member("r1/ok"), b"fine"), *tricks])
    code, out, err = run_verify(capsys, str(archive))
    expected = refusal.format(outside=outside)
    assert (code, out, err) == (1, [], [f"mmulab: error: evil.tar.xz: {expected}; nothing was written"])
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert (outside / "victim").read_bytes() == b"precious\n"
    scan, checked = release_archive._Scan("a.tar.xz"), 0
    with pytest.raises(release_rebuild.UserError, match="refusing archive member"):
        for info, data in tricks:
            info.size = len(data) if data is not None else 0
            scan.check(info)
            checked += 1
    assert members[checked][0] in expected, "refused later than the member that breaks the rules"


@pytest.fixture
def temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """TMPDIR (and tempfile's cached choice) pointed at a folder of the test: it must stay empty. What a failed
    test leaves there is removed after it (pytest's own cleanup of old runs is shutil.rmtree: too deep for it)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr("tempfile.tempdir", str(folder))
    yield folder
    remove_tree(folder)


DEEP = 1_200


def test_a_release_folder_1200_levels_deep_is_one_problem(
    release: Path, temporary: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 2: os.walk recursed (RecursionError, a traceback). The listing goes folder by folder and stops
    at MAX_DEPTH, naming the path."""
    folder = release
    for _ in range(DEEP):  # one by one: Path.mkdir(parents=True) recurses too
        folder /= "d"
        folder.mkdir()
    (folder / "f").write_bytes(b"deep")
    try:
        code, out, err = run_verify(capsys, str(release))
    finally:
        remove_tree(release / "d")  # pytest's cleanup of old runs could not
    deep = "/".join(["d"] * (release_archive.MAX_DEPTH + 1))
    assert (code, err) == (1, [])
    assert out == [
        f"unexpected: {deep}: deeper than 64 levels (a release is shallow)",
        f"mmulab: verify: {release}: 1 problem(s) in 16 files",
    ]
    assert list(temporary.iterdir()) == []


def deep_archive(release: Path, path: Path) -> Path:
    folders = [(member("r1/" + "/".join(["d"] * depth), tarfile.DIRTYPE), None) for depth in range(1, DEEP + 1)]
    bottom = (member("r1/" + "/".join(["d"] * DEEP) + "/f"), b"deep")
    files = [
        (member(f"r1/{p.relative_to(release).as_posix()}"), p.read_bytes()) for p in release.rglob("*") if p.is_file()
    ]
    return write_tar_xz(path, [*files, *folders, bottom])


def test_an_archive_1200_levels_deep_is_refused_before_extracting(
    release: Path, tmp_path: Path, temporary: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 2: extracted, its listing recursed (a traceback) and shutil.rmtree(ignore_errors=True) could not
    remove it (RecursionError is no OSError): 1,503 folders were left in TMPDIR. The scan refuses it first."""
    archive = deep_archive(release, tmp_path / "deep.tar.xz")
    code, out, err = run_verify(capsys, str(archive))
    deep = "r1/" + "/".join(["d"] * release_archive.MAX_DEPTH)
    assert (code, out) == (1, [])
    assert err == [
        f"mmulab: error: deep.tar.xz: refusing archive member {deep!r}: deeper than 64 levels (a release is a "
        "shallow tree); nothing was written"
    ]
    assert list(temporary.iterdir()) == []


def test_the_temporary_folder_is_removed_however_deep_and_locked(
    release: Path, tmp_path: Path, temporary: Path
) -> None:
    """Defect 2, the cleanup on its own: shutil.rmtree(ignore_errors=True) recursed, and its RecursionError is
    no OSError: the extracted folder was left in TMPDIR. Whatever ends up inside (1,200 levels, folders without
    write permission), it is removed."""
    archive = good_archive(release, tmp_path)
    with release_archive.unpacked(archive) as root:
        assert sorted(temporary.iterdir()) == [root.parent.parent]
        descriptor = os.open(root, os.O_RDONLY)
        for _ in range(DEEP):
            os.mkdir("d", dir_fd=descriptor)
            os.close(os.open("f", os.O_CREAT | os.O_WRONLY, dir_fd=descriptor))
            child = os.open("d", os.O_RDONLY, dir_fd=descriptor)
            os.chmod(descriptor, 0o500)
            os.close(descriptor)
            descriptor = child
        os.close(descriptor)
    assert list(temporary.iterdir()) == []


def chained_headers(path: Path, kind: bytes, count: int) -> Path:
    """An archive whose one member comes after `count` metadata headers in a row (tarfile recurses per header)."""
    blocks = b""
    for index in range(count):
        if kind == tarfile.GNUTYPE_LONGNAME:
            body = f"r1/name-{index}\0".encode()
        else:
            record = f" path=r1/name-{index}\n"
            size = len(record) + len(str(len(record)))
            size += len(str(size)) - len(str(len(record)))
            body = f"{size}{record}".encode()
        header = tarfile.TarInfo("././@LongLink" if kind == tarfile.GNUTYPE_LONGNAME else "PaxHeader")
        header.type, header.size = kind, len(body)
        blocks += header.tobuf(tarfile.GNU_FORMAT) + body + bytes(-len(body) % 512)
    last = member("r1/f")
    last.size = 1
    blocks += last.tobuf(tarfile.GNU_FORMAT) + b"x" + bytes(511) + bytes(1024)
    path.write_bytes(lzma.compress(blocks, format=lzma.FORMAT_XZ))
    return path


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE], ids=["gnu-long-name", "pax"])
def test_thousands_of_chained_metadata_headers_are_one_line(
    kind: bytes, tmp_path: Path, temporary: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 2: tarfile reads the member after a pax or GNU long-name header by recursing; 3,000 in a row made
    a RecursionError (a traceback). A few in a row are what tar writes, and are read."""
    code, out, err = run_verify(capsys, str(chained_headers(tmp_path / "chain.tar.xz", kind, 3_000)))
    assert (code, out) == (1, [])
    assert err == [
        "mmulab: error: chain.tar.xz: refusing archive: more than 8 metadata headers (pax or GNU long name) in a "
        "row; nothing was written"
    ]
    assert list(temporary.iterdir()) == []
    few = chained_headers(tmp_path / "few.tar.xz", kind, release_archive.MAX_HEADER_CHAIN)
    assert release_archive.scan_archive(few) == 1


def test_names_no_stdout_can_print_are_escaped_and_named(release: Path, tmp_path: Path) -> None:
    """Defect 2: a manifest key "\\ud800" (a lone surrogate, valid JSON) or a file name that is not UTF-8 made
    print() raise UnicodeEncodeError on a strict stdout (a traceback). Every line verify prints escapes what
    is not printable, and a name that is not UTF-8 is itself a problem."""
    manifest = json.loads((release / "manifest.json").read_text())
    manifest["files"]["\ud800"] = "0" * 64
    (release / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    write_sums(release)
    (release / "line\nbreak").write_bytes(b"x")
    with open(os.path.join(os.fsencode(release), b"\xff.bin"), "wb") as handle:
        handle.write(b"not UTF-8")
    expected = [
        f"unexpected: line\\nbreak: a name of other characters than {NAME_CHARACTERS}",  # issue 28
        "unexpected: \\udcff.bin: not a UTF-8 file name",
        "missing: \\ud800: manifest.json lists it",
        f"mmulab: verify: {release}: 3 problem(s) in 16 files",
    ]
    for env in ({"PYTHONIOENCODING": "utf-8:strict"}, {"LC_ALL": "C"}):
        result = subprocess.run(
            [str(VENV_BIN / "mmulab"), "verify", str(release)],
            capture_output=True,
            check=False,
            env={"PATH": os.environ["PATH"], **env},
        )
        assert (result.returncode, result.stderr) == (1, b""), env
        assert result.stdout.decode("ascii").splitlines() == expected, env
