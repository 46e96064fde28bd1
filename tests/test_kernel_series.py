"""Kernel series as data (configs/kernels.toml): MMULAB_KERNEL, a folder per series, version-aware fragments, the
matrix's cells from what a run left, and `mmulab pins` through a stand-in kernel.org and Debian archive."""

from __future__ import annotations

import hashlib
import json
import lzma
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import LocalServer, checkout_configs, clean_environment, make_project, missing, run_doit

from mmulab.boot.judge import Outcome, Verdict
from mmulab.build import pins
from mmulab.build.kernelconfig import render_fragment
from mmulab.core.errors import ConfigError
from mmulab.core.paths import Layout, series_root
from mmulab.core.settings import Settings
from mmulab.kconfig.dotconfig import parse_config
from mmulab.kconfig.version import KernelVersion, parse_version, tree_version
from mmulab.pipeline import matrix
from mmulab.project.loader import load_project

PROJECT = checkout_configs()
FDPIC_PROBLEM = (
    "CONFIG_BINFMT_ELF_FDPIC=y requested, but the final .config has # CONFIG_BINFMT_ELF_FDPIC is not set; unmet "
    "'depends on ARM || ((M68K || SUPERH || XTENSA) && !MMU)' at fs/Kconfig.binfmt:58 (ARM=n, M68K=n, MMU=n, "
    "SUPERH=n, XTENSA=n): add CONFIG_ARM=y or add CONFIG_M68K=y"
)


def overlay_with(tmp_path: Path, kernels: str) -> Path:
    overlay = tmp_path / "overlay"
    overlay.mkdir(exist_ok=True)
    (overlay / "kernels.toml").write_text(kernels)
    return overlay


# --- the data ---


def test_every_series_pins_a_point_release_of_itself_and_the_default_is_one_of_them() -> None:
    assert PROJECT.series in PROJECT.kernel_series
    names = list(PROJECT.kernel_series)
    assert len(names) >= 4 and names == sorted(names, key=lambda n: tuple(map(int, n.split("."))))
    for name, spec in PROJECT.kernel_series.items():
        for origin in spec.source.origins:
            version = parse_version(origin.version)
            assert version is not None and version.series == name, (name, origin)
        assert spec.source.origins[-1].kind.value in ("debian-source", "local-file"), f"{name}: no offline origin"


def test_a_series_picks_its_own_source_for_every_task(tmp_path: Path) -> None:
    project = make_project(tmp_path, kernel_series="6.18")
    assert project.series == "6.18"
    assert project.source("linux").version.startswith("6.18.")
    assert project.build_root() == tmp_path / "linux-6.18"


def test_a_version_of_another_series_is_one_line_naming_the_field(tmp_path: Path) -> None:
    text = (
        (PROJECT.settings.configs_dir / "kernels.toml").read_text().replace('version = "6.18.15"', 'version = "6.1.5"')
    )
    overlay = overlay_with(tmp_path, text)
    with pytest.raises(ConfigError, match=r"kernels.toml.*6\.1\.5.* is not a point release of series 6\.18"):
        load_project(replace(Settings.from_environment({}), config_overlay=overlay))


def test_an_unknown_series_is_one_line_naming_the_known_ones_exit_2(tmp_path: Path) -> None:
    result = run_doit(["list"], {"MMULAB_KERNEL": "9.99", "MMULAB_BUILD_DIR": str(tmp_path)})
    assert result.returncode == 2
    known = ", ".join(PROJECT.kernel_series)
    assert result.stderr.splitlines() == [
        f"mmulab: error: MMULAB_KERNEL='9.99': no such kernel series in configs/kernels.toml; it accepts one of "
        f"{known} (the default is {PROJECT.series})"
    ]
    assert not any(tmp_path.iterdir()), "nothing is created for a bad series"


def test_two_series_never_share_a_path_and_a_user_tree_has_its_own_folder(tmp_path: Path) -> None:
    first, second = (Layout.of_series(tmp_path, name) for name in ("6.12", "6.18"))
    user = Layout.of_series(tmp_path, "6.12", linux_src=tmp_path / "mytree")
    roots = {first.root, second.root, user.root}
    assert len(roots) == 3 and all(root.parent == tmp_path for root in roots)
    for a, b in ((first, second), (first, user), (second, user)):
        for path in (a.kernel_dir("nommu"), a.sysroot(), a.program("x"), a.console_log("c"), a.doit_db(), a.lock()):
            assert not path.is_relative_to(b.root)
    assert user.root == series_root(tmp_path, "anything", user_tree=True)


# --- version-aware fragments ---


@pytest.mark.parametrize("variant", sorted(PROJECT.variants))
def test_fragments_ask_each_release_for_its_own_spelling(variant: str) -> None:
    info = PROJECT.variants[variant]
    old = parse_config(render_fragment(info, PROJECT.toolchain, KernelVersion(6, 1, 176)))
    new = parse_config(render_fragment(info, PROJECT.toolchain, KernelVersion(6, 18, 15)))
    assert old["SOC_VIRT"] == "y" and "ARCH_VIRT" not in old  # renamed in 6.7
    assert new["ARCH_VIRT"] == "y" and "SOC_VIRT" not in new
    assert ("RISCV_ISA_FALLBACK" in new) == info.mmu and "RISCV_ISA_FALLBACK" not in old  # added in 6.5
    assert old["SLUB"] == "y" and "SLUB" not in new  # SLOB was the tiny default before 6.2
    if "ZRAM" in new:
        assert new["ZRAM_BACKEND_LZO"] == "y" and old["CRYPTO_LZO"] == "y" and "ZRAM_BACKEND_LZO" not in old


def test_a_trees_version_comes_from_its_makefile(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("# SPDX\nVERSION = 7\nPATCHLEVEL = 1\nSUBLEVEL = 13\nEXTRAVERSION =\n")
    assert tree_version(tmp_path) == KernelVersion(7, 1, 13) and tree_version(tmp_path).series == "7.1"
    (tmp_path / "Makefile").write_text("all:\n\techo not a kernel\n")
    with pytest.raises(ConfigError, match=r"Makefile: no VERSION and PATCHLEVEL lines.*LINUX_SRC"):
        tree_version(tmp_path)


def test_a_template_that_cannot_render_for_a_series_is_one_line_exit_2(tmp_path: Path) -> None:
    template = (PROJECT.settings.configs_dir / "kernel" / "riscv64.config.j2").read_text()
    broken = tmp_path / "riscv64.config.j2"
    broken.write_text(template.replace("{% if linux_version >= (6, 7) %}", "{% if linux_version >= %}"))
    variant = replace(PROJECT.variants["nommu"], template=broken)
    with pytest.raises(
        ConfigError, match=r"riscv64.config.j2:\d+: template error: .*\(variant nommu, linux 6\.1\.176\)"
    ) as error:
        render_fragment(variant, PROJECT.toolchain, KernelVersion(6, 1, 176))
    assert error.value.exit_code == 2 and "\n" not in str(error.value)


# --- the matrix's cells ---


def _verdict(case: str, passed: bool, observed: Outcome, reason: str = "", notes: tuple[str, ...] = ()) -> Verdict:
    info = PROJECT.boots[case]
    return Verdict(
        case, info.demo, info.build, info.variant, info.qemu_options, "pass", observed, passed, 1.0, reason, notes=notes
    )


def test_cells_come_from_what_the_series_run_left(tmp_path: Path) -> None:
    project = make_project(tmp_path, kernel_series="6.1")
    layout = Layout(project.build_root())
    nommu = [name for name, case in project.boots.items() if case.variant == "nommu"]
    mmu = [name for name, case in project.boots.items() if case.variant == "mmu"]
    full = [name for name, case in project.boots.items() if case.variant == "mmu-full"]
    verdicts = [Verdict.not_run(name) for name in nommu + full]
    verdicts += [
        _verdict(mmu[0], True, Outcome.PASS),
        _verdict(mmu[1], False, Outcome.HANG, "no output", ("pc in foo()",)),
    ]
    layout.reports().mkdir(parents=True)
    (layout.reports() / "summary.json").write_text(json.dumps([v.to_dict() for v in verdicts]))
    failed = {
        "kconfig:nommu": "kernel config nommu: 1 requested option(s) did not survive",
        "kernel:mmu-full": "make failed\nmore",
    }
    layout.failed_tasks().write_text(json.dumps(failed))
    layout.kernel_dir("nommu").mkdir(parents=True)
    layout.dropped_options("nommu").write_text(json.dumps([FDPIC_PROBLEM]))
    cells = {cell.case: cell for cell in matrix.series_cells(project, layout)}
    assert {cells[name].state for name in nommu} == {matrix.CellState.UNSUPPORTED}
    assert cells[nommu[0]].reason == (
        "nommu kernel: CONFIG_BINFMT_ELF_FDPIC: unmet 'depends on ARM || ((M68K || SUPERH || XTENSA) && !MMU)' "
        "at fs/Kconfig.binfmt:58 (ARM=n, M68K=n, MMU=n, SUPERH=n, XTENSA=n)"
    )
    assert cells[mmu[0]].state is matrix.CellState.PASS
    assert cells[mmu[1]] == matrix.Cell("6.1", mmu[1], matrix.CellState.FAIL, "hang: no output; pc in foo()")
    assert {cells[name].reason for name in full} == {"kernel:mmu-full failed: make failed"}
    assert {cells[name].state for name in mmu[2:]} == {matrix.CellState.NOT_RUN}


def test_the_table_json_and_junit_say_the_same_thing(tmp_path: Path) -> None:
    cells = [
        matrix.Cell("6.1", "a", matrix.CellState.UNSUPPORTED, "nommu kernel: CONFIG_X: unmet"),
        matrix.Cell("6.1", "b", matrix.CellState.UNSUPPORTED, "nommu kernel: CONFIG_X: unmet"),
        matrix.Cell("6.18", "a", matrix.CellState.PASS),
        matrix.Cell("6.18", "b", matrix.CellState.FAIL, "panic: Oops"),
    ]
    runs = [
        matrix.SeriesRun("6.1", "6.1.176", "Debian", 1, 9.0, "x.log"),
        matrix.SeriesRun("6.18", "6.18.15", "Debian", 1, 9.0, "y.log"),
    ]
    text = matrix.table(cells, runs)
    assert text.splitlines()[0].split() == ["case", "6.1", "(6.1.176)", "6.18", "(6.18.15)"]
    assert "not supported [1]" in text and "FAIL [2]" in text
    assert "[1] 6.1: nommu kernel: CONFIG_X: unmet" in text and "[2] 6.18: panic: Oops" in text
    assert text.splitlines()[-1] == "1 PASS, 1 FAIL, 2 not supported"
    junit = matrix.junit(cells, runs)
    assert junit.count("<skipped") == 2 and junit.count("<failure") == 1
    project = make_project(tmp_path)
    json_path, _xml, _text = matrix.write(cells, runs, project, tmp_path)
    assert matrix.read_report(json_path)[:2] == (cells, runs)


def test_an_unknown_matrix_series_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"matrix --series 6\.12,5\.4: no kernel series '5\.4'"):
        matrix.chosen(PROJECT, "6.12,5.4")
    assert matrix.chosen(PROJECT, " 6.18,6.1") == ["6.1", "6.18"]


# --- mmulab pins, through a stand-in archive and kernel.org ---


@pytest.fixture(scope="module")
def keyring() -> Iterator[tuple[Path, Path]]:
    """A throwaway OpenPGP key (its home, its public keyring), standing in for Debian's and kernel.org's. Its home is
    a short folder of its own (under TMPDIR), not pytest's deep basetemp: gpg-agent's socket lives there, and a
    socket path over 107 bytes makes gpg fail (exit 2). The agent is stopped and the folder removed afterwards."""
    if subprocess.run(["which", "gpg"], capture_output=True, check=False).returncode != 0:
        missing("gpg", "Debian package gnupg")
    home = Path(tempfile.mkdtemp(prefix="gnupg-"))
    env = {**clean_environment(), "GNUPGHOME": str(home)}
    try:
        command = ["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
        subprocess.run(
            [*command, "--quick-gen-key", "test <t@example.invalid>", "ed25519", "sign", "0"],
            env=env,
            check=True,
            capture_output=True,
        )
        public = home / "public.gpg"
        subprocess.run(["gpg", "--batch", "--export", "--output", str(public)], env=env, check=True)
        yield home, public
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


def clearsign(home: Path, text: str) -> bytes:
    env = {**clean_environment(), "GNUPGHOME": str(home)}
    command = ["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--clearsign"]
    return subprocess.run(command, input=text.encode(), env=env, check=True, capture_output=True).stdout


def fake_archive(root: Path, home: Path, served: dict[str, bytes], listed_only: list[str]) -> None:
    """dists/trixie-backports/InRelease (signed) -> Sources.xz -> .dsc -> orig tarballs (only `served` ones)."""
    pool = root / "pool/main/l/linux"
    pool.mkdir(parents=True)
    stanzas = []
    for version in [*served, *listed_only]:
        orig = served.get(version, b"gone")
        name = f"linux_{version}.orig.tar.xz"
        if version in served:
            (pool / name).write_bytes(orig)
        orig_line = f" {hashlib.sha256(orig).hexdigest()} {len(orig)} {name}"
        dsc = f"Format: 3.0 (quilt)\nSource: linux\nChecksums-Sha256:\n{orig_line}\n".encode()
        (pool / f"linux_{version}-1.dsc").write_bytes(dsc)
        dsc_line = f" {hashlib.sha256(dsc).hexdigest()} {len(dsc)} linux_{version}-1.dsc"
        stanzas.append(
            f"Package: linux\nVersion: {version}-1\nDirectory: pool/main/l/linux\n"
            f"Checksums-Sha256:\n{dsc_line}\n{orig_line}\n"
        )
    index = lzma.compress("\n".join(stanzas).encode())
    dists = root / "dists/trixie-backports"
    (dists / "main/source").mkdir(parents=True)
    (dists / "main/source/Sources.xz").write_bytes(index)
    release = (
        f"Suite: trixie-backports\nSHA256:\n {hashlib.sha256(index).hexdigest()} {len(index)} main/source/Sources.xz\n"
    )
    (dists / "InRelease").write_bytes(clearsign(home, release))


def local_origins(tmp_path: Path, server: LocalServer) -> tuple[str, Settings]:
    """configs/kernels.toml with kernel.org's URLs on the local server, and settings whose apt configuration names
    only the local server's /debian archive: no request leaves this machine."""
    text = (PROJECT.settings.configs_dir / "kernels.toml").read_text()
    text = text.replace("https://cdn.kernel.org/pub/linux/kernel", f"{server.url}/kernel")
    apt = tmp_path / "sources.list"
    apt.write_text(f"deb {server.url}/debian bookworm main\n")
    overlay = overlay_with(tmp_path, text)
    return text, replace(Settings.from_environment({}), config_overlay=overlay, apt_sources=(apt,))


def test_pins_follow_the_signed_chain_and_write_what_the_pool_serves(
    tmp_path: Path, http_server: LocalServer, keyring: tuple[Path, Path]
) -> None:
    home, public = keyring
    fake_archive(http_server.root / "debian", home, {"6.18.15": b"old", "6.18.20": b"new"}, listed_only=["6.18.22"])
    sums = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n"
        for data, name in [(b"k", "linux-6.18.40.tar.xz"), (b"j", "linux-6.19.1.tar.xz")]
    )
    (http_server.root / "kernel/v6.x").mkdir(parents=True)
    (http_server.root / "kernel/v6.x/sha256sums.asc").write_bytes(clearsign(home, sums))
    text, settings = local_origins(tmp_path, http_server)
    overlay = settings.config_overlay
    assert overlay is not None
    project = load_project(settings)
    results = {r.series: r for r in pins.check(project, pins.Http(), public, public)}
    found = results["6.18"]
    assert found.offers["Debian"].version == "6.18.20"  # 6.18.22 is listed, but the pool no longer serves it
    assert found.offers["Debian"].sha256 == hashlib.sha256(b"new").hexdigest()
    assert any("6.18.22-1 is listed, but the pool no longer serves" in note for note in found.notes)
    assert found.offers["kernel.org"].version == "6.18.40" and found.offers["kernel.org"].verified
    moves = [(series, offer.origin, offer.version) for series, offer in pins.movable(list(results.values()))]
    assert ("6.18", "Debian", "6.18.20") in moves and ("6.18", "kernel.org", "6.18.40") in moves
    written = text
    for series, offer in pins.movable([found]):
        written = pins.rewrite(written, project, series, offer)
    (overlay / "kernels.toml").write_text(written)
    moved = load_project(replace(settings, kernel_series="6.18")).source("linux")
    assert moved.version == "6.18.40" and moved.filename == "linux-6.18.40.tar.xz"
    assert [(o.version, o.sha256) for o in moved.origins] == [
        ("6.18.40", hashlib.sha256(b"k").hexdigest()),
        ("6.18.20", hashlib.sha256(b"new").hexdigest()),
    ]
    assert written.count("#") == text.count("#"), "every comment is kept"


def test_a_bad_signature_reads_nothing(tmp_path: Path, http_server: LocalServer, keyring: tuple[Path, Path]) -> None:
    home, public = keyring
    fake_archive(http_server.root / "debian", home, {"6.18.15": b"old"}, listed_only=[])
    release = http_server.root / "debian/dists/trixie-backports/InRelease"
    release.write_bytes(release.read_bytes().replace(b"Suite: trixie-backports", b"Suite: trixie-forged"))
    project = load_project(local_origins(tmp_path, http_server)[1])
    found = {r.series: r for r in pins.check(project, pins.Http(), public)}["6.18"]
    assert "Debian" not in found.offers
    assert any("InRelease: the signature does not verify" in note for note in found.notes)


# --- kernel.org first, Debian's pool offline, and a pin no origin serves any more ---


def test_kernel_org_is_the_first_origin_and_debians_pool_the_fallback(tmp_path: Path, http_server: LocalServer) -> None:
    from mmulab.build.fetch import fetch

    tarball, orig = b"kernel.org's bytes", b"Debian's repacked bytes"
    text, settings = local_origins(tmp_path, http_server)
    text = text.replace(
        "6f16ff302599f6fe34742890322cf0775703105fbd8767449682fca6af0fb782", hashlib.sha256(tarball).hexdigest()
    )
    text = text.replace(
        "fdf4c4d487c95b17a41cb38003faef86669e532a44fe702eb31a3390b6a60cca", hashlib.sha256(orig).hexdigest()
    )
    assert settings.config_overlay is not None
    (settings.config_overlay / "kernels.toml").write_text(text)
    (http_server.root / "kernel/v6.x").mkdir(parents=True)
    (http_server.root / "kernel/v6.x/linux-6.18.33.tar.xz").write_bytes(tarball)
    (http_server.root / "debian/pool/main/l/linux").mkdir(parents=True)
    (http_server.root / "debian/pool/main/l/linux/linux_6.18.15.orig.tar.xz").write_bytes(orig)
    settings = replace(settings, kernel_series="6.18", download_dir=tmp_path / "dl", build_dir=tmp_path / "build")
    first = fetch(load_project(settings), "linux")
    assert (first.version, first.origin) == ("6.18.33", f"{http_server.url}/kernel/v6.x/linux-6.18.33.tar.xz")
    (http_server.root / "kernel/v6.x/linux-6.18.33.tar.xz").unlink()  # kernel.org unreachable or gone
    settings = replace(settings, download_dir=tmp_path / "dl2")
    fallback = fetch(load_project(settings), "linux")
    assert (fallback.version, fallback.sha256) == ("6.18.15", hashlib.sha256(orig).hexdigest())
    assert fallback.origin.endswith("/debian/pool/main/l/linux/linux_6.18.15.orig.tar.xz")


def test_a_pin_no_origin_serves_is_one_line_naming_the_series_and_mmulab_pins(
    tmp_path: Path, http_server: LocalServer
) -> None:
    _text, settings = local_origins(tmp_path, http_server)
    apt = settings.apt_sources[0]
    env = {
        "MMULAB_KERNEL": "6.18",
        "MMULAB_BUILD_DIR": str(tmp_path / "build"),
        "MMULAB_DL_DIR": str(tmp_path / "dl"),
        "MMULAB_CONFIG_OVERLAY": str(settings.config_overlay),
        "MMULAB_APT_SOURCES": str(apt),
        "MMULAB_FETCH_RETRIES": "0",
    }
    result = run_doit(["fetch:linux"], env, timeout=120)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("mmulab: error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith(
        "mmulab: error: fetch:linux: kernel series 6.18: no origin serves the pinned linux 6.18.33/6.18.15 any more ("
    )
    assert lines[0].endswith("`mmulab pins --write` moves the pins")
    assert not any((tmp_path / "dl").rglob("*.tar.xz")), "nothing half-downloaded is kept"


# --- a second series in the same build directory (slow: one more NOMMU kernel) ---


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file of a series' folder but doit's database, with its mtime and size."""
    return {
        str(path.relative_to(folder)): (path.stat().st_mtime_ns, path.stat().st_size)
        for path in folder.rglob("*")
        if path.is_file() and not path.name.startswith(".doit.db")
    }


@pytest.mark.slow
def test_two_series_in_one_build_directory_never_reuse_each_others_outputs(session_build: Path) -> None:
    from conftest import default_root
    from helpers_pipeline import executed

    names = list(PROJECT.kernel_series)
    case, other = "clone_vm-asm-nommu", names[names.index(PROJECT.series) + 1]  # the next series (6.1 has no NOMMU ELF)
    env = {"MMULAB_BUILD_DIR": str(session_build)}
    first = run_doit([f"smoke:{case}"], env, timeout=3600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    default = default_root(session_build)
    before = _snapshot(default)

    swapped = run_doit([f"smoke:{case}"], {**env, "MMULAB_KERNEL": other}, timeout=3600)
    assert swapped.returncode == 0, swapped.stdout[-3000:] + swapped.stderr[-3000:]
    needed = {"fetch:linux", "extract:linux", "kconfig:nommu", "kernel:nommu", "program:clone_vm-asm"}
    assert needed | {"initramfs:clone_vm-asm-nommu", f"smoke:{case}"} <= set(executed(swapped.stdout))
    theirs = series_root(session_build, other)
    assert (theirs / "boots" / f"{case}.log").read_text().count(f"Linux version {other}.") == 1
    assert (theirs / "nommu/kernel/out/Image").read_bytes() != (default / "nommu/kernel/out/Image").read_bytes()
    assert _snapshot(default) == before, "the other series wrote into the default series' folder"

    back = run_doit([f"smoke:{case}"], env, timeout=3600)
    assert back.returncode == 0 and executed(back.stdout) == [], back.stdout


def test_the_kernel_versions_page_ties_each_claim_to_a_kconfig_line_or_a_console(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmulab.pipeline import kernel_versions

    build = tmp_path / "build"
    depends = {
        "6.1": "ARM || ((M68K || SUPERH || XTENSA) && !MMU)",
        "6.12": "ARM || ((M68K || RISCV || SUPERH) && !MMU)",
    }
    for series, expression in depends.items():
        tree = series_root(build, series) / "src" / "linux"
        (tree / "fs").mkdir(parents=True)
        (tree / "Kconfig").write_text('source "fs/Kconfig.binfmt"\n')
        (tree / "fs/Kconfig.binfmt").write_text(
            f'config BINFMT_ELF_FDPIC\n\tbool "ELF FDPIC"\n\tdepends on {expression}\n'
        )
        boots = series_root(build, series) / "boots"
        boots.mkdir()
        (boots / "clone_vm-asm-nommu.log").write_text(f"[    0.000000] Linux version {series}.9 (gcc 12)\nmore\n")
    project = make_project(build)
    cells = [
        matrix.Cell(
            "6.1", "clone_vm-asm-nommu", matrix.CellState.UNSUPPORTED, "nommu kernel: CONFIG_BINFMT_ELF_FDPIC: unmet"
        )
    ]
    cells += [matrix.Cell("6.12", "clone_vm-asm-nommu", matrix.CellState.PASS)]
    runs = [matrix.SeriesRun(name, f"{name}.9", "Debian", 0, 60.0, "log") for name in depends]
    (build / "reports").mkdir()
    matrix.write(cells, runs, project, build / "reports")
    monkeypatch.setattr(kernel_versions, "PAGE", tmp_path / "kernel-versions.md")
    page = kernel_versions.write(project, build).read_text()
    assert "| clone_vm-asm-nommu | not supported [1] | PASS |" in page
    assert "[1] **6.1**: nommu kernel: CONFIG_BINFMT_ELF_FDPIC: unmet" in page
    cells_of = [f"depends on {depends[name]} (fs/Kconfig.binfmt:1)".replace("|", "\\|") for name in depends]
    assert f"| `BINFMT_ELF_FDPIC` | {cells_of[0]} | {cells_of[1]} |" in page  # a pipe in a table cell is escaped
    assert f"- `BINFMT_ELF_FDPIC`: depends on {depends['6.12']} (fs/Kconfig.binfmt:1); in 6.1: depends on" in page
    assert "- Console, clone_vm-asm-nommu: `[    0.000000] Linux version 6.12.9 (gcc 12)`" in page
    assert "| `SLOB` | absent | absent |" in page
