"""End to end: the real workflow on a small demo corpus, and what Snakemake plans to rerun."""
from __future__ import annotations

import json
import math
import os
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, SMALL_DEMO, planned_jobs, snakemake, write_config
from vacancy.common import read_csv, sidecar_path

pytestmark = pytest.mark.slow

#: Share of the ground truth's graphics, and of its extra copies, that may still reach the map:
#: triage and dedup work on real pixels, and a few borderline images are expected to slip by.
TOLERANCE = 0.05

#: Band jobs of the tile pyramid in the small demo.
BANDS = SMALL_DEMO["tiles"]["jobs"]


def results(workdir: Path) -> Path:
    return workdir / "results"


def test_every_selected_image_is_on_exactly_one_cell(demo_run):
    selected = {r["id"] for r in read_csv(results(demo_run) / "selected.csv")}
    grid = read_csv(results(demo_run) / "grid.csv")
    meta = json.loads(sidecar_path(results(demo_run) / "grid.csv").read_text())
    ids = [r["id"] for r in grid]
    cells = [(int(r["col"]), int(r["row"])) for r in grid]
    assert len(ids) == len(set(ids)) and set(ids) == selected
    assert len(set(cells)) == len(cells)
    assert all(0 <= c < meta["cols"] and 0 <= r < meta["rows"] for c, r in cells)
    assert meta["cols"] == math.ceil(math.sqrt(len(ids)))


def test_graphics_duplicates_and_broken_files_stay_off_the_map(demo_run):
    truth = read_csv(results(demo_run) / "demo" / "truth.csv")
    on_map = {r["id"] for r in read_csv(results(demo_run) / "grid.csv")}
    graphics = [t["id"] for t in truth if t["kind"] in ("floorplan", "ad")]
    assert graphics, "the demo must contain graphics"
    assert sum(g in on_map for g in graphics) <= TOLERANCE * len(graphics)
    groups = defaultdict(set)
    for t in truth:
        if t["duplicate_of"]:
            groups[t["duplicate_of"]].update({t["id"], t["duplicate_of"]})
    assert groups, "the demo must contain duplicates"
    extra_copies = sum(max(0, len(members & on_map) - 1) for members in groups.values())
    copies = sum(len(members) - 1 for members in groups.values())
    assert extra_copies <= TOLERANCE * copies
    broken = {t["id"] for t in truth if t["kind"] == "broken"}
    rejected = {r["id"] for r in read_csv(results(demo_run) / "rejects.csv")}
    assert broken and broken <= rejected and not broken & on_map


def test_tile_pyramid_is_complete_from_zoom_0_to_the_top(demo_run):
    tiles = results(demo_run) / "tiles"
    meta = json.loads((tiles / "meta.json").read_text())
    grid_meta = json.loads(sidecar_path(results(demo_run) / "grid.csv").read_text())
    cell = SMALL_DEMO["tiles"]["cell_px"]
    assert (meta["cols"], meta["rows"], meta["cell_px"]) == (grid_meta["cols"], grid_meta["rows"], cell)
    width, height = meta["cols"] * cell, meta["rows"] * cell
    assert 256 * 2 ** meta["max_zoom"] >= max(width, height) > 256 * 2 ** (meta["max_zoom"] - 1)
    for z in range(0, meta["max_zoom"] + 1):
        scale = 2 ** (meta["max_zoom"] - z)
        span = 256 * scale
        expected = {(x, y) for x in range(math.ceil(width / span)) for y in range(math.ceil(height / span))}
        found = {(int(p.parent.name), int(p.stem)) for p in (tiles / str(z)).glob("*/*.jpg")}
        assert found == expected, f"zoom {z}"


def test_band_jobs_make_the_pyramid_one_job_would(demo_run, tmp_path):
    """The tiles joined from the tile_band jobs are byte for byte those of one render_tiles."""
    from reference import render_tiles
    from vacancy.map.grid_csv import read_grid_shape

    res = results(demo_run)
    cols, rows = read_grid_shape(res / "grid.csv")
    render_tiles(res / "grid.csv", sorted((res / "thumbs").glob("*.h5")), tmp_path / "one",
                 cols, rows, cell_px=SMALL_DEMO["tiles"]["cell_px"])

    def tree(folder):
        return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
                if p.is_file() and p.name != ".snakemake_timestamp"}

    assert tree(res / "tiles") == tree(tmp_path / "one")
    for band in range(BANDS):   # each band job has its own log and benchmark
        assert (res / "logs" / "tile_band" / f"{band}.log").is_file()
        assert (res / "benchmarks" / "tile_band" / f"{band}.tsv").is_file()


def test_viewer_references_only_files_that_exist(demo_run):
    site = results(demo_run) / "site"
    html = (site / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"#]+)"', html)
    local = [r for r in refs if not re.match(r"^[a-z]+:", r)]
    assert any(r.endswith(".js") for r in local) and any(r.endswith(".css") for r in local)
    for ref in local:
        assert (site / ref).is_file(), ref
    assert "leaflet" in (site / "vendor/leaflet/leaflet.js").read_text()[:2000].lower()


def test_outputs_record_what_made_them(demo_run):
    for name in ["selected.csv", "duplicates.csv", "tsne.csv", "grid.csv"]:
        meta = json.loads(sidecar_path(results(demo_run) / name).read_text())
        assert meta["versions"]["numpy"] and meta["stage"]
    tsne = json.loads(sidecar_path(results(demo_run) / "tsne.csv").read_text())
    assert tsne["params"]["perplexity"] == SMALL_DEMO["tsne"]["perplexity"]


def test_tsne_uses_the_neighbours_found_once(demo_run):
    """Rule neighbours saves every mapped image's neighbours; tsne takes 3 x perplexity of them."""
    with np.load(results(demo_run) / "neighbours.npz") as saved:
        ids, indices = saved["ids"].tolist(), saved["indices"]
    mapped = [r["id"] for r in read_csv(results(demo_run) / "tsne.csv")]
    assert sorted(ids) == sorted(mapped)
    assert indices.shape == (len(ids), min(len(ids) - 1, 150))
    assert (indices != np.arange(len(ids))[:, None]).all()  # no image is its own neighbour
    log = (results(demo_run) / "logs" / "tsne.log").read_text()
    k = 3 * SMALL_DEMO["tsne"]["perplexity"]
    assert f"the first {k} of the {indices.shape[1]} saved neighbours" in log


def test_long_rules_log_progress(demo_run):
    log = (results(demo_run) / "logs" / "prepare" / "sfbay.log").read_text()
    assert re.search(r"\d+/\d+ images, [\d.]+ images/s", log)


def test_nothing_changed_plans_nothing(demo_run):
    assert planned_jobs(demo_run) == {}


def test_perplexity_change_reruns_tsne_and_what_follows_only(demo_run):
    """The neighbours found once (rule neighbours) serve the new perplexity: not searched again."""
    try:
        write_config(demo_run, {**SMALL_DEMO, "tsne": {**SMALL_DEMO["tsne"], "perplexity": 12}})
        jobs = planned_jobs(demo_run)
        jobs.pop("all", None)  # the aggregate target, no work of its own
        assert jobs == {"tsne": 1, "grid": 1, "regions": 1, "viewer": 1, "tile_band": BANDS,
                        "tiles": 1}
    finally:
        write_config(demo_run, SMALL_DEMO)


def test_neighbours_change_reruns_the_search_and_what_follows(demo_run):
    """tsne.neighbours is rule neighbours' param; PCA and everything before it are kept."""
    try:
        write_config(demo_run, {**SMALL_DEMO, "tsne": {**SMALL_DEMO["tsne"], "neighbours": 60}})
        jobs = planned_jobs(demo_run)
        jobs.pop("all", None)
        assert jobs == {"neighbours": 1, "tsne": 1, "grid": 1, "regions": 1, "viewer": 1,
                        "tile_band": BANDS, "tiles": 1}
    finally:
        write_config(demo_run, SMALL_DEMO)


@pytest.mark.parametrize("fit_rows", ["all", 500])
def test_pca_fit_rows_change_reruns_pca_and_what_follows(demo_run, fit_rows):
    """pca.fit_rows is a param of the pca rule: a change refits the PCA (prepare is kept)."""
    try:
        write_config(demo_run, {**SMALL_DEMO, "pca": {**SMALL_DEMO.get("pca", {}),
                                                      "fit_rows": fit_rows}})
        jobs = planned_jobs(demo_run)
        jobs.pop("all", None)
        assert jobs == {"pca": 1, "neighbours": 1, "tsne": 1, "grid": 1, "regions": 1, "viewer": 1, "tile_band": BANDS,
                        "tiles": 1}
    finally:
        write_config(demo_run, SMALL_DEMO)


@pytest.mark.parametrize("grid", [{"refine": "flas"}, {"refine": "none"}, {"radius_decay": 0.9},
                                  {"refine_dims": 8}, {"repair_passes": 2}])
def test_grid_refine_change_reruns_grid_and_what_follows_not_tsne(demo_run, grid):
    """grid.refine and its radius decay are params of the grid rule (none also drops pca.h5 from
    its inputs): a change redoes the grid, viewer and tiles, never the t-SNE map."""
    try:
        write_config(demo_run, {**SMALL_DEMO, "grid": grid})
        jobs = planned_jobs(demo_run)
        jobs.pop("all", None)
        assert jobs == {"grid": 1, "regions": 1, "viewer": 1, "tile_band": BANDS, "tiles": 1}
    finally:
        write_config(demo_run, SMALL_DEMO)


@pytest.mark.parametrize("regions", [{"k": 5}, {"dims": 8}, {"seed": 3}])
def test_regions_change_reruns_only_regions_and_the_viewer(demo_run, regions):
    """regions.* are params of their own rule: the map and its tiles stay, the site is rebuilt
    (and the tiles job, which only joins the bands, follows the site)."""
    try:
        write_config(demo_run, {**SMALL_DEMO, "regions": regions})
        jobs = planned_jobs(demo_run)
        jobs.pop("all", None)
        assert jobs == {"regions": 1, "viewer": 1, "tiles": 1}
    finally:
        write_config(demo_run, SMALL_DEMO)


def test_the_demo_site_labels_its_regions(demo_run):
    """Every grid image is in one of regions.k regions, each labelled with its own counts."""
    res = results(demo_run)
    rows = read_csv(res / "regions.csv")
    grid_ids = {r["id"] for r in read_csv(res / "grid.csv")}
    assert {r["id"] for r in rows} == grid_ids
    k = yaml.safe_load((REPO / "config.yaml").read_text())["regions"]["k"]
    sizes = Counter(r["region"] for r in rows)
    assert sorted(sizes, key=int) == [str(i) for i in range(1, k + 1)]
    assert sum(r["representative"] == "1" for r in rows) == k
    meta = json.loads((res / "site" / "map.json").read_text())
    assert [(g["region"], g["count"]) for g in meta["regions"]] == sorted(sizes.items(), key=lambda t: int(t[0]))
    by_id = {r["id"]: r["region"] for r in rows}
    assert all(by_id[g["image"]] == g["region"] for g in meta["regions"])
    assert {f["name"] for f in meta["fields"]} >= {"price", "posted", "location", "state", "region"}


def test_the_demo_grid_records_its_refinement(demo_run):
    """240 images are below dense_max: the default (auto) leaves the dense optimum unrefined."""
    meta = json.loads(sidecar_path(results(demo_run) / "grid.csv").read_text())
    assert meta["params"]["requested_refine"] == "auto" and meta["params"]["refine"] == "none"
    assert meta["displacement_mean"] == meta["assigned_displacement_mean"]


def test_triage_threshold_change_reruns_prepare_and_what_follows(demo_run):
    try:
        write_config(demo_run, {**SMALL_DEMO, "triage": {"photo_above": 4.3}})
        jobs = planned_jobs(demo_run)
        jobs.pop("all", None)
        n = len(SMALL_DEMO["demo"]["locations"])
        assert jobs == {"prepare": n, "dedup": 1, "select": 1, "pca": 1, "neighbours": 1, "tsne": 1,
                        "grid": 1, "regions": 1, "viewer": 1, "tile_band": BANDS, "tiles": 1}
    finally:
        write_config(demo_run, SMALL_DEMO)


def test_bad_config_value_is_reported_with_its_key(tmp_path):
    write_config(tmp_path, {**SMALL_DEMO, "tsne": {"perplexity": -5}})
    result = snakemake(tmp_path, "--dry-run", "--cores", "1", check=False)
    assert result.returncode != 0
    assert "perplexity" in result.stdout + result.stderr
    write_config(tmp_path, {**SMALL_DEMO, "triage": {"graphic_below": 4.8, "photo_above": 4.4}})
    result = snakemake(tmp_path, "--dry-run", "--cores", "1", check=False)
    assert result.returncode != 0 and "triage.graphic_below" in result.stdout + result.stderr
    write_config(tmp_path, {**SMALL_DEMO, "triage": {"score_graphic_below": 0.7,
                                                      "score_photo_above": 0.5}})
    result = snakemake(tmp_path, "--dry-run", "--cores", "1", check=False)
    assert result.returncode != 0 and "triage.score_graphic_below" in result.stdout + result.stderr


def test_exclude_file_reruns_dedup_select_and_what_follows(demo_run):
    """A curator's exclude file (the viewer exports this format) is an input of dedup (an
    excluded image never keeps a copy off the map) and select; nothing upstream reruns."""
    ids = [r["id"] for r in read_csv(results(demo_run) / "grid.csv")[:5]]
    exclude = demo_run / "exclude.txt"
    exclude.write_text("# exported by the viewer\n" + "\n".join(ids) + "\n")
    try:
        write_config(demo_run, {**SMALL_DEMO, "exclude_file": str(exclude)})
        jobs = planned_jobs(demo_run)
        jobs.pop("all", None)
        assert jobs == {"dedup": 1, "select": 1, "pca": 1, "neighbours": 1, "tsne": 1, "grid": 1,
                        "regions": 1,
                        "viewer": 1,
                        "tile_band": BANDS, "tiles": 1}
    finally:
        write_config(demo_run, SMALL_DEMO)


def test_the_map_is_the_same_for_any_number_of_cores(demo_run, tmp_path):
    """A laptop and a workstation make the same map: PCA onwards rerun with --cores 1 (the demo
    ran with 2) gives the same PCA coordinates, t-SNE, grid and tiles, byte for byte."""
    import shutil

    import h5py

    copy = tmp_path / "one_core"
    shutil.copytree(demo_run, copy, symlinks=True)
    before = (results(copy) / "pca.h5").stat().st_mtime_ns
    snakemake(copy, "--cores", "1", "--forcerun", "pca", "tiles")
    assert (results(copy) / "pca.h5").stat().st_mtime_ns > before  # it did run again

    def pca(workdir):
        with h5py.File(results(workdir) / "pca.h5", "r") as h5:
            return h5["pca"][:].tobytes()

    def tiles(workdir):
        folder = results(workdir) / "tiles"
        return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*.jpg")}

    assert pca(copy) == pca(demo_run)
    for name in ("tsne.csv", "grid.csv"):
        assert read_csv(results(copy) / name) == read_csv(results(demo_run) / name), name
    assert tiles(copy) == tiles(demo_run) and tiles(copy)


def test_a_moved_repository_with_its_results_reruns_nothing(tmp_path):
    """Copy the repository (with node_modules), build a tiny map, move the whole folder: the
    moved copy is up to date, and the site's link to a folder source's photos still resolves."""
    import shutil
    import subprocess

    import numpy as np
    from PIL import Image

    from conftest import REPO, SNAKEMAKE, no_slurm_controller

    before = tmp_path / "before"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in files:
        (before / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, before / name)
    shutil.copytree(REPO / "node_modules", before / "node_modules", symlinks=True)
    photos = before / "photos" / "town"
    photos.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(12):   # noisy photos, so triage keeps them
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(photos / f"{i}.jpg")
    write_config(before, {"source": "folder", "folder": {"path": "photos"},
                          "tsne": {"perplexity": 3, "n_iter": 300}, "tiles": {"cell_px": 32, "jobs": 1}})

    def run(folder, *args):
        env = {**os.environ, **no_slurm_controller(tmp_path)}
        return subprocess.run([str(SNAKEMAKE), "--snakefile", "Snakefile", "--cores", "2", *args,
                               "tiles"], cwd=folder, capture_output=True, text=True, check=True,
                              env=env)

    run(before)
    after = tmp_path / "after"
    before.rename(after)
    plan = run(after, "--dry-run")
    assert "Nothing to be done" in plan.stdout + plan.stderr, plan.stdout
    assert sorted(p.name for p in (after / "results/site/originals/town").iterdir())[:2] == ["0.jpg", "1.jpg"]
