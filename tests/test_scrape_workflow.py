"""End to end: the workflow with ``source: craigslist`` pointed at the local fixture site."""
import json

import pytest

from conftest import snakemake, write_config
from fixture_site import config_overrides, serve_fixture_site
from vacancy.common import read_csv

pytestmark = pytest.mark.slow


def test_craigslist_source_scrapes_each_location_and_makes_a_map(tmp_path):
    with serve_fixture_site(bulk=12) as site:
        overrides = config_overrides(site.url, locations=["losangeles", "sfbay"])
        write_config(tmp_path, {**overrides, "tsne": {"perplexity": 5, "n_iter": 300},
                                "tiles": {"cell_px": 32}})
        run = snakemake(tmp_path, "--cores", "2", "tiles")
    results = tmp_path / "results"
    assert "rule scrape" in run.stdout + run.stderr
    for location in ("losangeles", "sfbay"):
        manifest = read_csv(results / "raw" / location / "manifest.csv")
        assert manifest, location
        for row in manifest:
            assert (results / "raw" / location / row["filename"]).is_file()
        state = json.loads((results / "raw" / location / "scrape_state.json").read_text())
        assert state["location"] == location
    on_map = {r["id"] for r in read_csv(results / "grid.csv")}
    scraped = {f"losangeles/{r['filename']}" for r in read_csv(results / "raw/losangeles/manifest.csv")}
    assert len(on_map & scraped) >= 30  # 12 listings x 3 textured photos, minus none
    assert (results / "tiles" / "0" / "0" / "0.jpg").is_file()
    assert (results / "site" / "index.html").is_file()
    # Only the fixture host was ever asked, and nothing outside what robots.txt allows.
    assert not site.requested("/private/")
