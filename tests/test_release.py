"""`doit publish`: the release's files, manifest, SHA256SUMS, reproducible tarball and immutability, on a synthetic
build directory (small fake files where the stages would put theirs); one slow test publishes a real build."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from conftest import make_project, run_doit, same_bytes_in_two_processes

from mmulab.boot.judge import Outcome, Verdict
from mmulab.build import busybox
from mmulab.build.download import Fetched
from mmulab.core.errors import ConfigError, EnvError, UserError
from mmulab.core.fsutil import sha256_of
from mmulab.core.paths import Layout
from mmulab.core.settings import PROJECT_ROOT, Settings
from mmulab.core.tools import RUNNER, Runner
from mmulab.pipeline import tasks
from mmulab.project.model import Project
from mmulab.release import archive as release_archive
from mmulab.release import format as release_format
from mmulab.release import publish as release
from mmulab.release import signing


class FakeTools(Runner):
    """Tool versions and dpkg answers made up (this machine may lack the cross tools); git is the real one."""

    def query(self, command: Sequence[str], cwd: Path | None = None) -> str:
        if command[0] == "git":
            return RUNNER.query(command, cwd)
        if command[0] == "dpkg-query":
            return f"1.0-{command[-1]}"
        return f"{command[0]} (fake) 1.0\nsecond line"


TOOLS = FakeTools()
# What some consoles of the synthetic build measured (the contract's `mmulab: data:` lines): these cases get
# charts/<case>.svg; the others print none and get no chart.
DATA_LINES = {
    "buddy-c-nommu": ("buddy before 0 12", "buddy before 1 7", "buddy fragmented 0 40", "buddy fragmented 1 2"),
    "buddy-c-mmu-full": ("buddy before 0 310", "buddy before 1 122", "buddy compacted 0 96", "buddy compacted 1 80"),
    "oom-c-mmu": ("oom score 0 0", "oom score 8 120", "oom score 16 251"),
    "oom-c-nommu": ("oom score 0 0", "oom score 8 0", "oom score 16 0"),
    "pagetables-c-nommu": ("pagetables kb 0 none",),
}


@dataclass(frozen=True)
class Synthetic:
    project: Project
    layout: Layout
    checkout: Path  # not a git tree: publish sees "nogit"

    @property
    def artifacts(self) -> Path:
        return self.project.settings.artifacts_dir

    def publish(self, name: str = "r1", allow_dirty: bool = False, root: Path | None = None) -> Path:
        return release.publish(self.project, name, allow_dirty, root or self.checkout, TOOLS)


def _write(path: Path, content: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(mode)


def synthetic_project(tmp_path: Path) -> Project:
    return make_project(
        tmp_path / "build", download_dir=tmp_path / "dl", artifacts_dir=tmp_path / "artifacts", release=""
    )


@pytest.fixture
def synthetic(tmp_path: Path) -> Synthetic:
    """A build directory with every file `doit all` leaves that a release takes, as small fakes."""
    return make_synthetic(tmp_path)


def make_synthetic(tmp_path: Path) -> Synthetic:
    """The synthetic fixture's build directory under `tmp_path` (also for a module's one shared release)."""
    project = synthetic_project(tmp_path)
    layout = Layout(project.build_root())
    for variant in project.variants:
        for name in (project.toolchain.kernel.image, "System.map", "config"):
            _write(layout.kernel_output(variant, name), f"{variant} {name}\n", 0o600)  # the kernel's are 0600
        _write(layout.kernel_dir(variant) / "fragment.config", f"CONFIG_{variant.upper()}=y\n")
        info = project.variants[variant]  # the variants of one flavour share their busybox build
        _write(busybox.output(layout, info, "busybox"), f"busybox for {variant}\n", 0o755)
        _write(busybox.output(layout, info, "config"), f"CONFIG_BUSYBOX_{variant.upper()}=y\n")
        _write(busybox.build_dir(layout, info) / "fragment.config", f"CONFIG_BB_{variant.upper()}=y\n")
    for case in project.boots.values():
        _write(layout.image(case.variant, case.build), f"cpio {case.build}\n")
        data = "".join(f"mmulab: data: {line}\n" for line in DATA_LINES.get(case.name, ()))
        _write(layout.console_log(case.name), f"console of {case.name}\n{data}reboot: Power down\n")
        Verdict(
            case.name,
            case.demo,
            case.build,
            case.variant,
            case.qemu_options,
            case.expect,
            Outcome(case.expect),
            True,
            1.25,
            log=str(layout.console_log(case.name)),
        ).write(layout.verdict(case.name))
    for name in project.programs:
        _write(layout.program(name), f"ELF {name}\n", 0o755)
    for name, source in project.sources.items():
        cached = tmp_path / "dl" / name / source.filename
        _write(cached, f"{name} {source.version} tarball\n")
        origin = source.origins[0]
        Fetched(name, str(cached), sha256_of(cached), source.version, origin.url, "url").write(layout.fetched(name))
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    return Synthetic(project, layout, checkout)


def _vcs() -> release.Vcs:
    return release.Vcs("0" * 40, "v0.1-3-gabcdef0", False)


# --- the file list ---


def test_release_files_lists_every_published_file_sorted(synthetic: Synthetic) -> None:
    project, layout = synthetic.project, synthetic.layout
    files = release.release_files(project, layout)
    assert list(files) == sorted(files)
    expected = {"boots/summary.json", "boots/summary.xml"}
    for variant in project.variants:
        expected |= {f"{variant}/{name}" for name in ("Image", "System.map", "config", "fragment.config")}
        expected |= {f"{variant}/busybox", f"{variant}/busybox.config"}
    expected |= {f"{case.variant}/initramfs/{case.build}.cpio" for case in project.boots.values()}
    expected |= {f"programs/{name}" for name in project.programs}
    expected |= {f"boots/{case}.log" for case in project.boots}
    expected |= {f"sources/{source.filename}" for source in project.sources.values()}
    expected |= {f"sources/patches/musl/{patch.name}" for patch in project.sources["musl"].patches}
    assert set(files) == expected
    assert files["nommu/Image"] == layout.kernel_output("nommu", "Image")
    assert files["mmu/busybox.config"] == busybox.output(layout, project.variants["mmu"], "config")
    assert files["boots/summary.json"] == layout.root / "reports" / "summary.json"


def test_a_missing_build_file_is_one_line_naming_it(synthetic: Synthetic) -> None:
    synthetic.layout.kernel_output("mmu", "System.map").unlink()
    with pytest.raises(UserError) as error:
        synthetic.publish()
    message = str(error.value)
    assert "\n" not in message and "mmu/kernel/out/System.map" in message and message.endswith("run doit all")
    assert not synthetic.artifacts.exists() or not any(synthetic.artifacts.iterdir())


def test_a_failed_boot_is_not_published(synthetic: Synthetic) -> None:
    case = next(iter(synthetic.project.boots))
    path = synthetic.layout.verdict(case)
    verdict = Verdict.read(path)
    replace(verdict, observed=Outcome.HANG, passed=False).write(path)
    with pytest.raises(UserError, match=f"boot case {case} did not pass"):
        synthetic.publish()


# --- the manifest ---


def manifest_of(tmp: str) -> bytes:
    """manifest.json of the synthetic build under `tmp`, as bytes: run in new processes."""
    project = synthetic_project(Path(tmp))
    layout = Layout(project.build_root())
    files = release.release_files(project, layout)
    return release.dumps(release.build_manifest(project, layout, files, "r1", _vcs(), TOOLS)).encode()


def test_manifest_is_deterministic_and_holds_no_path_host_or_date(synthetic: Synthetic, tmp_path: Path) -> None:
    project, layout = synthetic.project, synthetic.layout
    release.refresh_summary(project, layout)
    files = release.release_files(project, layout)
    first = release.build_manifest(project, layout, files, "r1", _vcs(), TOOLS)
    text = release.dumps(first)
    assert same_bytes_in_two_processes("test_release:manifest_of", [str(tmp_path)], tmp_path / "scratch") == (
        text.encode()
    )
    assert str(tmp_path) not in text and f'"{socket.gethostname()}"' not in text
    assert not re.search(r"\d{4}-\d\d-\d\d", text)  # no date (boot seconds go to run.json)
    assert "seconds" not in text
    assert text.endswith("}\n") and json.loads(text) == first
    assert first["format"] == "mmulab-release/1" and first["release"] == "r1"
    assert first["project"] == {
        "name": "mmulab",
        "version": release.project_version(),
        "commit": "0" * 40,
        "describe": "v0.1-3-gabcdef0",
        "dirty": False,
    }
    assert first["source_date_epoch"] == project.settings.source_date_epoch
    assert [s["name"] for s in first["sources"]] == sorted(project.sources)
    musl = next(s for s in first["sources"] if s["name"] == "musl")
    assert (musl["license"], musl["download_location"], musl["trust"]) == (
        "MIT",
        "https://musl.libc.org/releases/musl-1.2.3.tar.gz",
        "pinned",
    )
    assert musl["file"] == "sources/musl-1.2.3.tar.gz" and musl["sha256"] == first["files"][musl["file"]]
    assert [p["file"] for p in musl["patches"]] == [
        f"sources/patches/musl/{p.name}" for p in project.sources["musl"].patches
    ]
    assert {s["license"] for s in first["sources"] if s["name"] != "musl"} == {"GPL-2.0-only"}
    assert set(first["tools"]) == {"gcc", "binutils", "make", "qemu", "opensbi"}
    assert first["tools"]["gcc"] == {
        "version": "riscv64-linux-gnu-gcc (fake) 1.0",
        "package": "gcc-riscv64-linux-gnu",
        "package_version": "1.0-gcc-riscv64-linux-gnu",
    }
    assert first["tools"]["binutils"]["package"] == "binutils-riscv64-linux-gnu"
    assert first["tools"]["opensbi"] == {
        "version": "1.0-opensbi",
        "package": "opensbi",
        "package_version": "1.0-opensbi",
    }
    assert set(first["configs"]) == {f"{kind}-{v}" for kind in ("kernel", "busybox") for v in project.variants}
    assert first["configs"]["kernel-nommu"]["config_sha256"] == first["files"]["nommu/config"]
    assert first["configs"]["busybox-mmu"]["fragment_sha256"] == sha256_of(
        busybox.build_dir(layout, project.variants["mmu"]) / "fragment.config"
    )
    assert [b["case"] for b in first["boots"]] == sorted(project.boots)
    assert set(first["boots"][0]) == {"case", "demo", "variant", "qemu", "expected", "observed", "passed"}
    assert first["files"] == {path: sha256_of(source) for path, source in files.items()}


def test_published_release_has_the_spec_layout_and_run_facts_apart(synthetic: Synthetic) -> None:
    root = synthetic.publish()
    assert root == synthetic.artifacts / "r1" and (synthetic.artifacts / "r1.tar.xz").is_file()
    manifest = json.loads((root / "manifest.json").read_text())
    published = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    metadata = {"manifest.json", "run.json", "SHA256SUMS"} | (published & set(release_format.MADE_FROM_MANIFEST))
    assert published == set(manifest["files"]) | metadata
    assert manifest["project"]["commit"] == "" and manifest["project"]["describe"] == ""  # not a git tree
    run = json.loads((root / "run.json").read_text())
    assert set(run) == {"published_at", "host", "boot_seconds"}
    assert run["boot_seconds"] == dict.fromkeys(sorted(synthetic.project.boots), 1.25)
    modes = {p.relative_to(root).as_posix(): p.stat().st_mode & 0o777 for p in root.rglob("*")}
    assert modes["nommu/Image"] == 0o644 and modes["nommu/busybox"] == 0o755 and modes["nommu"] == 0o755
    assert set(modes.values()) <= {0o644, 0o755}
    summary = json.loads((root / "boots" / "summary.json").read_text())
    assert [entry["case"] for entry in summary] == sorted(synthetic.project.boots)  # every case, not the last run's
    assert not [p for p in synthetic.artifacts.iterdir() if p.name.startswith(".")]  # no temporary left


# --- charts ---


def test_publish_draws_a_chart_for_each_console_with_data_lines_and_the_matrix(synthetic: Synthetic) -> None:
    import matplotlib

    root = synthetic.publish()
    manifest = json.loads((root / "manifest.json").read_text())
    charts = sorted(p.relative_to(root).as_posix() for p in (root / "charts").iterdir())
    assert charts == sorted([release_format.MATRIX_CHART, *(f"charts/{case}.svg" for case in DATA_LINES)])
    for path in charts:
        svg = (root / path).read_bytes()
        assert svg.startswith(b"<?xml") and b"<svg" in svg[:1000], path
        assert manifest["files"][path] == sha256_of(root / path), path  # listed and hashed like every file
        assert f"  {path}\n" in (root / "SHA256SUMS").read_text()
    assert manifest["charts"] == {"matplotlib": matplotlib.__version__}
    assert b"buddy-c-nommu: nommu kernel" in (root / "charts/buddy-c-nommu.svg").read_bytes()  # the case, the kernel
    assert "console of" not in json.dumps(manifest)
    # each demo's chart declarations ride in the manifest (verify draws from them, not from this checkout)
    buddy = next(demo for demo in manifest["demos"] if demo["name"] == "buddy")
    declared = synthetic.project.demos["buddy"].charts["buddy"]
    assert buddy["charts"]["buddy"] == {
        "title": declared.title,
        "kind": str(declared.kind),
        "x": declared.x,
        "y": declared.y,
        "log": declared.log,
    }


def test_publishing_twice_from_the_same_consoles_gives_byte_identical_charts(synthetic: Synthetic) -> None:
    first = synthetic.publish("r1")
    second = synthetic.publish("r2")  # another release of the same build: the same consoles, another name
    charts = sorted(p.name for p in (first / "charts").iterdir())
    assert charts == sorted(p.name for p in (second / "charts").iterdir()) and len(charts) == len(DATA_LINES) + 1
    for name in charts:
        assert (first / "charts" / name).read_bytes() == (second / "charts" / name).read_bytes(), name
    # and a console that measured something else draws another chart: the bytes come from the console
    console = synthetic.layout.console_log("oom-c-mmu")
    console.write_text(console.read_text().replace("oom score 16 251", "oom score 16 999"))
    third = synthetic.publish("r3")
    assert (third / "charts/oom-c-mmu.svg").read_bytes() != (first / "charts/oom-c-mmu.svg").read_bytes()
    assert (third / "charts/oom-c-nommu.svg").read_bytes() == (first / "charts/oom-c-nommu.svg").read_bytes()


def test_a_console_with_a_malformed_data_line_is_not_published(synthetic: Synthetic) -> None:
    console = synthetic.layout.console_log("buddy-c-nommu")
    console.write_text(console.read_text().replace("buddy before 1 7", "buddy before 1"))
    with pytest.raises(UserError) as error:
        synthetic.publish()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"cannot publish: {console}: buddy-c-nommu: console line ")
    assert "mmulab: data: <chart> <series> <x> <y>" in message
    assert not synthetic.artifacts.exists() or not list(synthetic.artifacts.iterdir())  # nothing half-written


def test_charts_are_volatile_as_the_consoles_they_are_drawn_from() -> None:
    """repro and verify --rebuild compare every file but what differs from boot to boot by nature."""
    assert any(release_format.MATRIX_CHART.startswith(prefix) for prefix in release.VOLATILE)
    assert any("charts/fork-c-mmu.svg".startswith(prefix) for prefix in release.VOLATILE)


# --- SHA256SUMS ---


@pytest.mark.needs("sha256sum")
def test_sha256sums_is_what_sha256sum_checks(synthetic: Synthetic) -> None:
    root = synthetic.publish()
    text = (root / "SHA256SUMS").read_text()
    lines = text.splitlines()
    assert text.endswith("\n") and all(re.fullmatch(r"[0-9a-f]{64}  \S+", line) for line in lines)
    paths = [line.split("  ", 1)[1] for line in lines]
    assert paths == sorted(paths) and "SHA256SUMS" not in paths
    assert {"manifest.json", "run.json", "nommu/Image"} <= set(paths)
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=root, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK") == len(lines)


# --- the tarball ---


@pytest.mark.needs("tar", "xz")
def test_tarball_is_reproducible_sorted_owned_by_root_at_the_epoch(synthetic: Synthetic, tmp_path: Path) -> None:
    root = synthetic.publish()
    first, second = tmp_path / "one.tar.xz", tmp_path / "two.tar.xz"
    release.write_tarball(root, first, 0)
    os.utime(root / "nommu" / "Image", (1_700_000_000, 1_700_000_000))  # another mtime and mode on disk
    (root / "nommu" / "Image").chmod(0o600)
    release.write_tarball(root, second, 0)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() == (synthetic.artifacts / "r1.tar.xz").read_bytes()
    listing = subprocess.run(
        ["tar", "-tvJf", str(first)], capture_output=True, text=True, check=True, env={**os.environ, "TZ": "UTC"}
    ).stdout.splitlines()
    names = [line.split()[-1].rstrip("/") for line in listing]
    assert names[0] == "r1" and names == sorted(names)
    assert {line.split()[-1].removeprefix("r1/") for line in listing if line.startswith("-")} == {
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
    }
    for line in listing:
        mode, owner, _size, date, time_of_day, _name = line.split()
        assert owner == "0/0" and (date, time_of_day) == ("1970-01-01", "00:00"), line
        assert mode in ("-rw-r--r--", "-rwxr-xr-x", "drwxr-xr-x"), line
    assert any(line.startswith("-rwxr-xr-x") and line.endswith("r1/nommu/busybox") for line in listing)
    assert any(line.startswith("-rw-r--r--") and line.endswith("r1/nommu/Image") for line in listing)


def test_tarball_has_no_pax_headers_and_takes_the_epoch(tmp_path: Path) -> None:
    import tarfile

    root = tmp_path / "rel"
    _write(root / "a" / "b.txt", "b\n")
    _write(root / "run", "#!/bin/sh\n", 0o700)
    out = tmp_path / "rel.tar.xz"
    release.write_tarball(root, out, 1234567890)
    with tarfile.open(out) as archive:
        members = archive.getmembers()
        assert not archive.pax_headers
    assert [m.name for m in members] == ["rel", "rel/a", "rel/a/b.txt", "rel/run"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(1234567890, 0, 0, "", "")}
    assert [m.mode for m in members] == [0o755, 0o755, 0o644, 0o755]
    assert not [m for m in members if m.pax_headers]


@pytest.mark.needs("tar", "xz")
def test_a_large_source_gets_its_own_cached_xz_stream_and_readers_see_one_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tarfile

    monkeypatch.setattr(release, "CACHED_SEGMENT_BYTES", 1024)
    root = tmp_path / "rel"
    _write(root / "sources" / "big.tar.xz", "x" * 5000)
    _write(root / "nommu" / "Image", "image\n")
    cache = tmp_path / "cache"
    cold, warm, plain = tmp_path / "cold.tar.xz", tmp_path / "warm.tar.xz", tmp_path / "plain.tar.xz"
    release.write_tarball(root, cold, 0, cache=cache)
    assert len(list(cache.glob("*.xz"))) == 1, "the large source's stream is kept"
    release.write_tarball(root, warm, 0, cache=cache)
    release.write_tarball(root, plain, 0)
    assert cold.read_bytes() == warm.read_bytes() == plain.read_bytes()
    assert cold.read_bytes().count(b"\xfd7zXZ\x00") == 3, "before (up to its header), its body, after: three xz streams"
    listing = subprocess.run(["tar", "-tJf", str(cold)], capture_output=True, text=True, check=True).stdout.split()
    assert listing == ["rel/", "rel/nommu/", "rel/nommu/Image", "rel/sources/", "rel/sources/big.tar.xz"]
    with tarfile.open(cold) as archive:
        assert archive.extractfile("rel/sources/big.tar.xz").read() == b"x" * 5000  # type: ignore[union-attr]
    with cold.open("rb") as handle:
        reader = release_archive._CappedXz(handle, 1 << 20, "cold.tar.xz")
        data = b"".join(iter(lambda: reader.read(4096), b""))
    assert data == lzma_decompress_all(cold)


def lzma_decompress_all(path: Path) -> bytes:
    import lzma

    return lzma.decompress(path.read_bytes())


# --- immutability ---


def test_publishing_the_same_bytes_again_is_a_no_op(synthetic: Synthetic, capsys: pytest.CaptureFixture[str]) -> None:
    root = synthetic.publish()
    run_before = (root / "run.json").read_bytes()
    tarball = synthetic.artifacts / "r1.tar.xz"
    stamp = tarball.stat().st_mtime_ns
    capsys.readouterr()
    assert synthetic.publish() == root
    assert capsys.readouterr().out.strip().startswith("release r1 already published with identical bytes")
    assert (root / "run.json").read_bytes() == run_before  # the first run's facts stay
    assert tarball.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in synthetic.artifacts.iterdir()) == ["r1", "r1.tar.xz"]
    tarball.unlink()  # a tarball lost after the directory was placed is written again
    synthetic.publish()
    assert tarball.is_file()


def test_publishing_other_bytes_under_a_published_name_is_refused_naming_them(synthetic: Synthetic) -> None:
    root = synthetic.publish()
    manifest_before = (root / "manifest.json").read_bytes()
    _write(synthetic.layout.kernel_output("nommu", "Image"), "another kernel\n")
    _write(synthetic.layout.program(next(iter(synthetic.project.programs))), "another program\n", 0o755)
    with pytest.raises(UserError) as error:
        synthetic.publish()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"release r1 already published at {root} with different bytes in: ")
    assert "manifest.json" in message and "nommu/Image" in message and "programs/" in message
    assert "SHA256SUMS" not in message and "run.json" not in message
    assert (root / "manifest.json").read_bytes() == manifest_before
    assert sorted(p.name for p in synthetic.artifacts.iterdir()) == ["r1", "r1.tar.xz"]  # no temporary left


def test_release_names_are_checked(synthetic: Synthetic) -> None:
    for bad in ("..", ".hidden", "a/b", "a b", "-\n"):
        with pytest.raises(UserError, match="not a safe release name"):
            synthetic.publish(bad)
    assert release.default_name(release.Vcs(), "0.1.0") == "mmulab-0.1.0-nogit"
    assert release.default_name(release.Vcs("f" * 40, "v1/rc-2-gabc-dirty", True), "0.1.0") == (
        "mmulab-0.1.0-v1_rc-2-gabc-dirty"
    )
    root = synthetic.publish("")
    assert root.name == "mmulab-" + release.project_version() + "-nogit"


# --- the git tree ---


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "t@example.invalid")
    _git(root, "config", "user.name", "t")
    (root / "README").write_text("x\n")
    _git(root, "add", "README")
    _git(root, "commit", "-q", "-m", "init")
    _git(root, "tag", "v9")
    for ignored in ("build", "artifacts"):  # never make a tree dirty
        _write(root / ignored / "anything", "x\n")
    return root


@pytest.mark.needs("git")
def test_a_clean_tree_publishes_with_its_describe(synthetic: Synthetic, checkout: Path) -> None:
    root = synthetic.publish("", root=checkout)
    assert root.name == f"mmulab-{release.project_version()}-v9"
    project = json.loads((root / "manifest.json").read_text())["project"]
    assert (project["describe"], project["dirty"], len(project["commit"])) == ("v9", False, 40)


@pytest.mark.needs("git")
def test_a_dirty_tree_is_refused_unless_allowed(synthetic: Synthetic, checkout: Path) -> None:
    (checkout / "README").write_text("changed\n")
    with pytest.raises(UserError) as error:
        synthetic.publish("", root=checkout)
    message = str(error.value)
    assert "\n" not in message and "uncommitted changes" in message and "--allow-dirty" in message
    assert not synthetic.artifacts.exists() or not any(synthetic.artifacts.iterdir())
    root = synthetic.publish("", allow_dirty=True, root=checkout)
    assert root.name == f"mmulab-{release.project_version()}-v9-dirty"
    assert json.loads((root / "manifest.json").read_text())["project"]["dirty"] is True


@pytest.mark.needs("git")
def test_an_untracked_file_makes_the_tree_dirty(synthetic: Synthetic, checkout: Path) -> None:
    (checkout / "new.txt").write_text("new\n")
    with pytest.raises(UserError, match="uncommitted changes"):
        synthetic.publish("", root=checkout)


# --- settings, data and the task ---


@pytest.mark.parametrize(
    ("variable", "value", "accepts"),
    [
        ("MMULAB_RELEASE", "..", "a name of letters, digits"),
        ("MMULAB_RELEASE", "a/b", "a name of letters, digits"),
        ("MMULAB_ALLOW_DIRTY", "yes", "0 or 1"),
    ],
)
def test_bad_release_settings_are_one_line(variable: str, value: str, accepts: str) -> None:
    with pytest.raises(EnvError) as error:
        Settings.from_environment({variable: value})
    assert str(error.value).startswith(f"{variable}={value!r}: ") and accepts in str(error.value)


def test_release_settings(tmp_path: Path) -> None:
    plain = tmp_path / "file"
    plain.write_text("")
    with pytest.raises(EnvError, match=r"MMULAB_ARTIFACTS_DIR=.*not a directory"):
        Settings.from_environment({"MMULAB_ARTIFACTS_DIR": str(plain)})
    settings = Settings.from_environment(
        {"MMULAB_RELEASE": "v1.0+x_y-z", "MMULAB_ALLOW_DIRTY": "1", "MMULAB_ARTIFACTS_DIR": str(tmp_path / "a")}
    )
    assert (settings.release, settings.allow_dirty, settings.artifacts_dir) == ("v1.0+x_y-z", True, tmp_path / "a")
    default = Settings.from_environment({})
    assert (default.release, default.allow_dirty, default.artifacts_dir.name) == ("", False, "artifacts")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('license = "GPL 2"', "sources.musl.license: 'GPL 2' is not an SPDX license id"),
        ('download_location = "ftp://x"', "sources.musl.download_location: 'ftp://x' is not an http(s) URL"),
    ],
)
def test_bad_license_data_is_one_line(tmp_path: Path, line: str, problem: str) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(PROJECT_ROOT / "configs", configs)
    text = (configs / "sources.toml").read_text()
    key = line.split(" ", 1)[0]
    good = {"license": 'license = "MIT"', "download_location": 'download_location = "https://musl.libc.org/releases/'}
    assert good[key] in text
    (configs / "sources.toml").write_text(re.sub(re.escape(good[key]) + r"[^\n]*", line, text, count=1))
    with pytest.raises(ConfigError) as error:
        make_project(tmp_path / "build", configs_dir=configs)
    assert problem in str(error.value) and "\n" not in str(error.value)


def test_publish_task_runs_after_all_never_cached_and_all_does_not_publish(tmp_path: Path) -> None:
    project = make_project(tmp_path / "build")
    declared = {task["basename"]: task for task in tasks.all_tasks(project) if "name" not in task}
    publish = declared["publish"]
    assert publish["task_dep"] == ["all"] and publish["uptodate"] == [False]
    assert {(p["name"], p["long"]) for p in publish["params"]} == {
        ("release", "release"),
        ("allow_dirty", "allow-dirty"),
        ("sign", "sign"),
    }
    assert not any("publish" in dep for dep in declared["all"]["task_dep"])


# --- the real thing ---


@pytest.mark.slow
@pytest.mark.needs("sha256sum", "tar", "xz")
def test_doit_publish_releases_a_real_build_once(session_build: Path, tmp_path: Path) -> None:
    """Signed with --sign, published again (signed through MMULAB_SIGNING_KEY): a no-op; verify --key passes."""
    artifacts = tmp_path / "artifacts"
    env = {"MMULAB_BUILD_DIR": str(session_build), "MMULAB_ARTIFACTS_DIR": str(artifacts), "MMULAB_ALLOW_DIRTY": "1"}
    key = tmp_path / "keys" / "release-key"
    keyid = signing.keygen(key)
    result = run_doit(["publish", "--release", "t1", "--sign", str(key)], env)
    assert result.returncode == 0, result.stdout + result.stderr
    root = artifacts / "t1"
    assert "release t1: " in result.stdout and f"signed by key {keyid}" in result.stdout
    checked = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=root, capture_output=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["release"] == "t1" and all(boot["passed"] for boot in manifest["boots"])
    assert str(session_build) not in (root / "manifest.json").read_text()
    assert {"nommu/Image", "mmu/Image", "nommu/busybox", "sources/patches/musl/0001-riscv64-add-vfork.patch"} <= set(
        manifest["files"]
    )
    assert all(tool["version"] for tool in manifest["tools"].values())
    assert "charts/matrix.svg" in manifest["files"] and manifest["charts"]["matplotlib"]  # issue 19
    listing = subprocess.run(["tar", "-tJf", str(artifacts / "t1.tar.xz")], capture_output=True, text=True, check=True)
    names = listing.stdout.splitlines()
    # members in path order (a directory's name without its trailing slash: mmu, mmu-full, mmu-full/x, mmu/x)
    assert names == sorted(names, key=lambda name: name.rstrip("/")) and "t1/manifest.json" in names
    again = run_doit(["publish", "--release", "t1"], {**env, "MMULAB_SIGNING_KEY": str(key)})
    assert again.returncode == 0, again.stdout + again.stderr
    assert "release t1 already published with identical bytes" in again.stdout
    verified = subprocess.run(
        [sys.executable, "-m", "mmulab", "verify", str(artifacts / "t1.tar.xz"), "--key", f"{key}.pub"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.splitlines()[-1].endswith(f"signed by trusted key {keyid} ({key}.pub)")
