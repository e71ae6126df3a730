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
        # sfbay's photo sent cut short in every attempt: the run ends saying so, with the fix
        summary = run.stderr.split("vacancy: ", 1)[1]
        assert summary.startswith("1 of 2 scraped locations are incomplete")
        assert "  sfbay: 1 photo not fetched for reasons that may pass (transfer failed: 1)" in summary
        forcerun = next(x for x in summary.splitlines() if x.startswith("  --forcerun")).split()
        assert forcerun == ["--forcerun", "results/raw/sfbay/manifest.csv"]
        site.cut_short = False
        before = len(site.requests)
        again = snakemake(tmp_path, "--cores", "2", "tiles", *forcerun)
        asked = [r.path for r in site.requests[before:] if "/images/" in r.path]
    assert "incomplete" not in again.stderr
    assert "rule scrape" in again.stderr and "wildcards: location=losangeles" not in again.stderr
    assert sorted(asked) == ["/images/00c0c_sfcut_1200x900.jpg", "/images/00h0h_sfhtml_1200x900.jpg"]
    assert json.loads((tmp_path / "results/raw/sfbay/scrape_state.json").read_text())["complete"]
    results = tmp_path / "results"
    assert "00c0c_sfcut_1200x900.jpg" in {r["filename"] for r in read_csv(results / "inventory/sfbay.csv")}
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
