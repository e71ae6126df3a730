"""Tests of the viewer site: every link resolves on disk, shards are complete, text stays text."""

from __future__ import annotations

import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from PIL import Image

from reference import render_tiles
from vacancy.map.tiles import TileSpec
from vacancy.map.viewer import TEMPLATE_DIR, build_site
from conftest import store_thumbs, write_map_inputs

ROOT = Path(__file__).resolve().parent.parent
LEAFLET = ROOT / "node_modules" / "leaflet" / "dist"
APP_JS = TEMPLATE_DIR / "app.js"
HOSTILE = "<img src=x onerror=alert(1)> & \"quotes\" </script>"


def make_results(tmp_path: Path, cols: int, rows: int, n: int, cell_px: int = 16):
    """A results/ folder with raw images, grid.csv, selected.csv and a rendered tiles/ tree."""
    results = tmp_path / "results"
    raw = results / "raw" / "sf"
    raw.mkdir(parents=True)
    entries = []
    for k in range(n):
        name = f"{k:03d}.jpg"
        Image.new("RGB", (20, 20), (k * 7 % 256, 90, 160)).save(raw / name)
        entries.append(({
            "id": f"sf/{name}", "location": "sf", "filename": name, "path": str(raw / name),
            "class": "photo", "title": HOSTILE if k == 0 else f"Room {k}",
            "price": f"${1000 + k}", "posted": "2024-05-01",
            "listing_url": "javascript:alert(1)" if k == 1 else f"https://sf.example/{k}.html",
            "listing_id": f"L{k // 2 * 2}", "width": 20, "height": 20,
        }, k % cols, k // cols))
    grid, selected = write_map_inputs(results, entries)
    tiles = results / "tiles"
    thumbs = store_thumbs(results, (row for row, _, _ in entries), cell_px)
    render_tiles(grid, [thumbs], tiles, cols, rows, cell_px=cell_px)
    return results, grid, selected, tiles


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


def local(site: Path, url: str) -> Path:
    """The file a browser at /site/ fetches for a relative URL, with results/ as web root."""
    resolved = urlsplit(urljoin("http://127.0.0.1/site/", url)).path
    return site.parent / resolved.lstrip("/")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """70 images on a 10x8 grid of 16-px cells, shards of 4x4 cells: 3x2 shard blocks."""
    tmp = tmp_path_factory.mktemp("viewer")
    results, grid, selected, tiles = make_results(tmp, cols=10, rows=8, n=70)
    site = results / "site"
    meta = build_site(json.loads((tiles / "meta.json").read_text()), grid, selected, site, LEAFLET, shard_cells=4)
    return site, meta


def test_every_local_link_in_index_exists(built):
    site, _ = built
    parser = Links()
    parser.feed((site / "index.html").read_text())
    assert set(parser.urls) == {"vendor/leaflet/leaflet.css", "style.css",
                                "vendor/leaflet/leaflet.js", "vendor/pmtiles/pmtiles.js", "app.js"}
    for url in parser.urls:
        assert local(site, url).is_file(), url
    for name in ["layers.png", "layers-2x.png", "marker-icon.png"]:   # referenced by leaflet.css
        assert (site / "vendor" / "leaflet" / "images" / name).is_file()


def test_map_json_urls_resolve_to_files(built):
    site, meta = built
    assert json.loads((site / "map.json").read_text()) == meta
    assert meta["tile_url"] == "../tiles/{z}/{x}/{y}.jpg"
    assert (meta["max_zoom"], meta["cols"], meta["rows"], meta["count"]) == (0, 10, 8, 70)
    assert meta["background"] == "#181818" and meta["tile_size"] == 256
    url = meta["tile_url"].format(z=0, x=0, y=0)
    assert local(site, url) == site.parent / "tiles" / "0" / "0" / "0.jpg"
    assert local(site, url).is_file()
    assert meta["shards"] == ["0-0", "0-1", "1-0", "1-1", "2-0", "2-1"]
    for name in meta["shards"]:
        bx, by = name.split("-")
        assert local(site, meta["shards_url"].format(bx=bx, by=by)).is_file()
    # the page's own code builds the same URLs
    js = run_node(f"""
        const m = {json.dumps(meta)};
        out = [api.tileUrl(m, 0, 0, 0), api.shardUrl(m, api.shardOf({{col: 9, row: 7}}, m))];""")
    assert js == ["../tiles/0/0/0.jpg", "cells/2-1.json"]


def test_shards_hold_every_cell_once(built):
    site, meta = built
    seen = {}
    for path in (site / "cells").glob("*.json"):
        shard = json.loads(path.read_text())
        assert path.stem == f"{shard['bx']}-{shard['by']}"
        for key, record in shard["cells"].items():
            col, row = map(int, key.split(","))
            assert (col // 4, row // 4) == (shard["bx"], shard["by"])
            assert key not in seen
            seen[key] = record
    assert len(seen) == 70
    for k in range(70):
        record = seen[f"{k % 10},{k // 10}"]
        assert record["id"] == f"sf/{k:03d}.jpg"
        assert set(record) == {"id", "location", "state", "title", "price", "posted",
                               "listing_url", "listing_id", "class"}
    assert seen["5,2"] == {"id": "sf/025.jpg", "location": "sf", "state": "", "title": "Room 25",
                           "price": "$1025", "posted": "2024-05-01",
                           "listing_url": "https://sf.example/25.html", "listing_id": "L24",
                           "class": "photo"}
    assert seen["1,0"]["listing_url"] == ""   # javascript: URL dropped


def test_hostile_title_is_plain_json_text(built):
    site, _ = built
    raw = (site / "cells" / "0-0.json").read_text()
    assert "<" not in raw   # escaped as \u003c: the file can never read as markup
    assert json.loads(raw)["cells"]["0,0"]["title"] == HOSTILE


def test_template_js_never_parses_data_as_html():
    source = APP_JS.read_text()
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", source, flags=re.S)   # comments may mention them
    for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "bindPopup", "bindTooltip", "setContent", "new Function"]:
        assert sink not in code, sink
    assert "textContent" in code and 'rel = "noopener noreferrer"' in code


def test_app_js_passes_node_check():
    subprocess.run(["node", "--check", str(APP_JS)], check=True)


def run_node(body: str):
    script = f"const api = require({json.dumps(str(APP_JS))}); let out; {body}\n" \
             "process.stdout.write(JSON.stringify(out));"
    done = subprocess.run(["node", "-e", script], check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def test_click_arithmetic_in_app_js():
    """The page's cell lookup, CRS.Simple mapping and link filter, run in node."""
    out = run_node("""
        const m = {cell_px: 64, cols: 3, rows: 2, shard_cells: 2, shards_url: "cells/{bx}-{by}.json"};
        out = {
          inside: api.cellAt(130, 70, m), edge: api.cellAt(191.9, 127.9, m),
          outside: [api.cellAt(192, 10, m), api.cellAt(-1, 10, m), api.cellAt(10, 128, m)],
          shard: api.shardOf({col: 2, row: 1}, m),
          ll: api.pixelToLatLng(512, 256, 1),
          links: ["https://a.example/x?y=<b>", "HTTP://A.EXAMPLE/", "javascript:alert(1)",
                  "data:text/html,x", "//evil.example", "", null].map(api.safeHttpUrl),
          empty: api.panelFields({col: 1, row: 0}, null),
          title: api.panelFields({col: 0, row: 0}, {title: "<b>x</b>"})[0],
        };""")
    assert out["inside"] == {"col": 2, "row": 1}
    assert out["edge"] == {"col": 2, "row": 1}
    assert out["outside"] == [None, None, None]
    assert out["shard"] == {"bx": 1, "by": 0, "name": "1-0", "key": "2,1"}
    assert out["ll"] == [-128, 256]
    assert out["links"] == ["https://a.example/x?y=%3Cb%3E", "http://a.example/", None, None,
                            None, None, None]
    assert out["empty"] == [["Cell", "column 1, row 0 (empty)"]]
    assert out["title"] == ["Title", "<b>x</b>"]


def test_rebuild_replaces_site_atomically(tmp_path):
    results, grid, selected, tiles = make_results(tmp_path, cols=3, rows=3, n=7, cell_px=64)
    site = results / "site"
    (site / "cells").mkdir(parents=True)
    (site / "cells" / "9-9.json").write_text("{}")   # stale shard from an earlier, larger run
    meta = build_site(json.loads((tiles / "meta.json").read_text()), grid, selected, site, LEAFLET, tiles_url="../tiles/")
    assert meta["tile_url"] == "../tiles/{z}/{x}/{y}.jpg"
    assert sorted(p.name for p in (site / "cells").iterdir()) == ["0-0.json"]
    assert sorted(p.name for p in results.iterdir() if p.name.startswith(".")) == []
    assert len(json.loads((site / "cells" / "0-0.json").read_text())["cells"]) == 7


def test_layout_known_before_tiles_matches_the_rendered_pyramid(tmp_path):
    _, _, _, tiles = make_results(tmp_path, cols=9, rows=5, n=40, cell_px=64)
    rendered = json.loads((tiles / "meta.json").read_text())
    layout = TileSpec(9, 5, cell_px=64, tile_px=256, background=(24, 24, 24)).meta()
    assert {k: rendered[k] for k in layout} == layout


# --------------------------------------------------------------------------- search indexes


def test_location_legend_and_cells(built):
    site, meta = built
    assert meta["locations"] == [{"name": "sf", "count": 70}]
    flat = json.loads((site / "index" / "loc" / "0.json").read_text())
    pairs = sorted(zip(flat[::2], flat[1::2]))
    assert pairs == sorted((k % 10, k // 10) for k in range(70))


def test_id_and_listing_buckets_agree_with_the_page_hash(built):
    site, meta = built
    assert meta["id_buckets"] == 1   # 70 ids: one bucket
    keys = ["sf/025.jpg", "L24", "sf/069.jpg", "nowhere", "\u00e9t\u00e9/\u4e2d.jpg"]
    js = run_node(f"const m = {json.dumps(meta)}; const ks = {json.dumps(keys)};"
                  "out = {h: ks.map(api.fnv1a), u: ks.map(k => api.idsUrl(m, k))};")
    from vacancy.map.viewer import fnv1a
    assert js["h"] == [fnv1a(k) for k in keys]
    assert js["u"] == ["index/ids/0.json"] * 5
    bucket = json.loads((site / "index" / "ids" / "0.json").read_text())
    assert bucket["id"]["sf/025.jpg"] == [5, 2]
    assert bucket["listing"]["L24"] == [4, 2]       # a listing points to its first image
    assert len(bucket["id"]) == 70 and len(bucket["listing"]) == 35


def test_many_ids_spread_over_buckets_and_each_id_is_in_its_own(tmp_path):
    from vacancy.map.viewer import build_indexes, fnv1a
    cells = {r: [(c, f"loc{c % 3}/{r}-{c}.jpg") for c in range(50)] for r in range(40)}
    records = {i: {"id": i, "location": i.split("/")[0], "listing_id": i[-8:]}
               for row in cells.values() for _, i in row}
    locations, loc_cells, ids = build_indexes(cells, records)
    assert ids["n"] == 4   # 2000 ids / 500 per bucket
    assert [loc["count"] for loc in locations] == [680, 680, 640]
    assert sum(len(b["id"]) for b in ids["buckets"].values()) == 2000
    for k, bucket in ids["buckets"].items():
        assert all(fnv1a(i) % 4 == k for i in bucket["id"])
    assert ids["buckets"][fnv1a("loc1/7-10.jpg") % 4]["id"]["loc1/7-10.jpg"] == [10, 7]


def test_extra_zoom_reaches_the_largest_photo():
    from vacancy.map.viewer import extra_zoom_for
    assert [extra_zoom_for(s, 64) for s in (0, 64, 65, 256, 257, 4000, 10**9)] == [1, 1, 1, 2, 3, 6, 8]


def test_page_helpers_in_node():
    out = run_node("""
        const m = {cols: 4, rows: 3, cell_px: 10, originals_url: "../raw"};
        out = {
          n: ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "a"].map(k => api.neighbour({col: 0, row: 1}, k, m)),
          rect: api.cellsInRect(25, 5, 11, 12, m),
          clip: api.cellsInRect(-50, -50, 1000, 1000, m).length,
          hash: api.formatHash({z: 3, x: 12.34, y: 5, cell: {col: 2, row: 1}}),
          back: api.parseHash("#z=3&x=12.3&y=5&cell=2,1"), bad: api.parseHash("#x=1"),
          orig: api.originalUrl(m, "new york/a #1?.jpg"),
          ex: api.parseExcludeFile("\\uFEFF# c\\r\\nsf/a.jpg\\n  sf/b.jpg  \\n\\n#x\\n"),
          file: api.excludeFileText(["sf/b.jpg", "sf/a.jpg", "sf/a.jpg", "bad\\nid", " sp", "#c"]),
          csv: api.excludeCsvText([{id: "sf/b", location: "sf", listing_url: "https://x/?a=1,2"},
                                   {id: "sf/a", location: "sf", listing_url: ""}]),
        };""")
    assert out["n"] == [None, {"col": 1, "row": 1}, {"col": 0, "row": 0}, {"col": 0, "row": 2}, None]
    assert out["rect"] == [{"col": 1, "row": 0}, {"col": 2, "row": 0}, {"col": 1, "row": 1},
                           {"col": 2, "row": 1}]
    assert out["clip"] == 12
    assert out["hash"] == "#z=3&x=12.3&y=5&cell=2,1"
    assert out["back"] == {"z": 3, "x": 12.3, "y": 5, "cell": {"col": 2, "row": 1}}
    assert out["bad"] is None
    assert out["orig"] == "../raw/new%20york/a%20%231%3F.jpg"
    assert out["ex"] == ["sf/a.jpg", "sf/b.jpg"]
    assert out["file"].splitlines()[2:] == ["sf/a.jpg", "sf/b.jpg"]
    assert out["csv"] == 'id,location,listing_url\r\nsf/a,sf,\r\nsf/b,sf,"https://x/?a=1,2"\r\n'


def test_exported_exclude_file_reads_back_in_the_workflow(tmp_path):
    from vacancy.images.select import read_exclude_file
    ids = ["sf/a.jpg", "new york/caf\u00e9 1.jpg", "sf/#3.jpg"]
    text = run_node(f"out = api.excludeFileText({json.dumps(ids)});")
    path = tmp_path / "exclude.txt"
    path.write_text(text, encoding="utf-8")
    assert read_exclude_file(path) == set(ids)


# --------------------------------------------------------------------------- publish and serve


def test_pmtiles_archive_holds_every_tile_byte_for_byte(tmp_path):
    from pmtiles.reader import MmapSource, Reader, all_tiles
    from pmtiles.tile import zxy_to_tileid
    from vacancy.map.publish import write_pmtiles
    _, _, _, tiles = make_results(tmp_path, cols=12, rows=9, n=100, cell_px=32)
    out = tmp_path / "site" / "tiles.pmtiles"
    stats = write_pmtiles(tiles, out)
    files = {tuple(int(v) for v in p.relative_to(tiles).with_suffix("").parts): p.read_bytes()
             for p in tiles.rglob("*.jpg")}
    assert len(files) == 1 + 4 and stats["tiles"] == 5      # zoom 0..1 of a 384x288 map
    assert stats["folder_files"] == 6                           # plus meta.json
    with open(out, "rb") as handle:
        source = MmapSource(handle)
        reader = Reader(source)
        assert reader.header()["max_zoom"] == 1 and reader.header()["clustered"]
        assert reader.metadata()["vacancy"]["count"] == 100
        stored = {zxy: data for zxy, data in all_tiles(source)}
    assert stored == files
    assert sorted(files, key=lambda t: zxy_to_tileid(*t))[0] == (0, 0, 0)
    assert [p.name for p in out.parent.iterdir()] == ["tiles.pmtiles"]   # no temp file left


def test_server_answers_byte_ranges(tmp_path):
    import urllib.request
    from vacancy.serve import parse_range, serve_in_thread
    data = bytes(range(256)) * 4
    (tmp_path / "a.bin").write_bytes(data)
    server, base = serve_in_thread(tmp_path)
    try:
        def get(range_=None):
            req = urllib.request.Request(base + "/a.bin", headers={"Range": range_} if range_ else {})
            try:
                with urllib.request.urlopen(req) as resp:
                    return resp.status, resp.headers.get("Content-Range"), resp.read()
            except urllib.error.HTTPError as err:
                return err.code, err.headers.get("Content-Range"), b""
        assert get() == (200, None, data)
        assert get("bytes=10-19") == (206, "bytes 10-19/1024", data[10:20])
        assert get("bytes=1000-") == (206, "bytes 1000-1023/1024", data[1000:])
        assert get("bytes=-4") == (206, "bytes 1020-1023/1024", data[-4:])
        assert get("bytes=1020-5000") == (206, "bytes 1020-1023/1024", data[1020:])
        assert get("bytes=2000-2001") == (416, "bytes */1024", b"")
        assert get("bytes=0-1,5-6")[0] == 200   # multiple ranges: the whole file
    finally:
        server.shutdown()
        server.server_close()
    assert parse_range("bytes=0-0", 1) == (0, 0)
    assert parse_range("bytes=5-", 5) is None


# --------------------------------------------------------------------------- field arrays, filter


def read_field(site: Path, desc: dict):
    import numpy as np
    return np.frombuffer((site / desc["url"]).read_bytes(), dtype=np.dtype(desc["dtype"]).newbyteorder("<"))


def test_field_arrays_hold_each_cells_value_from_selected_csv(built):
    import csv as csvlib
    from datetime import date
    site, meta = built
    fields = {d["name"]: d for d in meta["fields"]}
    assert sorted(fields) == ["class", "location", "posted", "price"]   # no record has a state
    with open(site.parent / "selected.csv", newline="", encoding="utf-8") as handle:
        rows = {r["id"]: r for r in csvlib.DictReader(handle)}
    price, posted = read_field(site, fields["price"]), read_field(site, fields["posted"])
    location, cls = read_field(site, fields["location"]), read_field(site, fields["class"])
    assert len(price) == len(posted) == len(location) == 10 * 8
    for k in range(70):
        row = rows[f"sf/{k:03d}.jpg"]
        assert price[k] == int(row["price"].lstrip("$"))
        assert posted[k] == (date.fromisoformat(row["posted"]) - date(1970, 1, 1)).days
        assert fields["location"]["names"][location[k]] == row["location"]
        assert fields["class"]["names"][cls[k]] == row["class"]
    assert list(price[70:]) == [-1] * 10 and list(location[70:]) == [0xFFFF] * 10   # empty cells
    assert (fields["price"]["min"], fields["price"]["max"]) == (1000, 1069)
    assert fields["location"]["counts"] == [70]


def test_price_and_posted_parsing():
    from vacancy.map.viewer import parse_posted, parse_price
    assert [parse_price(t) for t in ("$1,150", "1150", "$2,400/mo", "call", "", "$99.50",
                                     "$99,999,999,999")] == [1150, 1150, 2400, None, None, 99, None]
    assert [parse_posted(t) for t in ("2024-05-01T09:30:00-07:00", "2024-05-01", "soon", "")] == \
        [19844, 19844, None, None]


def test_filter_mask_stats_and_permalink_in_node():
    """matchMask against the same rule written here in Python, on mixed data with gaps."""
    import random
    rnd = random.Random(3)
    n, names = 200, ["austin", "boston", "miami"]
    price = [rnd.choice([-1, rnd.randint(500, 4000)]) for _ in range(n)]
    posted = [rnd.choice([0, rnd.randint(19700, 19900)]) for _ in range(n)]
    loc = [rnd.choice([0xFFFF, 0, 1, 2, 2]) for _ in range(n)]
    fields = {"price": {"desc": {"name": "price", "kind": "number", "missing": -1}, "values": price},
              "posted": {"desc": {"name": "posted", "kind": "date", "missing": 0}, "values": posted},
              "location": {"desc": {"name": "location", "kind": "category", "missing": 0xFFFF,
                                    "names": names}, "values": loc}}
    flt = {"price": [800, 1500], "posted": [19750, 19850], "location": ["austin", "miami"]}
    out = run_node(f"""
        const f = {json.dumps(fields)}; const flt = {json.dumps(flt)};
        const m = api.matchMask(f, flt, {n});
        const lit = []; m.mask.forEach((v, k) => {{ if (v) lit.push(k); }});
        const text = api.formatFilter(flt);
        out = {{lit, count: m.lit, none: api.matchMask(f, {{}}, {n}).lit, text,
               back: api.parseFilter("#z=1&x=2&y=3&" + text, ["price", "posted", "location"]),
               stats: api.cellStats(f, lit, 2), q: api.quartiles([1, 2, 3, 4, 5]),
               hist: api.histogram([1, 2, 2, 9, -1, 10], -1, 0, 10, 5)}};""")
    want = [k for k in range(n) if loc[k] in (0, 2) and 800 <= price[k] <= 1500
            and 19750 <= posted[k] <= 19850]
    assert out["lit"] == want and out["count"] == len(want) > 0
    assert out["none"] == sum(v != 0xFFFF for v in loc)
    from datetime import date, timedelta
    day = [(date(1970, 1, 1) + timedelta(days=d)).isoformat() for d in flt["posted"]]
    assert out["text"] == f"location=austin&location=miami&posted={day[0]}..{day[1]}&price=800-1500"
    assert out["back"] == flt
    prices = sorted(price[k] for k in want)
    assert out["stats"]["count"] == len(want)
    assert out["stats"]["price"][1] == pytest.approx(
        (prices[(len(prices) - 1) // 2] + prices[len(prices) // 2]) / 2)
    top = sorted({names[loc[k]] for k in want}, key=lambda s: -sum(names[loc[k]] == s for k in want))
    assert [t[0] for t in out["stats"]["top"]] == top[:2]
    assert out["q"] == [2, 3, 4]
    assert out["hist"] == [1, 2, 0, 0, 2]


def test_lasso_cells_and_selection_csv_in_node(tmp_path):
    import csv as csvlib
    out = run_node(f"""
        const m = {{cols: 6, rows: 5, cell_px: 10}};
        // a triangle over the grid's top-left half; no cell centre lies on its edges
        const tri = [[2, 2], [58, 2], [2, 48]];
        out = {{tri: api.cellsInPolygon(tri, m).map(c => [c.col, c.row]),
               csv: api.selectionCsvText([
                 {{cell: [1, 0], record: {{id: "sf/b.jpg", title: {json.dumps(HOSTILE)}, price: "$900"}}}},
                 {{cell: [0, 0], record: {{id: "sf/a.jpg", title: "=HYPERLINK(\\"x\\")", location: "sf"}}}}])}};""")
    def inside(c, r):   # the cell's centre inside the triangle
        x, y = c * 10 + 5, r * 10 + 5
        return x > 2 and y > 2 and (x - 2) / 56 + (y - 2) / 46 < 1
    assert sorted(map(tuple, out["tri"])) == sorted(
        (c, r) for c in range(6) for r in range(5) if inside(c, r))
    path = tmp_path / "selection.csv"
    path.write_text(out["csv"], encoding="utf-8")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csvlib.DictReader(handle))
    assert [r["id"] for r in rows] == ["sf/a.jpg", "sf/b.jpg"]
    assert rows[1]["title"] == HOSTILE and rows[1]["price"] == "$900"
    assert rows[0]["title"] == "'=HYPERLINK(\"x\")"   # a spreadsheet shows it as text
    assert (rows[0]["col"], rows[0]["row"]) == ("0", "0")


# --------------------------------------------------------------------------- regions


def test_regions_are_numbered_in_reading_order_with_one_representative_each():
    """Two well-separated clusters of vectors on the left and right halves of a 6x4 grid."""
    import numpy as np
    from vacancy.map.regions import assign_regions
    cells = np.array([(c, r) for r in range(4) for c in range(6)])
    right = cells[:, 0] >= 3
    vectors = np.where(right[:, None], 10.0, 0.0) + np.random.default_rng(0).normal(0, 0.1, (24, 3))
    region, reps, anchors = assign_regions(vectors, cells, k=2, dims=3, seed=0)
    assert set(region[~right]) == {1} and set(region[right]) == {2}   # left's anchor reads first
    for g in (1, 2):
        members = region == g
        assert reps[members].sum() == 1 and anchors[members].sum() == 1
        centre = vectors[members].mean(axis=0)
        nearest = np.argmin(((vectors - centre) ** 2).sum(axis=1) + np.where(members, 0, 1e9))
        assert reps[nearest] == 1
    assert assign_regions(vectors[:3], cells[:3], k=10, dims=3, seed=0)[0].max() == 3   # k capped


def test_site_regions_summarise_their_cells(tmp_path):
    import csv as csvlib
    from vacancy.common import write_csv
    from vacancy.map.regions import REGION_COLUMNS
    results, grid, selected, tiles = make_results(tmp_path, cols=5, rows=4, n=20, cell_px=16)
    # region 1: the first two rows (k 0-9), region 2: the rest; anchors and representatives
    write_csv(results / "regions.csv", ({"id": f"sf/{k:03d}.jpg", "region": 1 if k < 10 else 2,
                                         "representative": int(k in (3, 14)),
                                         "anchor": int(k in (7, 12))} for k in range(20)),
              REGION_COLUMNS)
    meta = build_site(json.loads((tiles / "meta.json").read_text()), grid, selected,
                      results / "site", LEAFLET, regions_csv=results / "regions.csv")
    with open(selected, newline="", encoding="utf-8") as handle:
        prices = {r["id"]: int(r["price"].lstrip("$")) for r in csvlib.DictReader(handle)}
    one, two = meta["regions"]
    assert (one["region"], one["count"], one["col"], one["row"], one["image"]) == ("1", 10, 2, 1, "sf/003.jpg")
    assert (two["region"], two["count"], two["col"], two["row"], two["image"]) == ("2", 10, 2, 2, "sf/014.jpg")
    assert one["median_price"] == sorted(prices[f"sf/{k:03d}.jpg"] for k in range(10))[4] + 0.5
    assert one["location"] == ["sf", 1.0] and one["state"] is None   # no state in this data
    assert one["bbox"][1] == 0 and one["bbox"][3] == 1 and two["bbox"][1] == 2
    region_field = next(f for f in meta["fields"] if f["name"] == "region")
    assert region_field["names"] == ["1", "2"] and region_field["counts"] == [10, 10]
    values = read_field(results / "site", region_field)
    assert list(values[:20]) == [0] * 10 + [1] * 10


def test_region_label_text_in_node():
    regions = [{"region": "12", "count": 1843, "state": ["TX", 0.61], "location": ["austin", 0.4],
                "median_price": 1149.6},
               {"region": "3", "count": 1, "state": None, "location": ["sf", 0.3], "median_price": None},
               {"region": "4", "count": 7, "state": [HOSTILE, 0.9], "location": None,
                "median_price": 950}]
    out = run_node(f"out = {json.dumps(regions)}.map(api.regionLabel);")
    assert out == ["region 12: 1,843 photos, mostly TX, median $1,150",
                   "region 3: 1 photo, most from sf",
                   f"region 4: 7 photos, mostly {HOSTILE}, median $950"]
