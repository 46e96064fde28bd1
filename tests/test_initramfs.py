"""initramfs images: byte-identical for the same inputs, and readable by GNU cpio as the kernel reads them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mmulab.build import initramfs
from mmulab.build.initramfs import Entry


def entries(tmp_path: Path, init_bytes: bytes = b"\x7fELF-not-really") -> list[Entry]:
    init = tmp_path / "init-binary"
    init.write_bytes(init_bytes)
    return [
        Entry("init", "file", 0o755, source=init),
        *initramfs.base_entries(),
        Entry("bin/sh", "symlink", 0o777, target="busybox"),
        Entry("etc/motd", "file", 0o644, source=init),
    ]


def cpio_list(archive: Path, verbose: bool = False) -> list[str]:
    flags = "-itv" if verbose else "-it"
    result = subprocess.run(
        ["cpio", flags, "--quiet"], stdin=archive.open("rb"), capture_output=True, text=True, check=True
    )
    return result.stdout.splitlines()


def test_same_inputs_give_the_same_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "a.cpio", tmp_path / "b.cpio"
    initramfs.write(entries(tmp_path), first, mtime=1700000000)
    initramfs.write(list(reversed(entries(tmp_path))), second, mtime=1700000000)
    assert first.read_bytes() == second.read_bytes()
    initramfs.write(entries(tmp_path), second, mtime=1700000001)
    assert first.read_bytes() != second.read_bytes()


@pytest.mark.needs("cpio")
def test_cpio_lists_every_entry_sorted_with_parents(tmp_path: Path) -> None:
    archive = tmp_path / "image.cpio"
    initramfs.write(entries(tmp_path), archive, mtime=0)
    assert cpio_list(archive) == [
        ".",
        "bin",
        "bin/sh",
        "dev",
        "dev/console",
        "etc",
        "etc/motd",
        "init",
        "proc",
        "root",
        "sys",
        "tmp",
    ]
    assert len(archive.read_bytes()) % 512 == 0


@pytest.mark.needs("cpio")
def test_console_is_a_device_node_and_files_keep_modes_and_content(tmp_path: Path) -> None:
    archive = tmp_path / "image.cpio"
    initramfs.write(entries(tmp_path, b"payload-bytes"), archive, mtime=0)
    listing = {line.split()[-1] if "->" not in line else line.split()[-3]: line for line in cpio_list(archive, True)}
    assert listing["dev/console"].startswith("crw-------")
    assert "5,   1" in listing["dev/console"] or "5, 1" in listing["dev/console"]
    assert listing["init"].startswith("-rwxr-xr-x")
    assert listing["tmp"].startswith("drwxrwxrwt")
    assert "bin/sh -> busybox" in listing["bin/sh"]
    assert all(" root " in line or " 0 " in line for line in listing.values())
    out = tmp_path / "unpacked"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--quiet", "init", "etc/motd"], stdin=archive.open("rb"), cwd=out, check=True)
    assert (out / "init").read_bytes() == b"payload-bytes"
    assert (out / "etc" / "motd").read_bytes() == b"payload-bytes"
