"""Mutation benchmark: how many small faults (mutants) in the pure modules the fast tests catch. Not a test:
it measures the tests' strength.

Usage: .venv/bin/python bench/bench_mutation.py [--out bench/results/mutation.json] [--max-children 1]
Runs mutmut 3 (./setup.sh --tests installs it) in a copy of the checkout under a temporary folder, so the checkout
gets no mutants/ folder and no mutmut configuration: the boot judge (mmulab/boot/judge.py, and qemu.py's
trap watch; not the QEMU runners, which only the slow tests start), mmulab/boot/symbolize.py, mmulab/kconfig/tree.py
and mmulab/release/'s archive, check and rebuild (not the xz reader, the unpacking or the rebuild's plumbing), each
against its own fast tests only (-m "not slow"). Score = killed / (killed + survived); a mutant that times out counts as
killed, one no test reaches as survived. About an hour on one core of a busy 2-core machine (kconfig_tree is
half of it). Surviving mutants are listed in the JSON (`survivors`) for `mutmut show` in the copy (--keep).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, report

# module -> (its files, the mutant names it scores (mutmut's fnmatch patterns), the fast tests that judge it)
MODULES: dict[str, tuple[tuple[str, ...], list[str], list[str]]] = {
    "boot": (
        ("mmulab/boot/judge.py", "mmulab/boot/qemu.py"),
        [
            "mmulab.boot.judge.xǁVerdictǁ*",
            "mmulab.boot.judge.x__indent*",
            "mmulab.boot.judge.x__excerpt*",
            "mmulab.boot.judge.x_judge*",
            "mmulab.boot.judge.x__from_marker*",
            "mmulab.boot.qemu.xǁTrapWatchǁ*",
        ],
        ["tests/test_boot.py", "tests/test_memory_demos.py"],
    ),
    "symbolize": (("mmulab/boot/symbolize.py",), ["mmulab.boot.symbolize.*"], ["tests/test_symbolize.py"]),
    "kconfig_tree": (("mmulab/kconfig/tree.py",), ["mmulab.kconfig.tree.*"], ["tests/test_kconfig_tree.py"]),
    "verify": (  # its checks: archive members, the release's own agreement, sources, the rebuild's comparison
        ("mmulab/release/archive.py", "mmulab/release/check.py", "mmulab/release/rebuild.py"),
        [
            "mmulab.release.archive.xǁ_Scanǁ*",
            "mmulab.release.archive.x__resolve_*",
            "mmulab.release.archive.x_inside_path_*",
            "mmulab.release.archive.x_scan_archive_*",
            "mmulab.release.check.xǁProblemǁ*",
            "mmulab.release.check.x_release_listing_*",
            "mmulab.release.check.xǁ_Digestsǁ*",
            "mmulab.release.check.x__claim_*",
            "mmulab.release.check.x__check_sums_*",
            "mmulab.release.check.x__load_json_*",
            "mmulab.release.check.x__check_manifest_*",
            "mmulab.release.check.x__entries_*",
            "mmulab.release.check.x__check_sbom_*",
            "mmulab.release.check.x__check_provenance_*",
            "mmulab.release.check.x__list_of_*",
            "mmulab.release.check.x_check_release_*",
            "mmulab.release.rebuild.x_plan_seeds_*",
            "mmulab.release.rebuild.x_check_patches_*",
            "mmulab.release.rebuild.x_compare_rebuilt_*",
            "mmulab.release.rebuild.x_compare_facts_*",
            "mmulab.release.rebuild.x__same_bytes_*",
        ],
        ["tests/test_verify.py"],
    ),
}
COPIED = ("mmulab", "tests", "configs", "initsrc", "dodo.py", "pyproject.toml")
KILLED = {"killed", "timeout", "segfault", "caught by type check"}
SURVIVED = {"survived", "no tests"}


def setup_cfg(module: str) -> str:
    paths, _, tests = MODULES[module]
    lines = ["[mutmut]", "source_paths = mmulab", "only_mutate ="] + [f"    {path}" for path in paths] + ["also_copy ="]
    lines += [f"    {name}" for name in ("configs", "initsrc", "dodo.py")]
    lines += [
        "pytest_add_cli_args =",
        "    -m",
        "    not slow",
        "    -p",
        "    no:randomly",
        "    -p",
        "    no:cacheprovider",
    ]
    lines += ["pytest_add_cli_args_test_selection ="] + [f"    {test}" for test in tests]
    return "\n".join(lines) + "\n"


def copy_checkout(work: Path) -> None:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, work / name)


def mutmut_results(work: Path) -> dict[str, str]:
    """Mutant name -> status, from `mutmut results --all true`."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "mutmut"), "results", "--all", "true"],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    statuses = {}
    for line in result.stdout.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            statuses[name] = status
    return statuses


def score(module: str, work: Path, max_children: int) -> dict[str, object]:
    (work / "setup.cfg").write_text(setup_cfg(module))
    shutil.rmtree(work / "mutants", ignore_errors=True)
    _, patterns, _ = MODULES[module]
    command = [str(Path(sys.executable).parent / "mutmut"), "run", "--max-children", str(max_children), *patterns]
    run = subprocess.run(command, cwd=work, capture_output=True, text=True, check=False)
    statuses = mutmut_results(work)
    scored = {n: s for n, s in statuses.items() if any(fnmatch.fnmatch(n, p) for p in patterns)}
    if run.returncode != 0 or not scored:
        sys.exit(
            f"bench: mutmut for {module} failed (exit {run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        )
    killed = sum(status in KILLED for status in scored.values())
    survivors = sorted(name for name, status in scored.items() if status in SURVIVED)
    counts: dict[str, int] = {}
    for status in scored.values():
        counts[status] = counts.get(status, 0) + 1
    return {
        "mutants": len(scored),
        "killed": killed,
        "survived": len(survivors),
        "score": round(killed / max(1, killed + len(survivors)), 3),
        "statuses": dict(sorted(counts.items())),
        "survivors": survivors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "mutation.json")
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument("--module", action="append", choices=sorted(MODULES), help="only these (default all)")
    parser.add_argument("--keep", action="store_true", help="keep the copy (to `mutmut show` a survivor)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mmulab-bench-mutation-"))
    results: dict[str, dict[str, object]] = {}
    try:
        copy_checkout(work)
        for module in args.module or list(MODULES):
            found = score(module, work, args.max_children)
            results[module] = found | {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            print(f"{module}: {found['score']} ({found['killed']} of {found['mutants']} killed)", flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    # A run of some modules keeps the others' last results (each module's entry has its own date).
    earlier = json.loads(args.out.read_text()) if args.out.is_file() else {}
    modules = {m: earlier[m] for m in MODULES if isinstance(earlier.get(m), dict) and m not in results} | results
    scores = {f"{m}_score": modules[m]["score"] for m in MODULES if m in modules}
    report(scores | {m: modules[m] for m in MODULES if m in modules} | {"tool": _tool()}, {}, args.out)


def _tool() -> str:
    from importlib.metadata import version

    return f"mutmut {version('mutmut')}, fast tests only (-m 'not slow')"


if __name__ == "__main__":
    main()
