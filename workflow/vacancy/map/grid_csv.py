"""Reading what the ``grid`` rule wrote: the grid's shape and its cells, for the later stages.

The grid stage's own module (:mod:`vacancy.map.grid`) holds its solvers (lapjv, SciPy, FLAS);
this one is the standard library only, so the viewer and the tile jobs, which only read
``grid.csv``, need neither the solvers nor their conda packages.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import defaultdict
from pathlib import Path

log = logging.getLogger("vacancy.map.grid")


def read_grid_shape(grid_csv) -> tuple[int, int]:
    """``(cols, rows)`` from the grid's provenance sidecar (written by :func:`run_grid`)."""
    meta = json.loads(Path(str(grid_csv) + ".meta.json").read_text())
    return int(meta["cols"]), int(meta["rows"])


def read_cells(grid_csv, cols: int, rows: int) -> dict[int, list[tuple[int, str]]]:
    """Grid rows grouped by ``row`` as ``[(col, id), ...]``; bad or duplicate cells are logged.

    The tiles and the viewer read the grid through this one function, so they place every image
    in the same cell and skip the same bad ones.
    """
    by_row: dict[int, list[tuple[int, str]]] = defaultdict(list)
    seen: set[tuple[int, int]] = set()
    with open(grid_csv, newline="", encoding="utf-8") as handle:
        for line, rec in enumerate(csv.DictReader(handle), start=2):
            try:
                col, row = int(rec["col"]), int(rec["row"])
            except (TypeError, ValueError):
                log.warning("%s line %d: bad cell %r,%r for %r; skipped",
                            grid_csv, line, rec.get("col"), rec.get("row"), rec.get("id"))
                continue
            if not (0 <= col < cols and 0 <= row < rows):
                log.warning("%s line %d: cell (%d, %d) of %r is outside the %dx%d grid; skipped",
                            grid_csv, line, col, row, rec["id"], cols, rows)
                continue
            if (col, row) in seen:
                log.warning("%s line %d: cell (%d, %d) already taken; %r skipped",
                            grid_csv, line, col, row, rec["id"])
                continue
            seen.add((col, row))
            by_row[row].append((col, rec["id"]))
    return by_row


def read_added(grid_csv) -> set[str] | None:
    """Ids the last extend placed (grid.csv's ``added`` column is 1), for the viewer's filter
    "added in the last update"; None for a fresh grid, which has no such column."""
    with open(grid_csv, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if "added" not in (reader.fieldnames or []):
            return None
        return {rec["id"] for rec in reader if rec.get("added") == "1"}
