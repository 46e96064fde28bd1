"""A Debian package's file after Debian moved on: pinned versions, apt's signed archive via dpkg's md5sums,
the known-versions data, and setup.sh's package list (no root, no real apt change)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import make_project, missing

from mmulab.build import debian, download, fetch
from mmulab.core.errors import UserError
from mmulab.core.settings import PROJECT_ROOT
from mmulab.project.loader import load_project
from mmulab.project.model import KnownVersion, Origin, Project, Source, upstream_version

PACKAGE = "linux-source-6.12"
NEWER = "6.12.999-1~deb12u1"
TARBALL = os.urandom(200_000)
TARBALL_SHA = hashlib.sha256(TARBALL).hexdigest()
PINNED_SHA = "585a4a074597aefa2b1a68ada83a3184ba351c127544dea80618bbcceaa3961f"


def installed(tmp_path: Path, data: bytes = TARBALL) -> Path:
    """A temporary "installed" tarball, as the package would put it under /usr/src."""
    path = tmp_path / "root" / "usr" / "src" / f"{PACKAGE}.tar.xz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def fake_dpkg(
    tmp_path: Path,
    tarball: Path,
    status: str = "install ok installed",
    md5: str | None = None,
    md5sums_name: str = f"{PACKAGE}.md5sums",
    version: str = NEWER,
) -> Path:
    """A dpkg admin dir: status (the package between two others) and info/<md5sums_name> for `tarball`."""
    admindir = tmp_path / "dpkg"
    (admindir / "info").mkdir(parents=True, exist_ok=True)
    (admindir / "status").write_text(
        "Package: make\nStatus: install ok installed\nArchitecture: amd64\nVersion: 4.3-4.1\n\n"
        f"Package: {PACKAGE}\nStatus: {status}\nPriority: optional\nArchitecture: all\nMulti-Arch: foreign\n"
        f"Source: linux-6.12\nVersion: {version}\nDescription: Linux kernel source\n"
        " Package: not-this-one\n Version: 0\n\n"
        f"Package: {PACKAGE}-extra\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n"
    )
    md5 = md5 or hashlib.md5(tarball.read_bytes()).hexdigest()
    (admindir / "info" / md5sums_name).write_text(
        f"0123456789abcdef0123456789abcdef  usr/share/doc/{PACKAGE}/copyright\n{md5}  {str(tarball).lstrip('/')}\n"
    )
    return admindir


def local_origin(path: Path, known: tuple[KnownVersion, ...] = ()) -> Origin:
    known = known or (KnownVersion("6.12.117-1~deb12u1", "6.12.117", PINNED_SHA),)
    return Origin(
        kind="local-file",
        path=str(path),
        package=PACKAGE,
        package_version=known[0].package_version,
        sha256=known[0].sha256,
        version=known[0].version,
        filename=f"{PACKAGE}.tar.xz",
        known=known,
    )


def project_with(tmp_path: Path, origins: list[Origin]) -> Project:
    project = make_project(tmp_path / "build", download_dir=tmp_path / "dl", mirrors=())
    source = Source("linux", "6.12.80", "0" * 64, "linux-6.12.80.tar.xz", tuple(origins))
    return replace(project, sources={"linux": source}, mirrors=())


def cached(tmp_path: Path) -> list[str]:
    """The cached files (each verified file's <file>.origin.json sidecar aside)."""
    return sorted(p.name for p in (tmp_path / "dl").rglob("*") if p.is_file() and not p.name.endswith(".origin.json"))


def test_a_newer_installed_version_is_trusted_through_dpkg_md5sums(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tarball = installed(tmp_path)
    admindir = fake_dpkg(tmp_path, tarball)
    fetched = fetch.fetch(project_with(tmp_path, [local_origin(tarball)]), "linux", dpkg_admindir=admindir)
    assert (fetched.version, fetched.package, fetched.package_version) == ("6.12.999", PACKAGE, NEWER)
    assert (fetched.trust, fetched.sha256, fetched.origin, fetched.origin_kind) == (
        "apt-archive",
        TARBALL_SHA,
        str(tarball),
        "local-file",
    )
    assert Path(fetched.path).read_bytes() == TARBALL
    assert cached(tmp_path) == [f"{PACKAGE}.tar.xz"]
    assert capsys.readouterr().err.splitlines() == [
        f"mmulab: linux: {tarball} is {PACKAGE} {NEWER}, not a pinned version; trusted through apt's signed "
        f"archive (dpkg md5sums match), sha256 {TARBALL_SHA} recorded"
    ]
    record = tmp_path / "fetched.json"
    fetched.write(record)
    assert download.Fetched.read(record) == fetched
    assert json.loads(record.read_text())["trust"] == "apt-archive"


def test_an_arch_qualified_md5sums_file_is_found(tmp_path: Path) -> None:
    tarball = installed(tmp_path)
    admindir = fake_dpkg(tmp_path, tarball, md5sums_name=f"{PACKAGE}:all.md5sums")
    assert debian.dpkg_vouches(str(tarball), PACKAGE, hashlib.md5(TARBALL).hexdigest(), admindir) == NEWER


@pytest.mark.parametrize(
    ("dpkg", "reason"),
    [
        ({"md5": "f" * 32}, rf"its md5 [0-9a-f]{{32}} differs from f{{32}} that dpkg recorded for {PACKAGE} {NEWER}"),
        ({"status": "deinstall ok config-files"}, f"dpkg does not list {PACKAGE} as installed"),
        ({"status": "install ok unpacked"}, f"dpkg does not list {PACKAGE} as installed"),
        ({"md5sums_name": "other.md5sums"}, f"dpkg's md5sums of {PACKAGE} do not list .*{PACKAGE}.tar.xz"),
    ],
)
def test_a_file_apt_does_not_vouch_for_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dpkg: dict[str, str], reason: str
) -> None:
    tarball = installed(tmp_path)
    admindir = fake_dpkg(tmp_path, tarball, **dpkg)
    with pytest.raises(UserError) as error:
        fetch.fetch(project_with(tmp_path, [local_origin(tarball)]), "linux", dpkg_admindir=admindir)
    failure = str(error.value).splitlines()[1]
    assert re.fullmatch(
        rf"  - {tarball}: sha256 mismatch: got {TARBALL_SHA}, pinned {PINNED_SHA}; not trusted through apt either: "
        + reason
        + r".*",
        failure,
    ), failure
    told = capsys.readouterr().err.splitlines()
    assert len(told) == 1 and told[0].startswith(f"mmulab: warning: {tarball}: sha256 mismatch (got "), told
    assert told[0].endswith(f"skipped; reinstall it (apt-get install --reinstall {PACKAGE}) or remove it")
    assert cached(tmp_path) == []


def test_no_dpkg_database_is_refused(tmp_path: Path) -> None:
    tarball = installed(tmp_path)
    with pytest.raises(UserError, match=r"cannot read dpkg's database .*/nowhere/status"):
        fetch.fetch(project_with(tmp_path, [local_origin(tarball)]), "linux", dpkg_admindir=tmp_path / "nowhere")


def test_a_known_sha256_is_used_as_pinned_without_asking_dpkg(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tarball = installed(tmp_path)
    known = (
        KnownVersion("6.12.117-1~deb12u1", "6.12.117", PINNED_SHA),
        KnownVersion("6.12.115-2~deb12u1", "6.12.115", TARBALL_SHA),
    )
    project = project_with(tmp_path, [local_origin(tarball, known)])
    fetched = fetch.fetch(project, "linux", dpkg_admindir=tmp_path / "no-dpkg-here")
    assert (fetched.trust, fetched.version, fetched.package, fetched.package_version, fetched.sha256) == (
        "pinned",
        "6.12.115",
        PACKAGE,
        "6.12.115-2~deb12u1",
        TARBALL_SHA,
    )
    assert capsys.readouterr().err == ""
    again = fetch.fetch(project, "linux", dpkg_admindir=tmp_path / "no-dpkg-here")
    assert (again.origin, again.trust, again.package_version) == (str(tarball), "pinned", "6.12.115-2~deb12u1")


def test_an_apt_trusted_file_is_checked_again_not_taken_from_the_cache(tmp_path: Path) -> None:
    tarball = installed(tmp_path)
    admindir = fake_dpkg(tmp_path, tarball)
    project = project_with(tmp_path, [local_origin(tarball)])
    assert fetch.fetch(project, "linux", dpkg_admindir=admindir).trust == "apt-archive"
    tarball.unlink()
    installed(tmp_path, b"replaced behind dpkg's back")
    with pytest.raises(UserError, match=r"its md5 .* differs"):
        fetch.fetch(project, "linux", dpkg_admindir=admindir)
    assert cached(tmp_path) == []


def test_an_old_fetched_record_still_reads(tmp_path: Path) -> None:
    record = tmp_path / "fetched.json"
    old = {"source": "busybox", "path": "/x", "sha256": "a" * 64, "version": "1", "origin": "u", "origin_kind": "url"}
    record.write_text(json.dumps(old))
    fetched = download.Fetched.read(record)
    assert (fetched.trust, fetched.package, fetched.package_version) == ("pinned", "", "")


def test_this_machines_dpkg_database_vouches_for_its_installed_tarball() -> None:
    if not Path(f"/var/lib/dpkg/info/{PACKAGE}.md5sums").is_file():
        missing(f"the Debian package {PACKAGE}", "./setup.sh installs it")
    path = f"/usr/src/{PACKAGE}.tar.xz"
    md5 = hashlib.md5(Path(path).read_bytes()).hexdigest()
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", PACKAGE], capture_output=True, text=True, check=True
    ).stdout
    assert debian.dpkg_vouches(path, PACKAGE, md5, Path("/var/lib/dpkg")) == version


def test_upstream_version() -> None:
    assert upstream_version("6.12.118-1~deb12u1") == "6.12.118"
    assert upstream_version("1:2.3-4-5") == "2.3-4"
    assert upstream_version("1.35.0") == "1.35.0"


# --- the known versions in configs/kernels.toml ---


def test_the_linux_local_file_origin_lists_its_known_versions() -> None:
    (origin,) = [o for o in load_project().sources["linux"].origins if o.kind == "local-file"]
    assert origin.pins()[0] == KnownVersion("6.12.117-1~deb12u1", "6.12.117", PINNED_SHA)
    assert (origin.sha256, origin.version, origin.package_version) == (PINNED_SHA, "6.12.117", "6.12.117-1~deb12u1")


KNOWN = '  { package_version = "6.12.117-1~deb12u1", version = "6.12.117", sha256 = "585a4a07'


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (KNOWN, KNOWN.replace("585a4a07", "585A4A07"), r"origins\[1\]\.known\[0\]\.sha256: .* is not a lowercase"),
        (KNOWN, KNOWN.replace('_version = "6', '_version = "v6'), r"origins\[1\]\.known\[0\]\.package_version: 'v6"),
        (KNOWN, KNOWN.replace(" version = ", " versoin = "), r"origins\[1\]\.known\[0\]\.versoin: unknown field"),
        ("known = [\n", 'known = [\n  "6.12.117",\n', r"origins\[1\]\.known\[0\]: expected \{ package_version ="),
        (
            "known = [\n",
            "known = [\n" + KNOWN.replace("585a4a07", PINNED_SHA) + '" },\n',
            r"origins\[1\]\.known\[1\]\.package_version: .* is listed twice",
        ),
        ('package = "linux-source-6.12"\n', "", r"origins\[1\]\.package: missing \(known versions"),
        ('path = "/usr/src', f'sha256 = "{PINNED_SHA}"\npath = "/usr/src', r"origins\[1\]\.sha256: give it in"),
        (
            'url = "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.12',
            'known = []\nurl = "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.12',
            r"origins\[0\]\.known: only a local-file origin",
        ),
    ],
    ids=["sha256", "package_version", "unknown-field", "not-a-table", "twice", "no-package", "both", "url-origin"],
)
def test_known_versions_mistakes_name_file_and_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(PROJECT_ROOT / "configs", configs)
    shutil.copytree(PROJECT_ROOT / "initsrc", tmp_path / "initsrc")
    path = configs / "kernels.toml"
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    with pytest.raises(UserError, match=r"^\S*configs/kernels\.toml: series\.6\.12\." + message) as error:
        make_project(tmp_path / "build", configs_dir=configs)
    assert "\n" not in str(error.value)


def test_a_known_entry_may_leave_the_version_to_the_package_version(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(PROJECT_ROOT / "configs", configs)
    shutil.copytree(PROJECT_ROOT / "initsrc", tmp_path / "initsrc")
    path = configs / "kernels.toml"
    path.write_text(path.read_text().replace('version = "6.12.117", ', ""))
    (origin,) = [o for o in make_project(tmp_path / "build", configs_dir=configs).sources["linux"].origins[1:]]
    assert origin.pins() == (KnownVersion("6.12.117-1~deb12u1", "6.12.117", PINNED_SHA),)


# --- setup.sh's package list ---

APT_ARGUMENT = r"[a-z0-9][a-z0-9+.-]+(=[0-9][A-Za-z0-9.+~:-]*)?"


def setup_sh(script: str, fakes: str = "") -> subprocess.CompletedProcess[str]:
    """Run `script` in bash after sourcing setup.sh (functions only) and defining `fakes` over real commands."""
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail; source ./setup.sh; {fakes}\n{script}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def package_specs() -> list[str]:
    result = setup_sh("package_specs configs/debian-packages.txt")
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_package_list_yields_names_and_versions() -> None:
    specs = package_specs()
    assert f"{PACKAGE}=?6.12.117-1~deb12u1" in specs
    assert "make" in specs and "qemu-system-misc" in specs
    for spec in specs:
        assert re.fullmatch(r"[a-z0-9][a-z0-9+.-]+(=\??[0-9][A-Za-z0-9.+~:-]*)?", spec), spec


def test_every_preferred_version_is_a_known_one_in_kernels_toml() -> None:
    known = {
        (origin.package, pin.package_version)
        for source in load_project().sources.values()
        for origin in source.origins
        if origin.kind == "local-file"
        for pin in origin.pins()
    }
    preferred = [tuple(spec.split("=?", 1)) for spec in package_specs() if "=?" in spec]
    assert preferred
    for name, version in preferred:
        assert (name, version) in known, f"{name}=?{version}: add it to known = [...] in configs/kernels.toml"


def apt_cache_fake(versions: list[str], candidate: str) -> str:
    rows = "".join(
        f"{PACKAGE} | {v} | http://mirror.invalid/debian-security bookworm-security/main amd64\\n" for v in versions
    )
    return (
        f'apt-cache() {{ case $1 in madison) printf "{rows}";; '
        f'policy) printf "{PACKAGE}:\\n  Installed: (none)\\n  Candidate: {candidate}\\n";; esac; }}'
    )


def test_apt_arguments_take_the_pinned_version_while_the_archive_offers_it() -> None:
    fakes = apt_cache_fake(["6.12.118-1~deb12u1", "6.12.117-1~deb12u1"], "6.12.118-1~deb12u1")
    specs = " ".join(f"'{spec}'" for spec in package_specs())
    result = setup_sh(f'for spec in {specs}; do apt_argument "$spec"; done', fakes)
    assert result.returncode == 0, result.stderr
    arguments = result.stdout.splitlines()
    assert len(arguments) == len(package_specs())
    assert f"{PACKAGE}=6.12.117-1~deb12u1" in arguments
    for argument in arguments:
        assert re.fullmatch(APT_ARGUMENT, argument), argument
    assert result.stderr == f"setup: {PACKAGE}: installing the pinned version 6.12.117-1~deb12u1\n"


def test_apt_arguments_fall_back_to_the_archives_current_version() -> None:
    fakes = apt_cache_fake(["6.12.999-1~deb12u1"], "6.12.999-1~deb12u1")
    result = setup_sh(f"apt_argument '{PACKAGE}=?6.12.117-1~deb12u1'", fakes)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{PACKAGE}\n"
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"setup: {PACKAGE}: the pinned version 6.12.117-1~deb12u1 is gone from the archive; ")
    assert "installing its current version 6.12.999-1~deb12u1" in line


def test_missing_specs_keep_any_installed_version_of_a_preferred_package() -> None:
    fakes = (
        'dpkg-query() { case ${@: -1} in linux-source-6.12|make) printf "ii 9.9-1";; '
        'qemu-system-misc) printf "rc 1:7.2";; *) return 1;; esac; }'
    )
    specs = f"'{PACKAGE}=?6.12.117-1~deb12u1' make=9.9-1 make=1.0 qemu-system-misc opensbi"
    result = setup_sh(f"missing_specs {specs}", fakes)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["make=1.0", "qemu-system-misc", "opensbi"]


def test_install_missing_updates_once_and_installs_only_what_dpkg_lacks_with_its_apt_argument() -> None:
    """One apt-get update and one install of exactly the missing specs (a preferred version as apt_argument
    makes it); the main job's and `--distcc-server`'s packages go through this one function."""
    fakes = (
        apt_cache_fake(["6.12.117-1~deb12u1"], "6.12.117-1~deb12u1")
        + '\ndpkg-query() { case ${@: -1} in make) printf "ii 4.3-4.1";; *) return 1;; esac; }'
        + '\nid() { echo 0; }\napt-get() { echo "apt-get $*" >&2; }'
    )
    result = setup_sh(f"install_missing make distcc '{PACKAGE}=?6.12.117-1~deb12u1'", fakes)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"setup: installing distcc {PACKAGE}\n"
    calls = [line for line in result.stderr.splitlines() if line.startswith("apt-get")]
    assert calls == [
        "apt-get update -qq",
        f"apt-get install -y -qq --no-install-recommends distcc {PACKAGE}=6.12.117-1~deb12u1",
    ]
    nothing = setup_sh("install_missing make", fakes)
    assert nothing.returncode == 0 and nothing.stdout == "" and "apt-get" not in nothing.stderr
