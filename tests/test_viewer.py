"""Tests of the viewer site: every link resolves on disk, shards are complete, text stays text."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from PIL import Image

from vacancy.tiles import layout_meta, render_tiles
from vacancy.viewer import TEMPLATE_DIR, build_site

ROOT = Path(__file__).resolve().parent.parent
LEAFLET = ROOT / "node_modules" / "leaflet" / "dist"
APP_JS = TEMPLATE_DIR / "app.js"
HOSTILE = "<img src=x onerror=alert(1)> & \"quotes\" </script>"
COLUMNS = ["id", "location", "filename", "path", "class", "entropy", "width", "height",
           "title", "price", "posted", "listing_url", "listing_id", "state", "image_url"]


def make_results(tmp_path: Path, cols: int, rows: int, n: int, cell_px: int = 16):
    """A results/ folder with raw images, grid.csv, selected.csv and a rendered tiles/ tree."""
    results = tmp_path / "results"
    raw = results / "raw" / "sf"
    raw.mkdir(parents=True)
    grid, selected = results / "grid.csv", results / "selected.csv"
    with open(grid, "w", newline="") as g, open(selected, "w", newline="") as s:
        gw = csv.writer(g)
        gw.writerow(["id", "col", "row"])
        sw = csv.DictWriter(s, COLUMNS)
        sw.writeheader()
        for k in range(n):
            name = f"{k:03d}.jpg"
            Image.new("RGB", (20, 20), (k * 7 % 256, 90, 160)).save(raw / name)
            col, row = k % cols, k // cols
            gw.writerow([f"sf/{name}", col, row])
            sw.writerow({
                "id": f"sf/{name}", "location": "sf", "filename": name, "path": str(raw / name),
                "class": "photo", "title": HOSTILE if k == 0 else f"Room {k}",
                "price": f"${1000 + k}", "posted": "2024-05-01",
                "listing_url": "javascript:alert(1)" if k == 1 else f"https://sf.example/{k}.html",
            })
    tiles = results / "tiles"
    render_tiles(grid, selected, tiles, cols, rows, cell_px=cell_px)
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
                                "vendor/leaflet/leaflet.js", "app.js"}
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
        assert set(record) == {"id", "location", "title", "price", "posted", "listing_url", "class"}
    assert seen["5,2"] == {"id": "sf/025.jpg", "location": "sf", "title": "Room 25",
                           "price": "$1025", "posted": "2024-05-01",
                           "listing_url": "https://sf.example/25.html", "class": "photo"}
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
    layout = layout_meta(9, 5, cell_px=64)
    assert {k: rendered[k] for k in layout} == layout
