"""Parsing Craigslist pages, naming files and the fetcher's rules: pure functions and small
HTTP servers on loopback, checked on exact values."""
from __future__ import annotations

import contextlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vacancy.sources.scrape import max_rent_for, sanitize_filename, select_sites
from vacancy.sources.scrape.fetch import FetchError, host_allowed, retry_after_s
from vacancy.sources.scrape.parse import (
    image_key, largest_images, parse_posting, parse_results, parse_sites, url_filename,
)
from vacancy.sources.scrape.sites import state_code

from fixture_site import HOSTILE_TITLE, FixtureSite

BASE = "http://127.0.0.1:8000"


def site() -> FixtureSite:
    fixture = FixtureSite()
    fixture.base = BASE
    return fixture


def test_sites_page_us_section_only_with_states():
    sites = parse_sites(site().sites_page(), f"{BASE}/about/sites", BASE + "/site/{site}")
    assert [(s["site"], s["state"]) for s in sites] == [
        ("sfbay", "California"), ("losangeles", "California"), ("newyork", "New York"),
        ("reno", "Nevada"), ("austin", "Texas")]  # toronto, berlin and the forums link are out
    assert sites[0]["name"] == "SF bay area"


def test_sites_page_real_template_matches_craigslist_links():
    html = ('<h1><a name="US"></a>US</h1><h4>Alabama</h4><ul><li><a href="https://auburn.craigslist.org/">'
            'auburn</a></li><li><a href="//bham.craigslist.org">birmingham</a></li></ul>'
            '<h1><a name="CA"></a>Canada</h1><ul><li><a href="https://toronto.craigslist.org/">t</a></li></ul>')
    sites = parse_sites(html, "https://www.craigslist.org/about/sites", "https://{site}.craigslist.org")
    assert [(s["site"], s["state"]) for s in sites] == [("auburn", "Alabama"), ("bham", "Alabama")]


def test_old_result_rows_give_image_ids_and_listing_text_verbatim():
    fixture = site()
    _, page = fixture.results("sfbay", 0)
    rows = parse_results(page, f"{BASE}/site/sfbay/search/apa?s=0")
    assert [r["listing_id"] for r in rows] == ["7000000001", "7000000002", "7000000003"]
    assert rows[0]["image_ids"] == ["00a0a_sf1", "00a0a_sf2"]
    assert rows[0]["price"] == "$2,500" and rows[0]["posted"] == "2022-09-01 10:00"
    assert rows[1]["title"] == HOSTILE_TITLE
    assert rows[0]["listing_url"] == f"{BASE}/site/sfbay/apa/d/listing-7000000001/7000000001.html"


def test_static_result_rows_need_posting_pages():
    _, page = site().results("newyork", 2)
    rows = parse_results(page, f"{BASE}/site/newyork/search/apa?s=2")
    assert [(r["listing_id"], r["title"], r["price"], r["image_ids"]) for r in rows] == [
        ("7100000003", "Hostile names", "$2,000", None), ("7100000004", "Faults", "$2,200", None),
        ("7100000005", "Robots says no", "$1", None)]


def test_posting_takes_largest_size_from_thumbs_and_imglist():
    fixture = site()
    _, page = fixture.posting_page("/site/newyork/apa/d/loft/7100000001.html")
    posting = parse_posting(page, f"{BASE}/x.html")
    assert posting["images"] == [f"{BASE}/images/00b0b_ny1_1200x900.jpg", f"{BASE}/images/x.jpg"]
    assert (posting["title"], posting["price"], posting["posted"]) == ("Loft", "$4,000", "2022-09-10T10:00:00-0400")
    _, page = fixture.posting_page("/site/newyork/apa/d/studio/7100000002.html")
    assert parse_posting(page, f"{BASE}/y.html")["images"] == [
        f"{BASE}/images/00b0b_ny2_600x450.jpg", f"{BASE}/images/00b0b_ny3_600x450.jpg"]


def test_image_key_ignores_size_and_largest_wins():
    urls = ["https://images.craigslist.org/00a_b_50x50c.jpg", "https://images.craigslist.org/00a_b_1200x900.jpg",
            "https://images.craigslist.org/00a_b_600x450.jpg"]
    assert {image_key(u) for u in urls} == {"images.craigslist.org/00a_b"}
    assert largest_images(urls) == ["https://images.craigslist.org/00a_b_1200x900.jpg"]


@pytest.mark.parametrize("raw, safe", [
    ("../../x.jpg", "x.jpg"), (".bashrc", "bashrc.jpg"), ("-rf.jpg", "rf.jpg"), ("..", "image.jpg"),
    ("a b\x00c;rm.png", "a_b_c_rm.png"), ("..\\..\\win.JPG", "win.JPG"), ("x..y.jpg", "x.y.jpg"),
    ("00L0L_abc_600x450.jpg", "00L0L_abc_600x450.jpg"), ("photo.php", "photo.php.jpg"),
])
def test_sanitize_filename(raw, safe):
    assert sanitize_filename(raw) == safe


def test_long_names_are_bounded_and_keep_suffix():
    name = sanitize_filename("y" * 400 + ".jpeg")
    assert len(name) == 120 and name.endswith(".jpeg")


def test_url_filename_decodes_before_sanitising():
    assert url_filename(f"{BASE}/images/..%2F..%2Fx.jpg") == "x.jpg"
    assert url_filename(f"{BASE}/images/%2Ebashrc?x=1") == "bashrc.jpg"


def test_select_sites_all_list_and_slice():
    sites = [{"site": n} for n in ("a", "b", "c", "d")]
    assert select_sites(sites, "all", 1, 2) == ["b", "c"]
    assert select_sites(sites, "all", 0, None) == ["a", "b", "c", "d"]
    assert select_sites(sites, ["d", "a", "d"], 0, None) == ["d", "a"]
    with pytest.raises(ValueError):
        select_sites(sites, "everything", 0, None)


def test_max_rent_census_number_none():
    assert max_rent_for("California", "census") == round(91551 * 0.3 / 12) == 2289
    assert max_rent_for("MS", "census") == round(52719 * 0.3 / 12)
    assert max_rent_for("Guam", "census") is None
    assert max_rent_for("California", 1800) == 1800.0
    assert max_rent_for("California", None) is None
    assert state_code("New York") == "NY" and state_code("Territories") == "Territories"


def test_allow_list_and_retry_after():
    allowed = ["craigslist.org"]
    assert host_allowed("https://images.craigslist.org/a.jpg", allowed)
    assert not host_allowed("https://craigslist.org.evil.com/a.jpg", allowed)
    assert not host_allowed("file:///etc/passwd", allowed)
    assert not host_allowed("https://evilcraigslist.org/a.jpg", allowed)
    assert retry_after_s("7") == 7.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_s("soon") is None


def test_hostile_urls_and_values_are_refused_not_raised():
    """URLs on which Python's and urllib3's parsers disagree about the host (a backslash before
    an "@": requests would connect to the first host), URLs that do not parse, Retry-After
    digits that are not ASCII, and JSON nested past Python's recursion limit."""
    from vacancy.sources.scrape.api import ApiError, decode_batch
    from vacancy.sources.scrape.fetch import redirect_target
    from vacancy.sources.scrape.parse import _http_url, loads_json, parse_areas

    allowed = ["craigslist.org", "127.0.0.1"]
    assert not host_allowed("http://evil.example\\@images.craigslist.org/x.jpg", allowed)
    assert not host_allowed("http://127.0.0.6:8000\\@127.0.0.1/x.jpg", allowed)
    assert not host_allowed("http://[::1/evil.jpg", allowed)
    assert not host_allowed("http://127.0.0.1/a\nb.jpg", allowed)
    assert host_allowed("http://127.0.0.1:8000/a%20b.jpg", allowed)
    assert retry_after_s("\u00b2") is None and retry_after_s(" 12 ") == 12.0
    with pytest.raises(FetchError, match="unparseable"):
        redirect_target("http://127.0.0.1/x", "http://[::1/evil.jpg")
    assert _http_url("http://127.0.0.1/", "http://[::1/evil.jpg") is None
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ValueError, match="nested too deeply"):
        loads_json(deep)
    with pytest.raises(ValueError):
        parse_areas(deep, "https://{site}.craigslist.org")
    with pytest.raises(ApiError, match="not JSON"):
        decode_batch(deep, "https://sfbay.craigslist.org")


def test_the_example_config_and_the_fixture_settings_pass_the_schema():
    """The scraper's DEFAULTS are the schema's own (vacancy.sources.scrape.defaults reads them); what
    users and the tests write must pass the same schema, and typos must not."""
    import jsonschema
    import yaml

    from fixture_site import scrape_settings

    repo = Path(__file__).resolve().parents[1]
    schema = yaml.safe_load((repo / "workflow/schemas/config.schema.yaml").read_text())
    example = yaml.safe_load((repo / "config/craigslist-example.yaml").read_text())["craigslist"]
    jsonschema.validate({"craigslist": example}, schema)
    jsonschema.validate({"craigslist": scrape_settings(BASE, locations=["sfbay"])}, schema)
    for bad in ({"locations": "every"}, {"max_rent": "lots"}, {"site_url": "https://x.org"}, {"delay": 1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"craigslist": bad}, schema)


def test_a_far_pause_left_in_a_host_lock_is_capped(tmp_path, monkeypatch):
    """A 'not before' stamp a year ahead (a robots.txt Crawl-delay of a year, from an earlier
    run) makes a host wait at most max_wait, not a year."""
    import time

    from vacancy.sources.scrape import fetch

    gate = fetch.HostGate(tmp_path, "127.0.0.1:9", max_wait=2.5)
    gate.path.write_text(f"{time.time() + 365 * 86400:.6f}")
    waits = []
    monkeypatch.setattr(fetch.time, "sleep", waits.append)
    with gate.turn():
        pass
    assert len(waits) == 1 and 0 < waits[0] <= 2.5


@contextlib.contextmanager
def loopback(answer, host: str = "127.0.0.1"):
    """A real HTTP server on ``host`` (any 127/8 address) whose GETs ``answer(handler)`` serves;
    yields its ``host:port``."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server API)
            answer(self)

        def log_message(self, *args):  # keep test output quiet
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def reply(handler, status: int, body: bytes = b"", headers: dict | None = None) -> None:
    handler.send_response(status)
    for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)


def test_fetcher(tmp_path, **settings):
    """A Fetcher for 127.0.0.1 with no pauses and no retries unless asked."""
    from vacancy.sources.scrape.fetch import Fetcher

    return Fetcher({"allowed_hosts": ["127.0.0.1"], "delay_s": 0.0, "jitter": 0.0,
                    "timeout_s": 5, "retries": 0, **settings}, tmp_path / "locks")


test_fetcher.__test__ = False  # a helper, not a test


def test_a_backslash_redirect_never_reaches_the_other_host(tmp_path):
    """127.0.0.1 redirects a photo to ``http://127.0.0.6:P\\@127.0.0.1:P/``. Python's parser
    reads host 127.0.0.1 (allowed), requests would connect to 127.0.0.6: the fetcher refuses it
    by name and 127.0.0.6 is never asked for anything."""
    from vacancy.sources.scrape.fetch import NotAllowed

    seen = []

    def other(handler):
        seen.append(handler.path)
        reply(handler, 200, b"x")

    with loopback(other, "127.0.0.6") as elsewhere:
        port = elsewhere.rsplit(":", 1)[1]

        def site(handler):
            if handler.path == "/robots.txt":
                return reply(handler, 404)
            reply(handler, 302, headers={"Location": f"http://{elsewhere}\\@127.0.0.1:{port}/x.jpg"})

        with loopback(site) as here:
            fetcher = test_fetcher(tmp_path)
            try:
                with pytest.raises(NotAllowed, match="127.0.0.6"):
                    fetcher.get(f"http://{here}/images/a.jpg")
            finally:
                fetcher.close()
    assert seen == []


def test_headers_sent_a_byte_at_a_time_meet_the_deadline(tmp_path):
    """Real HTTP on loopback: a server sends its status line, then one header byte every 0.1 s
    for up to 20 s. A read timeout never fires (every byte comes in time); the request must
    still end at timeout_s as a FetchError that says so: the client hangs up while the server
    is still sending (before, it waited the server's 20 s out)."""
    import socket
    import threading

    from vacancy.sources.scrape.fetch import FetchError

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    sent = []  # header bytes the server got out before the client hung up

    def serve():
        while not stop.is_set():
            try:
                listener.settimeout(0.2)
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                try:
                    conn.sendall(b"HTTP/1.1 200 OK\r\n")
                    for _ in range(200):  # 20 s of "X-Slow: aaaa..."
                        if stop.wait(0.1):
                            break
                        conn.sendall(b"X-Slow: a\r\n" if _ % 10 == 9 else b"a" if _ % 10 else b"X")
                        sent.append(_)
                    conn.sendall(b"\r\n\r\nContent-Length: 1\r\n\r\nx")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/robots.txt"
    fetcher = test_fetcher(tmp_path, timeout_s=0.5)
    try:
        with pytest.raises(FetchError, match="no complete response within 0.5 s"):
            fetcher._attempts(url, 1000)
    finally:
        fetcher.close()
        stop.set()
        thread.join()
        listener.close()
    assert 0 < len(sent) < 200


def test_pages_are_capped_lower_than_photos(tmp_path):
    """A 2.5 MB page is refused by name (parsing a hostile one costs far more memory than its
    size), a 2.5 MB photo is not."""
    from vacancy.sources.scrape.defaults import MAX_PAGE_BYTES
    from vacancy.sources.scrape.fetch import FetchError

    body = b"<i>" * (2_500_000 // 3)
    with loopback(lambda h: reply(h, 404) if h.path == "/robots.txt" else reply(h, 200, body)) as host:
        fetcher = test_fetcher(tmp_path, max_bytes=20_000_000)
        try:
            assert len(fetcher.get(f"http://{host}/photo.jpg").body) == len(body)
            with pytest.raises(FetchError, match=re.escape(f"larger than max_bytes ({MAX_PAGE_BYTES})")):
                fetcher.get_page(f"http://{host}/search/apa")
        finally:
            fetcher.close()


def test_the_last_retry_after_is_honoured_by_the_next_request(tmp_path):
    """A 429 with Retry-After: 30 on the last attempt still pauses the host (its lock's 'not
    before' stamp), so the next photo does not follow at once."""
    import time

    from vacancy.sources.scrape.fetch import FetchError, HostGate

    with loopback(lambda h: reply(h, 404 if h.path == "/robots.txt" else 429,
                                  headers={"Retry-After": "30"})) as host:
        fetcher = test_fetcher(tmp_path)
        try:
            with pytest.raises(FetchError, match="HTTP 429"):
                fetcher.get(f"http://{host}/images/a.jpg")
            asked_at = time.time()
        finally:
            fetcher.close()
    not_before = float(HostGate(tmp_path / "locks", host).path.read_text())
    assert not_before > asked_at + 25


def test_failures_that_may_pass_stop_the_fetcher_only_in_a_row(tmp_path):
    """Any answer of the site (a 200, a 404) resets the count; a URL refused without asking
    (not in allowed_hosts) neither counts nor resets; max_failing in a row raise Failing."""
    from vacancy.sources.scrape.fetch import Failing

    def site(handler):
        status = {"/robots.txt": 404, "/ok": 200, "/gone": 404}.get(handler.path, 503)
        reply(handler, status, b"fine" if status == 200 else b"")

    outcomes = []
    with loopback(site) as host:
        fetcher = test_fetcher(tmp_path, max_failing=2)
        for url in (f"http://{host}/down", f"http://{host}/ok", f"http://{host}/down",
                    f"http://{host}/gone", f"http://{host}/down", "http://elsewhere.example/x",
                    f"http://{host}/down"):
            try:
                fetcher.get(url)
                outcomes.append("ok")
            except Failing as exc:
                outcomes.append(f"stop: {exc.reason}")
            except FetchError as exc:
                outcomes.append(f"{'may pass' if exc.transient else 'final'}: {exc.reason}")
    assert outcomes == ["may pass: HTTP 503", "ok", "may pass: HTTP 503", "final: HTTP 404",
                        "may pass: HTTP 503", "final: host not in allowed_hosts (not fetched)",
                        "stop: 2 requests in a row failed for reasons that may pass, the last: HTTP 503"]
