"""A large location is measured by several worker processes in its one prepare job.

The rule's threads are the location's share of the cores (vacancy.resources.prepare_threads),
and prepare_location(workers=N) must write the same rows, values and rejects as one process,
with the reuse cache working the same way. Real ImageMagick, real files, a real Snakemake run.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import snakemake, write_config
from test_prepare_reuse import assert_same, contents, make_location, prepare, reused
from test_triage import jpeg_bytes, photo_like, write_inventory
from vacancy import resources
from vacancy.images import prepare as prepare_module
from vacancy.imaging import read_blob as original_read_blob


@pytest.mark.parametrize("sizes, cores, expected", [
    ([100, 100, 100, 100, 100, 100, 100, 100], 2, [1] * 8),  # alike: one process each
    ([1200, 100], 2, [2, 1]),        # the big one would finish long after: both cores
    ([500], 8, [8]),                 # the only location: every core
    ([30, 10, 5, 3, 3, 2, 1, 1], 8, [4, 2, 1, 1, 1, 1, 1, 1]),  # 4.4, 1.5, 0.7, ...
    ([50, 20, 10, 8, 5, 4, 2, 1], 8, [4, 2, 1, 1, 1, 1, 1, 1]),  # bench/prepare_workers.py
    ([50, 20, 10, 8, 5, 4, 2, 1], 2, [1] * 8),  # 50% is its fair share of 2 cores
    ([100, 100, 100], 8, [3, 3, 2]),  # never more cores than there are (rounding would ask 9)
    ([0, 0], 4, [1, 1]),
])
def test_cores_are_shared_in_proportion_to_the_images(sizes, cores, expected):
    assert resources.apportion(sizes, cores) == expected


class _Input(list):
    pass


def inventory_of(path: Path, n: int) -> Path:
    return write_inventory(path, [(f"img{k:05d}.jpg", f"/photos/img{k:05d}.jpg") for k in range(n)])


def test_a_location_gets_threads_by_its_share_of_every_inventory(tmp_path):
    big = inventory_of(tmp_path / "big.csv", 4500)
    small = inventory_of(tmp_path / "small.csv", 300)
    other = inventory_of(tmp_path / "other.csv", 300)
    missing = tmp_path / "still_scraping.csv"
    every = [str(big), str(small), str(other)]

    def threads(paths, cores, own):
        return resources.prepare_threads(lambda wildcards: paths, cores)(None, _Input([str(own)]))

    assert threads(every, 8, big) == 7       # 4500 of 5100 images: 7.1 of 8 cores
    assert threads(every, 8, small) == 1     # too few images for a second worker
    assert threads(every, 2, big) == 2
    assert threads(every, 64, big) == 4500 // resources.MIN_IMAGES_PER_WORKER
    assert threads([str(big)], None, big) == resources.CLUSTER_CORES  # a cluster: no --cores
    # a location still being scraped counts as the mean of the others: 4500 of 6800
    assert threads(every + [str(missing)], 8, big) == 5
    assert threads(every, 8, tmp_path / "not_listed.csv") == 1
    assert threads(every, 8, missing) == 1   # a dry run: no inventory yet


def test_worker_processes_write_what_one_process_writes(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="vacancy.images.prepare")
    raw = tmp_path / "raw"
    names = make_location(raw, 90)
    (raw / "folder.jpg").mkdir()
    names.append("folder.jpg")
    one_counts, one = prepare(tmp_path, raw, names, "one", reuse=False)
    reads = tmp_path / "reads.txt"

    def recording(path):  # runs in the workers (forked): records into a file
        with open(reads, "a") as handle:
            handle.write(f"{os.getpid()} {Path(path).name}\n")
        return original_read_blob(path)

    monkeypatch.setattr(prepare_module, "read_blob", recording)
    counts, workers = prepare(tmp_path, raw, names, "workers", workers=3)
    assert counts == one_counts and counts["rejected"] > 5 and counts["graphic"] > 5
    assert_same(contents(workers), contents(one))
    assert re.search(r"prepare workers.inv: .* \(.* ms per image, 3 workers\)", caplog.text)
    read = [line.split() for line in reads.read_text().splitlines()]
    assert sorted(name for _, name in read) == sorted(names)  # each file read once
    pids = {int(pid) for pid, _ in read}
    assert os.getpid() not in pids and 1 < len(pids) <= 3  # by the workers, not this process
    assert reused(caplog) == (0, 91)

    # a rerun with the cache: one file rewritten, two added; only those are read and measured
    reads.unlink()
    (raw / "img0040.jpg").write_bytes(jpeg_bytes(photo_like(50, 40, seed=4040)))
    added = make_location(raw, 2, start=500)
    later = sorted(names + added)
    again_counts, again = prepare(tmp_path, raw, later, "again", workers=2)
    assert reused(caplog) == (90, 93)  # all but the rewritten file (rejects included)
    assert sorted(line.split()[1] for line in reads.read_text().splitlines()) == sorted(
        ["img0040.jpg", *added])
    monkeypatch.undo()
    clean_counts, clean = prepare(tmp_path, raw, later, "clean", reuse=False)
    assert again_counts == clean_counts
    assert_same(contents(again), contents(clean))


def test_an_error_in_a_worker_fails_the_job_and_leaves_no_output(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    names = make_location(raw, 20)

    def broken(blob, *args, **kwargs):
        raise RuntimeError("a bug, not a bad image")

    monkeypatch.setattr(prepare_module, "measure_image", broken)
    with pytest.raises(RuntimeError, match="a bug, not a bad image"):
        prepare(tmp_path, raw, names, "failed", reuse=False, workers=2)
    assert not any((tmp_path / "failed").glob("*.csv"))
    assert not any((tmp_path / "failed").glob("*.h5"))


def test_snakemake_gives_a_large_location_the_free_cores(tmp_path):
    """A folder source of one large and one small location, prepared with --cores 2: the large
    one's job runs with 2 workers, the small one's with 1, and every image is measured."""
    photos = tmp_path / "photos"
    sizes = {"big": 2 * resources.MIN_IMAGES_PER_WORKER + 100, "small": 60}
    for location, n in sizes.items():
        (photos / location).mkdir(parents=True)
        for k in range(n):
            pixels = photo_like(40, 30, seed=k) if k % 5 else np.full((30, 40, 3), 200, np.uint8)
            (photos / location / f"img{k:05d}.jpg").write_bytes(jpeg_bytes(pixels))
    write_config(tmp_path, {"source": "folder", "folder": {"path": str(photos)}})
    targets = [f"results/triage/{location}.csv" for location in sizes]
    result = snakemake(tmp_path, "--cores", "2", *targets)
    planned = re.findall(r"wildcards: location=(\w+)\n\s+threads: (\d+)",
                         result.stdout + result.stderr)
    assert dict(planned) == {"big": "2"}  # Snakemake prints threads only when above 1
    logs = {location: (tmp_path / f"results/logs/prepare/{location}.log").read_text()
            for location in sizes}
    assert "2 workers)" in logs["big"] and "1 worker)" in logs["small"]
    for location, n in sizes.items():
        rows = (tmp_path / f"results/triage/{location}.csv").read_text().splitlines()
        assert len([r for r in rows if not r.startswith("#")]) == n + 1  # header + every image
