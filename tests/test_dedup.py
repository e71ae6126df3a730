"""Tests of the dedup stage: grouping rules on hand-made hashes, a brute-force cross-check, scale."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from vacancy.common import read_csv, write_csv
from vacancy.dedup import dedup, find_duplicates, near_pairs


def rec(image: str, value: int, width: int = 100, height: int = 100) -> dict:
    return {"id": image, "dhash": f"{value:016x}", "width": str(width), "height": str(height)}


def removed(rows) -> dict[str, tuple[str, int]]:
    return {row["id"]: (row["kept_id"], row["distance"]) for row in rows}


def test_empty_input_gives_no_rows(tmp_path):
    assert find_duplicates([], 3) == []
    empty = tmp_path / "empty.csv"
    write_csv(empty, [], ["id", "dhash", "width", "height", "bytes"])
    out = tmp_path / "duplicates.csv"
    assert dedup([empty], out, max_distance=2)["duplicates"] == 0
    assert out.read_text().strip() == "id,kept_id,distance,correlation"


def test_exact_copies_keep_the_largest_image():
    records = [rec("a/1.jpg", 0xABC, 640, 480), rec("b/2.jpg", 0xABC, 1280, 960),
               rec("c/3.jpg", 0xABC, 320, 240), rec("d/4.jpg", 0xFFFF0000FFFF0000)]
    assert removed(find_duplicates(records, 0)) == {"a/1.jpg": ("b/2.jpg", 0), "c/3.jpg": ("b/2.jpg", 0)}


def test_equal_sizes_keep_the_first_id_in_sorted_order():
    records = [rec("z/9.jpg", 7), rec("a/b.jpg", 7), rec("a/a.jpg", 7), rec("m/1.jpg", 7, 0, 0)]
    rows = find_duplicates(records, 0)
    assert [row["id"] for row in rows] == ["a/b.jpg", "m/1.jpg", "z/9.jpg"]  # sorted by id
    assert {row["kept_id"] for row in rows} == {"a/a.jpg"}


@pytest.mark.parametrize("max_distance", [1, 2, 3, 5, 8])
def test_near_copies_up_to_max_distance_and_not_beyond(max_distance):
    base = 0x0123456789ABCDEF
    records = [rec("k/keep.jpg", base, 2000, 1000)]
    for bits in range(1, max_distance + 2):  # flip bits spread over the whole 64
        flipped = base ^ sum(1 << (b * 64 // (max_distance + 1)) for b in range(bits))
        records.append(rec(f"k/flip{bits:02d}.jpg", flipped))
    expected = {f"k/flip{b:02d}.jpg": ("k/keep.jpg", b) for b in range(1, max_distance + 1)}
    # the copy one bit too far is not a duplicate of the keeper; it may still be within reach of
    # another copy, which is not the keeper, so under the star rule it stays
    assert removed(find_duplicates(records, max_distance)) == expected


def test_max_distance_zero_only_groups_identical_hashes():
    records = [rec("a/1.jpg", 0b1000), rec("a/2.jpg", 0b1001), rec("a/3.jpg", 0b1000, 50, 50)]
    assert removed(find_duplicates(records, 0)) == {"a/3.jpg": ("a/1.jpg", 0)}
    assert removed(find_duplicates(records, 1)) == {"a/2.jpg": ("a/1.jpg", 1), "a/3.jpg": ("a/1.jpg", 0)}


def test_chain_is_not_transitive_star_around_the_keeper():
    # A ~ B (2 bits) and B ~ C (2 bits) but A and C differ by 4 bits > max_distance 2.
    a, b, c = 0b0000, 0b0011, 0b1111
    big_a = [rec("x/A.jpg", a, 900, 900), rec("x/B.jpg", b), rec("x/C.jpg", c)]
    assert removed(find_duplicates(big_a, 2)) == {"x/B.jpg": ("x/A.jpg", 2)}  # C stays
    big_b = [rec("x/A.jpg", a), rec("x/B.jpg", b, 900, 900), rec("x/C.jpg", c)]
    assert removed(find_duplicates(big_b, 2)) == {"x/A.jpg": ("x/B.jpg", 2), "x/C.jpg": ("x/B.jpg", 2)}


def test_identical_copies_follow_a_nearby_larger_keeper_together():
    records = [rec("a/big.jpg", 0b111, 3000, 2000), rec("a/s1.jpg", 0b100), rec("a/s2.jpg", 0b100),
               rec("a/s3.jpg", 0b100, 200, 200)]
    assert removed(find_duplicates(records, 2)) == {
        "a/s1.jpg": ("a/big.jpg", 2), "a/s2.jpg": ("a/big.jpg", 2), "a/s3.jpg": ("a/big.jpg", 2)}


def test_bad_and_repeated_records_are_skipped_and_mixed_lengths_raise():
    records = [rec("a/1.jpg", 5), {"id": "a/2.jpg", "dhash": "-1", "width": "", "height": ""},
               {"id": "a/3.jpg", "dhash": "", "width": "1", "height": "1"}, rec("a/1.jpg", 5),
               rec("a/4.jpg", 5, 1, 1)]
    assert removed(find_duplicates(records, 0)) == {"a/4.jpg": ("a/1.jpg", 0)}
    with pytest.raises(ValueError, match="different lengths"):
        find_duplicates([rec("a/1.jpg", 5), {"id": "a/2.jpg", "dhash": "05", "width": 1, "height": 1}], 0)


def clustered_hashes(rng, n_centres: int, per_centre: int) -> np.ndarray:
    """Hashes scattered 0-6 bits around random centres: many near pairs and chains."""
    centres = rng.integers(0, 2**63, n_centres, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    out = []
    for centre in centres:
        for _ in range(per_centre):
            flips = rng.choice(64, size=rng.integers(0, 7), replace=False)
            out.append(int(centre) ^ sum(1 << int(b) for b in flips))
    return np.array(out, dtype=np.uint64)


@pytest.mark.parametrize("max_distance", [1, 2, 4, 6, 8])
def test_near_pairs_and_grouping_agree_with_brute_force(max_distance):
    rng = np.random.default_rng(max_distance)
    unique = np.unique(clustered_hashes(rng, 60, 25))
    i, j = near_pairs(unique, max_distance)
    dist = np.bitwise_count(unique[:, None] ^ unique[None, :])
    bi, bj = np.nonzero(np.triu(dist <= max_distance, k=1))
    assert sorted(zip(i.tolist(), j.tolist())) == sorted(zip(bi.tolist(), bj.tolist()))
    assert bi.size > 50  # the check is not vacuous

    records = [rec(f"r/{k:05d}.jpg", int(h), int(rng.integers(1, 5)) * 100, 100)
               for k, h in enumerate(unique[rng.integers(0, unique.size, 2000)])]
    rows = find_duplicates(records, max_distance)
    by_id = {r["id"]: r for r in records}
    kept = set(by_id) - {row["id"] for row in rows}
    value = {r["id"]: int(r["dhash"], 16) for r in records}
    area = {r["id"]: int(r["width"]) * int(r["height"]) for r in records}
    for row in rows:  # every removed image is within reach of a kept one of at least its priority
        assert row["kept_id"] in kept
        assert row["distance"] == (value[row["id"]] ^ value[row["kept_id"]]).bit_count() <= max_distance
        assert (-area[row["kept_id"]], row["kept_id"]) < (-area[row["id"]], row["id"])
    kept_values = np.array(sorted({value[k] for k in kept}), dtype=np.uint64)
    assert kept_values.size == len(kept)  # no two kept images share a hash
    kept_dist = np.bitwise_count(kept_values[:, None] ^ kept_values[None, :])
    assert not np.triu(kept_dist <= max_distance, k=1).any()  # kept images are pairwise far


def test_dedup_reads_location_csvs_and_writes_sorted_rows(tmp_path):
    columns = ["id", "dhash", "width", "height", "bytes"]
    write_csv(tmp_path / "nyc.csv", [rec("nyc/b.jpg", 0b01, 10, 10), rec("nyc/a.jpg", 0b11)], columns)
    write_csv(tmp_path / "sf.csv", [rec("sf/z.jpg", 0b01, 20, 20), rec("sf/a.jpg", 3 << 40)], columns)
    out = tmp_path / "results" / "duplicates.csv"
    counts = dedup([tmp_path / "nyc.csv", tmp_path / "sf.csv"], out, max_distance=1)
    assert read_csv(out) == [
        {"id": "nyc/b.jpg", "kept_id": "nyc/a.jpg", "distance": "1", "correlation": ""},
        {"id": "sf/z.jpg", "kept_id": "nyc/a.jpg", "distance": "1", "correlation": ""},
    ]
    assert counts == {"images": 4, "duplicates": 2, "exact": 0, "groups": 1, "kept": 2}
    meta = json.loads((out.parent / "duplicates.csv.meta.json").read_text())
    assert meta["stage"] == "dedup" and meta["params"]["max_distance"] == 1


def test_scales_to_125000_hashes_with_planted_copies_and_a_giant_bucket():
    rng = np.random.default_rng(125)
    n, max_distance = 125_000, 4
    values = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    records = [rec(f"loc{k % 7}/{k:06d}.jpg", int(v), 800, 600) for k, v in enumerate(values)]
    expected = {}
    for k in range(0, 600, 2):  # exact copies (smaller) and near copies at 1..4 bits (smaller)
        bits = k % (max_distance + 1)
        flipped = int(values[k]) ^ sum(1 << int(b) for b in rng.choice(64, bits, replace=False))
        records.append(rec(f"copy/{k:06d}.jpg", flipped, 400, 300))
        expected[f"copy/{k:06d}.jpg"] = (records[k]["id"], bits)
    for k in range(3000):  # a bucket of thousands of identical all-black images
        records.append(rec(f"black/{k:05d}.jpg", 0, 640, 480 if k else 481))
        if k:
            expected[f"black/{k:05d}.jpg"] = ("black/00000.jpg", 0)
    start = time.perf_counter()
    rows = find_duplicates(records, max_distance)
    print(f"find_duplicates: {len(records)} hashes, max_distance {max_distance}: "
          f"{time.perf_counter() - start:.2f} s")
    assert removed(rows) == expected
