"""The scraper against the fixture site: exact files, manifest rows and the server's own log."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from vacancy.common import read_csv
from vacancy.sources.scrape import check_image, list_sites, scrape_location, status
from vacancy.sources.inventory import MANIFEST_COLUMNS

from fixture_site import HOSTILE_TITLE, RETRY_AFTER_S, photo_bytes, scrape_settings, serve_fixture_site

SF_FILES = {f"00a0a_sf{n}_1200x900.jpg" for n in (1, 2, 3, 4, 5, 6)} | {"00r0r_sf429_1200x900.jpg"}
NY_FILES = {"00b0b_ny1_1200x900.jpg", "x.jpg", "00b0b_ny2_600x450.jpg", "00b0b_ny3_600x450.jpg",
            "x_2.jpg", "bashrc.jpg", "rf.jpg", "00a0a_sf1_1200x900.jpg", "00b0b_ny4_600x450.jpg"}


@pytest.fixture(scope="module")
def scraped(tmp_path_factory):
    """sfbay, newyork, austin and reno scraped one after another with one shared lock dir."""
    root = tmp_path_factory.mktemp("scrape")
    with serve_fixture_site() as site:
        settings = scrape_settings(site.url)
        results = {loc: scrape_location(loc, root / "raw" / loc, settings, lock_dir=root / "locks")
                   for loc in ("sfbay", "newyork", "austin", "reno")}
        yield site, root, settings, results


def images_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.suffix in (".jpg", ".png")}


def test_exact_files_and_nothing_outside(scraped):
    site, root, _, _ = scraped
    assert images_in(root / "raw" / "sfbay") == SF_FILES
    assert images_in(root / "raw" / "newyork") == NY_FILES
    everything = {p.name for p in root.rglob("*")}
    assert not {".bashrc", "-rf.jpg", "offsite.jpg", "foreign.jpg", "secret.jpg"} & everything
    assert not [p for p in root.rglob("*.part")]
    for name in NY_FILES:  # every kept file is the bytes the server sent for its URL
        check_image(root / "raw" / "newyork" / name, 50_000_000)


def test_sfbay_manifest_rows(scraped):
    site, root, _, results = scraped
    rows = read_csv(root / "raw" / "sfbay" / "manifest.csv")
    assert list(rows[0]) == MANIFEST_COLUMNS
    assert [(r["listing_id"], r["filename"]) for r in rows] == [
        ("7000000001", "00a0a_sf1_1200x900.jpg"), ("7000000001", "00a0a_sf2_1200x900.jpg"),
        ("7000000002", "00r0r_sf429_1200x900.jpg"), ("7000000002", "00a0a_sf3_1200x900.jpg"),
        ("7000000003", "00a0a_sf1_1200x900.jpg"), ("7000000003", "00a0a_sf4_1200x900.jpg"),
        ("7000000004", "00a0a_sf5_1200x900.jpg"), ("7000000005", "00a0a_sf6_1200x900.jpg")]
    first = rows[0]
    assert first["image_url"] == f"{site.url}/images/00a0a_sf1_1200x900.jpg"
    assert first["listing_url"] == f"{site.url}/site/sfbay/apa/d/listing-7000000001/7000000001.html"
    assert (first["title"], first["price"], first["posted"], first["state"]) == (
        "Sunny room", "$2,500", "2022-09-01 10:00", "CA")
    body = photo_bytes("00a0a_sf1_1200x900.jpg")
    assert (int(first["bytes"]), first["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert rows[2]["title"] == HOSTILE_TITLE  # listing text is stored verbatim as text
    assert results["sfbay"]["skipped"] == 2
    assert results["sfbay"]["skipped_by_reason"] == {"transfer failed": 1, "an HTML page, not an image": 1}
    # the photo cut short in every attempt may come whole later: not complete, one to fetch;
    # the HTML page sent as a photo is the site's answer, not counted
    assert results["sfbay"]["complete"] is False and results["sfbay"]["retryable"] == 1
    assert results["sfbay"]["reason"] == ("1 photo not fetched for reasons that may pass "
                                          "(transfer failed: 1); rerun to fetch them")


def test_cross_post_downloaded_once(scraped):
    site, root, _, results = scraped
    assert len(site.requested("/images/00a0a_sf1_")) == 1  # 2 listings, 2 locations, 1 request
    sf, ny = root / "raw" / "sfbay" / "00a0a_sf1_1200x900.jpg", root / "raw" / "newyork" / "00a0a_sf1_1200x900.jpg"
    assert sf.stat().st_ino == ny.stat().st_ino  # a hard link: no space, no download
    ny_row = [r for r in read_csv(root / "raw" / "newyork" / "manifest.csv") if r["listing_id"] == "7100000004"][0]
    assert ny_row["filename"] == "00a0a_sf1_1200x900.jpg" and ny_row["state"] == "NY"
    assert results["newyork"]["linked"] == 1 and results["newyork"]["downloaded"] == 8


def test_newyork_manifest_hostile_names_and_sizes(scraped):
    site, root, _, results = scraped
    rows = read_csv(root / "raw" / "newyork" / "manifest.csv")
    assert [(r["filename"], r["image_url"].removeprefix(site.url)) for r in rows] == [
        ("00b0b_ny1_1200x900.jpg", "/images/00b0b_ny1_1200x900.jpg"), ("x.jpg", "/images/x.jpg"),
        ("00b0b_ny2_600x450.jpg", "/images/00b0b_ny2_600x450.jpg"),
        ("00b0b_ny3_600x450.jpg", "/images/00b0b_ny3_600x450.jpg"),
        ("x_2.jpg", "/images/..%2F..%2Fx.jpg"), ("bashrc.jpg", "/images/.bashrc"), ("rf.jpg", "/images/-rf.jpg"),
        ("00a0a_sf1_1200x900.jpg", "/images/00a0a_sf1_1200x900.jpg"),
        ("00b0b_ny4_600x450.jpg", "/images/00b0b_ny4_600x450.jpg")]
    assert rows[0]["posted"] == "2022-09-10T10:00:00-0400" and rows[0]["title"] == "Loft"
    assert (root / "raw" / "newyork" / "x.jpg").read_bytes() == photo_bytes("x.jpg")
    assert (root / "raw" / "newyork" / "x_2.jpg").read_bytes() == photo_bytes("..%2F..%2Fx.jpg")
    assert results["newyork"]["skipped_by_reason"] == {
        "host not in allowed_hosts": 2, "disallowed by robots.txt": 2, "no complete response within 0.5 s": 1,
        "response larger than max_bytes": 1, "gigantic dimensions 10000x10000": 1}
    # of these only the never-ending response may go better another time
    assert results["newyork"]["complete"] is False and results["newyork"]["retryable"] == 1


def test_never_requested(scraped):
    site, _, _, _ = scraped
    paths = site.paths()
    for forbidden in ("/images/offsite.jpg", "/images/foreign.jpg", "/private/", "/site/toronto",
                      "/site/berlin", "_50x50c", "00b0b_ny1_600x450", "00a0a_sf1_600x450"):
        assert not [p for p in paths if forbidden in p], forbidden
    assert {r.host for r in site.requests} == {site.url.removeprefix("http://")}
    assert {r.user_agent for r in site.requests} == {"vacancy-test/0.1 (+http://127.0.0.1/contact)"}
    assert len(site.requested("/images/moved.jpg")) == 1  # asked once, its off-site target never


def test_spacing_between_requests(scraped):
    site, _, settings, _ = scraped
    times = sorted(r.t for r in site.requests)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(times) > 50 and min(gaps) >= settings["delay_s"] - 0.005


def test_retries_backoff_and_retry_after(scraped):
    site, _, settings, _ = scraped
    failing = site.requested("/site/sfbay/search/apa?s=3")
    assert [r.status for r in failing] == [500, 500, 200]
    assert failing[1].t - failing[0].t >= 2 * settings["delay_s"] - 0.005
    assert failing[2].t - failing[1].t >= 4 * settings["delay_s"] - 0.005
    limited = site.requested("sf429")
    assert [r.status for r in limited] == [429, 200]
    after = [r.t for r in site.requests if r.t > limited[0].t]
    assert min(after) - limited[0].t >= RETRY_AFTER_S - 0.005  # nobody touched the host meanwhile
    assert len(site.requested("slow.jpg")) == settings["retries"] + 1
    assert len(site.requested("sfcut")) == settings["retries"] + 1
    assert len(site.requested("huge.jpg")) == 1 and len(site.requested("sfhtml")) == 1  # not retried


def test_empty_location_writes_empty_manifest(scraped):
    _, root, _, results = scraped
    assert read_csv(root / "raw" / "austin" / "manifest.csv") == []
    assert (root / "raw" / "austin" / "manifest.csv").read_text().strip() == ",".join(MANIFEST_COLUMNS)
    assert results["austin"]["complete"] and results["austin"]["rows"] == 0


def test_state_file_and_sites_cache(scraped):
    site, root, settings, results = scraped
    state = json.loads((root / "raw" / "sfbay" / "scrape_state.json").read_text())
    assert state["complete"] is False and state["rows"] == 8 and state["files"] == 7
    cached = read_csv(root / "raw" / "sites.csv")
    assert [(s["site"], s["state"]) for s in cached][:3] == [
        ("sfbay", "California"), ("losangeles", "California"), ("newyork", "New York")]
    assert len(site.requested("/about/sites")) == 1  # fetched once for four locations
    before = len(site.requests)
    assert list_sites(settings["sites_url"], settings, cache=root / "raw" / "sites.csv") == cached
    assert len(site.requests) == before


def test_blocked_location_keeps_what_it_has_and_resumes(scraped, tmp_path):
    site, root, settings, results = scraped
    reno = results["reno"]
    assert reno["complete"] is False and reno["reason"].startswith("blocked: HTTP 403 3 times in a row")
    assert [r["filename"] for r in read_csv(root / "raw" / "reno" / "manifest.csv")] == ["00e0e_reno0_600x450.jpg"]
    assert [r.status for r in site.requested("/site/reno/apa/")] == [200, 403, 403, 403]  # then stopped
    site.blocked = False
    before = len(site.requests)
    again = scrape_location("reno", root / "raw" / "reno", settings, lock_dir=root / "locks")
    new = [r.path for r in site.requests[before:]]
    assert again["complete"] is True and again["rows"] == 5
    assert not [p for p in new if "search/apa?s=0" in p or "7300000000" in p or "reno0" in p]  # journal
    assert [r["filename"] for r in read_csv(root / "raw" / "reno" / "manifest.csv")] == [
        f"00e0e_reno{n}_600x450.jpg" for n in range(5)]


def test_photo_that_failed_for_a_passing_reason_is_fetched_by_the_rerun(tmp_path):
    """A photo cut short in every attempt leaves the location incomplete; once the server sends
    it whole, the rerun asks for that photo alone and the manifest gets it in listing order."""
    with serve_fixture_site() as site:
        settings = scrape_settings(site.url)
        first = scrape_location("sfbay", tmp_path / "sfbay", settings, lock_dir=tmp_path / "locks")
        assert first["complete"] is False and first["retryable"] == 1
        assert "00c0c_sfcut_1200x900.jpg" not in images_in(tmp_path / "sfbay")
        site.cut_short = False
        before = len(site.requests)
        again = scrape_location("sfbay", tmp_path / "sfbay", settings, lock_dir=tmp_path / "locks")
        asked = [r.path for r in site.requests[before:] if not r.path.endswith("/robots.txt")]
    assert again["complete"] is True and again["reason"] == "" and again["retryable"] == 0
    # only the photos left out: the cut one, and the HTML page sent as a photo (asked again,
    # as every photo that was not kept is; it stays out, and does not make the location incomplete)
    assert asked == ["/images/00c0c_sfcut_1200x900.jpg", "/images/00h0h_sfhtml_1200x900.jpg"]
    rows = read_csv(tmp_path / "sfbay" / "manifest.csv")
    assert [r["filename"] for r in rows if r["listing_id"] == "7000000004"] == [
        "00c0c_sfcut_1200x900.jpg", "00a0a_sf5_1200x900.jpg"]
    assert (tmp_path / "sfbay" / "00c0c_sfcut_1200x900.jpg").read_bytes() == photo_bytes(
        "00c0c_sfcut_1200x900.jpg")


def test_status_names_the_incomplete_locations_and_the_rerun(tmp_path, capsys):
    raw = tmp_path / "raw"
    for name, state in {"austin": {"complete": True, "files": 0},
                        "reno": {"complete": False, "reason": "blocked: HTTP 403 3 times in a row",
                                 "files": 1},
                        "sfbay": {"complete": False, "reason": "1 photo not fetched", "files": 7}}.items():
        (raw / name).mkdir(parents=True)
        (raw / name / "scrape_state.json").write_text(json.dumps(state))
    (raw / "broken").mkdir()
    (raw / "broken" / "scrape_state.json").write_text('{"complete": tr')  # cut off by hand
    assert status.incomplete(raw) == {
        "broken": f"{raw}/broken/scrape_state.json unreadable (Expecting value: line 1 column 14 "
                  "(char 13))",
        "reno": "blocked: HTTP 403 3 times in a row", "sfbay": "1 photo not fetched"}
    assert status.summary(raw, ["austin"]) is None  # only the run's own locations count
    lines = status.summary(raw, ["austin", "reno", "sfbay", "denver"]).splitlines()
    assert lines[0].startswith("vacancy: 2 of 3 scraped locations are incomplete")
    assert lines[1:3] == ["  reno: blocked: HTTP 403 3 times in a row", "  sfbay: 1 photo not fetched"]
    assert lines[-1] == f"  --forcerun {raw}/reno/manifest.csv {raw}/sfbay/manifest.csv"
    assert status.main([str(raw)]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "austin\t0 photos\tcomplete"
    assert printed[2] == "reno\t1 photos\tINCOMPLETE: blocked: HTTP 403 3 times in a row"
    assert printed[-1] == "4 locations, 3 incomplete"
    assert status.main([str(raw / "none")]) == 0
