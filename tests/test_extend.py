"""A living map (issue 14): a fresh layout of part of the demo, saved, then extended with the rest.

Real Snakemake runs on the small demo: the first run holds back a third of the selected images
with an exclude file (the "later scrape"), ``save_layout`` keeps its layout, the second run
(``layout.mode: extend``) takes the held-back images in and culls two placed ones. The fresh run
keeps a fifth of its cells spare among the images (``layout.reserve: 0.2``). cell_px 128 gives 2
cells per tile, so most top-zoom tiles stay untouched.
"""
from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import SMALL_DEMO, planned_jobs, snakemake, write_config

CONFIG = {**SMALL_DEMO, "tiles": {"cell_px": 128, "jobs": 2}}
RESERVE = 0.2


def read_grid(path: Path) -> dict[str, tuple[int, int]]:
    with open(path, newline="") as handle:
        return {r["id"]: (int(r["col"]), int(r["row"])) for r in csv.DictReader(handle)}


def tile_files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in root.glob("*/*/*.jpg")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The fresh run of two thirds, the saved layout, the extended run; what each left."""
    work = tmp_path_factory.mktemp("extend")
    write_config(work, CONFIG)
    snakemake(work, "--cores", "2", "select")
    with open(work / "results/selected.csv", newline="") as handle:
        selected = [r["id"] for r in csv.DictReader(handle)]
    held = selected[::3]
    (work / "hold.txt").write_text("# the later scrape\n" + "\n".join(held) + "\n")
    write_config(work, {**CONFIG, "exclude_file": "hold.txt", "layout": {"reserve": RESERVE}})
    snakemake(work, "--cores", "2", "tiles")
    snakemake(work, "--cores", "2", "save_layout")
    fresh = read_grid(work / "results/grid.csv")
    culled = sorted(fresh)[:2]
    (work / "cull.txt").write_text("\n".join(culled) + "\n")
    write_config(work, {**CONFIG, "exclude_file": "cull.txt",
                        "layout": {"mode": "extend", "dir": "layout"}})
    plan = planned_jobs(work)
    result = snakemake(work, "--cores", "2", "tiles")
    with open(work / "results/selected.csv", newline="") as handle:
        now_selected = {r["id"] for r in csv.DictReader(handle)}
    with open(work / "results/grid.csv", newline="") as handle:
        added = {r["id"]: r["added"] for r in csv.DictReader(handle)}
    return {"work": work, "held": set(held), "fresh": fresh, "culled": culled, "plan": plan,
            "log": result.stdout + result.stderr, "selected": now_selected,
            "grid": read_grid(work / "results/grid.csv"), "added": added}


def test_extend_reruns_the_map_stages_and_makes_no_tile_bands(runs):
    plan = runs["plan"]
    assert {"pca", "tsne", "grid", "viewer", "tiles"} <= set(plan)
    assert "prepare" not in plan and "tile_band" not in plan


def test_no_saved_image_moves(runs):
    fresh, grid = runs["fresh"], runs["grid"]
    kept = [i for i in fresh if i in grid]
    assert all(grid[i] == fresh[i] for i in kept)


def test_only_the_culled_images_leave_the_map(runs):
    """The held-back images include larger originals of copies that the base run placed (their
    originals were excluded then); dedup keeps the placed copy, so no other cell empties."""
    assert set(runs["fresh"]) - set(runs["grid"]) == set(runs["culled"])
    assert "dedup" in runs["plan"]
    log = (runs["work"] / "results/logs/dedup.log").read_text()
    assert f"dedup: {len(runs['fresh'])} images of the saved layout" in log


def test_every_selected_image_has_one_cell_and_the_new_ones_are_marked(runs):
    grid, added, fresh = runs["grid"], runs["added"], runs["fresh"]
    assert set(grid) == runs["selected"]
    assert len(set(grid.values())) == len(grid)
    new = {i for i, a in added.items() if a == "1"}
    assert new == set(grid) - set(fresh)
    assert len(new) >= 0.9 * len(runs["held"])


def test_the_fresh_grid_kept_its_reserve_and_the_extend_filled_it_first(runs):
    work = runs["work"]
    saved = json.loads((work / "layout/grid.csv.meta.json").read_text())
    cols, rows = saved["cols"], saved["rows"]
    assert saved["params"]["reserve"] == RESERVE and saved["n_reserved"] > 0
    spare = {(c, r) for c in range(cols) for r in range(rows)} - set(runs["fresh"].values())
    assert len(spare) >= RESERVE * cols * rows
    # spare cells all over the saved map: in each half, by columns and by rows
    for axis in (0, 1):
        half = (cols, rows)[axis] // 2
        assert any(cell[axis] < half for cell in spare) and any(cell[axis] >= half
                                                                 for cell in spare)
    new_cells = {runs["grid"][i] for i, a in runs["added"].items() if a == "1"}
    culled = {runs["fresh"][i] for i in runs["culled"]}
    # more new images than spare cells: the grid grew, but only after the reserve was used
    assert len(new_cells) > len(spare)
    assert len(spare & new_cells) >= 0.9 * len(spare - culled)


def test_culled_images_leave_their_cells_empty(runs):
    grid, fresh = runs["grid"], runs["fresh"]
    taken = set(grid.values())
    for image_id in runs["culled"]:
        assert image_id not in grid
        assert fresh[image_id] not in taken


def test_the_grid_grew_by_whole_tiles_and_its_sidecar_says_how(runs):
    work = runs["work"]
    meta = json.loads((work / "results/grid.csv.meta.json").read_text())
    saved = json.loads((work / "layout/grid.csv.meta.json").read_text())
    assert meta["mode"] == "extend" and meta["n_added"] == sum(
        a == "1" for a in runs["added"].values())
    for side, old in (("cols", saved["cols"]), ("rows", saved["rows"])):
        assert meta[side] == old or meta[side] % 2 == 0  # 256 / 128: two cells a tile
    assert 0 < meta["drift"]["dpq16"] <= 1 and meta["saved_quality"]["dpq16"] > 0


def test_only_tiles_whose_cells_changed_are_rewritten(runs):
    work = runs["work"]
    saved = json.loads((work / "layout/tiles/manifest.json").read_text())
    now = json.loads((work / "results/tiles/manifest.json").read_text())
    zmax, saved_zmax = now["max_zoom"], saved["max_zoom"]
    tiles = tile_files(work / "results/tiles")
    same = changed = 0
    for key, digest in now["tiles"].items():
        depth, x, y = map(int, key.split("/"))
        path = tiles[f"{zmax - depth}/{x}/{y}.jpg"]
        old = work / "layout/tiles" / str(saved_zmax - depth) / str(x) / f"{y}.jpg"
        if saved["tiles"].get(key) == digest:
            assert os.stat(path).st_ino == os.stat(old).st_ino, key  # a link: not rewritten
            same += 1
        else:
            assert not old.exists() or os.stat(path).st_ino != os.stat(old).st_ino, key
            changed += 1
    assert same > 0 and changed > 0 and len(tiles) == same + changed
    match = re.search(r"rebuilt (\d+) of (\d+) tiles", (work / "results/logs/tiles.log").read_text())
    assert match and (int(match[1]), int(match[2])) == (changed, len(tiles))


def test_every_tile_with_a_new_image_was_redrawn(runs):
    work = runs["work"]
    saved = json.loads((work / "layout/tiles/manifest.json").read_text())["tiles"]
    now = json.loads((work / "results/tiles/manifest.json").read_text())["tiles"]
    for image_id, flag in runs["added"].items():
        if flag == "1":
            col, row = runs["grid"][image_id]
            key = f"0/{col * 128 // 256}/{row * 128 // 256}"
            assert saved.get(key) != now[key]


def test_the_viewer_offers_the_added_filter(runs):
    site = runs["work"] / "results/site"
    meta = json.loads((site / "map.json").read_text())
    field = next(f for f in meta["fields"] if f["name"] == "added")
    assert field["names"] == ["earlier", "new"]
    values = np.frombuffer((site / field["url"]).read_bytes(), dtype="<u1")
    cols = meta["cols"]
    for image_id, (col, row) in runs["grid"].items():
        want = "new" if runs["added"][image_id] == "1" else "earlier"
        assert field["names"][values[row * cols + col]] == want


def test_an_extended_run_is_up_to_date_afterwards(runs):
    assert planned_jobs(runs["work"]) == {}


def test_fresh_afterwards_lays_everything_out_again(runs):
    """Last: it turns the working directory back to layout.mode: fresh."""
    work = runs["work"]
    write_config(work, {**CONFIG, "exclude_file": "cull.txt"})
    plan = planned_jobs(work)
    assert {"pca", "tsne", "grid", "tile_band", "tiles"} <= set(plan)
    snakemake(work, "--cores", "2", "tiles")
    with open(work / "results/selected.csv", newline="") as handle:
        selected = {r["id"] for r in csv.DictReader(handle)}
    # fresh, dedup keeps the largest copy again, not the one the saved map had placed
    assert "dedup" in plan and selected != runs["selected"]
    with open(work / "results/grid.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["id", "col", "row"]
        assert {r["id"] for r in reader} == selected
    meta = json.loads((work / "results/tiles/meta.json").read_text())
    assert "mode" not in meta
