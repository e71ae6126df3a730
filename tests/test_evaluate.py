"""The ground-truth figures in the README are computed right: small cases by hand."""
import pytest

from vacancy.evaluate import dedup_quality, map_quality, neighbour_family_share, triage_quality

TRUTH = [
    {"id": "a/1", "kind": "interior", "family": "f1", "duplicate_of": ""},
    {"id": "a/2", "kind": "interior", "family": "f1", "duplicate_of": "a/1"},
    {"id": "b/3", "kind": "interior", "family": "f1", "duplicate_of": "a/1"},
    {"id": "a/4", "kind": "floorplan", "family": "floorplan", "duplicate_of": ""},
    {"id": "a/5", "kind": "ad", "family": "ad", "duplicate_of": ""},
    {"id": "a/6", "kind": "interior", "family": "f2", "duplicate_of": ""},
]


def test_triage_precision_and_recall():
    rows = [{"id": "a/1", "class": "photo"}, {"id": "a/4", "class": "graphic"},
            {"id": "a/5", "class": "photo"}, {"id": "a/6", "class": "maybe"}]
    q = triage_quality(TRUTH, rows)
    assert (q["precision"], q["recall"]) == (0.5, 0.5)  # removed {a/4, a/6}; graphics {a/4, a/5}
    q = triage_quality(TRUTH, rows, keep_maybe=True)
    assert (q["precision"], q["recall"]) == (1.0, 0.5)


def test_dedup_precision_and_recall():
    rows = [{"id": "a/2", "kept_id": "a/1"}, {"id": "a/6", "kept_id": "a/1"}]
    q = dedup_quality(TRUTH, rows)
    assert q["precision"] == 0.5 and q["recall"] == 0.5 and q["actual"] == 2


def test_neighbour_share_by_hand():
    # f1 f1
    # f2 f1
    cells = {(0, 0): "a/1", (1, 0): "a/2", (0, 1): "a/6", (1, 1): "b/3"}
    family = {t["id"]: t["family"] for t in TRUTH}
    # a/1: 2 of 3 same; a/2: 2/3; a/6: 0/3; b/3: 2/3
    assert neighbour_family_share(cells, family) == pytest.approx((2 / 3 * 3) / 4)
    grid = [{"id": i, "col": c, "row": r} for (c, r), i in cells.items()]
    q = map_quality(TRUTH, grid, seeds=3)
    assert q["neighbour_family_share"] == pytest.approx(0.5)
    assert q["random_layout_share"] == pytest.approx(0.5)  # same cells, any order: same here
