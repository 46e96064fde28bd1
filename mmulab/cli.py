"""The `mmulab` command (console script and `python -m mmulab`): sub-commands that are not build tasks.

Exit codes: 0 all good, 1 a problem found (one line each), 2 bad usage; never a traceback.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mmulab.core.errors import ConfigError, ExitCode, UserError, say
from mmulab.core.fsutil import write_atomic

if TYPE_CHECKING:
    from mmulab.release import signing


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmulab",
        description="mmulab: checks on published releases and their signing keys, boots of images built elsewhere, "
        "soaks, bisects, the lab in a browser.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verify = commands.add_parser(
        "verify",
        help="check a release (directory or .tar.xz) against its SHA256SUMS, manifest, SBOM and provenance",
        description="Check a release someone gave you: SHA256SUMS, manifest.json, sbom.spdx.json and "
        "provenance.intoto.json must agree with the files. A .tar.xz is scanned for hostile members before "
        "anything is extracted. With --key or --trusted-keys the provenance must be signed by one of those keys. "
        "Exit 0 when everything matches, 1 otherwise (one line per problem).",
    )
    verify.add_argument("release", type=Path, help="a release directory or its .tar.xz")
    verify.add_argument(
        "--rebuild",
        action="store_true",
        help="also rebuild it offline from its own sources/ with this checkout and compare byte for byte (minutes)",
    )
    verify.add_argument(
        "--accept-source",
        action="append",
        default=[],
        metavar="NAME",
        help="with --rebuild, use the release's source NAME although this checkout does not pin its sha256 "
        "(repeatable)",
    )
    verify.add_argument(
        "--key",
        action="append",
        default=[],
        type=Path,
        metavar="PUB",
        help="trust this Ed25519 public key (PEM, e.g. KEY.pub from mmulab keygen; repeatable): the release must "
        "be signed by a trusted key",
    )
    verify.add_argument(
        "--trusted-keys",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="trust every PEM public key in FILE (keys one after the other; text between them is ignored)",
    )
    keygen = commands.add_parser(
        "keygen",
        help="make an Ed25519 key pair for doit publish --sign (PRIVATE_PATH) and mmulab verify --key (.pub)",
        description="Write a new Ed25519 private key to PRIVATE_PATH (PEM, PKCS8, mode 0600) and its public key to "
        "PRIVATE_PATH.pub, and print the key's id. Never overwrites a file. Publish with doit publish --sign "
        "PRIVATE_PATH; give PRIVATE_PATH.pub to those who check your releases (mmulab verify --key).",
    )
    keygen.add_argument("private", type=Path, metavar="PRIVATE_PATH", help="where the private key goes")
    images = commands.add_parser(
        "boot-images",
        help="boot a variant's cases with kernel and demo roots built elsewhere (buildroot_ext/'s post-image)",
        description="Check that every option of the kernel (and busybox) fragment survived in the final .config, "
        "pack each demo root (ROOTS/<build>/) into an initramfs, boot every case of the variant with mmulab's QEMU "
        "command and print the boot matrix. Exit 0 when every case passed, 1 otherwise.",
    )
    images.add_argument("--variant", required=True, help="a variant of configs/variants.toml")
    images.add_argument("--kernel", required=True, type=Path, help="the kernel image QEMU boots")
    images.add_argument("--roots", required=True, type=Path, help="a folder with one root folder per build")
    images.add_argument(
        "--out", type=Path, help="where images, consoles and summaries go (default ROOTS/../mmulab-boots)"
    )
    images.add_argument(
        "--kernel-config", type=Path, help="the kernel's final .config, checked against --kernel-fragment"
    )
    images.add_argument("--kernel-fragment", type=Path, help="the fragment the kernel config was made with")
    images.add_argument("--kernel-tree", type=Path, help="the kernel source tree (explains a dropped option)")
    images.add_argument(
        "--system-map", type=Path, help="the kernel's System.map (names the functions of an oops or a stuck hart)"
    )
    images.add_argument(
        "--busybox-config", type=Path, help="busybox's final .config, checked against --busybox-fragment"
    )
    images.add_argument("--busybox-fragment", type=Path, help="the fragment busybox was configured with")
    soak = commands.add_parser(
        "soak",
        help="boot every case (or --demo, --case) many times, optionally on a host loaded on purpose",
        description="Build what the chosen cases boot (through doit), then boot each of them --rounds times, "
        "--jobs at a time, through the pipeline's own boot path and verdicts. --load keeps one busy worker per "
        "core running meanwhile (stopped however the soak ends). Prints each case's pass rate and slowest and "
        "median time to verdict, writes build/reports/soak.json and keeps each failed boot's console in "
        "build/soak/. Exit 0 when every boot passed, 1 otherwise.",
    )
    soak.add_argument("--demo", action="append", default=[], help="soak this demo's cases (repeatable)")
    soak.add_argument("--case", action="append", default=[], help="soak this boot case (repeatable)")
    soak.add_argument("--rounds", type=_positive, default=5, help="boots of each case (default 5)")
    soak.add_argument("-n", "--jobs", type=_positive, default=2, help="boots at once (default 2)")
    soak.add_argument("--load", action="store_true", help="load the host: one busy worker process per core")
    soak.add_argument(
        "--keep-consoles", action="store_true", help="keep every boot's console in build/soak/ (default: failures')"
    )
    lab = commands.add_parser(
        "lab",
        help="serve the demos in a browser: every case of a demo booting side by side, a shell on each kernel",
        description="Build what the demos boot (through doit), then serve a page where choosing a demo boots all "
        "of its cases at once, their consoles streaming side by side with each verdict and chart, and 'shell' opens "
        "a busybox shell on each kernel. Prints the URL with its access token (every request needs it). At most "
        "--machines QEMUs run at once, more wait in line; a machine quiet for --idle seconds is stopped. "
        "Ctrl-C stops the server (exit 130), SIGTERM too (exit 0); every QEMU is gone when it returns.",
    )
    lab.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        metavar="ADDR:PORT",
        help="where to listen (default 127.0.0.1:8080; 0.0.0.0:8080 for a lab network; port 0: any free port)",
    )
    lab.add_argument("--demo", action="append", default=[], help="offer only this demo (repeatable; default all)")
    lab.add_argument(
        "--machines",
        type=_positive,
        default=os.cpu_count() or 1,
        help="QEMUs at once (default: the number of cores); more wait in line, told their place",
    )
    lab.add_argument(
        "--idle", type=_positive, default=300, metavar="SECONDS", help="stop a machine quiet this long (default 300)"
    )
    lab.add_argument("--no-build", action="store_true", help="serve what is built; build nothing first")
    pins = commands.add_parser(
        "pins",
        help="each kernel series' pinned point releases and the newest each origin offers (--write moves the pins)",
        description="For each series of configs/kernels.toml: the pinned version of each origin and the newest "
        "point release it offers, checked as that origin is trusted (kernel.org: its sha256sums.asc, signature "
        "checked with MMULAB_KERNELORG_KEYRING; Debian: InRelease signed by Debian's archive keyring -> Sources -> "
        ".dsc -> orig tarball still in the pool). An unreachable origin is one line. --write moves every pin a "
        "verified newer release exists for in configs/kernels.toml (review it with git diff). Exit 0.",
    )
    pins.add_argument("--write", action="store_true", help="move the pins in configs/kernels.toml")
    bisect = commands.add_parser(
        "bisect",
        help="find the commit of a kernel git tree (LINUX_SRC) that turns a boot case from PASS to FAIL",
        description="Bisect LINUX_SRC (a kernel git tree without uncommitted changes) between --good and --bad with "
        "boot cases as the oracle: each commit is checked out in the bisect's own clone "
        "(build/linux-src/bisect/tree; your tree is only read), configured, built and booted by the pipeline "
        "(compile cache and farm as usual). A "
        "commit whose kernel does not configure or build is skipped; a boot that fails outside the kernel is "
        "retried, then skipped. Prints the first bad commit, the consoles side by side and every step; writes "
        "build/linux-src/reports/bisect.json. Exit 0 when a first bad commit was found, 1 when skips left several.",
    )
    bisect.add_argument("--good", metavar="REF", help="a commit where every case passes")
    bisect.add_argument("--bad", metavar="REF", help="a later commit where a case fails")
    bisect.add_argument("--case", action="append", default=[], help="a boot case, the oracle (repeatable)")
    bisect.add_argument(
        "--retries", type=_whole, default=2, help="boots again after a failure outside the kernel (default 2)"
    )
    bisect.add_argument(
        "--resume", action="store_true", help="continue the bisect build/bisect/state.json records (after Ctrl-C)"
    )
    return parser


def _pins(write: bool) -> int:
    from mmulab.build import pins
    from mmulab.project.loader import load_project

    project = load_project()
    keyring = project.settings.kernel_org_keyring
    results = pins.check(project, pins.Http(), project.settings.debian_keyring, keyring)
    for line in pins.table(results).splitlines():  # versions and notes come from the origins: escaped
        say(line)
    moves = pins.movable(results)
    if not moves:
        print("mmulab: pins: every pin is the newest point release its origin offers (or the origin was not reached)")
        return ExitCode.OK
    if not write:
        listed = ", ".join(f"{series} {offer.origin} {offer.version}" for series, offer in moves)
        say(f"mmulab: pins: {len(moves)} pin(s) can move ({listed}): mmulab pins --write")
        return ExitCode.OK
    path = project.settings.configs_dir / "kernels.toml"
    text = path.read_text()
    for series, offer in moves:
        text = pins.rewrite(text, project, series, offer)
        say(f"mmulab: pins: {series}: {offer.origin} pin moved to {offer.version} ({offer.filename})")
    write_atomic(path, text)
    print(f"mmulab: pins: {path} written; review it with git diff")
    return ExitCode.OK


def _lab(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from mmulab.lab import server
    from mmulab.lab.machines import Limits
    from mmulab.project.loader import load_project

    try:
        listen = server.parse_listen(args.listen)
    except ValueError as error:
        parser.error(f"lab: --listen {error}")
    project = load_project()
    for demo in args.demo:
        if demo not in project.demos:
            raise ConfigError(f"lab: no demo {demo!r} (configs/demos.toml has: {', '.join(sorted(project.demos))})")
    demos = tuple(dict.fromkeys(args.demo)) or tuple(project.demos)
    limits = Limits(args.machines, float(args.idle))
    return server.serve(project, demos, limits, listen, not args.no_build, lambda line: print(line, flush=True))


def _whole(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number >= 0")
    return int(text)


def _bisect(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from mmulab.pipeline import bisect, bisectstep
    from mmulab.project.loader import load_project

    if args.resume and (args.good or args.bad or args.case):
        parser.error("bisect: --resume continues the recorded bisect: give it no --good, --bad or --case")
    if not args.resume and not (args.good and args.bad and args.case):
        parser.error("bisect: give --good REF, --bad REF and at least one --case (or --resume)")
    project = load_project()
    git, outcome, path = bisectstep.bisect(
        project, args.good, args.bad, args.case, args.retries, args.resume, say=lambda line: print(line, flush=True)
    )
    print(bisect.text(git, outcome))
    print(f"mmulab: bisect report: {path}")
    return ExitCode.OK if outcome.first_bad is not None else ExitCode.FAILED


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number >= 1")
    return value


def _soak(args: argparse.Namespace) -> int:
    from mmulab.pipeline import soak
    from mmulab.project.loader import load_project

    project = load_project()
    cases = soak.select_cases(project, args.demo, args.case)
    stats, path = soak.soak(
        project,
        cases,
        args.rounds,
        args.jobs,
        args.load,
        say=lambda line: print(line, flush=True),
        keep_consoles=args.keep_consoles,
    )
    print(soak.table(stats))
    print(f"mmulab: soak report: {path}")
    return ExitCode.OK if all(s.failed == 0 for s in stats) else ExitCode.FAILED


def _boot_images(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from mmulab.boot import images as bootimages
    from mmulab.boot import summary
    from mmulab.project.loader import load_project

    for config, fragment, name in (
        (args.kernel_config, args.kernel_fragment, "kernel"),
        (args.busybox_config, args.busybox_fragment, "busybox"),
    ):
        if bool(config) != bool(fragment):
            parser.error(f"boot-images: --{name}-config and --{name}-fragment go together")
        for path in (config, fragment):
            if path and not path.is_file():
                parser.error(f"boot-images: {path}: no such file")
    if args.system_map and not args.system_map.is_file():
        parser.error(f"boot-images: {args.system_map}: no such file")
    project = load_project()
    checks = []
    if args.kernel_config:
        checks.append(
            bootimages.kernel_check(args.kernel_config, args.kernel_fragment, args.kernel_tree, project.toolchain.arch)
        )
    if args.busybox_config:
        checks.append(bootimages.busybox_check(args.busybox_config, args.busybox_fragment))
    out = args.out or args.roots.parent / "mmulab-boots"
    verdicts = bootimages.boot_images(
        project, args.variant, args.kernel, args.roots, out, tuple(checks), args.system_map
    )
    print(summary.table(verdicts))
    print(f"mmulab: consoles and summary.json / summary.xml in {out}")
    return ExitCode.OK if verdicts and all(v.passed for v in verdicts) else ExitCode.FAILED


def _trusted_keys(key_files: list[Path], trusted_files: list[Path]) -> tuple[signing.PublicKey, ...]:
    """Every public key of --key (one per file) and --trusted-keys (several per file), each keyid once."""
    from mmulab.release import signing

    keys = [key for path in key_files for key in signing.load_public_keys(path)]
    keys += [key for path in trusted_files for key in signing.load_public_keys(path, several=True)]
    return tuple({key.keyid: key for key in keys}.values())


def _keygen(private: Path) -> int:
    from mmulab.release import signing

    keyid = signing.keygen(private)
    public = signing.public_path(private)
    print(f"mmulab: keygen: private key {private} (mode 0600: keep it secret), public key {public}")
    print(f"mmulab: keygen: keyid {keyid}")
    print(f"mmulab: keygen: sign with doit publish --sign {private}; others check with mmulab verify --key {public}")
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command; the process exit code."""
    # A stranger's names on a strict or ASCII terminal: escaped, never a traceback.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    parser = _parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminated)  # as Ctrl-C: the finally blocks remove what was extracted
    try:
        if args.command == "verify":
            from mmulab.release.verify import verify

            release: Path = args.release
            if not release.is_dir() and not (release.is_file() and release.name.endswith(".tar.xz")):
                parser.error(f"verify: {release}: not a release directory or a .tar.xz file")
            if args.accept_source and not args.rebuild:
                parser.error("verify: --accept-source only matters with --rebuild")
            keys = _trusted_keys(args.key, args.trusted_keys)
            return verify(release, args.rebuild, tuple(dict.fromkeys(args.accept_source)), keys=keys)
        if args.command == "keygen":
            return _keygen(args.private)
        if args.command == "boot-images":
            return _boot_images(parser, args)
        if args.command == "soak":
            return _soak(args)
        if args.command == "pins":
            return _pins(args.write)
        if args.command == "lab":
            return _lab(parser, args)
        if args.command == "bisect":
            return _bisect(parser, args)
        parser.error(f"unknown command {args.command!r}")
    except UserError as error:
        sys.stdout.flush()
        say(f"mmulab: error: {error}", sys.stderr)
        return error.exit_code
    except OSError as error:
        sys.stdout.flush()
        say(f"mmulab: error: {error.filename or ''}: {error.strerror or error}", sys.stderr)
        return ExitCode.FAILED
    except KeyboardInterrupt:
        sys.stdout.flush()
        print("\nmmulab: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM, handled as Ctrl-C is: KeyboardInterrupt unwinds (and cleans up) and the exit code is 130."""
    raise KeyboardInterrupt
