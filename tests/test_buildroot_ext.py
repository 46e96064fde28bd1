"""buildroot_ext/: the committed tree is the generated one, its hashes hold, and a real Buildroot (the pinned
2026.02.3, or BUILDROOT_SRC) lists, configures and checks it offline. The post-image path (mmulab boot-images)
boots real images with the pipeline's verdicts."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import caller_variable, checkout_configs, default_root, make_project, missing, needs_module, run_doit

from mmulab.boot.images import ConfigCheck, config_problems
from mmulab.build import busybox as busybox_build
from mmulab.buildroot import generate as buildroot_ext
from mmulab.buildroot.spec import load_buildroot
from mmulab.core.errors import ConfigError
from mmulab.core.paths import Layout
from mmulab.core.settings import PROJECT_ROOT, Settings
from mmulab.project.loader import load_project
from mmulab.project.model import Project

TREE = PROJECT_ROOT / "buildroot_ext"


def _packages(project) -> dict[str, str]:
    """Package name -> demo, for the demos the project has (read from configs/, never listed here)."""
    spec = load_buildroot(project)
    return {spec.package_name(demo): demo for demo in project.demos}


def test_committed_tree_is_the_generated_one() -> None:
    problems = buildroot_ext.differences(buildroot_ext.generate(load_project()), TREE)
    assert problems == [], "run `doit buildroot-ext` and commit buildroot_ext/:\n" + "\n".join(problems)


def test_every_hash_file_matches_the_files_it_names() -> None:
    project = load_project()
    hash_files = sorted(TREE.rglob("*.hash"))
    assert {p.parent.name for p in hash_files if p.parent.parent.name == "package"} == set(_packages(project))
    checked = 0
    for hash_file in hash_files:
        mk = hash_file.with_suffix(".mk")
        if mk.is_file():
            site = re.search(r"_SITE = \$\(BR2_EXTERNAL_MMULAB_PATH\)/(\S+)", mk.read_text())
            assert site, mk
            base = (TREE / site.group(1)).resolve()
        else:
            base = None
        for line in hash_file.read_text().splitlines():
            if not line or line.startswith("#"):
                continue
            algo, digest, name = line.split()
            assert algo == "sha256"
            if base is not None:
                assert hashlib.sha256((base / name).read_bytes()).hexdigest() == digest, f"{hash_file}: {name}"
            else:  # the kernel tarball: the pin of configs/sources.toml (Buildroot checks the download)
                linux = project.sources[project.toolchain.kernel.source]
                assert (name, digest) == (linux.filename, linux.sha256)
            checked += 1
    assert checked >= len(hash_files)


def test_generator_follows_the_configs(tmp_path: Path) -> None:
    """A demo added to demos.toml and an option added to a variant appear in the tree, nothing hard-coded."""
    configs = tmp_path / "configs"
    shutil.copytree(PROJECT_ROOT / "configs", configs)
    shutil.copytree(PROJECT_ROOT / "initsrc", tmp_path / "initsrc")
    with (configs / "demos.toml").open("a") as handle:
        handle.write(
            '\n[demos.my_new_demo]\ndescription = "added by a test"\n'
            '[demos.my_new_demo.builds.asm]\ninit = ["initsrc/fork/init.S", "initsrc/lib/rt.S"]\n'
            '[demos.my_new_demo.runs.mmu]\nmust = ["reboot: Power down"]\n'
        )
    variants = (configs / "variants.toml").read_text()
    (configs / "variants.toml").write_text(variants.replace("kconfig = {}", "kconfig = { LOG_BUF_SHIFT = 13 }", 1))
    files = buildroot_ext.generate(make_project(tmp_path / "build", configs_dir=configs))
    assert "package/mmulab-my-new-demo/mmulab-my-new-demo.mk" in files
    defconfigs = {name: f.text for name, f in files.items() if name.startswith("configs/")}
    enabled = {name for name, text in defconfigs.items() if "BR2_PACKAGE_MMULAB_MY_NEW_DEMO=y" in text}
    assert enabled == {"configs/mmulab_qemu_riscv64_mmu_defconfig"}  # the demo boots on mmu only
    assert "CONFIG_LOG_BUF_SHIFT=13" in files["board/mmulab/nommu/linux.fragment"].text
    assert (
        files["board/mmulab/nommu/linux.fragment"]
        != buildroot_ext.generate(load_project())["board/mmulab/nommu/linux.fragment"]
    )


def test_files_render_from_the_templates_in_configs(tmp_path: Path) -> None:
    """external.mk and every package's files come from configs/buildroot/*.j2: an edit there shows up in the tree,
    and a missing template is named, with the fix, not a traceback."""
    configs = tmp_path / "configs"
    shutil.copytree(PROJECT_ROOT / "configs", configs)
    shutil.copytree(PROJECT_ROOT / "initsrc", tmp_path / "initsrc")
    templates = configs / "buildroot"
    for name, line in (("external.mk.j2", "# engine edited"), ("package.mk.j2", "{{ package.var }}_EDITED = yes")):
        (templates / name).write_text((templates / name).read_text() + line + "\n")
    project = make_project(tmp_path / "build", configs_dir=configs)
    files = buildroot_ext.generate(project)
    assert files["external.mk"].text.endswith("/package/*/*.mk))\n# engine edited\n")
    packages = {name: f.text for name, f in files.items() if name.endswith(".mk") and name.startswith("package/")}
    assert packages and all(
        text.endswith(f"{buildroot_ext._upper(Path(name).stem)}_EDITED = yes\n") for name, text in packages.items()
    )
    (templates / "package.hash.j2").unlink()
    with pytest.raises(ConfigError, match=r"^\S*configs/buildroot/package\.hash\.j2: missing \(restore it from git"):
        buildroot_ext.generate(project)


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (
            ('spdx = "MIT"', 'spdx = "unknown"'),
            r"configs/buildroot\.toml: license\.spdx: 'unknown': write SPDX license ids",
        ),
        (('spdx = "MIT"', 'spdx = "MIT # or so"'), r"license\.spdx: 'MIT # or so': write SPDX license ids"),
        (
            ('files = ["initsrc/LICENSE"]', 'files = ["initsrc/COPYING"]'),
            r"configs/buildroot\.toml: license\.files: initsrc/COPYING: no such file",
        ),
        (('files = ["initsrc/LICENSE"]', "files = []"), r"license\.files: empty: name the license text"),
        (("[license]", "[licence]"), r"configs/buildroot\.toml: license: missing: the demo programs' license"),
    ],
)
def test_a_license_mistake_is_named(tmp_path: Path, edit: tuple[str, str], error: str) -> None:
    """configs/buildroot.toml's [license]: a license Buildroot would report unknown, or a text that is not there,
    stops the generator with one line naming the field (never a tree whose legal-info has no license)."""
    configs = tmp_path / "configs"
    shutil.copytree(PROJECT_ROOT / "configs", configs)
    shutil.copytree(PROJECT_ROOT / "initsrc", tmp_path / "initsrc")
    project = make_project(tmp_path / "build", configs_dir=configs)
    assert load_buildroot(project).license.files == ((tmp_path / "initsrc" / "LICENSE").resolve(),)
    text = (configs / "buildroot.toml").read_text()
    assert edit[0] in text
    (configs / "buildroot.toml").write_text(text.replace(edit[0], edit[1]))
    with pytest.raises(ConfigError, match=error):
        buildroot_ext.generate(project)


def test_kernel_fragments_are_the_pipelines() -> None:
    from mmulab.build.kernelconfig import render_fragment

    project = load_project(Settings.from_environment({}))
    for name, variant in project.variants.items():
        assert (TREE / "board/mmulab" / name / "linux.fragment").read_text() == render_fragment(
            variant, project.toolchain, project.pinned_linux_version()
        )


def test_a_dropped_option_is_named(tmp_path: Path) -> None:
    fragment, config = tmp_path / "fragment", tmp_path / ".config"
    fragment.write_text("CONFIG_BINFMT_ELF_FDPIC=y\nCONFIG_PID_NS=y\n")
    config.write_text("CONFIG_BINFMT_ELF_FDPIC=y\n# CONFIG_PID_NS is not set\n")
    problems = config_problems(ConfigCheck("kernel config", config, (fragment,)))
    assert problems == [
        "kernel config: CONFIG_PID_NS=y requested, but the final .config has # CONFIG_PID_NS is not set"
    ]


# --- against a real Buildroot tree (offline) ---


def missing_buildroot(project: Project) -> tuple[str, str] | None:
    """None when the pinned Buildroot can be fetched (its tarball is in the download cache or at a local-file
    origin, or an origin or mirror is a URL to try); else what is missing and how to provide it."""
    source = project.source(load_buildroot(project).source)
    places = [project.settings.download_dir / source.name / origin.filename for origin in source.origins]
    places += [Path(origin.path) for origin in source.origins if origin.kind == "local-file"]
    online = project.mirrors or any(origin.kind != "local-file" for origin in source.origins)
    if online or any(place.is_file() for place in places):
        return None
    expected = " or ".join(str(Path(o.path)) for o in source.origins if o.kind == "local-file")
    return f"a Buildroot {source.version} tree", f"set BUILDROOT_SRC=<an extracted Buildroot tree>, or put {expected}"


@pytest.fixture(scope="session")
def buildroot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The caller's BUILDROOT_SRC, else the pinned Buildroot fetched and extracted by the pipeline's own tasks;
    neither there: skipped naming both (a failure under CI=true)."""
    if given := caller_variable("BUILDROOT_SRC"):
        tree = Settings.from_environment({"BUILDROOT_SRC": given}).buildroot_src
        assert tree is not None
        return tree
    if why := missing_buildroot(load_project()):
        missing(*why)
    build = tmp_path_factory.mktemp("brbuild")
    result = run_doit(["extract:buildroot"], {"MMULAB_BUILD_DIR": str(build)})
    assert result.returncode == 0, result.stdout + result.stderr
    tree = Layout(default_root(build)).tree("buildroot")
    assert (tree / "Makefile").is_file()
    return tree


def test_a_missing_buildroot_is_named_with_how_to_provide_it(tmp_path: Path) -> None:
    project = make_project(tmp_path / "build", download_dir=tmp_path / "downloads")
    source = project.source("buildroot")
    nowhere = tmp_path / "nowhere" / source.filename
    moved = replace(source, origins=tuple(replace(o, path=str(nowhere)) for o in source.origins))
    table = "sources" if source.name in project.sources else "external_sources"
    project = replace(project, **{table: {**getattr(project, table), source.name: moved}})
    assert missing_buildroot(project) == (
        f"a Buildroot {source.version} tree",
        f"set BUILDROOT_SRC=<an extracted Buildroot tree>, or put {nowhere}",
    )
    nowhere.parent.mkdir()
    nowhere.write_bytes(b"the pinned tarball, as far as the lookup goes")
    assert missing_buildroot(project) is None
    nowhere.unlink()
    cached = tmp_path / "downloads" / "buildroot" / source.filename
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"a cached copy")
    assert missing_buildroot(project) is None


def _make(buildroot: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BR2_", "MAKEFLAGS"))}
    return subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(buildroot), f"BR2_EXTERNAL={TREE}", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.needs("make")
def test_list_defconfigs(buildroot: Path) -> None:
    result = _make(buildroot, "list-defconfigs")
    assert result.returncode == 0, result.stderr
    external = result.stdout.split("External configs in")[1]
    listed = set(re.findall(r"^\s+(\S+_defconfig)\s", external, re.M))
    expected = {p.name for p in (TREE / "configs").iterdir()}
    project = load_project()
    assert listed == expected == {load_buildroot(project).defconfig_name(v) for v in project.variants}


def _config(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if match := re.match(r"^(BR2_\w+)=(.*)$", line):
            values[match.group(1)] = match.group(2).strip('"')
        elif match := re.match(r"^# (BR2_\w+) is not set$", line):
            values[match.group(1)] = "n"
    return values


@pytest.mark.slow
@pytest.mark.needs("make", "gcc")
@pytest.mark.parametrize("variant", sorted(checkout_configs().variants))
def test_defconfig_configures(buildroot: Path, variant: str, tmp_path: Path) -> None:
    project = load_project()
    spec = load_buildroot(project)
    info = project.variants[variant]
    result = _make(buildroot, f"O={tmp_path}", spec.defconfig_name(variant))
    assert result.returncode == 0, result.stdout + result.stderr
    config = _config(tmp_path / ".config")
    chain = spec.toolchain(info.mmu)
    assert config["BR2_ARCH"] == "riscv64" and config["BR2_riscv"] == "y"
    assert config.get("BR2_RISCV_USE_MMU", "n") == ("y" if info.mmu else "n")
    assert config[f"BR2_BINFMT_{chain.binfmt.upper()}"] == "y"
    assert config[f"BR2_TOOLCHAIN_BUILDROOT_{chain.libc.upper()}"] == "y"
    linux = project.sources[project.toolchain.kernel.source]
    assert config["BR2_LINUX_KERNEL_CUSTOM_VERSION_VALUE"] == linux.version
    fragment = config["BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES"].replace("$(BR2_EXTERNAL_MMULAB_PATH)", str(TREE))
    assert Path(fragment).read_text() == (TREE / f"board/mmulab/{variant}/linux.fragment").read_text()
    busybox = config["BR2_PACKAGE_BUSYBOX_CONFIG_FRAGMENT_FILES"].replace("$(BR2_EXTERNAL_MMULAB_PATH)", str(TREE))
    assert Path(busybox).is_file()
    demos = {p: d for p, d in _packages(project).items()}
    wanted = {
        p for p, demo in demos.items() if any(project.boots[c].variant == variant for c in project.demos[demo].cases)
    }
    enabled = {p for p in demos if config.get("BR2_PACKAGE_" + re.sub(r"\W", "_", p).upper().replace("-", "_")) == "y"}
    assert enabled == wanted and wanted


@pytest.mark.slow
@pytest.mark.needs("make", "gcc")
def test_show_info_lists_the_demo_packages(buildroot: Path, tmp_path: Path) -> None:
    project = load_project()
    spec = load_buildroot(project)
    variant = next(iter(project.variants))
    assert _make(buildroot, f"O={tmp_path}", spec.defconfig_name(variant)).returncode == 0
    result = _make(buildroot, f"O={tmp_path}", "show-info", timeout=900)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    license_files = {p.name: p.license_files for p in buildroot_ext._packages(project, spec)}
    for package in _packages(project):
        mk = (TREE / "package" / package / f"{package}.mk").read_text()
        version = re.search(r"_VERSION = (\S+)", mk).group(1)
        assert info[package]["version"] == version
        assert info[package]["type"] == "target"
        assert info[package]["licenses"] == spec.license.spdx != "unknown"
        assert info[package]["license_files"] == list(license_files[package]) != []
    assert info["linux"]["version"] == project.sources["linux"].version


@pytest.mark.slow
@pytest.mark.needs("make", "gcc", "rsync")
def test_legal_info_finds_every_license(buildroot: Path, tmp_path: Path) -> None:
    """Buildroot's own legal-info, run for every mmulab package: each has the license configs/buildroot.toml
    declares (never Buildroot's "unknown"), and its license texts are saved, byte for byte the checkout's, after
    Buildroot checked them against the package's .hash file. Buildroot archives a local package's sources with
    its own host-tar unless the host's is 1.35 or newer; building that is a download, so the host's tar is used."""
    project = load_project()
    spec = load_buildroot(project)
    packages = _packages(project)
    variant = next(iter(project.variants))
    assert _make(buildroot, f"O={tmp_path}", spec.defconfig_name(variant)).returncode == 0
    host_tar = ["TAR=tar", "BR2_TAR_HOST_DEPENDENCY="]
    targets = ["legal-info-clean", "legal-info-prepare", *(f"{package}-legal-info" for package in packages)]
    result = _make(buildroot, f"O={tmp_path}", *host_tar, *targets)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    legal = tmp_path / "legal-info"
    with (legal / "manifest.csv").open(newline="") as handle:
        manifest = {row["PACKAGE"]: row for row in csv.DictReader(handle)}
    texts = {path.relative_to(PROJECT_ROOT).as_posix(): path.read_bytes() for path in spec.license.files}
    expected = {p.name: p for p in buildroot_ext._packages(project, spec)}
    assert set(expected) == set(packages)
    for package in packages:
        files = list(expected[package].license_files)
        assert manifest[package]["LICENSE"] == spec.license.spdx != "unknown", package
        assert manifest[package]["LICENSE FILES"].split() == files != [], package
        version = manifest[package]["VERSION"]
        saved = {
            f"{expected[package].site}/{name}": (legal / "licenses" / f"{package}-{version}" / name).read_bytes()
            for name in files
            if (legal / "licenses" / f"{package}-{version}" / name).is_file()
        }
        assert saved == texts, package
    for name in {name for package in expected.values() for name in package.license_files}:
        checked = re.findall(rf"^{re.escape(name)}: OK \(sha256: ", result.stdout, re.M)
        assert len(checked) == sum(name in p.license_files for p in expected.values()), f"{name}: {result.stderr}"
    assert "No hash found" not in result.stdout + result.stderr
    warnings = (legal / ".warnings").read_text() if (legal / ".warnings").exists() else ""
    assert not [line for line in warnings.splitlines() if any(package in line for package in packages)], warnings


@pytest.mark.slow
@pytest.mark.needs("shellcheck")
def test_check_package_passes(buildroot: Path) -> None:
    needs_module("magic", "check-package imports it; pip install -e '.[test]'")
    needs_module("flake8", "check-package imports it; pip install -e '.[test]'")
    files = [p.relative_to(TREE).as_posix() for p in sorted((TREE / "package").rglob("*")) if p.is_file()]
    files += ["external.mk", "external.desc", "Config.in", "board/mmulab/post-image.sh"]
    files += [p.relative_to(TREE).as_posix() for p in sorted((TREE / "configs").iterdir())]
    result = subprocess.run(
        [sys.executable, str(buildroot / "utils" / "check-package"), "-b", *files],
        cwd=TREE,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "0 warnings generated" in result.stderr + result.stdout, (
        result.stdout + result.stderr
    )


HARNESS = Path(__file__).parent / "data" / "buildroot" / "harness.mk"


def _musl_specs(sysroot: Path, compiler: str) -> str:
    """A gcc specs file for the pipeline's musl sysroot, standing in for Buildroot's musl toolchain: its
    -static-pie links rcrt1.o (musl's own musl-gcc.specs would take Scrt1.o)."""
    include = subprocess.run([compiler, "-print-file-name=include"], capture_output=True, text=True, check=True)
    libgcc = subprocess.run([compiler, "-print-libgcc-file-name"], capture_output=True, text=True, check=True)
    gcc_include, gcc_lib = include.stdout.strip(), str(Path(libgcc.stdout.strip()).parent)
    headers = f"-nostdinc -isystem {sysroot}/include -isystem {gcc_include}"
    return (
        f"%rename cpp_options old_cpp_options\n\n*cpp_options:\n{headers} %(old_cpp_options)\n\n"
        f"*cc1:\n%(cc1_cpu) {headers}\n\n*link_libgcc:\n-L{sysroot}/lib -L{gcc_lib}\n\n*libgcc:\n-lgcc\n\n"
        f"*startfile:\n{sysroot}/lib/rcrt1.o {sysroot}/lib/crti.o {gcc_lib}/crtbeginS.o\n\n"
        f"*endfile:\n{gcc_lib}/crtendS.o {sysroot}/lib/crtn.o\n\n"
        "*link:\n-nostdlib %{static-pie:-static -pie --no-dynamic-linker -z text} %{static:-static}\n\n"
    )


def _engine(buildroot: Path, work: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """buildroot_ext's engine run through the harness (Buildroot's package steps without Buildroot)."""
    variables = {
        "TOPDIR": str(buildroot),
        "BR2_EXTERNAL_MMULAB_PATH": str(TREE),
        "BUILD_DIR": str(work / "build"),
        "TARGET_DIR": str(work / "target"),
        "BINARIES_DIR": str(work / "images"),
        "BUSYBOX_DIR": str(work / "busybox-build"),
        "INSTALL": "install",
        **env,
    }
    command = ["make", "-s", "-j2", "-f", str(HARNESS), *(f"{k}={v}" for k, v in variables.items()), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
@pytest.mark.needs("qemu-system-riscv64", "riscv64-linux-gnu-gcc", "make")
def test_post_image_boots_the_matrix(tmp_path: Path, session_build: Path, buildroot: Path) -> None:
    """buildroot_ext's engine (external.mk, run by a stand-in for Buildroot's package steps, with the pipeline's
    musl as the toolchain's C library) fills a Buildroot-like images folder; the post-image script checks the
    configs and boots every NOMMU case from it with the pipeline's verdicts."""
    from mmulab.build.toolchain import compiler

    # The slow tests' shared build (its kernels serve test_demos too), brought to what this test reads by doit
    # itself: built here if no test ran before, rebuilt where another left it changed (an overlay's edit).
    build_dir = session_build
    result = run_doit(["boot:nommu"], {"MMULAB_BUILD_DIR": str(build_dir)}, timeout=3600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    project = load_project()
    layout = Layout(default_root(build_dir))
    work = tmp_path / "br"
    images, linux, busybox = work / "images", tmp_path / "linux", tmp_path / "busybox"
    for folder in (images, linux, busybox, work / "target" / "bin", work / "busybox-build"):
        folder.mkdir(parents=True)
    shutil.copy(layout.kernel_output("nommu", "Image"), images / "Image")
    shutil.copy(layout.kernel_output("nommu", "config"), linux / ".config")
    shutil.copy(layout.kernel_output("nommu", "System.map"), linux / "System.map")
    nommu = project.variants["nommu"]
    shutil.copy(busybox_build.output(layout, nommu, "config"), busybox / ".config")
    shutil.copy(busybox_build.output(layout, nommu), work / "target" / "bin" / "busybox")
    shutil.copy(busybox_build.output(layout, nommu, "busybox.links"), work / "busybox-build" / "busybox.links")
    cross = compiler(project.toolchain)
    specs = tmp_path / "musl.specs"
    specs.write_text(_musl_specs(layout.sysroot(), cross))
    toolchain = {"TARGET_CC": f"{cross} -specs={specs}", "TARGET_LD": cross.removesuffix("gcc") + "ld"}
    built = _engine(buildroot, work, toolchain)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    roots = {p.name for p in (images / "mmulab").iterdir()}
    assert roots == {c.build for c in project.boots.values()}  # every demo's roots, as the packages name them
    assert (work / "target" / load_buildroot(project).target_dir / "addrspace-c" / "init").is_file()
    script = TREE / "board/mmulab/post-image.sh"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    run = subprocess.run(
        [str(script), str(images), "nommu", str(linux), str(busybox)], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    cases = [c for c in project.boots.values() if c.variant == "nommu"]
    assert f"{len(cases)} passed, 0 failed" in run.stdout
    assert "kernel config: every option of linux.fragment survived" in run.stdout
    verdicts = json.loads((images / "mmulab-boots" / "summary.json").read_text())
    assert sorted(v["case"] for v in verdicts) == sorted(c.name for c in cases)

    # Booted and judged the pipeline's way: the same faults named, each note headed alike (the init-hog's panic).
    # Only the headline is compared: the call trace's middle is where the hog's last allocation happened to be
    # (it differed between two boots of one image on a loaded host).
    def headlines(notes: list[str]) -> list[str]:
        return [note.splitlines()[0] for note in notes]

    noted = {v["case"]: headlines(v["notes"]) for v in verdicts if v["notes"]}
    pipeline_notes = {c.name: json.loads(layout.verdict(c.name).read_text())["notes"] for c in cases}
    assert noted and noted == {name: headlines(notes) for name, notes in pipeline_notes.items() if notes}

    # A kernel option Buildroot dropped fails the post-image step, by name, before any boot.
    (linux / ".config").write_text((linux / ".config").read_text().replace("CONFIG_PID_NS=y", ""))
    run = subprocess.run(
        [str(script), str(images), "nommu", str(linux), str(busybox)], capture_output=True, text=True, env=env
    )
    assert run.returncode == 1
    assert "CONFIG_PID_NS=y requested" in run.stderr and "boot " not in run.stdout

    # A source changed since buildroot_ext/ was generated: the package's .hash file refuses it, by name.
    package = buildroot_ext._packages(project, load_buildroot(project))[0]
    site = tmp_path / "changed-site"
    shutil.copytree(PROJECT_ROOT / package.site, site)
    changed = site / package.files[0]
    changed.write_text("/* edited after generation */\n" + changed.read_text())
    (work / "build" / package.name / ".stamp_installed").unlink()
    refused = _engine(buildroot, work, {**toolchain, f"{package.var}_SITE": str(site)}, package.name)
    assert refused.returncode != 0, refused.stdout
    assert f"{package.files[0]} has wrong sha256 hash" in refused.stdout + refused.stderr
