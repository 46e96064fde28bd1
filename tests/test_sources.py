"""Fetching against a real local HTTP server, the offline fallbacks, and safe extraction."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import LocalServer, make_project

from mmulab.build import debian, extract, fetch
from mmulab.core import fsutil
from mmulab.core.errors import UserError
from mmulab.project.model import Origin, Project, Source

PAYLOAD = os.urandom(300_000)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMULAB_FETCH_RETRIES", "1")
    monkeypatch.setenv("MMULAB_FETCH_BACKOFF", "0")


def project_with(
    tmp_path: Path, origins: list[Origin], mirrors: tuple[str, ...] = (), apt_sources: tuple[Path, ...] = ()
) -> Project:
    project = make_project(tmp_path / "build", download_dir=tmp_path / "dl", mirrors=(), apt_sources=apt_sources)
    source = Source("demo", "1.0", PAYLOAD_SHA, "demo-1.0.tar", tuple(origins))
    return replace(project, sources={"demo": source}, mirrors=mirrors)


def url_origin(url: str, sha256: str = PAYLOAD_SHA) -> Origin:
    return Origin(kind="url", url=url, sha256=sha256, version="1.0", filename="demo-1.0.tar")


def leftovers(tmp_path: Path) -> list[str]:
    """The cached files (each verified file's <file>.origin.json sidecar aside)."""
    return sorted(p.name for p in (tmp_path / "dl").rglob("*") if p.is_file() and not p.name.endswith(".origin.json"))


def test_good_file_is_verified_and_cached(tmp_path: Path, http_server: LocalServer) -> None:
    (http_server.root / "demo-1.0.tar").write_bytes(PAYLOAD)
    project = project_with(tmp_path, [url_origin(f"{http_server.url}/demo-1.0.tar")])
    fetched = fetch.fetch(project, "demo")
    assert Path(fetched.path).read_bytes() == PAYLOAD
    assert fetched.origin == f"{http_server.url}/demo-1.0.tar"
    assert leftovers(tmp_path) == ["demo-1.0.tar"]
    again = fetch.fetch(project, "demo")
    # a cache hit still says where the file came from (its <file>.origin.json sidecar)
    assert (again.origin, again.origin_kind, again.sha256) == (fetched.origin, "url", PAYLOAD_SHA)
    assert http_server.hits == ["/demo-1.0.tar"]


def test_a_cache_hit_without_origin_sidecar_says_download_cache(tmp_path: Path, http_server: LocalServer) -> None:
    (http_server.root / "demo-1.0.tar").write_bytes(PAYLOAD)
    project = project_with(tmp_path, [url_origin(f"{http_server.url}/demo-1.0.tar")])
    fetched = fetch.fetch(project, "demo")
    sidecar = Path(fetched.path + ".origin.json")
    sidecar.write_text(sidecar.read_text().replace(PAYLOAD_SHA, "0" * 64))  # names other bytes: not trusted
    assert (fetch.fetch(project, "demo").origin, fetch.fetch(project, "demo").origin_kind) == (
        "download cache",
        "cache",
    )
    sidecar.unlink()  # a file cached before sidecars existed
    assert fetch.fetch(project, "demo").origin == "download cache"


def test_wrong_sha256_is_rejected_and_nothing_is_kept(tmp_path: Path, http_server: LocalServer) -> None:
    (http_server.root / "demo-1.0.tar").write_bytes(PAYLOAD + b"tampered")
    project = project_with(tmp_path, [url_origin(f"{http_server.url}/demo-1.0.tar")])
    with pytest.raises(UserError, match=r"sha256 mismatch: got [0-9a-f]{64}, pinned " + PAYLOAD_SHA):
        fetch.fetch(project, "demo")
    assert leftovers(tmp_path) == []


def test_404_names_the_origin(tmp_path: Path, http_server: LocalServer) -> None:
    project = project_with(tmp_path, [url_origin(f"{http_server.url}/missing.tar")])
    with pytest.raises(UserError) as error:
        fetch.fetch(project, "demo")
    assert f"{http_server.url}/missing.tar: HTTP 404" in str(error.value)
    assert leftovers(tmp_path) == []


def test_truncated_transfer_is_retried_then_reported(tmp_path: Path, http_server: LocalServer) -> None:
    (http_server.root / "demo-1.0.tar").write_bytes(PAYLOAD)
    project = project_with(tmp_path, [url_origin(f"{http_server.url}/truncated/demo-1.0.tar")])
    with pytest.raises(UserError, match=r"truncated.*after 2 attempts"):
        fetch.fetch(project, "demo")
    assert http_server.hits == ["/truncated/demo-1.0.tar"] * 2
    assert leftovers(tmp_path) == []


def test_mirror_is_tried_before_upstream(tmp_path: Path, http_server: LocalServer) -> None:
    mirror = http_server.root / "mirror"
    mirror.mkdir()
    (mirror / "demo-1.0.tar").write_bytes(PAYLOAD)
    (http_server.root / "demo-1.0.tar").write_bytes(PAYLOAD)
    project = project_with(
        tmp_path, [url_origin(f"{http_server.url}/demo-1.0.tar")], mirrors=(f"{http_server.url}/mirror/",)
    )
    fetched = fetch.fetch(project, "demo")
    assert fetched.origin == f"{http_server.url}/mirror/demo-1.0.tar"
    assert http_server.hits == ["/mirror/demo-1.0.tar"]


def test_falls_through_to_the_next_origin_and_lists_every_failure(tmp_path: Path, http_server: LocalServer) -> None:
    origins = [
        url_origin("http://no-such-host.invalid/demo-1.0.tar"),
        url_origin(f"{http_server.url}/gone.tar"),
        Origin(
            kind="local-file",
            path=str(tmp_path / "absent.tar"),
            package="demo-source",
            package_version="1.0-1",
            sha256=PAYLOAD_SHA,
            version="1.0",
            filename="demo-1.0.tar",
        ),
    ]
    project = project_with(tmp_path, origins, mirrors=(f"{http_server.url}/mirror",))
    with pytest.raises(UserError) as error:
        fetch.fetch(project, "demo")
    lines = str(error.value).splitlines()
    assert lines[0] == "source 'demo': every origin failed:"
    assert any("no-such-host.invalid/demo-1.0.tar: cannot resolve host" in line for line in lines)
    assert any("/gone.tar: HTTP 404" in line for line in lines)
    assert any("/mirror/demo-1.0.tar: HTTP 404" in line for line in lines)
    assert any("absent.tar: no such file; install demo-source (./setup.sh does)" in line for line in lines)

    (tmp_path / "absent.tar").write_bytes(PAYLOAD)
    assert fetch.fetch(project, "demo").origin_kind == "local-file"


def warnings(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("mmulab: warning: ")]


def test_bad_mirrors_are_told_once_each_and_only_the_good_file_stays(
    tmp_path: Path, http_server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    (http_server.root / "wrong").mkdir()
    (http_server.root / "wrong" / "demo-1.0.tar").write_bytes(PAYLOAD[:-1] + b"!")
    (http_server.root / "demo-1.0.tar").write_bytes(PAYLOAD)
    wrong, truncated = f"{http_server.url}/wrong", f"{http_server.url}/truncated"
    project = project_with(tmp_path, [url_origin(f"{http_server.url}/demo-1.0.tar")], mirrors=(wrong, truncated))
    fetched = fetch.fetch(project, "demo")
    assert fetched.origin == f"{http_server.url}/demo-1.0.tar"
    assert Path(fetched.path).read_bytes() == PAYLOAD
    told = warnings(capsys)
    assert len(told) == 2, told
    assert told[0].startswith(f"mmulab: warning: {wrong}/demo-1.0.tar: sha256 mismatch (got ")
    assert f"pinned {PAYLOAD_SHA[:8]}...): skipped; fix or remove this mirror" in told[0]
    assert told[1].startswith(f"mmulab: warning: {truncated}/demo-1.0.tar: ")
    assert "truncated" in told[1] and told[1].endswith("(after 2 attempts): skipped; fix or remove this mirror")
    assert leftovers(tmp_path) == ["demo-1.0.tar"]
    assert http_server.hits == ["/wrong/demo-1.0.tar", *["/truncated/demo-1.0.tar"] * 2, "/demo-1.0.tar"]


def test_unreachable_or_missing_upstream_is_not_told(
    tmp_path: Path, http_server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    (http_server.root / "demo-1.0.tar").write_bytes(PAYLOAD)
    origins = [
        url_origin("http://no-such-host.invalid/demo-1.0.tar"),
        url_origin(f"{http_server.url}/gone.tar"),
        url_origin(f"{http_server.url}/demo-1.0.tar"),
    ]
    assert fetch.fetch(project_with(tmp_path, origins), "demo").origin == f"{http_server.url}/demo-1.0.tar"
    assert capsys.readouterr().err == ""


def test_a_mirror_missing_the_file_is_told(
    tmp_path: Path, http_server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    (http_server.root / "demo-1.0.tar").write_bytes(PAYLOAD)
    project = project_with(
        tmp_path, [url_origin(f"{http_server.url}/demo-1.0.tar")], mirrors=(f"{http_server.url}/empty",)
    )
    fetch.fetch(project, "demo")
    assert warnings(capsys) == [
        f"mmulab: warning: {http_server.url}/empty/demo-1.0.tar: HTTP 404 File not found: skipped; "
        "fix or remove this mirror"
    ]


def test_wrong_upstream_and_wrong_local_file_are_told_then_a_good_origin_wins(
    tmp_path: Path, http_server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    (http_server.root / "bad.tar").write_bytes(b"not it")
    (http_server.root / "demo-1.0.tar").write_bytes(PAYLOAD)
    local = tmp_path / "local.tar"
    local.write_bytes(b"not it either")
    origins = [
        url_origin(f"{http_server.url}/bad.tar"),
        Origin(kind="local-file", path=str(local), sha256=PAYLOAD_SHA, version="1.0", filename="demo-1.0.tar"),
        url_origin(f"{http_server.url}/demo-1.0.tar"),
    ]
    fetched = fetch.fetch(project_with(tmp_path, origins), "demo")
    assert fetched.origin == f"{http_server.url}/demo-1.0.tar"
    told = warnings(capsys)
    assert len(told) == 2, told
    assert told[0].startswith(f"mmulab: warning: {http_server.url}/bad.tar: sha256 mismatch (got ")
    assert told[1].startswith(f"mmulab: warning: {local}: sha256 mismatch (got ")
    assert leftovers(tmp_path) == ["demo-1.0.tar"]
    assert local.read_bytes() == b"not it either"


def test_debian_source_package_from_the_machines_apt_archives(tmp_path: Path, http_server: LocalServer) -> None:
    pool = http_server.root / "debian" / "pool" / "main" / "d" / "demo"
    pool.mkdir(parents=True)
    (pool / "demo_1.0.orig.tar.gz").write_bytes(PAYLOAD)
    apt = tmp_path / "apt"
    apt.mkdir()
    (apt / "debian.sources").write_text(
        "Types: deb\nURIs: http://127.0.0.1:9/unreachable\nSuites: bookworm\nComponents: main\nEnabled: no\n\n"
        f"Types: deb deb-src\nURIs: {http_server.url}/debian/\nSuites: bookworm\nComponents: main\n"
    )
    origin = Origin(
        kind="debian-source",
        package="demo",
        file="demo_1.0.orig.tar.gz",
        sha256=PAYLOAD_SHA,
        version="1.0",
        filename="demo_1.0.orig.tar.gz",
    )
    project = project_with(
        tmp_path, [url_origin("http://no-such-host.invalid/demo-1.0.tar"), origin], apt_sources=(apt,)
    )
    fetched = fetch.fetch(project, "demo")
    assert fetched.origin == f"{http_server.url}/debian/pool/main/d/demo/demo_1.0.orig.tar.gz"
    assert Path(fetched.path).name == "demo_1.0.orig.tar.gz"


def test_apt_archive_uris_reads_both_formats(tmp_path: Path) -> None:
    (tmp_path / "a.list").write_text(
        "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n"
        "deb-src http://one.example/debian bookworm main\ndeb cdrom:[x]/ bookworm main\n"
    )
    (tmp_path / "b.sources").write_text("Types: deb\nURIs: https://two.example/debian\nSuites: bookworm\n")
    (tmp_path / "c.list.disabled").write_text("deb http://three.example/ x main\n")
    assert debian.apt_archive_uris((tmp_path,)) == [
        "http://one.example/debian",
        "https://two.example/debian",
    ]


def test_pool_paths_follow_debians_layout() -> None:
    assert debian.debian_pool_path("busybox", "main", "f") == "pool/main/b/busybox/f"
    assert debian.debian_pool_path("libfoo", "main", "f") == "pool/main/libf/libfoo/f"


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_extraction_strips_the_top_directory(tmp_path: Path) -> None:
    archive = _tarball(tmp_path / "ok.tar.gz", {"pkg-1.0/README": b"hi", "pkg-1.0/src/a.c": b"int a;"})
    extract.extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "README").read_bytes() == b"hi"
    assert (tmp_path / "out" / "src" / "a.c").read_bytes() == b"int a;"


@pytest.mark.parametrize("evil", ["pkg/../../escaped", "/etc/escaped"])
def test_extraction_refuses_paths_that_escape(tmp_path: Path, evil: str) -> None:
    archive = _tarball(tmp_path / "evil.tar.gz", {"pkg/fine": b"x", evil: b"owned"})
    with pytest.raises(UserError, match="escapes the target directory"):
        extract.extract(archive, tmp_path / "work" / "out")
    assert not (tmp_path / "work" / "out").exists()
    assert list((tmp_path / "work").iterdir()) == []
    assert not (tmp_path / "escaped").exists()


def test_extraction_refuses_symlinks_that_escape(tmp_path: Path) -> None:
    archive = tmp_path / "link.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        link = tarfile.TarInfo("pkg/link")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
        handle.addfile(link)
    with pytest.raises(UserError, match=r"its link .* escapes the target directory"):
        extract.extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tree_digest_follows_paths_and_contents(tmp_path: Path) -> None:
    for root in ("a", "b"):
        (tmp_path / root / "lib").mkdir(parents=True)
        (tmp_path / root / "lib" / "libc.a").write_bytes(b"archive")
    assert fsutil.tree_digest(tmp_path / "a") == fsutil.tree_digest(tmp_path / "b")
    (tmp_path / "b" / "lib" / "libc.a").write_bytes(b"archive, patched")
    assert fsutil.tree_digest(tmp_path / "a") != fsutil.tree_digest(tmp_path / "b")
    (tmp_path / "a" / "lib" / "libc.a").rename(tmp_path / "a" / "lib" / "libm.a")
    assert fsutil.tree_digest(tmp_path / "a") != fsutil.tree_digest(tmp_path / "b")


@pytest.mark.needs("patch")
def test_patches_apply_in_order_and_one_that_does_not_fails_naming_it(tmp_path: Path) -> None:
    archive = _tarball(tmp_path / "pkg.tar.gz", {"pkg-1.0/a.c": b"int a = 1;\n"})
    good = tmp_path / "0001-good.patch"
    good.write_text("--- a/a.c\n+++ b/a.c\n@@ -1 +1 @@\n-int a = 1;\n+int a = 2;\n")
    extract.extract(archive, tmp_path / "out", patches=(good,))
    assert (tmp_path / "out" / "a.c").read_text() == "int a = 2;\n"
    stale = tmp_path / "0002-stale.patch"
    stale.write_text("--- a/a.c\n+++ b/a.c\n@@ -1 +1 @@\n-int a = 7;\n+int a = 8;\n")
    with pytest.raises(UserError) as error:
        extract.extract(archive, tmp_path / "again", patches=(good, stale))
    first = str(error.value).splitlines()[0]
    assert first.startswith("pkg.tar.gz: patch 0002-stale.patch failed (exit 1); full log: ")
    assert not (tmp_path / "again").exists(), "a tree whose patch failed is not left behind"


# --- issue 18, defect 1: no member is ever written through a link ---


def _crafted(path: Path, members: list[tuple[str, bytes, str]]) -> Path:
    """A source tarball of (name, type, link text or contents) members, in this order."""
    with tarfile.open(path, "w:gz") as archive:
        for name, kind, text in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, 0o755 if kind == tarfile.DIRTYPE else 0o644
            data = text.encode() if kind == tarfile.REGTYPE else b""
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = text
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


# Extracted at <tmp_path>/w1/w2/w3/w4/out (via the sibling .out.*.tmp): `l6` is <tmp_path>, five levels up.
CLIMB = [(f"pkg/l{n}", tarfile.SYMTYPE, f"l{n - 1}/..") for n in range(2, 7)]
LINK_TRICKS = {
    # the tarball: each `lN -> lN-1/..` is lexically `.`, really one level up; then x through them
    "links-that-climb": (
        [("pkg/l1", tarfile.SYMTYPE, "."), *CLIMB, ("pkg/x", tarfile.SYMTYPE, "l6/outside/f"), ("pkg/x", b"0", "o")],
        False,
        "refusing archive member 'pkg/l2': its target 'l1/..' goes through the symlink 'l1'",
    ),
    # the same links made in the other order: each passes through a link that does not exist yet
    "links-that-climb-made-backwards": (
        [
            *reversed(CLIMB),
            ("pkg/l1", tarfile.SYMTYPE, "."),
            ("pkg/x", tarfile.SYMTYPE, "l6/outside/f"),
            ("pkg/x", b"0", "o"),
        ],
        False,
        "refusing archive member 'pkg/l5': the target of an earlier symlink goes through it",
    ),
    # Buildroot's kind of source keeps absolute links: a later regular member of the same name went through it
    "file-over-an-absolute-link": (
        [("pkg/x", tarfile.SYMTYPE, "{outside}/f"), ("pkg/x", b"0", "o")],
        True,
        "refusing archive member 'pkg/x': it replaces the symlink 'x'",
    ),
    "file-over-an-absolute-link-to-a-file": (
        [("pkg/x", tarfile.SYMTYPE, "{outside}/victim"), ("pkg/x", b"0", "o")],
        True,
        "refusing archive member 'pkg/x': it replaces the symlink 'x'",
    ),
    # a folder member over a link: tarfile keeps the link and sets the folder's mode on what it points at
    "folder-over-an-absolute-link": (
        [("pkg/x", tarfile.SYMTYPE, "{outside}"), ("pkg/x", tarfile.DIRTYPE, "")],
        True,
        "refusing archive member 'pkg/x': it replaces the symlink 'x'",
    ),
    # a hard link to a symlink is a hard link to what it points at (os.link follows): then written in place
    "hard-link-to-an-absolute-link": (
        [("pkg/s", tarfile.SYMTYPE, "{outside}/victim"), ("pkg/h", tarfile.LNKTYPE, "pkg/s"), ("pkg/h", b"0", "o")],
        True,
        "refusing archive member 'pkg/h': its hard link to 'pkg/s' is not to a file before it",
    ),
    "file-replaced-by-a-link-then-hard-linked": (
        [
            ("pkg/f", b"0", "in"),
            ("pkg/f", tarfile.SYMTYPE, "{outside}/victim"),
            ("pkg/h", tarfile.LNKTYPE, "pkg/f"),
            ("pkg/h", b"0", "o"),
        ],
        True,
        "refusing archive member 'pkg/f': it replaces the file 'f' with a symlink",
    ),
    "file-behind-a-link": (
        [("pkg/d", tarfile.SYMTYPE, "{outside}"), ("pkg/d/f", b"0", "o")],
        True,
        "refusing archive member 'pkg/d/f': it lies behind the symlink 'd'",
    ),
}


def _state(folder: Path) -> list[tuple[str, int, bytes]]:
    """What a folder holds, with every mode and every file's bytes: it must not change."""
    paths = [folder, *sorted(folder.rglob("*"))]
    return [(p.name, p.lstat().st_mode, p.read_bytes() if p.is_file() else b"") for p in paths]


@pytest.mark.parametrize("trick", list(LINK_TRICKS))
def test_extraction_never_writes_through_a_link_made_earlier(tmp_path: Path, trick: str) -> None:
    """Issue 18, defect 1: links checked one by one (lexically inside) let a later member be written through
    them, outside the tree (a real escape, and --rebuild extracts a release's sources)."""
    members, absolute_links, refusal = LINK_TRICKS[trick]
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    (outside / "victim").write_bytes(b"precious\n")
    before = _state(outside)
    spelled = [(name, kind, text.format(outside=outside)) for name, kind, text in members]
    archive = _crafted(tmp_path / "evil.tar.gz", spelled)
    work = tmp_path / "w1" / "w2" / "w3" / "w4"
    with pytest.raises(UserError) as error:
        extract.extract(archive, work / "out", absolute_links=absolute_links)
    assert str(error.value) == f"evil.tar.gz: {refusal}"
    assert _state(outside) == before, "something was written outside the tree"
    assert list(work.iterdir()) == [], "the half-extracted tree was not removed"


def test_extraction_keeps_the_links_real_source_trees_have(tmp_path: Path) -> None:
    """What the rules must not refuse: the kernel's links (up and across folders, to a link), a hard link to a
    file before it, a file given twice, a folder given after its files; and an absolute link where allowed."""
    archive = _crafted(
        tmp_path / "fine.tar.gz",
        [
            ("pkg/arch/arm/boot/dts/a.dtsi", b"0", "dts"),
            ("pkg/scripts/dtc/include-prefixes/arm", tarfile.SYMTYPE, "../../../arch/arm/boot/dts"),
            ("pkg/scripts/dummy-tools/ld", b"0", "ld"),
            ("pkg/scripts/dummy-tools/nm", tarfile.SYMTYPE, "ld"),
            ("pkg/scripts/nm", tarfile.SYMTYPE, "dummy-tools/nm"),
            ("pkg/same", tarfile.LNKTYPE, "pkg/scripts/dummy-tools/ld"),
            ("pkg/twice", b"0", "first"),
            ("pkg/twice", b"0", "second"),
            ("pkg/arch", tarfile.DIRTYPE, ""),
            ("pkg/etc/init", tarfile.SYMTYPE, "/sbin/init"),
        ],
    )
    extract.extract(archive, tmp_path / "out", absolute_links=True)
    out = tmp_path / "out"
    assert (out / "scripts/dtc/include-prefixes/arm/a.dtsi").read_text() == "dts"
    assert (out / "scripts/nm").read_text() == "ld"
    assert (out / "same").stat().st_ino == (out / "scripts/dummy-tools/ld").stat().st_ino
    assert (out / "twice").read_text() == "second"
    assert os.readlink(out / "etc/init") == "/sbin/init"
    with pytest.raises(UserError, match=r"'pkg/etc/init': its link '/sbin/init' escapes the target directory"):
        extract.extract(archive, tmp_path / "again")


def test_a_source_tree_of_any_depth_is_removed(tmp_path: Path) -> None:
    """shutil.rmtree recursed (RecursionError past ~1,000 levels) and could not pass PATH_MAX; remove_tree can,
    also through folders without write or search permission."""
    top = tmp_path / "tree"
    top.mkdir()
    descriptor = os.open(top, os.O_RDONLY)
    try:
        for _ in range(1_200):
            os.mkdir("d" * 100, dir_fd=descriptor)  # 120,000 characters of path: far past PATH_MAX
            os.close(os.open("f", os.O_CREAT | os.O_WRONLY, dir_fd=descriptor))
            os.symlink("/", "link", dir_fd=descriptor)
            child = os.open("d" * 100, os.O_RDONLY, dir_fd=descriptor)
            os.close(descriptor)
            descriptor = child
        os.mkdir("locked", mode=0, dir_fd=descriptor)
        os.chmod(descriptor, 0o500)
    finally:
        os.close(descriptor)
    (top / "sibling").mkdir(mode=0o500)
    fsutil.remove_tree(top)
    assert list(tmp_path.iterdir()) == []  # (had it failed, pytest's own cleanup of old runs would fail too)
    fsutil.remove_tree(top)  # already gone: nothing to do


def test_a_source_tarball_of_thousands_of_chained_headers_is_one_line(tmp_path: Path) -> None:
    """Issue 18, defect 2 for sources (--rebuild extracts a release's): tarfile reads the member after a GNU
    long-name header by recursing, so 3,000 in a row were a RecursionError; now one line, nothing left."""
    blocks = b""
    for index in range(3_000):
        body = f"pkg/name-{index}\0".encode()
        header = tarfile.TarInfo("././@LongLink")
        header.type, header.size = tarfile.GNUTYPE_LONGNAME, len(body)
        blocks += header.tobuf(tarfile.GNU_FORMAT) + body + bytes(-len(body) % 512)
    archive = tmp_path / "chain.tar"
    archive.write_bytes(blocks + tarfile.TarInfo("pkg/f").tobuf(tarfile.GNU_FORMAT) + bytes(1024))
    with pytest.raises(UserError) as error:
        extract.extract(archive, tmp_path / "work" / "out")
    assert str(error.value) == (
        "chain.tar: refusing archive: it nests too deeply (thousands of chained headers or folder levels)"
    )
    assert list((tmp_path / "work").iterdir()) == []
