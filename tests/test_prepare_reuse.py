"""Prepare reuses the rows of its previous run for unchanged images (vacancy.images.reuse).

Real ImageMagick on real files: a location is prepared, then images are added, rewritten or
left alone and it is prepared again with the cache; every output must equal, row for row and
value for value, a clean prepare of the same files, and only new or changed images (or all,
after a parameter change) may be measured (and read: files are read ahead on threads, and the
outputs are the same however they are read).
"""
from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from test_triage import jpeg_bytes, photo_like, read_rows, save, two_level, write_inventory
from vacancy.images import prepare as prepare_module
from vacancy.imaging import read_blob as original_read_blob
from vacancy.images.prepare import prepare_location

OUTPUTS = ("triage.csv", "hashes.csv", "features.h5", "thumbs.h5", "rejects.csv")
PARAMS = {"cell_px": 16, "batch_size": 8}


def make_location(raw: Path, n: int, start: int = 0) -> list[str]:
    """n files: mostly photos, every 7th a flat graphic, every 11th a truncated JPEG (rejected)."""
    raw.mkdir(exist_ok=True)
    names = []
    for k in range(start, start + n):
        if k % 7 == 3:
            name = f"img{k:04d}.png"
            save(raw / name, np.full((20, 30), k % 256, np.uint8) if k % 2 else two_level())
        else:
            name = f"img{k:04d}.jpg"
            blob = jpeg_bytes(photo_like(48, 36, seed=k))
            (raw / name).write_bytes(blob[: len(blob) // 2] if k % 11 == 5 else blob)
        names.append(name)
    return names


def prepare(tmp_path: Path, raw: Path, names, out: str, reuse: bool = True,
            **params) -> tuple[dict, Path]:
    """prepare_location of ``names`` into tmp_path/out, with the cache in tmp_path/cache."""
    inventory = write_inventory(tmp_path / f"{out}.inv.csv", [(n, str(raw / n)) for n in names])
    folder = tmp_path / out
    paths = [folder / name for name in OUTPUTS]
    counts = prepare_location(inventory, *paths, **{**PARAMS, **params},
                              reuse_dir=tmp_path / "cache" if reuse else None)
    return counts, folder


def contents(folder: Path) -> dict:
    """Every output's rows: the CSVs as text rows, the HDF5 files' ids and data arrays."""
    found = {name: read_rows(folder / name) for name in OUTPUTS if name.endswith(".csv")}
    for name in ("features", "thumbs"):
        with h5py.File(folder / f"{name}.h5") as h5:
            found[name] = ([i.decode() for i in h5["ids"][:]], h5[name][:])
    return found


def assert_same(a: dict, b: dict) -> None:
    for name in OUTPUTS:
        if name.endswith(".csv"):
            assert a[name] == b[name], name
    for name in ("features", "thumbs"):
        assert a[name][0] == b[name][0], name
        assert a[name][1].dtype == b[name][1].dtype and np.array_equal(a[name][1], b[name][1]), name


def reused(caplog) -> tuple[int, int]:
    found = re.findall(r"reused (\d+) of (\d+) images", caplog.text)
    caplog.clear()
    return tuple(int(v) for v in found[-1])


def test_unchanged_images_are_reused_and_the_outputs_equal_a_clean_run(tmp_path, caplog,
                                                                       monkeypatch):
    caplog.set_level(logging.INFO, logger="vacancy.images.prepare")
    raw = tmp_path / "raw"
    names = make_location(raw, 150)
    first, _ = prepare(tmp_path, raw, names, "first")
    assert reused(caplog) == (0, 150)
    assert first["rejected"] > 5 and first["graphic"] > 5 and first["photo"] > 100

    # a later scrape: new files between and after the old ones, one photo rewritten (another
    # picture), one removed; the inventory stays sorted by name as a folder listing is
    added = make_location(raw, 20, start=1000) + ["img0050b.jpg"]
    (raw / "img0050b.jpg").write_bytes(jpeg_bytes(photo_like(40, 30, seed=99)))
    before = os.stat(raw / "img0012.jpg")
    (raw / "img0012.jpg").write_bytes(jpeg_bytes(photo_like(60, 45, seed=77)))
    os.utime(raw / "img0012.jpg", ns=(before.st_atime_ns, before.st_mtime_ns + 1))
    later = sorted(set(names) - {"img0020.jpg"} | set(added))
    read = []
    monkeypatch.setattr(prepare_module, "read_blob", lambda path: read.append(Path(path).name)
                        or original_read_blob(path))
    second, again = prepare(tmp_path, raw, later, "second")
    monkeypatch.undo()
    assert reused(caplog) == (148, 170)  # 150 - removed - rewritten; the 21 new and 1 changed measured
    # the files read ahead are only those measured: a reused image's bytes are never read
    assert sorted(read) == sorted(set(added) | {"img0012.jpg"})
    clean, fresh = prepare(tmp_path, raw, later, "clean", reuse=False)
    assert second == clean
    assert_same(contents(again), contents(fresh))
    old = {r["id"]: r for r in read_rows(tmp_path / "first" / "hashes.csv")}
    new = {r["id"]: r for r in read_rows(again / "hashes.csv")}
    assert new["sfbay/img0012.jpg"]["width"] == "60" != old["sfbay/img0012.jpg"]["width"]

    # and a third run reuses everything, the second run's measurements included
    _, third = prepare(tmp_path, raw, later, "third")
    assert reused(caplog) == (170, 170)
    assert_same(contents(third), contents(fresh))


@pytest.mark.parametrize("change", [{"cell_px": 24}, {"graphic_below": 2.0, "photo_above": 3.0},
                                    {"hash_size": 6}, {"draft": False}, {"draft_side": 96}])
def test_a_changed_parameter_measures_every_image_again(tmp_path, caplog, change):
    caplog.set_level(logging.INFO, logger="vacancy.images.prepare")
    raw = tmp_path / "raw"
    names = make_location(raw, 30)
    prepare(tmp_path, raw, names, "first")
    caplog.clear()
    _, changed = prepare(tmp_path, raw, names, "changed", **change)
    assert reused(caplog) == (0, 30)
    _, clean = prepare(tmp_path, raw, names, "clean", reuse=False, **change)
    assert_same(contents(changed), contents(clean))


def test_a_damaged_cache_costs_time_not_values(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="vacancy.images.prepare")
    raw = tmp_path / "raw"
    names = make_location(raw, 30)
    prepare(tmp_path, raw, names, "first")
    (tmp_path / "cache" / "features.h5").unlink()
    (tmp_path / "cache" / "features.h5").write_bytes(b"not hdf5")
    caplog.clear()
    _, second = prepare(tmp_path, raw, names, "second")
    assert "unusable" in caplog.text and reused(caplog) == (0, 30)
    _, clean = prepare(tmp_path, raw, names, "clean", reuse=False)
    assert_same(contents(second), contents(clean))


def test_files_read_ahead_or_in_turn_give_the_same_outputs(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    names = make_location(raw, 40)
    (raw / "folder.jpg").mkdir()  # rejected the same way on either path
    names.append("folder.jpg")
    readers = []

    def counting(path):
        readers.append(threading.current_thread() is threading.main_thread())
        return original_read_blob(path)

    monkeypatch.setattr(prepare_module, "read_blob", counting)
    counts, ahead = prepare(tmp_path, raw, names, "ahead", reuse=False)
    assert len(readers) == 41 and not any(readers)  # every file read on a thread ahead
    readers.clear()
    monkeypatch.setattr(prepare_module, "READ_AHEAD_MAX_BYTES", 0)  # all "too large" to read ahead
    in_turn_counts, in_turn = prepare(tmp_path, raw, names, "in_turn", reuse=False)
    assert len(readers) == 41 and all(readers)
    assert in_turn_counts == counts and counts["rejected"] > 3
    assert_same(contents(in_turn), contents(ahead))
    rejects = {r["id"]: r["reason"] for r in read_rows(ahead / "rejects.csv")}
    assert rejects["sfbay/folder.jpg"] == "not a regular file (a folder)"
