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


def mem_fixed(base_mb: int) -> Callable:
    """Memory (MB) of a streaming stage (flat in the number of images), doubled on each retry."""

    def mem_mb(wildcards, attempt) -> int:
        return base_mb * max(1, attempt)

    return mem_mb
