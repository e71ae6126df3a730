"""Dedup with and without the second check: quality on the real set and the demo, cost at scale.

    .venv/bin/python bench/dedup.py [--real] [--demo 125000] [--cores 2]
    .venv/bin/python bench/dedup.py --speed RESULTS --before REV [--repeat 2] [--threads 2]

Runs the workflow up to ``prepare`` once per corpus (kept in bench/cache/dedup-<name>/, git-ignored;
the demo corpus is bench/scale.py's bench/cache/corpus-N-seed1/), then times each dedup variant in
its own Python process (wall time and peak RSS of that process, reading the inputs included) on the
same prepare outputs:

* ``today``: the dHash alone within 4 bits, over every readable image (the dedup before issue 11);
* ``default``: this config's dedup (the second check, images that can reach the map only).

``--speed RESULTS`` times this config's dedup on a finished run's prepare outputs (e.g.
bench/cache/run-125000/results, read only) as the code is now and as it was at git revision
``--before`` (its workflow/vacancy from ``git archive``, in bench/cache/dedup-before-REV/),
alternating old and new ``--repeat`` times in fresh processes, and checks that both write the same
duplicates.csv (every row and column; the provenance header aside).

Quality: precision (share of removed images whose kept image is truly the same picture), recall
(share of surplus copies removed, among the images that can reach the map), for the real set the
distinct similar pairs merged and the photos removed in favour of an image off the map (a graphic,
a ``maybe``), and for the demo the recall over all copies as ``bench/scale.py`` counts it. The
real set labels only its copy groups and distinct pairs, so its precision is over the removals
whose two images are both labelled (a removal between two unlabelled images, say two package
images that happen to show the same picture, is counted apart, not judged).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "bench"))

from vacancy.common import config_defaults, read_csv  # noqa: E402
from vacancy.evaluate import dedup_quality, truth_groups  # noqa: E402

CACHE = REPO / "bench" / "cache"

#: One variant in a fresh process: prints its seconds, peak RSS in MB and row count as JSON.
CHILD = """
import json, resource, sys, time
sys.path.insert(0, {workflow!r})
from vacancy.images.dedup import dedup
args = json.loads(sys.argv[1])
start = time.perf_counter()
counts = dedup(**args)
print(json.dumps({{"s": time.perf_counter() - start, "counts": counts,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "cpu": sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage, (
                      resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))}}))
"""


def run_prepare(workdir: Path, folder: Path, cores: int) -> Path:
    """The workflow's prepare outputs for ``folder`` (``source: folder``), made once."""
    results = workdir / "results"
    if (results / ".prepared").exists():
        return results
    workdir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(source="folder", folder={"path": str(folder)})
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    print(f"preparing {folder} in {workdir} ...", flush=True)
    subprocess.run([str(Path(sys.executable).with_name("snakemake")), "results/duplicates.csv",
                    "--until", "prepare", "--snakefile", str(REPO / "Snakefile"), "--directory",
                    str(workdir), "--configfile", str(workdir / "config.yaml"), "--cores",
                    str(cores), "--quiet", "progress"], check=True, cwd=workdir)
    (results / ".prepared").touch()
    return results


def variants(results: Path, out: Path) -> dict[str, dict]:
    """Arguments of :func:`vacancy.images.dedup.dedup` for today's dedup and this config's."""
    files = {kind: sorted(str(p) for p in (results / kind).glob(f"*.{ext}"))
             for kind, ext in (("hashes", "csv"), ("features", "h5"))}
    files["triage"] = sorted(str(p) for p in (results / "triage").glob("*.csv"))
    d = config_defaults()["dedup"]
    today = {"hash_csvs": files["hashes"], "out_csv": str(out / "today.csv"), "max_distance": 4}
    default = {"hash_csvs": files["hashes"], "out_csv": str(out / "default.csv"),
               "max_distance": d["max_distance"], "triage_csvs": files["triage"],
               "feature_h5s": files["features"], "keep_maybe": False, "check": d["check"],
               "inner_distance": d["inner_distance"], "min_correlation": d["min_correlation"]}
    return {"today (dHash <= 4, all images)": today,
            f"default (dHash <= {d['max_distance']} or inner <= {d['inner_distance']}, "
            f"correlation >= {d['min_correlation']}, map images only)": default}


def run_variant(args: dict, workflow: Path = REPO / "workflow") -> dict:
    """One variant in its own process (``workflow``: where its vacancy package is): seconds,
    peak RSS (MB), counts, and ``tree``: the peak of the RSS summed over the process and its
    children (the reader processes), sampled every 50 ms."""
    code = CHILD.format(workflow=str(workflow))
    with subprocess.Popen([sys.executable, "-c", code, json.dumps(args)], text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        tree = 0.0
        while proc.poll() is None:
            tree = max(tree, tree_rss_mb(proc.pid))
            time.sleep(0.05)
        out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"dedup failed:\n{err}")
    return dict(json.loads(out.strip().splitlines()[-1]), tree=tree)


def tree_rss_mb(pid: int) -> float:
    """RSS (MB) of a process plus its direct children, from /proc (0 once it is gone)."""
    total = 0.0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for p in [pid, *map(int, children)]:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


def on_map(results: Path) -> set[str]:
    """Ids that can reach the map at the default config (triage class photo)."""
    return {r["id"] for p in (results / "triage").glob("*.csv") for r in read_csv(p)
            if r["class"] == "photo"}


def group_quality(groups: dict[str, set], rows: list[dict], eligible: set[str]) -> dict:
    """Precision over all removals; recall over the surplus copies that can reach the map."""
    group_of = {m: g for g, members in groups.items() for m in members}
    correct = sum(1 for r in rows if r["id"] in group_of
                  and group_of[r["id"]] == group_of.get(r["kept_id"]))
    removed = {r["id"] for r in rows}
    surplus = found = 0
    for members in groups.values():
        present = members & eligible
        surplus += max(0, len(present) - 1)
        found += min(max(0, len(present) - 1), len(present & removed))
    return {"precision": correct / len(rows) if rows else 1.0,
            "recall": found / surplus if surplus else 1.0, "removed": len(rows), "surplus": surplus}


def real_set(cores: int) -> None:
    from realset import build

    corpus = CACHE / "realset"
    if not (corpus / "labels.csv").exists():
        build(corpus)
    results = run_prepare(CACHE / "dedup-realset", corpus, cores)
    labels = {r["id"]: r for r in read_csv(corpus / "labels.csv")}
    groups: dict[str, set] = defaultdict(set)
    for r in read_csv(corpus / "copies.csv"):
        groups[r["group"]].add(r["id"])
    distinct = {frozenset((r["id_a"], r["id_b"])) for r in read_csv(corpus / "distinct.csv")}
    eligible = on_map(results)
    print(f"\n## Real set: {len(labels)} images, {len(groups)} copy groups "
          f"({sum(len(g) - 1 for g in groups.values())} copies), {len(distinct)} distinct pairs; "
          f"{len(eligible)} images on the map at the default triage\n")
    print("| dedup | s | peak MB | removed | of them labelled | precision | recall (copies on "
          "the map) | distinct pairs merged | photos removed for an image off the map |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    labelled = set().union(*groups.values(), *distinct)
    for name, args in variants(results, results).items():
        cost = run_variant(args)
        rows = read_csv(args["out_csv"])
        known = [r for r in rows if r["id"] in labelled and r["kept_id"] in labelled]
        q = group_quality(groups, known, eligible)
        kept = {r["id"]: r["kept_id"] for r in rows}
        merged = sum(1 for pair in distinct if _same_group(pair, kept))
        lost = sum(1 for r in rows if labels.get(r["id"], {}).get("kind") == "photo"
                   and r["kept_id"] not in eligible)
        print(f"| {name} | {cost['s']:.1f} | {cost['rss']:.0f} | {len(rows)} | {len(known)} | "
              f"{q['precision']:.3f} | {q['recall']:.3f} | {merged} | {lost} |")


def _same_group(pair: frozenset, kept: dict[str, str]) -> bool:
    """Whether dedup put both images of a pair in one group (one kept for the other, or both
    removed in favour of one keeper)."""
    a, b = tuple(pair)
    return kept.get(a, a) == kept.get(b, b)


def demo(n: int, cores: int) -> None:
    from scale import make_corpus

    corpus = make_corpus(n, 1)
    results = run_prepare(CACHE / f"dedup-{n}", corpus / "raw", cores)
    truth = read_csv(corpus / "truth.csv")
    eligible = on_map(results)
    print(f"\n## Demo, {n} images ({len(eligible)} photos that can reach the map)\n")
    print("| dedup | s | peak MB | removed | precision | recall (copies on the map) | "
          "recall (all copies, as bench/scale.py) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    baseline = None
    for name, args in variants(results, results).items():
        cost = run_variant(args)
        rows = read_csv(args["out_csv"])
        q = group_quality(truth_groups(truth), rows, eligible)
        overall = dedup_quality(truth, rows)
        baseline = baseline or cost
        ratio = f" ({cost['s'] / baseline['s']:.1f}x, {cost['rss'] / baseline['rss']:.1f}x)"
        print(f"| {name}{ratio if cost is not baseline else ''} | {cost['s']:.1f} | "
              f"{cost['rss']:.0f} | {q['removed']} | {q['precision']:.3f} | {q['recall']:.3f} | "
              f"{overall['recall']:.3f} |")


def before_workflow(rev: str) -> tuple[str, Path]:
    """The workflow folder of git revision ``rev`` (its vacancy package), extracted once."""
    name = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, check=True,
                          capture_output=True, text=True).stdout.strip()
    root = CACHE / f"dedup-before-{name}"
    if not (root / "workflow" / "vacancy").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", name, "workflow/vacancy", "workflow/schemas"],
                                 cwd=REPO, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return name, root / "workflow"


def data_rows(path) -> list[str]:
    """A CSV's lines without its provenance comments."""
    return [line for line in Path(path).read_text().splitlines() if not line.startswith("#")]


def speed(results: Path, rev: str, repeat: int, threads: int) -> None:
    """Today's dedup against revision ``rev``'s on one run's inputs: median time, peak, same rows."""
    import os
    import statistics

    name, old = before_workflow(rev)
    out = CACHE / f"dedup-speed-{results.parent.name}"
    out.mkdir(parents=True, exist_ok=True)
    args = variants(results, out)
    default = next(a for key, a in args.items() if key.startswith("default"))
    runs = {f"before ({name}, 1 thread)": (old, dict(default, out_csv=str(out / "before.csv"))),
            f"now ({threads} threads)": (REPO / "workflow",
                                         dict(default, out_csv=str(out / "now.csv"),
                                              threads=threads))}
    costs: dict[str, list] = {key: [] for key in runs}
    for k in range(repeat):
        for key in (list(runs) if k % 2 == 0 else list(runs)[::-1]):
            costs[key].append(run_variant(runs[key][1], runs[key][0]))
    load = os.getloadavg()[0]
    first = data_rows(out / "before.csv")
    print(f"\n## Dedup at {results} ({repeat} runs each, alternating; load average {load:.1f} "
          "after)\n")
    print("| dedup | s (median) | runs | CPU s (median, with reader processes) | peak RSS MB | "
          "peak RSS with reader processes, MB | duplicates | same duplicates.csv as before |")
    print("|---|---:|---|---:|---:|---:|---:|---|")
    base = statistics.median(c["s"] for c in costs[list(runs)[0]])
    for key, (_, a) in runs.items():
        s = statistics.median(c["s"] for c in costs[key])
        ratio = "" if s == base else f" ({base / s:.1f}x as fast)"
        times = ", ".join(f"{c['s']:.1f}" for c in costs[key])
        cpu = statistics.median(c["cpu"] for c in costs[key])
        print(f"| {key}{ratio} | {s:.1f} | {times} | {cpu:.1f} | "
              f"{max(c['rss'] for c in costs[key]):.0f} | "
              f"{max(c['tree'] for c in costs[key]):.0f} | "
              f"{costs[key][-1]['counts']['duplicates']} "
              f"| {data_rows(a['out_csv']) == first} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", action="store_true", help="the real-image set (bench/realset.py)")
    parser.add_argument("--demo", type=int, action="append", default=[], metavar="N",
                        help="the demo corpus of N images (repeatable)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--speed", type=Path, metavar="RESULTS",
                        help="time this config's dedup on a finished run's results folder")
    parser.add_argument("--before", default="main", help="git revision to compare with (--speed)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each (--speed)")
    parser.add_argument("--threads", type=int, default=2, help="dedup's threads now (--speed)")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.real:
        real_set(args.cores)
    for n in args.demo:
        demo(n, args.cores)
    if args.speed:
        speed(args.speed.resolve(), args.before, args.repeat, args.threads)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
