"""The Craigslist of 2024-2026 against the fixture: Areas JSON, search API, static HTML, /view/d/ postings."""
from __future__ import annotations

import json

import pytest
import requests

from vacancy.common import read_csv
from vacancy.sources.scrape import list_sites, scrape_location
from vacancy.sources.scrape.api import ApiError, decode_batch, decode_item, search_url
from vacancy.sources.scrape.parse import parse_sites
from vacancy.sources.scrape.sites import SITES_COLUMNS, SitesError

from fixture_site import (
    HOSTILE_TITLE, MIN_ID, FixtureSite, current_settings, portland_listing, serve_fixture_site,
)

#: (listing id, file) of portland, in listing order; listing 2 cross-posts listing 0's first photo.
PORTLAND = [(MIN_ID + 7 * n + 1, p) for n in range(5) for p in portland_listing(n)["photos"]]


def rows_of(folder):
    return [(int(r["listing_id"]), r["filename"]) for r in read_csv(folder / "manifest.csv")]


@pytest.fixture(scope="module")
def scraped(tmp_path_factory):
    """portland by the API (auto) and by HTML, boise (API answers for another area) by auto and api."""
    root = tmp_path_factory.mktemp("current")
    with serve_fixture_site() as site:
        runs = {}
        for name, location, method in (("api", "portland", "auto"), ("html", "portland", "html"),
                                       ("boise", "boise", "auto"), ("boise_api", "boise", "api")):
            before = len(site.requests)
            out = root / name / location
            result = scrape_location(location, out, current_settings(site, method=method), lock_dir=root / name / "locks")
            runs[name] = (result, out, [(r.path, r.status) for r in site.requests[before:]])
        yield site, root, runs


def test_api_path_manifest_values(scraped):
    site, _, runs = scraped
    result, out, _ = runs["api"]
    assert rows_of(out) == [(pid, f"{p}_600x450.jpg") for pid, p in PORTLAND]
    rows = read_csv(out / "manifest.csv")
    first, housing, hostile = rows[0], rows[2], rows[7]
    assert (first["title"], first["price"], first["posted"], first["latitude"], first["longitude"]) == (
        "Portland room 0", "$1,500", "2026-01-01T00:00:00Z", "45.5", "-122.6")
    assert housing["title"] == "Portland room 1"  # the [5, beds, sqft] block after the title is not it
    assert hostile["title"] == HOSTILE_TITLE
    assert first["listing_url"] == f"{site.url}/site/portland/apa/d/room-0/{MIN_ID + 1}.html"
    assert first["image_url"] == f"{site.images_base}/images/00p0p_pdx0_a_600x450.jpg"
    assert result["method"] == "api" and result["complete"] and result["api_items_skipped"] == 1
    state = json.loads((out / "scrape_state.json").read_text())
    assert state["method"] == "api" and "HTML not needed" in state["method_reason"]


def test_api_path_requests(scraped):
    site, _, runs = scraped
    _, _, asked = runs["api"]
    listing_requests = [p for p, _ in asked if "/images/" not in p and p != "/robots.txt"]
    assert listing_requests == [
        "/Areas", "/sapi/web/v8/postings/search/full?batch=9-0-360-0-0&cc=US&lang=en&searchPath=apa",
        "/sapi/web/v8/postings/search/batch?batch=9-3-1080-0-0&cc=US&lang=en&searchPath=apa&cacheId=c-9-1"]
    photos = [p for p, _ in asked if "/images/" in p]
    assert len(photos) == len(set(photos)) == 9  # the cross-posted photo once


def test_html_path_same_photos_via_view_pages(scraped):
    site, _, runs = scraped
    result, out, asked = runs["html"]
    assert rows_of(out) == rows_of(runs["api"][1])
    rows = read_csv(out / "manifest.csv")
    assert rows[0]["listing_url"] == f"{site.url}/view/d/room-0/00Tok{'x' * 17}"
    assert (rows[0]["latitude"], rows[0]["longitude"]) == ("45.5", "-122.6")  # from the JSON-LD block
    assert rows[7]["title"] == HOSTILE_TITLE
    assert result["method"] == "html" and result["method_reason"] == "method: html in the config"
    pages = [(p, s) for p, s in asked if "search" in p]
    assert pages == [("/site/portland/search/apa?s=0", 301), ("/search/area/portland?s=0", 200),
                     ("/site/portland/search/apa?s=5", 301), ("/search/area/portland?s=5", 200)]
    assert len([p for p, _ in asked if p.startswith("/view/d/")]) == 5


def test_wrong_area_falls_back_in_auto_and_stops_in_api(scraped):
    _, _, runs = scraped
    auto, out, asked = runs["boise"]
    assert auto["method"] == "html" and "sfbay" in auto["method_reason"] and auto["complete"]
    assert rows_of(out) == [(MIN_ID + 99, "00q0q_boise1_600x450.jpg")]
    strict, out, asked = runs["boise_api"]
    assert not strict["complete"] and "not boise (area 52)" in strict["reason"]
    assert rows_of(out) == [] and not [p for p, _ in asked if "/search/area/" in p]


def test_rss_is_forbidden_and_never_asked(scraped):
    site, _, _ = scraped
    assert requests.get(f"{site.url}/search/area/portland?format=rss", timeout=5).status_code == 403
    assert not [p for p in site.paths() if "format=rss" in p and "/search/area/portland?format=rss" != p]


def test_large_size_falls_back_and_forbidden_robots_does_not_block(tmp_path):
    with serve_fixture_site() as site:
        site.images_robots_status = 403
        result = scrape_location("portland", tmp_path / "portland",
                                 current_settings(site, image_size="1200x900", max_listings=5),
                                 lock_dir=tmp_path / "locks")
        robots = [r.status for r in site.requests if r.path == "/robots.txt" and "127.0.0.2" in r.host]
    assert robots == [403]
    names = [name for _, name in rows_of(tmp_path / "portland")]
    assert names == [f"{p}_1200x900.jpg" for _, p in PORTLAND[:-1]] + ["00p0p_pdx4_no1200_600x450.jpg"]
    assert result["size_fallback"] == 1 and result["complete"]


def test_max_listings_stops_in_the_first_batch(tmp_path):
    with serve_fixture_site() as site:
        result = scrape_location("portland", tmp_path / "portland", current_settings(site, max_listings=1),
                                 lock_dir=tmp_path / "locks")
        assert not site.requested("/search/batch")
    assert rows_of(tmp_path / "portland") == [(pid, f"{p}_600x450.jpg") for pid, p in PORTLAND[:2]]
    assert result["listings"] == 1


def test_a_listing_naming_thousands_of_photos_gets_its_first_max_photos(tmp_path, caplog):
    """A posting holds at most 24 photos; an answer naming 5,002 is not fetched whole."""
    with serve_fixture_site() as site:
        site.photo_flood = 5000
        result = scrape_location("portland", tmp_path / "portland", current_settings(site),
                                 lock_dir=tmp_path / "locks")
        photos = [r.path for r in site.requests if "/images/" in r.path]
    assert len(photos) == len(set(photos)) == 24 + 7  # listing 0's first 24, then the others'
    names = [name for _, name in rows_of(tmp_path / "portland")]
    assert names[:24] == (["00p0p_pdx0_a_600x450.jpg", "00p0p_pdx0_b_600x450.jpg"]
                          + [f"00p0p_flood{k}_600x450.jpg" for k in range(22)])
    assert names[24:] == [f"{p}_600x450.jpg" for _, p in PORTLAND[2:]]  # the other listings whole
    assert result["photos_over_max"] == 5002 - 24 and result["complete"]
    state = json.loads((tmp_path / "portland" / "scrape_state.json").read_text())
    assert state["photos_over_max"] == 4978
    assert caplog.text.count("names 5002 photos, more than max_photos (24)") == 1


def test_sites_from_areas_json(tmp_path):
    with serve_fixture_site() as site:
        settings = current_settings(site)
        sites = list_sites(settings["sites_url"], settings, cache=tmp_path / "sites.csv", lock_dir=tmp_path)
        assert not site.requested("/about/sites")
    cached = read_csv(tmp_path / "sites.csv")
    assert list(cached[0]) == SITES_COLUMNS
    assert [s["site"] for s in cached] == ["sfbay", "losangeles", "newyork", "reno", "austin", "portland", "boise"]
    pdx = cached[5]
    assert (pdx["area_id"], pdx["hostname"], pdx["region"], pdx["state"], pdx["latitude"], pdx["longitude"]) == (
        "9", "portland", "OR", "OR", "45.52", "-122.68")
    assert pdx["url"] == f"{site.url}/site/portland" and len(sites) == 7


def test_current_sites_page_form():
    fixture = FixtureSite()
    fixture.base, fixture.sites_form = "https://www.craigslist.org", "current"
    sites = parse_sites(fixture.current_sites_page(), "https://www.craigslist.org/about/sites",
                        "https://{site}.craigslist.org")
    assert [(s["site"], s["state"]) for s in sites] == [
        ("sfbay", "California"), ("losangeles", "California"), ("portland", "Oregon")]  # toronto is out


def test_empty_site_list_is_one_clear_error(tmp_path):
    with serve_fixture_site() as site:
        site.sites_form = "broken"
        settings = current_settings(site, areas_url=f"{site.url}/no-areas")
        with pytest.raises(SitesError) as caught:
            list_sites(settings["sites_url"], settings, cache=tmp_path / "sites.csv", lock_dir=tmp_path)
    message = str(caught.value)
    assert f"{site.url}/no-areas: HTTP 404" in message and f"{site.url}/about/sites: 0 US sites" in message
    assert "expected a US heading with site links" in message and "vacancy.sources.scrape.probe" in message
    assert not (tmp_path / "sites.csv").exists()


def test_decoding_rules():
    decode = {"minPostingId": 100, "minPostedDate": 1767225600}
    housing = [5, 60, 1, 1350, "1:0~45.5~-122.6", "0CI0t2", [4, "3:00a_b", "3:00c_d", "3:00a_b"],
               [6, "nice-room"], [10, "$1,350"], "Nice room", [5, 2, 850]]
    item = decode_item(housing, decode, "https://portland.craigslist.org")
    assert (item["listing_id"], item["title"], item["price"], item["posted"], item["image_ids"]) == (
        "105", "Nice room", "$1,350", "2026-01-01T00:01:00Z", ["00a_b", "00c_d"])
    assert item["listing_url"] == "https://portland.craigslist.org/apa/d/nice-room/105.html"
    assert decode_item({"id": 1}, decode, "x") is None and decode_item([1, "a", 2, 3, "x"], decode, "x") is None
    for body in (b"<html>", b'{"data": {}}', b'{"data": {"items": [[1]], "decode": {"minPostingId": 1}}}'):
        with pytest.raises(ApiError):
            decode_batch(body, "x")
    assert search_url("https://h/web/v8/postings/search/full", 9, 360, 1800, "abc") == (
        "https://h/web/v8/postings/search/batch?batch=9-360-1080-0-0&cc=US&lang=en&searchPath=apa"
        "&max_price=1800&cacheId=abc")


def test_max_rent_is_sent_as_max_price(tmp_path):
    with serve_fixture_site() as site:
        result = scrape_location("portland", tmp_path / "portland", current_settings(site, max_rent=1700),
                                 lock_dir=tmp_path / "locks")
        first = site.requested("/postings/search/full")
    assert [r.path.rsplit("&", 1)[1] for r in first] == ["max_price=1700"]
    assert sorted({pid for pid, _ in rows_of(tmp_path / "portland")}) == [MIN_ID + 1, MIN_ID + 8, MIN_ID + 15]
    assert result["max_rent"] == 1700.0


def test_robots_5xx_on_the_images_host_disallows_it(tmp_path):
    """RFC 9309: a robots.txt that answers 5xx means the whole host is disallowed (nothing fetched)."""
    with serve_fixture_site() as site:
        site.images_robots_status = 503
        result = scrape_location("portland", tmp_path / "portland", current_settings(site, max_listings=1),
                                 lock_dir=tmp_path / "locks")
        assert not site.requested("/images/")
        assert rows_of(tmp_path / "portland") == []
        assert result["skipped_by_reason"] == {
            "robots.txt unavailable, host treated as disallowed": 2}
        # a 5xx may pass: not complete, and the next run, finding robots.txt, fetches the photos
        assert result["complete"] is False and result["retryable"] == 2
        site.images_robots_status = 200
        again = scrape_location("portland", tmp_path / "portland", current_settings(site, max_listings=1),
                                lock_dir=tmp_path / "locks")
    assert again["complete"] is True and again["downloaded"] == 2
    assert len(rows_of(tmp_path / "portland")) == 2


def test_hostile_items_are_skipped_and_counted():
    good = [1, 0, 1, 900, "0:0~45~-122", [4, "3:00a_b"], "Fine"]
    hostile = [None, 7, "x", [], {"a": 1}, [1, 2], [True, 0, 1, 1, "x"], [1, 10**30, 1, 1, "x"],
               [1, 0, 1, "free", 5, [4, 3, None, "3:../../etc"], [6, {"x": 1}], [10, 5], [5], []],
               [1, 0, 1, 900, "0:0~999~-122", [4, "3:ok_id"], [6, "../.."], "Bad position"]]
    body = json.dumps({"data": {"items": [good, *hostile], "totalResultCount": 11,
                                "decode": {"minPostingId": 10, "minPostedDate": 1767225600}}})
    batch = decode_batch(body, "https://x.craigslist.org")
    assert batch.skipped == 8 and batch.items == 11
    odd, bad_position = batch.listings[1], batch.listings[2]
    assert (odd["price"], odd["image_ids"], odd["title"], odd["latitude"]) == ("", [], "", "")
    assert bad_position["latitude"] == "" and bad_position["listing_url"].endswith("/apa/d/listing/11.html")


def test_a_failing_images_host_stops_the_location_for_now(tmp_path):
    """Every photo answering 503 (after its retries): the location stops at max_failing in a row,
    incomplete, instead of asking for every photo; once the host is back, the rerun finishes it."""
    settings = dict(max_failing=3, retries=1)
    with serve_fixture_site() as site:
        site.images_down = True
        result = scrape_location("portland", tmp_path / "portland", current_settings(site, **settings),
                                 lock_dir=tmp_path / "locks")
        asked = [r.status for r in site.requested("/images/")]
        assert asked == [503] * 6  # 3 photos x (1 + 1 retry), then stopped
        assert result["complete"] is False and rows_of(tmp_path / "portland") == []
        assert result["reason"].startswith(
            "host failing: 3 requests in a row failed for reasons that may pass, the last: HTTP 503 "
            "(last http://127.0.0.2:")
        site.images_down = False
        again = scrape_location("portland", tmp_path / "portland", current_settings(site, **settings),
                                lock_dir=tmp_path / "locks")
    assert again["complete"] is True
    assert rows_of(tmp_path / "portland") == [(pid, f"{photo}_600x450.jpg") for pid, photo in PORTLAND]


def test_photos_answered_with_html_pages_in_a_row_stop_the_location(tmp_path):
    """A block may come as status 200 with an HTML page for every photo: max_forbidden of them in
    a row stop the location as blocked (not 'complete' with no photos); the rerun finishes it."""
    with serve_fixture_site() as site:
        site.images_challenge = True
        result = scrape_location("portland", tmp_path / "portland", current_settings(site),
                                 lock_dir=tmp_path / "locks")
        assert len(site.requested("/images/")) == 3  # max_forbidden: 3, then stopped
        assert result["complete"] is False and rows_of(tmp_path / "portland") == []
        assert result["reason"].startswith("blocked: an HTML page instead of a photo 3 times in a "
                                           "row (a block or challenge page?) (last http://127.0.0.2:")
        assert result["skipped_by_reason"] == {"an HTML page, not an image": 2}
        site.images_challenge = False
        again = scrape_location("portland", tmp_path / "portland", current_settings(site),
                                lock_dir=tmp_path / "locks")
    assert again["complete"] is True
    assert rows_of(tmp_path / "portland") == [(pid, f"{photo}_600x450.jpg") for pid, photo in PORTLAND]
