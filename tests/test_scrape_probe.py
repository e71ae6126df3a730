"""The probe: one table that shows, in one glance, which formats the site has and what broke."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from conftest import snakemake, write_config
from fixture_site import current_settings, serve_fixture_site
from vacancy.sources.scrape.probe import probe


def rows(result) -> dict:
    return {r.step: (r.status, r.listings, r.photos, r.verdict) for r in result.rows}


def test_probe_of_the_current_formats(tmp_path):
    with serve_fixture_site() as site:
        result = probe("portland", current_settings(site))
        asked = [r.path for r in site.requests if r.path != "/robots.txt"]
    assert rows(result) == {
        "areas": ("200", "area 9", "-", "ok"),
        "search API": ("200", "2", "4", "ok"),  # 3 items in the first answer, 1 not decodable
        "result page": ("200", "5", "0 rows, 10 JSON-LD", "ok"),
        "posting": ("200", "id 7800000001", "2", "ok"),
        "photo": ("200", "-", "-", "ok")}
    assert result.auto.startswith("api")
    assert len(asked) == 6  # areas, API, result page (+ its redirect hop), posting, photo
    table = result.table()
    assert "auto would use: api" in table and "looks wrong: nothing" in table and "WRONG" not in table


def test_probe_reports_a_changed_format(tmp_path):
    with serve_fixture_site() as site:
        site.changed = {"api_photos"}
        photos_gone = probe("portland", current_settings(site))
        site.changed = {"api_photos", "html_list"}
        both_gone = probe("portland", current_settings(site))
    assert rows(photos_gone)["search API"] == (
        "200", "2", "0", "WRONG: listings but no photo ids (has the photo block's tag changed?)")
    assert photos_gone.auto.startswith("html") and rows(photos_gone)["posting"][3] == "ok"
    table = both_gone.table()
    assert "result page: no li.result-row nor li.cl-static-search-result (class names changed?)" in table
    assert "auto would use: NONE" in table
    assert [r.step for r in both_gone.rows if r.problem] == ["search API", "result page", "posting", "photo"]


def test_probe_command_line_exit_code_and_nothing_written(tmp_path):
    with serve_fixture_site() as site:
        config = tmp_path / "probe.yaml"
        config.write_text(yaml.safe_dump({"craigslist": current_settings(site)}))
        ok = subprocess.run([sys.executable, "-m", "vacancy.sources.scrape.probe", "portland", "--configfile", str(config)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
        broken = subprocess.run([sys.executable, "-m", "vacancy.sources.scrape.probe", "portland", "--configfile",
                                 str(config), "--set", "api_url=http://127.0.0.1:1/x/full",
                                 "--set", f"site_url={site.url}/nowhere/{{site}}"],
                                cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "auto would use: api" in ok.stdout
    assert broken.returncode == 1 and "auto would use: NONE" in broken.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probe.yaml"]


@pytest.mark.slow
def test_workflow_probe_target_and_empty_site_list(tmp_path):
    with serve_fixture_site() as site:
        settings = current_settings(site, locations=["portland"])
        write_config(tmp_path, {"source": "craigslist", "craigslist": settings})
        run = snakemake(tmp_path, "--cores", "1", "craigslist_probe")
        assert "auto would use: api" in run.stdout + run.stderr
        assert not (tmp_path / "results" / "raw").exists()
        site.sites_form = "broken"
        write_config(tmp_path, {"source": "craigslist", "craigslist": {
            **settings, "locations": "all", "areas_url": f"{site.url}/no-areas"}})
        failed = snakemake(tmp_path, "--cores", "1", "tiles", check=False)
    out = failed.stdout + failed.stderr
    assert failed.returncode != 0 and "MissingOutputException" not in out
    assert f"{site.url}/about/sites: 0 US sites" in out and "vacancy.sources.scrape.probe" in out
    assert not (tmp_path / "results" / "raw" / "sites.csv").exists()
