"""What the curator's report costs at N demo images: its rules, then ``snakemake --report``.

    .venv/bin/python bench/report.py --images 20000 [--cores 2]

Uses bench/scale.py's corpus (bench/cache/corpus-N-seed1/) and runs the workflow to ``tiles`` once
in bench/cache/report-N/ (kept: a second call reuses it). Then, timed: the report rules, forced to
run (``report_figures``), and ``snakemake --report report.html``. Printed as Markdown: each report
rule's wall time and peak memory (Snakemake's benchmark files), the two steps' wall clock, the
report's size, and the report's cost against the whole pipeline's (sum of job wall times).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale  # noqa: E402  (bench/scale.py: corpus, working dir)
from scale import REPO  # noqa: E402

from vacancy.common import read_csv  # noqa: E402
from vacancy.report.build import read_benchmarks  # noqa: E402

REPORT_RULES = ["report_triage", "report_duplicates", "report_rejects", "report_map",
                "report_resources"]


def run(workdir: Path, *args: str) -> float:
    """One Snakemake command in ``workdir``; its wall time in seconds."""
    cmd = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), *args,
           "--quiet", "progress"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=workdir, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()

    corpus = scale.make_corpus(args.images, 1)
    workdir = REPO / "bench" / "cache" / f"report-{args.images}"
    if not (workdir / "config.yaml").exists():
        scale.prepare(workdir, corpus, args.cores)
    run(workdir, "--cores", str(args.cores), "tiles")
    results = workdir / "results"
    pipeline = sum(r["s"] for r in read_benchmarks(results / "benchmarks")
                   if not r["rule"].startswith("report_"))

    mark = time.time()
    load_before = os.getloadavg()[0]
    figures = run(workdir, "--cores", str(args.cores), "report_figures", "--forcerun", *REPORT_RULES)
    html = run(workdir, "--report", "report.html")
    per_rule = {r["rule"]: r for r in read_benchmarks(results / "benchmarks")}
    n = sum(1 for _ in read_csv(results / "selected.csv"))
    print(f"\n## The curator's report at {args.images} demo images ({n} on the map), "
          f"--cores {args.cores}\n")
    print("| step | wall s | peak RSS MB |")
    print("|---|---:|---:|")
    for rule in REPORT_RULES[:-1]:
        r = per_rule[rule]
        print(f"| {rule} | {r['s']:.1f} | {r['max_rss']:.0f} |")
    print(f"| report rules, wall clock (with Snakemake's start-up) | {figures:.1f} | |")
    print(f"| snakemake --report report.html | {html:.1f} | |")
    print(f"| **report, total wall clock** | **{figures + html:.1f}** | |")
    size = (workdir / "report.html").stat().st_size / 1e6
    print(f"\nreport.html: {size:.1f} MB; the pipeline's jobs took {pipeline:.0f} s (sum of wall "
          f"times), the report {figures + html:.0f} s: {(figures + html) / pipeline:.2f}x of it "
          f"(benchmark files written after {time.strftime('%H:%M:%S', time.localtime(mark))}); "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on "
          f"{os.cpu_count()} cores")


if __name__ == "__main__":
    main()
