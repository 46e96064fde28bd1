"""The `mmulab` command (console script and `python -m mmulab`): sub-commands that are not build tasks.

Exit codes: 0 all good, 1 a problem found (one line each), 2 bad usage; never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import UserError

INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmulab", description="mmulab: checks on published releases.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verify = commands.add_parser(
        "verify",
        help="check a release (directory or .tar.xz) against its SHA256SUMS, manifest, SBOM and provenance",
        description="Check a release someone gave you: SHA256SUMS, manifest.json, sbom.spdx.json and "
        "provenance.intoto.json must agree with the files. A .tar.xz is scanned for hostile members before "
        "anything is extracted. Exit 0 when everything matches, 1 otherwise (one line per problem).",
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command; the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "verify":
            from .verify import verify

            release: Path = args.release
            if not release.is_dir() and not (release.is_file() and release.name.endswith(".tar.xz")):
                parser.error(f"verify: {release}: not a release directory or a .tar.xz file")
            if args.accept_source and not args.rebuild:
                parser.error("verify: --accept-source only matters with --rebuild")
            return verify(release, args.rebuild, tuple(dict.fromkeys(args.accept_source)))
        parser.error(f"unknown command {args.command!r}")
    except UserError as error:
        sys.stdout.flush()
        print(f"mmulab: error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        sys.stdout.flush()
        print(f"mmulab: error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        sys.stdout.flush()
        print("\nmmulab: interrupted", file=sys.stderr)
        return INTERRUPTED
    return 2
