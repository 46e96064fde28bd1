"""Pipeline benchmark: cold builds vs raw make, no-op runs, edit-init -> verdict. Not a test: it measures.

Usage: .venv/bin/python bench/bench_pipeline.py [--out bench/results/NAME.json]
Targets: no-op `doit boot:nommu` < 0.2 s; no-op `doit all` < 1 s; edit asm init -> verdict < 1 s;
edit busybox init script -> verdict < 5 s; the pipeline's cold kernel stage (kconfig + build) within
10 % of raw make olddefconfig + make Image; live progress costs nothing (a full kernel build with
MMULAB_PROGRESS=tty, which redraws its line 4 times a second, vs off: within 3 %). Uses its own build
directories under a temporary folder; the shared download cache is used as it is (a warm cache
measures the pipeline, not the network). About 15 minutes on 2 cores: seven kernel builds, musl
twice, busybox four times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from benchlib import DOIT, ROOT, doit_command, report, series_folder, timed

from mmulab.build import busybox
from mmulab.project.loader import load_project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument(
        "--focus",
        action="store_true",
        help="only the nommu kernel (progress on vs off), no-op runs and edit-init -> verdict (about 7 minutes)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mmulab-bench-"))
    overlay = work / "overlay"
    overlay.mkdir()
    (overlay / "bench").mkdir()
    shutil.copy(ROOT / "initsrc" / "clone_vm" / "init.S", overlay / "bench" / "init.S")
    shutil.copytree(ROOT / "initsrc" / "lib", overlay / "lib")
    shutil.copy(ROOT / "initsrc" / "shell" / "init.sh", overlay / "init.sh")
    check = ROOT / "initsrc" / "shell" / "check.sh"
    (overlay / "demos.toml").write_text(
        '[demos.bench.builds.asm]\ninit = ["bench/init.S", "lib/rt.S"]\n'
        '[demos.bench.runs.nommu]\nmust = ["reboot: Power down"]\n'
        f'[demos.benchbb.builds.busybox]\ninit = ["init.sh"]\nfiles = {{ "etc/mmulab/check.sh" = "{check}" }}\n'
        '[demos.benchbb.runs.nommu]\nmust = ["mmulab: shell: all checks done", "reboot: Power down"]\n'
    )
    env = {"MMULAB_BUILD_DIR": str(work / "build"), "MMULAB_CONFIG_OVERLAY": str(overlay)}
    all_env = {"MMULAB_BUILD_DIR": str(work / "build-all")}
    results: dict[str, float | str] = {}
    try:
        results["fetch_extract_s"] = timed([*DOIT, "extract:linux"], env)
        tree = work / "build" / "src" / "linux"
        # Raw make of each verified config first, then the pipeline's own kernel stage: both then read a
        # source tree already in the page cache, so neither gets the other's cold-cache penalty.
        for variant in ("nommu",) if args.focus else ("nommu", "mmu"):
            results[f"cold_kconfig_{variant}_s"] = timed([*DOIT, f"kconfig:{variant}"], env)
            if args.focus:
                continue
            raw = work / f"raw-{variant}"
            raw.mkdir()
            shutil.copy(work / "build" / variant / "kernel" / "config", raw / ".config")
            make = ["make", "-C", str(tree), f"O={raw}", "ARCH=riscv", "CROSS_COMPILE=riscv64-linux-gnu-"]
            results[f"raw_make_olddefconfig_{variant}_s"] = timed([*make, "olddefconfig"])
            results[f"raw_make_{variant}_s"] = timed([*make, f"-j{os.cpu_count()}", "Image"])
            results[f"raw_noop_make_{variant}_s"] = timed([*make, f"-j{os.cpu_count()}", "Image"])
        results["cold_kernel_nommu_s"] = results["cold_kconfig_nommu_s"] + timed([*DOIT, "kernel:nommu"], env)
        results["cold_rest_of_boot_nommu_s"] = timed([*DOIT, "boot:nommu"], env)
        # Live progress on vs off: the same full kernel build twice (object directory removed each time).
        for mode in ("off", "tty"):
            shutil.rmtree(work / "build" / "nommu" / "kernel" / "obj")
            timed([*doit_command("forget"), "kernel:nommu"], env)
            results[f"kernel_nommu_progress_{mode}_s"] = timed(
                [*DOIT, "kernel:nommu"], {**env, "MMULAB_PROGRESS": mode}
            )
        results["cold_boot_nommu_total_s"] = sum(
            results[k] for k in ("fetch_extract_s", "cold_kernel_nommu_s", "cold_rest_of_boot_nommu_s")
        )

        noops = [timed([*DOIT, "boot:nommu"], env) for _ in range(5)]
        results["noop_doit_boot_nommu_median_s"] = statistics.median(noops)
        edits = []
        for index in range(3):
            source = overlay / "bench" / "init.S"  # a real change: the printed text, so the boot reruns
            source.write_text(source.read_text().replace("init started", f"init started {index}", 1))
            edits.append(timed([*DOIT, "smoke:bench-asm-nommu"], env))
        results["edit_init_to_verdict_median_s"] = statistics.median(edits)

        if args.focus:
            return _report(results, args.out, work)
        results["cold_doit_all_s"] = timed([*DOIT, "all"], all_env)
        results["noop_doit_all_median_s"] = statistics.median(timed([*DOIT, "all"], all_env) for _ in range(5))
        for variant in ("nommu", "mmu"):  # each flavour's one busybox build (mmu-full takes mmu's)
            key = busybox.Flavour.of(load_project().variants[variant]).key
            shutil.rmtree(series_folder(work / "build-all") / "busybox" / key)
            timed([*doit_command("forget"), f"busybox:{key}"], all_env)
            results[f"busybox_build_{variant}_s"] = timed([*DOIT, f"busybox:{variant}"], all_env)

        bb_env = {"MMULAB_BUILD_DIR": str(work / "build-all"), "MMULAB_CONFIG_OVERLAY": str(overlay)}
        timed([*DOIT, "demo:benchbb"], bb_env)
        edits = []
        for index in range(3):
            script = overlay / "init.sh"
            script.write_text(script.read_text().replace("mounted", f"mounted {index}", 1))
            edits.append(timed([*DOIT, "smoke:benchbb-busybox-nommu"], bb_env))
        results["edit_busybox_init_to_verdict_median_s"] = statistics.median(edits)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _report(results, args.out, work)


def _report(results: dict[str, float | str], out: Path, work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
    if "raw_make_nommu_s" in results:
        raw_nommu = results["raw_make_olddefconfig_nommu_s"] + results["raw_make_nommu_s"]
        results["cold_overhead_vs_raw_make"] = round(results["cold_kernel_nommu_s"] / raw_nommu - 1, 3)
    progress_cost = results["kernel_nommu_progress_tty_s"] / results["kernel_nommu_progress_off_s"] - 1
    results["progress_overhead"] = round(progress_cost, 3)
    targets = {
        "noop_doit_boot_nommu_median_s": ("<", 0.2),
        "noop_doit_all_median_s": ("<", 1.0),
        "edit_init_to_verdict_median_s": ("<", 1.0),
        "progress_overhead": ("<", 0.03),
        "edit_busybox_init_to_verdict_median_s": ("<", 5.0),
        "cold_overhead_vs_raw_make": ("<", 0.10),
    }
    report(results, targets, out)


if __name__ == "__main__":
    main()
