"""Dedup on real photographs: a fixed part of bench/realset.py's set, through the workflow.

The part (the first PART labelled images of each kind, their re-post copies, the "moved" twins
and the first shipped stereo pairs and frames) is built from the Debian packages and the
scikit-image wheel exactly as the benchmark builds the whole set; the real workflow runs on it
with ``source: folder`` and the default config up to ``duplicates.csv``, and the issue's dedup
floors are asserted: recall of the copies (2% crop, thin border, re-encode, resize, brightness,
watermark) at least 0.98, precision at least 0.98, no photo removed in favour of an image off
the map. Where the packages are missing the tests are skipped, saying which, unless
VACANCY_REQUIRE_REALSET=1 (``make test``, CI), where the missing packages fail the run.
"""
from __future__ import annotations

import os
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import REPO, snakemake, write_config
from vacancy.common import read_csv

sys.path.insert(0, str(REPO / "bench"))

from dedup import group_quality  # noqa: E402  (bench/dedup.py: the benchmark's own figures)
from realset import build, missing_packages  # noqa: E402

pytestmark = pytest.mark.slow

#: Labelled images of each kind in the test's part of the set (with copies: about 250 files).
PART = 60
MISSING = missing_packages()
if MISSING and not os.environ.get("VACANCY_REQUIRE_REALSET"):
    pytest.skip(f"the real-image set needs Debian packages {MISSING}: run "
                "'bash tools/install-system-deps.sh realset' (or set VACANCY_REQUIRE_REALSET=1 "
                "to make this a failure)", allow_module_level=True)


@pytest.fixture(scope="module")
def realset_dedup(tmp_path_factory) -> tuple[Path, Path]:
    """The test's part of the real set and the workflow's results up to duplicates.csv."""
    assert not MISSING, f"VACANCY_REQUIRE_REALSET is set but Debian packages {MISSING} are missing"
    root = tmp_path_factory.mktemp("realset")
    build(root, part=PART)
    workdir = tmp_path_factory.mktemp("realset_dedup")
    write_config(workdir, {"source": "folder", "folder": {"path": str(root)}})
    snakemake(workdir, "--cores", "2", "results/duplicates.csv")
    return root, workdir / "results"


def test_real_copies_are_found_and_distinct_similar_photos_kept(realset_dedup):
    root, results = realset_dedup
    groups: dict[str, set] = defaultdict(set)
    for row in read_csv(root / "copies.csv"):
        groups[row["group"]].add(row["id"])
    distinct = [(r["id_a"], r["id_b"]) for r in read_csv(root / "distinct.csv")]
    on_map = {r["id"] for p in (results / "triage").glob("*.csv") for r in read_csv(p)
              if r["class"] == "photo"}
    rows = read_csv(results / "duplicates.csv")
    labelled = set().union(*groups.values(), *map(set, distinct))
    q = group_quality(groups, [r for r in rows if r["id"] in labelled
                               and r["kept_id"] in labelled], on_map)
    assert q["surplus"] >= 30, q  # the part holds enough copies on the map to measure
    assert q["recall"] >= 0.98, q
    assert q["precision"] >= 0.98, q
    kept = {r["id"]: r["kept_id"] for r in rows}
    moved = [(a, b) for a, b in distinct if "moved/" in a + b]
    assert moved and all(kept.get(a, a) != kept.get(b, b) for a, b in moved)


def test_every_keeper_is_on_the_map(realset_dedup):
    _, results = realset_dedup
    on_map = {r["id"] for p in (results / "triage").glob("*.csv") for r in read_csv(p)
              if r["class"] == "photo"}
    rows = read_csv(results / "duplicates.csv")
    assert rows and all(r["id"] in on_map and r["kept_id"] in on_map for r in rows)
