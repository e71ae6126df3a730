"""Resource callables for the rules: SLURM's ``--time`` and ``--mem`` sized from the input.

A cluster kills a job that outlives its ``runtime`` or outgrows its ``mem_mb``, and a request far
too large waits longer in the queue. So the stages whose cost grows with the collection compute
their request from what they will read: the number of images in their input table (per-image
stages), or the size of their input files (dedup, select, the map stages). Costs come from the
scale benchmark (125,000 images, 2 cores: per-image stages take 5-10 ms an image, t-SNE 5-10 min
and ~3 GB) and the million-image ones (``bench/million.py``, ``bench/million_images.py``), so
that a run of a million images gets what it needs on its first attempt.

Snakemake calls these with the job's ``wildcards``, ``input`` and ``attempt``. Before the input
exists (dry run, DAG building) they return the base value; Snakemake evaluates them again just
before submitting, when the input is there. Each retry (``attempt`` 2, 3...) asks for more, so a
job killed for time or memory gets a larger request instead of failing the same way again.

Only the standard library is used here: this module runs in the Snakemake process on the login
node, not in a rule's environment.
"""

from __future__ import annotations

import csv
import math
import os
from typing import Callable

#: Multiplier on measured costs: cluster nodes are often slower and busier than the benchmark box.
SAFETY = 3.0


def count_rows(path: str | os.PathLike) -> int:
    """Data rows of a CSV; 0 if missing (a dry run plans before the table exists).

    Streams the file: a 125,000-row table is counted in well under a second.
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return max(0, sum(1 for _ in csv.reader(handle)) - 1)
    except OSError:
        return 0


def input_mb(input_files) -> float:
    """Total size in MB of the input files that exist (missing ones count as 0)."""
    total = 0
    for path in input_files:
        try:
            total += os.path.getsize(path)
        except OSError:
            pass
    return total / 1e6


def _minutes(base_min: float, work_min: float, attempt: int) -> int:
    return int(math.ceil((base_min + SAFETY * work_min) * max(1, attempt)))


def runtime_per_image(ms_per_image: float, base_min: float = 10, table: str | int = 0,
                      fraction: float = 1.0) -> Callable:
    """Runtime (minutes) of a stage that spends ``ms_per_image`` on each row of its input table.

    ``table`` names the input holding the rows (index or name); ``fraction`` is the share of
    the rows one job draws (a tile band draws about 1/``tiles.jobs`` of the grid).
    """

    def runtime(wildcards, input, attempt) -> int:
        path = input[table] if isinstance(table, int) else getattr(input, table)
        n = count_rows(path) * fraction
        return _minutes(base_min, n * ms_per_image / 60_000, attempt)

    return runtime


def _sized(input, only: str | None):
    """The input files a size-based request counts: all, or only the named input (one file, or
    a list of them: one per location)."""
    if not only:
        return input
    named = getattr(input, only)
    return [named] if isinstance(named, (str, os.PathLike)) else list(named)


def runtime_per_mb(minutes_per_mb: float, base_min: float = 10, only: str | None = None) -> Callable:
    """Runtime (minutes) of a stage whose work grows with the size of its input files (all, or
    only the named input: t-SNE's cost follows pca.h5, not the neighbours file beside it)."""

    def runtime(wildcards, input, attempt) -> int:
        return _minutes(base_min, input_mb(_sized(input, only)) * minutes_per_mb, attempt)

    return runtime


def mem_per_mb(base_mb: int, mb_per_input_mb: float = 0.0, only: str | None = None) -> Callable:
    """Memory (MB): ``base_mb`` plus ``mb_per_input_mb`` for each MB of input, times the attempt.

    t-SNE keeps neighbour lists and gradients per point, so its peak grows with pca.h5 (150
    float32 per image): ~80 MB of input at 125,000 images for ~3 GB of memory.
    """

    def mem_mb(wildcards, input, attempt) -> int:
        mb = input_mb(_sized(input, only))
        return int(math.ceil((base_mb + mb_per_input_mb * mb) * max(1, attempt)))

    return mem_mb


def mem_per_thread(base_mb: int, mb_per_thread: int) -> Callable:
    """Memory (MB) of a streaming stage whose extra threads are worker processes, each holding
    its own copy of the libraries and one image's arrays; doubled on each retry."""

    def mem_mb(wildcards, threads, attempt) -> int:
        return (base_mb + mb_per_thread * (max(1, threads) - 1)) * max(1, attempt)

    return mem_mb


def mem_fixed(base_mb: int) -> Callable:
    """Memory (MB) of a streaming stage (flat in the number of images), doubled on each retry."""

    def mem_mb(wildcards, attempt) -> int:
        return base_mb * max(1, attempt)

    return mem_mb


#: A prepare worker process is worth starting only for this many images of its location: each
#: costs the job's main process about 0.35 ms an image (receiving and writing its results), and
#: an image takes 2-3 ms to measure (README, "Preparation").
MIN_IMAGES_PER_WORKER = 500
#: The cores a location's prepare may be given on a cluster, where Snakemake has no --cores
#: total to share (a node commonly has 8 or more).
CLUSTER_CORES = 8


def _file_sizes(paths) -> list[int | None]:
    sizes = []
    for path in paths:
        try:
            sizes.append(os.path.getsize(path))
        except OSError:
            sizes.append(None)
    return sizes


def apportion(sizes: list[float], cores: int) -> list[int]:
    """Cores given to jobs of these sizes, in proportion, as seats in a parliament are (the
    largest remainder method): floor(cores x share) each, then one more to each of the largest
    remainders until the cores are used. At least 1 each (small jobs share the cores in turn).

    Why not plain rounding: it can hand out more cores than there are (three equal jobs on 8
    cores would ask for 3 each, and the third would wait for the first two).
    """
    total = sum(sizes)
    if total <= 0:
        return [1] * len(sizes)
    quotas = [cores * size / total for size in sizes]
    seats = [int(quota) for quota in quotas]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (seats[i] - quotas[i], i))
    for i in by_remainder[:max(0, cores - sum(seats))]:
        seats[i] += 1
    return [max(1, seat) for seat in seats]


def prepare_threads(inventories: Callable, cores: int | None) -> Callable:
    """Threads (worker processes) of a location's prepare job: its share of the cores.

    Why: each location is one job, and locations are rarely of one size (a scrape's big cities,
    a folder of photos never split). With one process a job, the largest location set the wall
    time of the whole stage while other cores sat idle. The cores are shared out among the
    locations in proportion to their images (:func:`apportion`): 1 each when they are alike
    (separate jobs are then cheaper than workers in one job), more for a location that would
    otherwise finish long after the rest, all of them for the only location. At most one
    worker per MIN_IMAGES_PER_WORKER images.

    ``inventories``: an input function giving every location's inventory. Shares are counted in
    bytes of the inventories (a row per image, of similar length: cheap to take for hundreds of
    locations each time a job is planned); an inventory not written yet (a location still being
    scraped) counts as the mean of the others. ``cores``: Snakemake's --cores, or None on a
    cluster (CLUSTER_CORES). Snakemake caps the result at --cores and --max-threads.
    """
    total_cores = cores or CLUSTER_CORES

    def threads(wildcards, input) -> int:
        own = count_rows(input[0])  # 0 before the inventory exists (a dry run)
        if own < 2 * MIN_IMAGES_PER_WORKER:
            return 1
        paths = [os.path.normpath(path) for path in inventories(wildcards)]
        mine = os.path.normpath(input[0])
        if mine not in paths:
            return 1
        sizes = _file_sizes(paths)
        known = [size for size in sizes if size is not None]
        mean = sum(known) / len(known)
        seats = apportion([mean if size is None else size for size in sizes], total_cores)
        return max(1, min(seats[paths.index(mine)], own // MIN_IMAGES_PER_WORKER))

    return threads
