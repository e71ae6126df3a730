"""Tests of the dedup stage: grouping rules on hand-made hashes, a brute-force cross-check, scale."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from vacancy.common import read_csv, write_csv
from vacancy.images.dedup import dedup, find_duplicates, near_pairs

# dHash alone decides: the settings of the tests that write hash tables by hand
HASH_ONLY = {"check": "none", "inner_distance": 0, "min_correlation": 0.99}


def rec(image: str, value: int, width: int = 100, height: int = 100) -> dict:
    return {"id": image, "dhash": f"{value:016x}", "width": str(width), "height": str(height)}


def removed(rows) -> dict[str, tuple[str, int]]:
    return {row["id"]: (row["kept_id"], row["distance"]) for row in rows}


def test_empty_input_gives_no_rows(tmp_path):
    assert find_duplicates([], 3) == []
    empty = tmp_path / "empty.csv"
    write_csv(empty, [], ["id", "dhash", "width", "height", "bytes"])
    out = tmp_path / "duplicates.csv"
    assert dedup([empty], out, **HASH_ONLY, max_distance=2)["duplicates"] == 0
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
    counts = dedup([tmp_path / "nyc.csv", tmp_path / "sf.csv"], out, **HASH_ONLY, max_distance=1)
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


# ---------------------------------------------------------------------------------------------
# The second check and who takes part, on real photographs through the real prepare stage


def wand_copy(path, action) -> bytes:
    """A re-post of a real photo made by ImageMagick (through Wand), as JPEG bytes."""
    from wand.image import Image as WandImage

    with WandImage(filename=str(path)) as img:
        action(img)
        img.format = "jpeg"
        img.compression_quality = 88
        return img.make_blob()


def crop2(img):
    dx, dy = round(img.width * 0.02), round(img.height * 0.02)
    img.crop(dx, dy, width=img.width - 2 * dx, height=img.height - 2 * dy)


def thin_border(img):
    from wand.color import Color

    side = max(2, round(min(img.width, img.height) * 0.01))
    img.border(Color("white"), side, side)


def moved(img):
    """The same scene with something moved: a quarter-size patch copied elsewhere."""
    w, h = img.width, img.height
    with img.clone() as patch:
        patch.crop(w // 10, h // 2, width=w // 4, height=h // 4)
        img.composite(patch, left=w - w // 4 - w // 10, top=h // 8)


def bigger_graphic(img):
    """A larger, posterised copy: four grey levels make it a graphic to triage."""
    img.resize(img.width * 5 // 4, img.height * 5 // 4)
    img.transform_colorspace("gray")
    img.posterize(4)


@pytest.fixture(scope="module")
def real_prepared(tmp_path_factory):
    """sklearn's two real JPEG photos, copies made by Wand, run through the real prepare."""
    import sklearn.datasets

    from test_triage import write_inventory
    from vacancy.images.prepare import prepare_location

    photos = Path(sklearn.datasets.__file__).parent / "images"
    china, flower = photos / "china.jpg", photos / "flower.jpg"
    root = tmp_path_factory.mktemp("real")
    files = {"china.jpg": china.read_bytes(), "flower.jpg": flower.read_bytes(),
             "china-crop2.jpg": wand_copy(china, crop2),
             "china-border.jpg": wand_copy(china, thin_border),
             "flower-moved.jpg": wand_copy(flower, moved),
             "flower-graphic.jpg": wand_copy(flower, bigger_graphic)}
    for name, data in files.items():
        (root / name).write_bytes(data)
    inventory = write_inventory(root / "inv.csv", [(n, str(root / n)) for n in files], "real")
    out = {name: root / "out" / name for name in
           ("triage.csv", "hashes.csv", "features.h5", "thumbs.h5", "rejects.csv")}
    prepare_location(inventory, *out.values())
    return out


def run_dedup(prepared, tmp_path, **params) -> dict[str, str]:
    out = tmp_path / "duplicates.csv"
    settings = {"max_distance": 7, "check": "features", "inner_distance": 8, "min_correlation": 0.99,
                **params}
    dedup([prepared["hashes.csv"]], out, triage_csvs=[prepared["triage.csv"]],
          feature_h5s=[prepared["features.h5"]], **settings)
    return {row["id"]: row["kept_id"] for row in read_csv(out)}


def test_real_crop_and_border_copies_are_found_and_a_moved_scene_is_kept(real_prepared, tmp_path):
    classes = {r["id"]: r["class"] for r in read_csv(real_prepared["triage.csv"])}
    assert classes["real/flower-graphic.jpg"] == "graphic"  # the premise of the next test
    removed = run_dedup(real_prepared, tmp_path)
    # the border copy is the largest, so it is kept; the original and the 2% crop go to it
    assert removed == {"real/china.jpg": "real/china-border.jpg",
                       "real/china-crop2.jpg": "real/china-border.jpg"}
    # flower and flower-moved (a quarter-size patch moved) are distinct and both stay
    hashes = {r["id"]: int(r["dhash"], 16) for r in read_csv(real_prepared["hashes.csv"])}
    assert (hashes["real/flower.jpg"] ^ hashes["real/flower-moved.jpg"]).bit_count() <= 7  # a candidate


def test_a_photo_is_never_removed_for_a_graphic_or_an_excluded_image(real_prepared, tmp_path):
    # by the dHash alone over every image, the bigger graphic copy keeps and the photo goes
    records = read_csv(real_prepared["hashes.csv"])
    old = removed(find_duplicates(records, 7))
    assert old.get("real/flower.jpg", ("",))[0] == "real/flower-graphic.jpg"
    # only images that can reach the map take part: the graphic is never compared
    assert "real/flower.jpg" not in run_dedup(real_prepared, tmp_path)
    # an excluded image never keeps: excluding the border copy, the original keeps the crop
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("real/china-border.jpg\n")
    assert run_dedup(real_prepared, tmp_path, exclude_file=exclude) == {
        "real/china-crop2.jpg": "real/china.jpg"}


def test_check_none_is_the_dhash_alone_and_an_unknown_check_is_refused(real_prepared, tmp_path):
    by_hash = run_dedup(real_prepared, tmp_path, check="none", max_distance=4)
    expected = {row["id"]: row["kept_id"] for row in find_duplicates(
        [r for r in read_csv(real_prepared["hashes.csv"])
         if r["id"] != "real/flower-graphic.jpg"], 4)}
    assert by_hash == expected
    with pytest.raises(ValueError, match="dedup.check"):
        run_dedup(real_prepared, tmp_path, check="pixels")


def test_profiles_see_a_zoomed_copy_and_not_a_shifted_scene():
    from vacancy.images.dedup import aligned_correlation, inner_dhash, profiles, window_matrix

    rng = np.random.default_rng(3)
    scene = rng.random((80, 80)).astype(np.float32)
    scene = np.cumsum(np.cumsum(scene, 0), 1)  # smooth, photo-like ramps
    base = scene[8:72, 8:72]
    zoom = window_matrix(1.04, 64, 0).astype(np.float32)  # the centre zoomed by 4%: a crop
    cropped = zoom @ base @ zoom.T
    shifted = scene[0:64, 14:78]  # the camera moved by 6 px
    p = profiles(np.stack([base, cropped, shifted]))
    corr = aligned_correlation(p[[0, 0]], p[[1, 2]])
    assert corr[0] > 0.999 and corr[1] < corr[0]
    assert inner_dhash(base[None]).dtype == np.uint64


def test_near_pairs_stream_each_pair_once_with_one_giant_bucket():
    """A bucket far bigger than the rest (the quadratic case at 125,000 demo images): the
    streamed chunks hold exactly the brute-force pairs, none twice, although close pairs match
    in several bands (each is reported by the first), and every chunk is bounded."""
    from vacancy.images.dedup import CHUNK_PAIRS, iter_near_pairs

    rng = np.random.default_rng(11)
    giant = clustered_hashes(rng, 1, 600) & np.uint64(0xFFFF_FFFF_FFFF_0000)  # one low band
    unique = np.unique(np.concatenate([giant, clustered_hashes(rng, 40, 20)]))
    dist = np.bitwise_count(unique[:, None] ^ unique[None, :])
    for max_distance in (3, 7):
        chunks = list(iter_near_pairs(unique, max_distance))
        assert len(chunks) > 1 and max(i.size for i, _ in chunks) <= CHUNK_PAIRS
        codes = np.concatenate([i * unique.size + j for i, j in chunks])
        assert np.unique(codes).size == codes.size  # no pair twice
        assert all((i < j).all() for i, j in chunks)
        bi, bj = np.nonzero(np.triu(dist <= max_distance, k=1))
        assert np.array_equal(np.sort(codes), bi * unique.size + bj)
        assert bi.size > 1000
        i, j = near_pairs(unique, max_distance)
        assert np.array_equal(i, bi) and np.array_equal(j, bj)


def test_candidate_pairs_of_repeated_hashes_come_once_in_bounded_chunks(monkeypatch):
    """Images sharing hashes (many identical all-black ones, several near groups): the streamed
    image pairs are the brute-force ones, each once, in chunks of at most the set size, even
    where one hash alone holds more pairs than that."""
    from vacancy.images import dedup as d

    monkeypatch.setattr(d, "EXPAND_PAIRS", 500)
    rng = np.random.default_rng(3)
    distinct = clustered_hashes(rng, 15, 6)
    hashes = np.concatenate([distinct[rng.integers(0, distinct.size, 300)],
                             np.zeros(40, np.uint64),  # 40 identical: 780 pairs in one group
                             np.ones(30, np.uint64)])  # 1 bit away: 30 x 40 pairs across
    chunks = list(d.iter_candidate_pairs(hashes, 4))
    codes = np.concatenate([i * hashes.size + j for i, j in chunks])
    assert np.unique(codes).size == codes.size
    dist = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    bi, bj = np.nonzero(np.triu(dist <= 4, k=1))
    assert np.array_equal(np.sort(codes), bi * hashes.size + bj) and bi.size > 2000
    assert max(i.size for i, _ in chunks) <= 500  # the 780 and the 1,200 pairs split


def similar_profiles(rng, n: int) -> np.ndarray:
    """Profiles of smooth scenes and of slightly changed copies (noise, a zoom): a mix of pairs
    far below, near and above 0.99."""
    from vacancy.images.dedup import profiles, window_matrix

    blocks = rng.random((n, 16, 16)).astype(np.float32)
    scenes = np.kron(blocks, np.ones((4, 4), np.float32))  # distinct scenes: 4-px blocks
    zoom = window_matrix(1.03, 64, 0).astype(np.float32)
    copies = [scenes + rng.normal(0, s, scenes.shape).astype(np.float32) * scenes.std()
              for s in (0.002, 0.02, 0.1, 0.3)] + [zoom @ scenes @ zoom.T]
    return profiles(np.concatenate([scenes, *copies]))


def test_the_bound_skips_pairs_and_never_changes_a_correlation_that_can_pass():
    from vacancy.images.dedup import SecondCheck, aligned_correlation

    rng = np.random.default_rng(5)
    p = similar_profiles(rng, 60)
    a, b = np.triu_indices(len(p), k=1)
    exact = aligned_correlation(p[a], p[b])
    for min_correlation in (0.99, 0.9, 0.5):
        check = SecondCheck({}, np.empty(0, np.uint64), p, 8, min_correlation, threads=2)
        corr, full = check.correlations(a, b)
        passing = exact >= min_correlation
        assert 50 < passing.sum() <= full < a.size // 2  # pairs pass, most others are skipped
        assert np.array_equal(corr[passing], exact[passing])  # bit for bit
        assert not (corr[~passing] >= min_correlation).any()


def test_features_read_by_two_processes_equal_one(real_prepared):
    from vacancy.images.dedup import read_descriptors

    path = str(real_prepared["features.h5"])
    wanted = {"real/china.jpg", "real/china-crop2.jpg", "real/flower.jpg", "real/nothing.jpg"}
    one = read_descriptors([path, path], wanted, threads=1)
    two = read_descriptors([path, path], wanted, threads=2)
    assert one[0] == two[0] and len(one[0]) == 3  # an id in two files counts once
    assert np.array_equal(one[1], two[1]) and np.array_equal(one[2], two[2])


def test_two_threads_write_the_same_duplicates_as_one(real_prepared, tmp_path):
    rows = {}
    for threads in (1, 2):
        out = tmp_path / f"duplicates-{threads}.csv"
        dedup([real_prepared["hashes.csv"]] * 2, out, triage_csvs=[real_prepared["triage.csv"]],
              feature_h5s=[real_prepared["features.h5"]] * 2, max_distance=7, check="features",
              inner_distance=8, min_correlation=0.99, threads=threads)
        rows[threads] = read_csv(out)
    assert rows[1] == rows[2] and len(rows[1]) >= 2


def test_candidates_searched_ahead_pass_on_errors_and_stop_with_the_consumer():
    """The candidate search runs on its own thread: its error reaches the caller (after the
    items before it), and a caller that stops early does not leave the thread running."""
    import threading

    from vacancy.images.dedup import _ahead

    def failing():
        yield 1
        yield 2
        raise ValueError("search failed")

    got = []
    with pytest.raises(ValueError, match="search failed"):
        for item in _ahead(failing()):
            got.append(item)
    assert got == [1, 2]
    def producers():
        return [t for t in threading.enumerate() if t.name == "dedup-search-ahead"]

    assert producers() == []  # the failed one has ended
    stream = _ahead(iter(range(1000)), depth=2)
    assert [next(stream), next(stream)] == [0, 1]
    assert len(producers()) == 1  # the producer, blocked: 2 items ahead
    stream.close()
    assert producers() == []  # closing the stream ended it
