"""How well triage, dedup and the map do against the demo corpus's ground truth.

The pipeline never reads the ground truth; the benchmark and the README's figures do, through
these functions.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from .common import read_csv

GRAPHIC_KINDS = {"floorplan", "ad"}


def precision_recall(predicted: set, actual: set) -> dict:
    """Precision and recall of a predicted set against the true one (1.0 when a side is empty)."""
    hits = len(predicted & actual)
    return {
        "precision": hits / len(predicted) if predicted else 1.0,
        "recall": hits / len(actual) if actual else 1.0,
        "predicted": len(predicted),
        "actual": len(actual),
    }


def triage_quality(truth: list[dict], triage_rows: list[dict], keep_maybe: bool = False) -> dict:
    """Triage as a detector of graphics: what it keeps off the map against the true graphics."""
    readable = {r["id"] for r in triage_rows}
    removed_classes = {"graphic"} if keep_maybe else {"graphic", "maybe"}
    removed = {r["id"] for r in triage_rows if r["class"] in removed_classes}
    graphics = {t["id"] for t in truth if t["kind"] in GRAPHIC_KINDS and t["id"] in readable}
    return precision_recall(removed, graphics)


def truth_groups(truth: list[dict]) -> dict[str, set]:
    """Groups of copies in the ground truth: original id -> the original and all its copies."""
    groups: dict[str, set] = defaultdict(set)
    for t in truth:
        if t["duplicate_of"]:
            groups[t["duplicate_of"]].update({t["id"], t["duplicate_of"]})
    return groups


def dedup_quality(truth: list[dict], duplicate_rows: list[dict]) -> dict:
    """Pairs (copy, kept) found by dedup against the ground truth's groups of copies.

    Precision: share of the removed images whose kept image is truly the same photo. Recall:
    share of the surplus copies (all members of a group but one) that were removed.
    """
    group_of = {}
    for original, members in truth_groups(truth).items():
        for member in members:
            group_of[member] = original
    correct = sum(
        1 for r in duplicate_rows
        if r["id"] in group_of and group_of[r["id"]] == group_of.get(r["kept_id"])
    )
    removed = {r["id"] for r in duplicate_rows}
    surplus = sum(len(m) - 1 for m in truth_groups(truth).values())
    found = sum(min(len(m) - 1, len(m & removed)) for m in truth_groups(truth).values())
    return {
        "precision": correct / len(duplicate_rows) if duplicate_rows else 1.0,
        "recall": found / surplus if surplus else 1.0,
        "predicted": len(duplicate_rows),
        "actual": surplus,
    }


def neighbour_family_share(cells: dict[tuple[int, int], str], family: dict[str, str]) -> float:
    """Mean share of each image's (up to 8) grid neighbours that are of its own family."""
    shares = []
    for (col, row), image in cells.items():
        neighbours = [cells[(col + dc, row + dr)] for dc in (-1, 0, 1) for dr in (-1, 0, 1)
                      if (dc or dr) and (col + dc, row + dr) in cells]
        if neighbours:
            same = sum(family[n] == family[image] for n in neighbours)
            shares.append(same / len(neighbours))
    return float(np.mean(shares)) if shares else 0.0


def map_quality(truth: list[dict], grid_rows: list[dict], seeds: int = 5) -> dict:
    """Neighbour family share of the map against the same cells filled at random."""
    family = {t["id"]: t["family"] for t in truth}
    cells = {(int(r["col"]), int(r["row"])): r["id"] for r in grid_rows}
    ours = neighbour_family_share(cells, family)
    keys, ids = list(cells), list(cells.values())
    random_shares = []
    for seed in range(seeds):
        shuffled = np.random.default_rng(seed).permutation(ids)
        random_shares.append(neighbour_family_share(dict(zip(keys, shuffled)), family))
    return {"neighbour_family_share": ours, "random_layout_share": float(np.mean(random_shares))}


def evaluate_run(results_dir: str | Path, keep_maybe: bool = False, truth_csv=None) -> dict:
    """All three figures for a finished demo run in ``results_dir`` (truth: the demo's own, or
    ``truth_csv`` for a corpus made outside the run, as the benchmark does)."""
    results_dir = Path(results_dir)
    truth = read_csv(truth_csv or results_dir / "demo" / "truth.csv")
    triage_rows = [r for p in sorted((results_dir / "triage").glob("*.csv"))
                   if not p.name.endswith(".rejects.csv") for r in read_csv(p)]
    return {
        "triage": triage_quality(truth, triage_rows, keep_maybe),
        "dedup": dedup_quality(truth, read_csv(results_dir / "duplicates.csv")),
        "map": map_quality(truth, read_csv(results_dir / "grid.csv")),
    }
