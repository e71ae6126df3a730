"""Tests of the demo corpus generator on a real 120-file corpus written to disk."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from vacancy.sources import demo

N = 120
SEED = 11
LOCATIONS = ["sfbay", "newyork", "gotham"]  # gotham: not in the state map
NAME_RE = re.compile(r"^00[0-9a-z]0[0-9a-z]_[0-9A-Za-z]{11}_(\d+)x(\d+)\.jpg$")


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


def _gray(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def _entropy(gray: np.ndarray) -> float:
    """Shannon entropy in nats of the 256-bin histogram, as the triage stage defines it."""
    p = np.bincount(gray.ravel(), minlength=256) / gray.size
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    counts = demo.generate_corpus(root / "raw", root / "truth.csv", LOCATIONS, N, SEED)
    truth = _read(root / "truth.csv")
    manifests = {loc: _read(root / "raw" / loc / "manifest.csv") for loc in LOCATIONS}
    return dict(root=root, raw=root / "raw", counts=counts, truth=truth, manifests=manifests,
                by_id={row["id"]: row for row in truth})


def test_manifest_lists_every_file_once_with_right_size_and_hash(corpus):
    for loc, rows in corpus["manifests"].items():
        folder = corpus["raw"] / loc
        assert _header(folder / "manifest.csv") == list(demo.MANIFEST_COLUMNS)
        on_disk = sorted(p.name for p in folder.iterdir() if p.name != "manifest.csv")
        names = [row["filename"] for row in rows]
        assert len(names) == len(set(names))
        assert sorted(names) == on_disk  # also: no temporary files left behind
        for row in rows:
            data = (folder / row["filename"]).read_bytes()
            assert int(row["bytes"]) == len(data)
            assert row["sha256"] == hashlib.sha256(data).hexdigest()
            assert NAME_RE.match(row["filename"]), row["filename"]
            assert row["image_url"] == f"https://images.craigslist.org/{row['filename']}"
            assert re.fullmatch(rf"https://{loc}\.craigslist\.org/apa/d/[a-z0-9-]+/"
                                rf"{row['listing_id']}\.html", row["listing_url"])
            assert re.fullmatch(r"\$\d{1,2},?\d{3}", row["price"]), row["price"]
            assert row["posted"] < row["fetched_at"]
            assert row["state"] == {"sfbay": "CA", "newyork": "NY", "gotham": "CA"}[loc]
    assert sum(len(rows) for rows in corpus["manifests"].values()) == N


def test_listings_hold_one_to_eight_images_of_one_location(corpus):
    per_listing = Counter()
    where = defaultdict(set)
    for loc, rows in corpus["manifests"].items():
        for row in rows:
            per_listing[row["listing_id"]] += 1
            where[row["listing_id"]].add(loc)
    assert all(1 <= size <= 8 for size in per_listing.values())
    assert all(len(locs) == 1 for locs in where.values())
    assert corpus["counts"]["listings"] == len(per_listing)
    assert max(per_listing.values()) > 1


def test_truth_covers_every_file_and_agrees_with_manifests(corpus):
    truth = corpus["truth"]
    assert _header(corpus["root"] / "truth.csv") == list(demo.TRUTH_COLUMNS)
    files = {f"{loc}/{row['filename']}": row for loc, rows in corpus["manifests"].items()
             for row in rows}
    assert set(corpus["by_id"]) == set(files) and len(truth) == N
    for row in truth:
        assert row["id"] == f"{row['location']}/{row['filename']}"
        assert row["kind"] in demo.KINDS
        assert row["listing_id"] == files[row["id"]]["listing_id"]
        assert row["family"].startswith(row["kind"] + "-")
    kinds = Counter(row["kind"] for row in truth)
    assert {k: corpus["counts"][k] for k in demo.KINDS} == {k: kinds[k] for k in demo.KINDS}
    assert corpus["counts"]["total"] == N


def test_proportions_match_the_stated_shares(corpus):
    truth = corpus["truth"]
    originals = Counter(row["kind"] for row in truth if not row["duplicate_of"])
    dups = Counter(row["duplicate_kind"] for row in truth if row["duplicate_of"])
    for kind, share in demo.SHARES.items():
        got = sum(dups.values()) if kind == "duplicate" else originals[kind]
        assert abs(got / N - share) <= 0.015, (kind, got)
    assert 0.66 <= originals["interior"] / N <= 0.75
    assert originals["broken"] == 3
    assert set(dups) == set(demo.DUPLICATE_KINDS) and dups["exact"] == max(dups.values())
    assert len({row["family"] for row in truth if row["kind"] == "interior"}) >= 12
    # The planner alone, for the big corpus the benchmarks use: shares hold and counts add up.
    big = demo.plan_counts(125_000)
    assert sum(big.values()) == 125_000  # kinds of originals, broken files and duplicate kinds
    assert abs(sum(big[k] for k in demo.DUPLICATE_KINDS) / 125_000 - 0.10) < 1e-3
    assert big["broken"] == 62 and abs(big["interior"] / 125_000 - 0.72) < 0.001


def test_exact_duplicates_are_byte_copies_and_near_duplicates_are_close(corpus):
    raw, by_id = corpus["raw"], corpus["by_id"]
    dups = [row for row in corpus["truth"] if row["duplicate_of"]]
    assert len(dups) == 12
    cross_posts = 0
    thumbs = {r["id"]: _thumb(raw / r["id"]) for r in corpus["truth"]
              if not r["duplicate_of"] and r["kind"] != "broken"}
    for row in dups:
        original = by_id[row["duplicate_of"]]
        assert not original["duplicate_of"] and original["kind"] == row["kind"]
        assert original["family"] == row["family"]
        a, b = (raw / original["id"]).read_bytes(), (raw / row["id"]).read_bytes()
        if row["duplicate_kind"] == "exact":
            assert a == b
            cross_posts += row["location"] != original["location"]
            continue
        assert a != b
        img_a, img_b = Image.open(io.BytesIO(a)), Image.open(io.BytesIO(b))
        img_b.load()
        w, h = img_a.size
        if row["duplicate_kind"] == "resize":
            assert img_b.size == (500, 375)
        elif row["duplicate_kind"] == "crop":
            assert 0.97 * w <= img_b.width <= 0.98 * w and 0.97 * h <= img_b.height <= 0.98 * h
        else:
            assert img_b.size == (w, h)
        assert NAME_RE.match(row["filename"]).groups() == tuple(map(str, img_b.size))
        # Near duplicates still look like their original, more than like any other image; a
        # crop shifts the thumbnail grid, so there the original need only be among the nearest.
        mine = _thumb(raw / row["id"])
        dist = {oid: np.abs(thumb - mine).mean() for oid, thumb in thumbs.items()}
        if row["duplicate_kind"] == "crop":
            assert dist[original["id"]] <= 1.25 * min(dist.values()), row
        else:
            assert min(dist, key=dist.get) == original["id"], row
    assert cross_posts >= 1


def _dhash_bits(data: bytes) -> np.ndarray:
    """The 64 bits the hashes stage computes: imagehash.dhash on the decoded JPEG."""
    with Image.open(io.BytesIO(data)) as img:
        return imagehash.dhash(img, hash_size=8).hash.ravel()


def test_distinct_images_are_far_apart_under_dhash_and_copies_are_close(corpus):
    """The de-duplication stage groups dHashes within 4 bits: distinct images (even of one
    family) must not fall there, as real photos of different rooms do not, and copies must."""
    raw = corpus["raw"]
    rows = [row for row in corpus["truth"] if row["kind"] != "broken"]
    bits = {row["id"]: _dhash_bits((raw / row["id"]).read_bytes()) for row in rows}
    root = {row["id"]: row["duplicate_of"] or row["id"] for row in rows}
    ids = sorted(bits)
    matrix = np.array([bits[i] for i in ids])
    dist = (matrix[:, None, :] != matrix[None, :, :]).sum(-1)
    roots = np.array([root[i] for i in ids])
    upper = np.triu_indices(len(ids), 1)
    distinct = dist[upper][roots[upper[0]] != roots[upper[1]]]
    print("dHash distances of distinct pairs, 0..16:", np.bincount(distinct, minlength=17)[:17])
    assert distinct.size > 6000
    assert distinct.min() > 4, np.bincount(distinct)[:5]
    assert np.mean(distinct > 8) >= 0.995
    assert np.median(distinct) >= 20  # like unrelated photos, not like siblings
    copies = {}
    for row in rows:
        if row["duplicate_of"]:
            copies.setdefault(row["duplicate_kind"], []).append(
                int((bits[row["id"]] != bits[row["duplicate_of"]]).sum()))
    print("dHash distances of copies to their originals:", copies)
    assert copies["exact"] and set(copies["exact"]) == {0}
    near = [d for kind in ("reencode", "resize", "crop") for d in copies[kind]]
    assert len(near) >= 6 and np.mean(np.array(near) <= 4) >= 0.95


def test_near_copies_of_many_photos_keep_their_dhash(corpus):
    """The corpus has only a few near copies, so derive every kind from each photo original
    (crops at both ends of the crop range) and check that >= 95% stay within 4 bits."""
    raw = corpus["raw"]
    photos = [row for row in corpus["truth"]
              if row["kind"] in demo.PHOTO_KINDS and not row["duplicate_of"]][:60]
    found = {kind: [] for kind in ("reencode", "resize", "crop")}
    w, h = 600, 450
    for j, row in enumerate(photos):
        data = (raw / row["id"]).read_bytes()
        mine = _dhash_bits(data)
        side = demo.CROP_RANGE[j % 2]
        box = (round(w * side), round(h * side), w - round(w * side), h - round(h * side))
        for kind, quality in (("reencode", 50 if j % 2 else 95), ("resize", 80), ("crop", 80)):
            copy = demo.derive_duplicate(data, kind, quality, (500, 375), box)
            found[kind].append(int((_dhash_bits(copy) != mine).sum()))
    print("near-copy dHash distances:", {k: np.bincount(v).tolist() for k, v in found.items()})
    for kind, dists in found.items():
        assert len(dists) == len(photos) >= 50
        assert np.mean(np.array(dists) <= 4) >= (0.9 if kind == "crop" else 0.97), kind
    assert np.mean(np.array(sum(found.values(), [])) <= 4) >= 0.95


def _thumb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L").resize((16, 12), Image.Resampling.BOX), float)


def test_photos_and_graphics_fall_on_either_side_of_the_entropy_thresholds(corpus):
    photos, graphics = [], []
    for row in corpus["truth"]:
        if row["kind"] in demo.PHOTO_KINDS:
            photos.append(_entropy(_gray(corpus["raw"] / row["id"])))
        elif row["kind"] in demo.GRAPHIC_KINDS:
            graphics.append(_entropy(_gray(corpus["raw"] / row["id"])))
    assert len(photos) > 90 and len(graphics) >= 8
    assert np.mean(np.array(photos) > 4.4) >= 0.95, sorted(photos)[:5]
    assert np.mean(np.array(graphics) < 3.9) >= 0.95, sorted(graphics)[-5:]


def test_same_seed_gives_identical_files_and_another_seed_does_not(corpus, tmp_path):
    demo.generate_corpus(tmp_path / "raw", tmp_path / "truth.csv", LOCATIONS, N, SEED)
    for loc in LOCATIONS:
        again = (tmp_path / "raw" / loc / "manifest.csv").read_bytes()
        assert again == (corpus["raw"] / loc / "manifest.csv").read_bytes()
        for row in corpus["manifests"][loc]:
            assert (tmp_path / "raw" / loc / row["filename"]).read_bytes() == \
                (corpus["raw"] / loc / row["filename"]).read_bytes()
    assert (tmp_path / "truth.csv").read_bytes() == (corpus["root"] / "truth.csv").read_bytes()

    other = tmp_path / "other"
    demo.generate_corpus(other / "raw", other / "truth.csv", LOCATIONS, 40, SEED + 1)
    hashes = {row["sha256"] for rows in corpus["manifests"].values() for row in rows}
    other_hashes = {row["sha256"] for loc in LOCATIONS
                    for row in _read(other / "raw" / loc / "manifest.csv")}
    assert len(other_hashes - hashes) >= 35  # only the empty file may coincide


def test_hostile_and_awkward_titles_survive_verbatim(corpus):
    rows = [row for rows in corpus["manifests"].values() for row in rows]
    hostile = {row["listing_id"] for row in rows if row["title"] == demo.HOSTILE_TITLE}
    assert len(hostile) == 1
    titles = {row["title"] for row in rows}
    assert set(demo.SPECIAL_TITLES) <= titles
    assert any('"' in t for t in titles) and any("&" in t for t in titles)
    assert any(not t.isascii() for t in titles)
    hostile_row = next(row for row in rows if row["title"] == demo.HOSTILE_TITLE)
    assert "/apa/d/img-src-x-onerror-alert-1/" in hostile_row["listing_url"]


def test_broken_files_are_undecodable_and_of_each_sort(corpus):
    broken = [row for row in corpus["truth"] if row["kind"] == "broken"]
    assert sorted(row["family"] for row in broken) == [
        "broken-empty", "broken-html", "broken-truncated"]
    for row in broken:
        path = corpus["raw"] / row["id"]
        data = path.read_bytes()
        with pytest.raises(OSError):  # UnidentifiedImageError is an OSError too
            with Image.open(path) as img:
                img.load()
        starts = {"broken-empty": b"", "broken-truncated": b"\xff\xd8",
                  "broken-html": b"<!DOCTYPE html>"}[row["family"]]
        assert data.startswith(starts) and (len(data) == 0) == (row["family"] == "broken-empty")


def test_interior_families_are_coherent_in_gray_thumbnails(corpus):
    rows = [row for row in corpus["truth"] if row["kind"] == "interior" and not row["duplicate_of"]]
    feats = np.array([np.asarray(Image.open(corpus["raw"] / row["id"]).convert("L")
                                 .resize((16, 16), Image.Resampling.BOX), float).ravel()
                      for row in rows])
    fams = np.array([row["family"] for row in rows])
    dist = np.sqrt(((feats[:, None] - feats[None]) ** 2).sum(-1))
    np.fill_diagonal(dist, np.inf)
    assert (fams[dist.argmin(1)] == fams).mean() >= 0.9
    for fam in set(fams):
        mine = fams == fam
        if mine.sum() < 2:
            continue
        intra = dist[np.ix_(mine, mine)][np.isfinite(dist[np.ix_(mine, mine)])].mean()
        nearest_other = min(dist[np.ix_(mine, fams == g)].mean() for g in set(fams) - {fam})
        assert intra < nearest_other, fam


def test_tiny_and_empty_corpora_and_bad_locations(tmp_path):
    counts = demo.generate_corpus(tmp_path / "a", tmp_path / "a.csv", ["x"], 0, 1)
    assert counts["total"] == 0 and _read(tmp_path / "a" / "x" / "manifest.csv") == []
    counts = demo.generate_corpus(tmp_path / "b", tmp_path / "b.csv", ["x", "y"], 7, 1)
    assert counts["total"] == 7 == len(_read(tmp_path / "b.csv"))
    for bad in (["../up"], ["a/b"], [""], ["UPPER"], ["x", "x"], []):
        with pytest.raises(ValueError):
            demo.generate_corpus(tmp_path / "c", tmp_path / "c.csv", bad, 5, 1)
    assert not (tmp_path / "up").exists() and not (tmp_path / "c.csv").exists()


def test_command_line(tmp_path):
    cmd = [sys.executable, "-m", "vacancy.sources.demo", "--raw-dir", str(tmp_path / "raw"),
           "--truth", str(tmp_path / "truth.csv"), "--n", "12", "--seed", "3",
           "--locations", "boston", "austin"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60)
    counts = json.loads(done.stdout)
    assert counts["total"] == 12
    rows = _read(tmp_path / "truth.csv")
    assert len(rows) == 12 and {row["location"] for row in rows} <= {"boston", "austin"}
    states = {row["state"] for loc in ("boston", "austin")
              for row in _read(tmp_path / "raw" / loc / "manifest.csv")}
    assert states <= {"MA", "TX"}
