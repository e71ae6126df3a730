"""The viewer in a real browser: Debian's headless Chromium driven by playwright-core (node).

One small map (6x5 grid of solid-colour photos, two locations, a hostile title) is rendered by
the real pipeline code (prepare_location, render_tiles, build_site, write_pmtiles) and served
from 127.0.0.1 by vacancy.serve (which answers range requests, as PMTiles needs). tests/browser/drive.cjs runs
every scenario in one browser session and records screenshots, downloads and page state; the
tests below assert on them. Screenshots are kept in pytest's temp folder (path printed).
"""

from __future__ import annotations

import os
import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vacancy.common import write_csv
from vacancy.map.publish import write_pmtiles
from vacancy.map.regions import REGION_COLUMNS, assign_regions
from vacancy.images.select import read_exclude_file
from vacancy.serve import serve_in_thread
from vacancy.images.thumbs import ThumbStore
from reference import render_tiles
from vacancy.map.viewer import build_site
from conftest import store_thumbs, write_map_inputs

ROOT = Path(__file__).resolve().parent.parent
LEAFLET = ROOT / "node_modules" / "leaflet" / "dist"
DRIVER = ROOT / "tests" / "browser" / "drive.cjs"
CHROMIUM = Path("/usr/bin/chromium")
COLS, ROWS, N, CELL = 6, 5, 28, 64
VIEW_W, VIEW_H = 1200, 900
HOSTILE = '<img src=x onerror="window.__pwned=1">'
MISSING_PRICE_K = 27
#: The filter the browser sets: price and posted sliders (days since 1970), one state.
FILTER = {"sliders": {"filter-price-lo": 1005, "filter-price-hi": 1020,
                      "filter-posted-lo": 19723, "filter-posted-hi": 19754},   # 2024-01-01..02-01
          "states": ["NY"]}

# `make test` installs both and sets VACANCY_REQUIRE_BROWSER=1, so there a missing browser fails.
pytestmark = pytest.mark.skipif(
    not os.environ.get("VACANCY_REQUIRE_BROWSER")
    and (not CHROMIUM.exists() or not (ROOT / "node_modules" / "playwright-core").is_dir()),
    reason="needs Debian's chromium and npm's playwright-core (make setup installs both)")


def colour(k: int) -> tuple[int, int, int]:
    """Well-separated solid colours, so a misplaced cell cannot pass for its neighbour."""
    return ((k * 97 + 40) % 256, (k * 53 + 90) % 256, (k * 181 + 10) % 256)


def image_id(k: int) -> str:
    return f"{'sf' if k % 2 == 0 else 'ny'}/{k:03d}.jpg"


def cell_of(k: int) -> tuple[int, int]:
    return k % COLS, k // COLS


def screen(col: float, row: float, z: int, centre=(COLS * CELL / 2, ROWS * CELL / 2), zmax=1):
    """Screen pixel of the centre of cell (col, row) at zoom z, map centred on ``centre``."""
    s = 2.0 ** (z - zmax)
    return (VIEW_W / 2 + ((col + 0.5) * CELL - centre[0]) * s,
            VIEW_H / 2 + ((row + 0.5) * CELL - centre[1]) * s)


def map_screen(x: float, y: float) -> tuple[float, float]:
    """Screen pixel of map pixel (x, y) at zoom 1 (the pyramid's top), map centred as in z1."""
    return VIEW_W / 2 + x - COLS * CELL / 2, VIEW_H / 2 + y - ROWS * CELL / 2


#: Lasso outlines in map pixels: a triangle over the cells with col + row <= 2, then (alt) a
#: square around cell (1, 1).
LASSO_ADD = [(8, 8), (216, 8), (8, 216)]
LASSO_REMOVE = [(70, 70), (122, 70), (122, 122), (70, 122)]


def build_demo(results: Path) -> dict:
    """raw photos (200x150), grid.csv, selected.csv, tiles/, tiles.pmtiles, site/, site-pm/."""
    results.mkdir(parents=True)
    entries = []
    for k in range(N):
        loc, name = image_id(k).split("/")
        path = results / "raw" / loc / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (200, 150), colour(k)).save(path, quality=95)
        entries.append(({"id": image_id(k), "location": loc, "filename": name, "path": str(path),
                         "class": "photo", "width": 200, "height": 150,
                         "title": HOSTILE if k == 0 else f"Room {k}",
                         "price": "" if k == MISSING_PRICE_K else f"${1000 + k}",
                         "posted": "2024-05-01" if k % 2 == 0 else "2024-01-15T10:00:00",
                         "state": HOSTILE if k == MISSING_PRICE_K else "CA" if loc == "sf" else "NY",
                         "listing_id": f"L{k // 2 * 2}",
                         "listing_url": f"https://{loc}.example/{k}.html"}, *cell_of(k)))
    grid, selected = write_map_inputs(results, entries)
    thumbs = store_thumbs(results, (row for row, _, _ in entries), CELL)
    tiles = results / "tiles"
    render_tiles(grid, [thumbs], tiles, COLS, ROWS, cell_px=CELL)
    layout = json.loads((tiles / "meta.json").read_text())
    write_pmtiles(tiles, results / "tiles.pmtiles")
    region, reps, anchors = assign_regions(np.array([colour(k) for k in range(N)], dtype=float),
                                           np.array([cell_of(k) for k in range(N)]), 3, 3, 0)
    write_csv(results / "regions.csv", ({"id": image_id(k), "region": int(region[k]),
                                         "representative": int(reps[k]), "anchor": int(anchors[k])}
                                        for k in range(N)), REGION_COLUMNS)
    meta = build_site(layout, grid, selected, results / "site", LEAFLET, shard_cells=4)
    # labels cover photos at low zoom, so the region scenario has a site of its own
    build_site(layout, grid, selected, results / "site-regions", LEAFLET, shard_cells=4,
               regions_csv=results / "regions.csv")
    build_site(layout, grid, selected, results / "site-pm", LEAFLET, shard_cells=4,
               pmtiles_url="../tiles.pmtiles")
    # an extended map's grid: the same cells with the added column of layout.mode: extend
    added_grid = results / "added" / "grid.csv"
    added_grid.parent.mkdir()
    with open(grid, newline="") as src, open(added_grid, "w", newline="") as dst:
        rows = list(csv.DictReader(src))
        out = csv.DictWriter(dst, ["id", "col", "row", "added"])
        out.writeheader()
        out.writerows({**r, "added": int(r["id"] in {image_id(k) for k in ADDED_KS})} for r in rows)
    build_site(layout, added_grid, selected, results / "site-added", LEAFLET, shard_cells=4)
    return meta


@pytest.fixture(scope="module")
def browser_run(tmp_path_factory):
    """Build the demo, serve it, run every browser scenario once; return (results, out, meta)."""
    tmp = tmp_path_factory.mktemp("browser")
    results, out = tmp / "results", tmp / "artifacts"
    out.mkdir()
    meta = build_demo(results)
    assert meta["max_zoom"] == 1 and meta["extra_zoom"] == 2
    excluded_fixture = out / "to-load.txt"
    excluded_fixture.write_text("# already out\n" + "\n".join(image_id(k) for k in LOAD_KS)
                                + "\ngone/not-on-this-map.jpg\n", encoding="utf-8")
    plan = {
        "out_dir": str(out), "viewport": {"width": VIEW_W, "height": VIEW_H},
        "views": {"z1": "#z=1&x=192&y=160", "z0": "#z=0&x=192&y=160"},
        "points": {"click": screen(2, 1, 1), "hostile": screen(0, 0, 1),
                   "rect_from": screen(1, 1, 1), "rect_to": screen(3, 2, 1),
                   "shift_click": screen(5, 3, 1)},
        "searches": ["ny", "sf/010.jpg", "L6", "nothing-like-this"],
        "exclude_to_load": str(excluded_fixture),
    }
    plan["views"]["deep"] = "#z=3&x=160&y=96"   # centre of cell (2, 1), two levels past the top
    plan["filter"] = FILTER
    plan["added"] = {"view": "#z=1&x=192&y=160&added=new"}
    plan["hostile_state"] = HOSTILE
    plan["lasso"] = {"add": [map_screen(*p) for p in LASSO_ADD],
                     "remove": [map_screen(*p) for p in LASSO_REMOVE]}
    (out / "plan.json").write_text(json.dumps(plan))
    server, base = serve_in_thread(results)
    plan["base"] = base
    (out / "plan.json").write_text(json.dumps(plan))
    try:
        done = subprocess.run(["node", str(DRIVER), str(out / "plan.json")], cwd=ROOT,
                              capture_output=True, text=True, timeout=150)
    finally:
        server.shutdown()
        server.server_close()
    print(f"browser artifacts in {out}")
    got = json.loads((out / "results.json").read_text())
    assert done.returncode == 0 and "fatal" not in got, (got.get("fatal"), done.stderr[-3000:])
    return got, out, results


LOAD_KS = [0, 5, 26]
ADDED_KS = [3, 4, 11, 20]   # the images "placed by the last extend" on site-added
CULLED_KS = [7, 8, 9, 13, 14, 15, 23]   # rectangle (1,1)-(3,2) plus shift-click on (5,3)


def shot(out: Path, name: str) -> np.ndarray:
    return np.asarray(Image.open(out / f"{name}.png").convert("RGB"), dtype=np.int16)


def sample(pixels: np.ndarray, xy, half: int = 4) -> np.ndarray:
    x, y = int(round(xy[0])), int(round(xy[1]))
    return pixels[y - half:y + half, x - half:x + half].reshape(-1, 3).mean(axis=0)


def thumb_colour(results: Path, k: int) -> np.ndarray:
    """The cell's colour in the thumbnail the pipeline stored for it."""
    store = ThumbStore([results / "prepared" / "thumbs.h5"])
    try:
        return store.get([image_id(k)], CELL)[0].reshape(-1, 3).mean(axis=0)
    finally:
        store.close()


@pytest.mark.parametrize("zoom", [1, 0])
def test_tiles_show_each_photo_in_its_cell(browser_run, zoom):
    got, out, results = browser_run
    pixels = shot(out, f"folder-z{zoom}")
    for k in range(N):
        seen = sample(pixels, screen(*cell_of(k), zoom), half=4 if zoom else 3)
        assert np.abs(seen - thumb_colour(results, k)).max() < 12, (k, seen)
    empty = sample(pixels, screen(5, 4, zoom), half=3)    # the grid's unfilled last cells
    assert np.abs(empty - (24, 24, 24)).max() < 6
    assert got["errors"] == []


@pytest.mark.parametrize("zoom", [1, 0])
def test_pmtiles_variant_paints_the_same_pixels(browser_run, zoom):
    got, out, _ = browser_run
    folder, archive = shot(out, f"folder-z{zoom}"), shot(out, f"pmtiles-z{zoom}")
    assert folder.shape == archive.shape == (VIEW_H, VIEW_W, 3)
    assert np.abs(folder - archive).max() <= 2
    assert 206 in got["pmtilesStatuses"]           # really read by range requests
    assert got["pmtilesLoaded"] > 0


def test_click_opens_the_panel_and_arrows_move_to_neighbours(browser_run):
    got, _, _ = browser_run
    clicked = got["clicked"]
    assert clicked["visible"]
    assert (clicked["id"], clicked["title"], clicked["price"]) == ("sf/008.jpg", "Room 8", "$1008")
    assert (clicked["location"], clicked["posted"], clicked["cls"]) == ("sf", "2024-05-01", "photo")
    assert clicked["link"] == {"href": "https://sf.example/8.html", "rel": "noopener noreferrer",
                               "target": "_blank"}
    assert clicked["selected"] == {"col": 2, "row": 1, "id": "sf/008.jpg"}
    assert (got["right"]["id"], got["right"]["title"]) == ("ny/009.jpg", "Room 9")
    assert (got["down"]["id"], got["down"]["price"]) == ("ny/015.jpg", "$1015")


def test_hostile_title_is_shown_as_text_and_runs_nothing(browser_run):
    got, _, _ = browser_run
    hostile = got["hostile"]
    assert hostile["id"] == "sf/000.jpg"
    assert hostile["title"] == HOSTILE
    assert hostile["imgsInFields"] == 0
    assert hostile["pwned"] is None and "dialogs" not in got


def test_permalink_reopens_the_same_view(browser_run):
    got, _, _ = browser_run
    before, after = got["before"], got["after"]
    assert "cell=3,2" in got["permalink"] and before["zoom"] > 1   # the wheel zoomed in
    assert after["zoom"] == before["zoom"]
    assert abs(after["center"]["lat"] - before["center"]["lat"]) < 0.1
    assert abs(after["center"]["lng"] - before["center"]["lng"]) < 0.1
    assert got["reopened"]["id"] == "ny/015.jpg" and got["reopened"]["visible"]


def test_zoom_past_the_top_shows_the_original_at_full_resolution(browser_run):
    got, out, results = browser_run
    assert got["deepZoom"] == 3
    overlays = {o["src"]: o for o in got["deep"]}
    centre = overlays["../raw/sf/008.jpg"]
    assert (centre["naturalWidth"], centre["naturalHeight"]) == (200, 150)   # the file itself
    assert round(centre["width"]) == round(centre["height"]) == 256          # >= its own size
    seen = sample(shot(out, "deep"), (VIEW_W / 2, VIEW_H / 2), half=20)
    assert np.abs(seen - colour(8)).max() < 10


def test_search_highlights_a_location_and_jumps_to_ids(browser_run):
    got, _, _ = browser_run
    search = got["search"]
    assert search["ny"]["highlighted"] == 14
    assert search["sf/010.jpg"]["selected"] == {"col": 4, "row": 1, "id": "sf/010.jpg"}
    assert search["L6"]["selected"] == {"col": 0, "row": 1, "id": "sf/006.jpg"}
    assert "No image" in search["nothing-like-this"]["status"]


def test_culling_rectangle_exports_the_exclude_file(browser_run):
    got, out, results = browser_run
    assert got["selectedAfterDrag"] == 6 and got["selectedAfterShift"] == 7
    text = (out / "exclude.txt").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == sorted(image_id(k) for k in CULLED_KS)
    assert read_exclude_file(out / "exclude.txt") == {image_id(k) for k in CULLED_KS}
    with open(out / "excluded.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == sorted(image_id(k) for k in CULLED_KS)
    assert rows[0] == {"id": "ny/007.jpg", "location": "ny",
                       "listing_url": "https://ny.example/7.html"}
    pixels = shot(out, "culled")
    for k in range(N):
        seen, full = sample(pixels, screen(*cell_of(k), 1)), thumb_colour(results, k)
        want = full * 0.3 if k in CULLED_KS else full     # excluded cells dimmed
        assert np.abs(seen - want).max() < 14, (k, seen, want)


def test_loading_an_exclude_file_dims_its_cells(browser_run):
    got, out, results = browser_run
    assert got["loaded"]["file"] == {"ids": 4, "onMap": 3}
    assert got["loaded"]["excluded"] == 4
    pixels = shot(out, "loaded")
    for k in range(N):
        seen, full = sample(pixels, screen(*cell_of(k), 1)), thumb_colour(results, k)
        want = full * 0.3 if k in LOAD_KS else full
        assert np.abs(seen - want).max() < 14, (k, seen, want)


# --------------------------------------------------------------------------- research tools


def selected_rows(results: Path) -> dict[str, dict]:
    with open(results / "selected.csv", newline="", encoding="utf-8") as handle:
        return {r["id"]: r for r in csv.DictReader(handle)}


def filter_matches(results: Path, lo_day: int) -> list[int]:
    """The ks that FILTER leaves lit, from selected.csv (the posted slider cannot go below the
    earliest day, ``lo_day``, which the browser clamps it to)."""
    from vacancy.map.viewer import parse_posted, parse_price
    rows = selected_rows(results)
    s = FILTER["sliders"]
    out = []
    for k in range(N):
        r = rows[image_id(k)]
        price, day = parse_price(r["price"]), parse_posted(r["posted"])
        if (price is not None and s["filter-price-lo"] <= price <= s["filter-price-hi"]
                and day is not None and max(lo_day, s["filter-posted-lo"]) <= day
                <= s["filter-posted-hi"] and r["state"] in FILTER["states"]):
            out.append(k)
    return out


def assert_dimmed_exactly(pixels: np.ndarray, results: Path, lit: list[int]) -> None:
    """Lit cells show their photo; every other photo is dimmed (black at 200/255 over it)."""
    for k in range(N):
        seen = sample(pixels, screen(*cell_of(k), 1))
        want = thumb_colour(results, k) * (1 if k in lit else 55 / 255)
        assert np.abs(seen - want).max() < 12, (k, k in lit, seen, want)


def test_filter_dims_exactly_the_cells_that_do_not_match(browser_run):
    got, out, results = browser_run
    fields = json.loads((results / "site" / "map.json").read_text())["fields"]
    lo_day = next(f["min"] for f in fields if f["name"] == "posted")
    lit = filter_matches(results, lo_day)
    assert lit == [5, 7, 9, 11, 13, 15, 17, 19]
    assert got["filterControls"] == ["filter-price", "filter-posted", "filter-location",
                                     "filter-state"]          # one class only: no class control
    assert got["filter"]["lit"] == len(lit) and got["filter"]["count"] == f"{len(lit)} of {N} lit"
    assert got["filter"]["histograms"] == 2
    assert got["filter"]["outputs"] == ["$1,005 \u2013 $1,020", "2024-01-15 \u2013 2024-02-01"]
    assert_dimmed_exactly(shot(out, "filter"), results, lit)
    assert f"{len(lit)} match the filter" in got["filter"]["legend"][0]
    assert got["errors"] == []


def test_filter_survives_a_reload_through_the_permalink(browser_run):
    got, out, results = browser_run
    url = got["filterUrl"]
    assert "price=1005-1020" in url and "state=NY" in url and "posted=2024-01-15..2024-02-01" in url
    again = got["filterReloaded"]
    assert dict(again["sliders"])["filter-price-lo"] == 1005 and again["states"] == ["NY"]
    lit = filter_matches(results, 19737)
    assert again["lit"] == len(lit)
    assert_dimmed_exactly(shot(out, "filter-reload"), results, lit)


def test_statistics_of_the_lit_cells(browser_run):
    got, _, results = browser_run
    rows = selected_rows(results)
    lit = filter_matches(results, 19737)
    prices = [int(rows[image_id(k)]["price"].lstrip("$")) for k in lit]
    stats = got["filter"]["stats"]
    assert stats["what"] == "lit" and stats["count"] == len(lit)
    assert stats["price"] == list(np.percentile(prices, [25, 50, 75]))
    assert stats["posted"] == ["2024-01-15", "2024-01-15"]
    assert stats["top"] == [["ny", len(lit)]]
    assert got["filter"]["statsText"][0] == f"{len(lit)} lit"


def test_select_matching_takes_every_lit_cell(browser_run):
    got, _, results = browser_run
    lit = filter_matches(results, 19737)
    assert got["matching"]["selection"] == len(lit)
    assert got["matching"]["stats"]["what"] == "selected"
    assert got["matching"]["stats"]["count"] == len(lit)


def lasso_cells() -> list[int]:
    """The ks the two lassos leave selected: centres inside the triangle, less the square."""
    def in_triangle(x, y):
        return x > 8 and y > 8 and (x - 8) + (y - 8) < 208
    def in_square(x, y):
        return 70 < x < 122 and 70 < y < 122
    centres = {k: ((cell_of(k)[0] + 0.5) * CELL, (cell_of(k)[1] + 0.5) * CELL) for k in range(N)}
    return [k for k, (x, y) in centres.items() if in_triangle(x, y) and not in_square(x, y)]


def test_lasso_selects_the_cells_inside_the_drawn_outline(browser_run):
    got, out, results = browser_run
    assert got["lassoAdded"]["selection"] == 6        # cells with col + row <= 2
    kept = lasso_cells()
    assert kept == [0, 1, 2, 6, 12]
    removed = got["lassoRemoved"]
    assert removed["selection"] == len(kept)
    rows = selected_rows(results)
    stats = removed["stats"]
    assert stats["what"] == "selected" and stats["count"] == len(kept)
    assert stats["price"] == list(np.percentile([int(rows[image_id(k)]["price"].lstrip("$"))
                                                 for k in kept], [25, 50, 75]))
    assert stats["top"] == [["sf", 4], ["ny", 1]]
    assert stats["posted"] == ["2024-01-15", "2024-05-01"]
    assert removed["statsText"][-1] == "sf 4, ny 1"
    # the selection is painted: each kept cell is tinted blue, the removed one is not
    pixels = shot(out, "lasso-removed")
    for k in range(N):
        seen, base = sample(pixels, screen(*cell_of(k), 1)), thumb_colour(results, k)
        tinted = 0.7 * base + 0.3 * np.array([0, 170, 255])
        assert np.abs(seen - (tinted if k in kept else base)).max() < 14, (k, seen)


def test_selection_exports_listing_fields_and_keeps_hostile_titles_as_text(browser_run):
    got, out, results = browser_run
    with open(out / "selection.csv", newline="", encoding="utf-8") as handle:
        exported = list(csv.DictReader(handle))
    rows = selected_rows(results)
    kept = lasso_cells()
    assert [r["id"] for r in exported] == [image_id(k) for k in kept]   # reading order
    for r in exported:
        src = rows[r["id"]]
        assert {f: r[f] for f in ("location", "state", "title", "price", "posted", "class",
                                  "listing_id", "listing_url")} == \
            {f: src[f] for f in ("location", "state", "title", "price", "posted", "class",
                                 "listing_id", "listing_url")}
    assert exported[0]["title"] == HOSTILE
    assert (exported[0]["col"], exported[0]["row"]) == ("0", "0")
    assert "dialogs" not in got


def test_minimap_follows_the_view_and_moves_it(browser_run):
    got, out, _ = browser_run
    ov = got["overview"]
    for when in ("before", "moved", "clicked"):
        mini, view = ov[when]["minimap"], ov[when]["view"]
        assert all(abs(mini[k] - view[k]) < 0.5 for k in view), (when, mini, view)
    assert abs(ov["moved"]["center"]["x"] - 320) < 1 and abs(ov["moved"]["center"]["y"] - 256) < 1
    box = ov["box"]
    assert round(box["width"]) == 160 and round(box["height"]) == -(-160 * ROWS // COLS)   # ceil
    # a click a quarter into the minimap centres the main map there
    assert abs(ov["clicked"]["center"]["x"] - COLS * CELL / 4) < 3
    assert abs(ov["clicked"]["center"]["y"] - ROWS * CELL / 4) < 3
    mini = shot(out, "minimap-only")
    # the outline is drawn in yellow somewhere on it
    yellow = (mini[..., 0] > 200) & (mini[..., 1] > 170) & (mini[..., 2] < 80)
    assert yellow.sum() > 50


def region_members(results: Path) -> dict[str, list[int]]:
    with open(results / "regions.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out: dict[str, list[int]] = {}
    for r in rows:
        out.setdefault(r["region"], []).append(int(r["id"].split("/")[1][:3]))
    return out


def test_region_labels_show_at_low_zoom_and_fly_to_their_cells(browser_run):
    got, out, results = browser_run
    members = region_members(results)
    assert sorted(members) == ["1", "2", "3"]
    regions = got["regions"]
    assert regions["labelsAtZ1"] == 0                   # 64-px cells: no label over the photos
    labels = {r["region"]: r for r in regions["labels"]}
    assert sorted(labels) == ["1", "2", "3"]
    for name, ks in members.items():
        assert labels[name]["text"].startswith(f"region {name}: {len(ks)} photo")
        assert labels[name]["children"] == 0
    shown = [r for r in regions["labels"] if r["shown"]]
    assert shown and shown[0]["region"] == max(members, key=lambda m: len(members[m]))
    for a in shown:     # labels never overlap one another
        for b in shown:
            if a is not b:
                ra, rb = a["rect"], b["rect"]
                assert (ra["right"] <= rb["left"] or rb["right"] <= ra["left"]
                        or ra["bottom"] <= rb["top"] or rb["bottom"] <= ra["top"])
    # clicking a label selects exactly its region's cells and brings them into view
    name = regions["clickedRegion"]
    clicked = regions["clicked"]
    assert clicked["region"] == {"region": name, "selection": len(members[name])}
    assert sorted(map(tuple, clicked["cells"])) == sorted(cell_of(k) for k in members[name])
    view = clicked["view"]
    for k in members[name]:
        col, row = cell_of(k)
        assert view["x0"] - 1 <= (col + 0.5) * CELL <= view["x1"] + 1
        assert view["y0"] - 1 <= (row + 0.5) * CELL <= view["y1"] + 1
    assert clicked["stats"]["what"] == "selected" and clicked["stats"]["count"] == len(members[name])
    with open(results / "regions.csv", newline="", encoding="utf-8") as handle:
        rep = next(r["id"] for r in csv.DictReader(handle)
                   if r["region"] == name and r["representative"] == "1")
    assert clicked["opened"]["id"] == rep            # its representative photo in the panel
    # and they are painted as selected, over the original photos shown past the pyramid's top
    pixels, s = shot(out, "region-clicked"), 2.0 ** (clicked["zoom"] - 1)
    for k in range(N):
        col, row = cell_of(k)
        xy = (((col + 0.5) * CELL - view["x0"]) * s, ((row + 0.5) * CELL - view["y0"]) * s)
        if not (20 < xy[0] < VIEW_W - 360 and 280 < xy[1] < VIEW_H - 20):
            continue     # off screen, or under the tools box, the panel or the overview
        base = np.array(colour(k), dtype=float)
        want = 0.7 * base + 0.3 * np.array([0, 170, 255]) if k in members[name] else base
        assert np.abs(sample(pixels, xy) - want).max() < 14, (k, k in members[name])


def test_hostile_state_is_text_in_the_filter_list(browser_run):
    got, _, _ = browser_run
    hostile = got["regions"]["hostileOption"]
    assert hostile["text"] == HOSTILE + " (1)" and hostile["elements"] == 0
    assert hostile["pwned"] is None


def test_added_filter_from_an_old_style_permalink_lights_only_the_new_images(browser_run):
    got, out, results = browser_run
    added = got["added"]
    assert added["legend"] == "Added in the last update"
    assert added["options"] == [["earlier", False], ["new", True]]
    assert added["lit"] == len(ADDED_KS)
    assert_dimmed_exactly(shot(out, "added"), results, sorted(ADDED_KS))
