"""A local fixture Craigslist: a real HTTP server on 127.0.0.1 that records every request.

Why: the scraper's promises (politeness, never fetching what it must not, surviving faults) can
only be checked against a server that keeps its own record of what was asked and when. Start it
with :func:`serve_fixture_site`; point the scraper at it with :func:`scrape_settings` (settings
for ``scrape_location``) or :func:`config_overrides` (a ``config.yaml`` for the workflow).

Sites (US section; Canada and Europe sections must be ignored):

* ``sfbay`` (California): older ``li.result-row`` layout, 3 listings a page, 2 pages then an
  empty one. Page ``s=3`` fails twice with 500. Photos: ``00a0a_sf1`` is in listings 1 and 3
  (cross-post), ``00r0r_sf429`` answers 429 + Retry-After: 1 once, ``00c0c_sfcut`` is cut
  short while ``site.cut_short`` is True (it is at first), ``00h0h_sfhtml`` is an HTML page sent as image/jpeg. Listing 6 has no photos.
* ``newyork`` (New York): current ``li.cl-static-search-result`` layout, posting pages with
  ``#thumbs`` and/or ``imgList``; hostile names; a redirect off-site; a photo on a host outside the
  allow-list; a robots-disallowed photo and posting; a never-ending response; an oversized body;
  a PNG claiming 10000x10000 pixels; the sfbay photo ``00a0a_sf1`` again (cross-location).
* ``austin`` (Texas): no listings. ``reno`` (Nevada): listing 1 works, then every posting page
  answers 403 while ``site.blocked`` is True.
* ``losangeles`` (California): ``bulk`` clean listings of 3 photos each, for end-to-end runs.

The Craigslist of 2024-2026 (issue 10), alongside the old forms above:

* ``/Areas``: the Areas JSON (``reference.craigslist.org/Areas``), a JSON array of
  ``{Abbreviation, AreaID, Country, Description, Hostname, Latitude, Longitude, Region,
  ShortDescription, SubAreas, Timezone}``; US and non-US areas. Sources: issue 10; a 2025 Supabase
  function's ``CraigslistArea`` record (area_id, abbreviation, hostname, description, country,
  region, latitude, longitude), found with the search tool (code corpus, "reference.craigslist.org
  Areas").
* ``/about/sites`` in its current form when ``sites_form == "current"`` (``h2`` per country,
  ``h4`` per state, ``.../area/<site>`` links; issue 10), or with links of an unknown form
  (``"broken"``: the sites list comes back empty).
* ``/sapi/web/v8/postings/search/full`` and ``.../batch``: the search API. Its shape follows the
  public clients found with the search tool (code corpus, find_string "minPostingId"): a Python
  v7 client (``posting_id = i[0] + minPostingId``, ``timestamp = i[1] + minPostedDate``, price
  ``i[3]``, ``i[4]`` "loc~lat~lon"), a 2026 car-listing sweeper (tags ``{4: photos "3:<id>",
  6: slug, 10: price text, 13: token}``, ``decode`` may be 0 when empty), a Kotlin client's test
  body (``"items":[[1,2,145,10,"1:0~1~1","0CI0t2",[21,...],[13,...],"A car"]]``: a plain string
  that is not the title, so the title is the *last* plain string). ``portland`` (area 9) answers
  with ``api_first`` items, then continuation batches at ``/batch`` that need the ``cacheId``;
  item 1 is housing (ends with ``[5, beds, sqft]`` after its title), one item is malformed,
  listing 2 cross-posts a photo of listing 0, listing 4's photo has no 1200x900 size.
  ``boise`` (area 52) answers for another area (``data.areas`` names sfbay), as the API is
  reported to do when it scopes by the caller's IP. The shape of ``data.areas`` (a list of
  ``{areaId, hostname, abbreviation}``) is this fixture's assumption.
* ``/site/portland/search/apa`` redirects (301) to the canonical ``/search/area/portland``: the
  static list (``li.cl-static-search-result``: link, title, price, location, no photos, no
  ``data-pid``; ``s=`` ignored) and the ``ld_searchpage_results`` JSON-LD block; listings link to
  ``/view/d/<slug>/<22-character token>`` postings whose photos are ``a.thumb`` links inside
  ``#thumbs`` (``data-imgid``, ``href`` to the 600x450 image) and whose id is only in
  "post id: N" (issue 10; scrapers found with the search tool, pages/code corpora,
  "cl-static-search-result": the static list "contains no pictures at all").
* ``format=rss`` answers 403 (RSS retired in 2023, same sources).
* Photos of the current sites come from a separate images host on 127.0.0.2 with its own
  robots.txt; ``images_robots_status = 403`` makes that robots.txt forbidden, which must not block
  (RFC 9309: 4xx means no rules); ``images_down = True`` makes it answer 503 to every photo,
  ``images_challenge = True`` a 200 HTML page (a block that does not say so).
* ``changed``: a set of format changes for the probe's tests: ``"api_photos"`` (the photo block
  gets another tag), ``"html_list"`` (the static list gets another class).
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import struct
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image

ROBOTS = "User-agent: *\nDisallow: /private/\n"
#: Listing title with markup, quotes, a comma and a formula: must be stored verbatim as text.
HOSTILE_TITLE = '<script>alert("x")</script>, =SUM(A1) \'quoted\''
RETRY_AFTER_S = 1
#: The current sites: hostname -> (AreaID, Region, Description, latitude, longitude).
AREAS = {
    "sfbay": (1, "CA", "SF bay area", 37.5, -122.25), "losangeles": (7, "CA", "los angeles", 34.05, -118.25),
    "newyork": (3, "NY", "new york city", 40.71, -73.99), "reno": (92, "NV", "reno / tahoe", 39.53, -119.81),
    "austin": (15, "TX", "austin", 30.27, -97.74), "portland": (9, "OR", "portland", 45.52, -122.68),
    "boise": (52, "ID", "boise", 43.61, -116.2),
}
#: Epoch and id bases of the API's offsets (2026-01-01T00:00:00Z).
MIN_POSTED, MIN_ID = 1767225600, 7800000000


def portland_listing(n: int) -> dict:
    """What the API and the HTML of portland both say about listing ``n``."""
    photos = [f"00p0p_pdx{n}_a", f"00p0p_pdx{n}_b"]
    if n == 2:
        photos.append("00p0p_pdx0_a")  # a cross-post of listing 0's photo
    if n == 4:
        photos = ["00p0p_pdx4_no1200"]  # no 1200x900 size on the images host
    title = HOSTILE_TITLE if n == 3 else f"Portland room {n}"
    return {"id_offset": 7 * n + 1, "posted_offset": 3600 * n, "price": 1500 + 100 * n, "photos": photos,
            "slug": f"room-{n}", "token": f"{n:02d}Tok{'x' * 17}", "title": title,
            "lat": round(45.5 + n / 100, 4), "lon": round(-122.6 - n / 100, 4)}


@dataclass
class Request:
    t: float        # time.time() when the server read the request line
    path: str       # raw path with query, as sent
    host: str       # Host header
    user_agent: str
    status: int = 0


def photo_bytes(name: str, size=(96, 72)) -> bytes:
    """A deterministic JPEG for a photo name: smooth noise, so triage sees a photo, not a graphic."""
    seed = zlib.crc32(name.encode())
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[1] // 4, size[0] // 4, 3), dtype=np.uint8)
    base = Image.fromarray(small).resize(size, Image.BICUBIC)
    noise = rng.integers(-40, 40, (size[1], size[0], 3))
    pixels = np.clip(np.asarray(base, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def giant_png(width: int = 10000, height: int = 10000) -> bytes:
    """A tiny PNG whose header claims gigantic dimensions."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


class FixtureSite:
    """Content and faults of the fixture Craigslist; the server asks it for each response."""

    def __init__(self, bulk: int = 0, portland: int = 5):
        self.bulk = bulk
        self.portland = portland       # listings of the API site portland
        self.api_first = 3             # items in the first API answer (Craigslist: 360)
        self.api_next = 1080           # items in a continuation batch
        self.sites_form = "old"        # "old", "current" or "broken"
        self.images_robots_status = 200
        self.images_down = False       # the images host answers 503 to every photo while True
        self.images_challenge = False  # ... or, while True, a 200 HTML page (a soft block)
        self.photo_flood = 0           # extra photo ids listing 0 names in the API (hostile)
        self.changed: set[str] = set()
        self.base = ""                 # set once the server has its port
        self.images_base = ""          # the images host (127.0.0.2)
        self.requests: list[Request] = []
        self.counts: Counter = Counter()
        self.blocked = True            # reno's postings answer 403 while True
        self.cut_short = True          # sfbay's photo 00c0c_sfcut is sent cut short while True
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    # -- what the tests read --------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.base

    def paths(self) -> list[str]:
        with self.lock:
            return [r.path for r in self.requests]

    def requested(self, fragment: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if fragment in r.path]

    # -- pages ----------------------------------------------------------------------------------

    def sites_page(self) -> str:
        b = self.base
        return f"""<html><body><h1><a name="US"></a>US</h1>
<div class="colmask"><div class="box box_1">
<h4>California</h4><ul><li><a href="{b}/site/sfbay/">SF bay area</a></li>
<li><a href="{b}/site/losangeles/">los angeles</a></li></ul>
<h4>New York</h4><ul><li><a href="{b}/site/newyork/">new york city</a></li></ul>
</div><div class="box box_2">
<h4>Nevada</h4><ul><li><a href="{b}/site/reno/">reno / tahoe</a></li></ul>
<h4>Texas</h4><ul><li><a href="{b}/site/austin/">austin</a></li>
<li><a href="https://forums.example.org/">forums</a></li></ul>
</div></div>
<h1><a name="CA"></a>Canada</h1>
<div class="colmask"><h4>Ontario</h4><ul><li><a href="{b}/site/toronto/">toronto</a></li></ul></div>
<h1><a name="EU"></a>Europe</h1>
<div class="colmask"><h4>Germany</h4><ul><li><a href="{b}/site/berlin/">berlin</a></li></ul></div>
</body></html>"""

    def current_sites_page(self) -> str:
        """The sites page as reported in 2026: h2 per country, links to www.../area/<site>."""
        b = self.base
        link = (lambda site: f"{b}/elsewhere/{site}.html") if self.sites_form == "broken" else (
            lambda site: f"{b}/area/{site}")
        return f"""<html><body><h1>craigslist: choose a site</h1><h2>United States</h2>
<h4>California</h4><ul><li><a href="{link('sfbay')}">SF bay area</a></li>
<li><a href="{link('losangeles')}">los angeles</a></li></ul>
<h4>Oregon</h4><ul><li><a href="{link('portland')}">portland</a></li></ul>
<h2>Canada</h2><h4>Ontario</h4><ul><li><a href="{link('toronto')}">toronto</a></li></ul></body></html>"""

    def areas(self) -> str:
        """The Areas JSON: every area with its id, host name, region and position; one non-US."""
        records = [{"Abbreviation": host[:3], "AreaID": area, "Country": "US", "Description": name,
                    "Hostname": host, "Latitude": lat, "Longitude": lon, "Region": region,
                    "ShortDescription": name, "SubAreas": [], "Timezone": "America/Los_Angeles"}
                   for host, (area, region, name, lat, lon) in AREAS.items()]
        records.append({"Abbreviation": "tor", "AreaID": 25, "Country": "CA", "Description": "toronto",
                        "Hostname": "toronto", "Latitude": 43.65, "Longitude": -79.38, "Region": "ON",
                        "ShortDescription": "toronto", "SubAreas": [], "Timezone": "America/Toronto"})
        return json.dumps(records)

    def api_item(self, n: int) -> list:
        """Portland listing ``n`` as the API encodes it: offsets, then tagged blocks and the title."""
        x = portland_listing(n)
        photo_tag = 21 if "api_photos" in self.changed else 4
        item = [x["id_offset"], x["posted_offset"], 1, x["price"], f"{n}:0~{x['lat']}~{x['lon']}",
                "0CI0t2", [photo_tag, *[f"3:{p}" for p in x["photos"]],
                           *[f"3:00p0p_flood{k}" for k in range(self.photo_flood if n == 0 else 0)]],
                [6, x["slug"]],
                [10, f"${x['price']:,}"], [13, x["token"]], x["title"]]
        if n == 1:
            item.append([5, 2, 850])  # housing: beds and sqft after the title
        return item

    def api(self, path: str, query: dict) -> tuple[int, str]:
        """The search API: first answer at /full, continuation batches at /batch with cacheId."""
        area, offset, count = (int(v) for v in query.get("batch", ["0-0-0"])[0].split("-")[:3])
        host = next((h for h, a in AREAS.items() if a[0] == area), None)
        if path.endswith("/batch") and query.get("cacheId") != ["c-9-1"]:
            return 400, json.dumps({"errors": ["unknown cacheId"]})
        if host == "boise":  # answered for the caller's IP, not for the area asked
            items, answered = [self.api_item(0)], {"areaId": 1, "hostname": "sfbay", "abbreviation": "sfo"}
        elif host == "portland":
            cap = int(query.get("max_price", ["0"])[0]) or None  # max_price filters as the site does
            listing = [self.api_item(n) for n in range(self.portland)
                       if not cap or portland_listing(n)["price"] <= cap]
            everything = listing[:2] + [["not", "an item"]] + listing[2:]  # one malformed item
            limit = min(count, self.api_first if offset == 0 else self.api_next)
            items, answered = everything[offset:offset + limit], {"areaId": 9, "hostname": "portland"}
            total = len(everything)
        else:
            return 404, json.dumps({"errors": ["no such area"]})
        total = total if host == "portland" else len(items)
        return 200, json.dumps({"data": {
            "items": items, "totalResultCount": total, "cacheId": "c-9-1", "cacheTs": MIN_POSTED,
            "areas": [answered], "location": {"areaId": answered["areaId"]},
            "decode": {"minPostingId": MIN_ID, "minPostedDate": MIN_POSTED, "locations": [[area, host, ""]]},
        }, "errors": []})

    def current_results(self, site: str) -> tuple[int, str]:
        """The canonical result page: the static list (no photos, no paging) and the JSON-LD block."""
        if site == "boise":
            rows, ld = [(f"{self.base}/view/d/boise-room/B{'y' * 21}", "Boise room", "$900", "boise")], []
        else:
            xs = [portland_listing(n) for n in range(self.portland)]
            rows = [(f"{self.base}/view/d/{x['slug']}/{x['token']}", x["title"], f"${x['price']:,}", "pdx")
                    for x in xs]
            ld = [{"@type": "ListItem", "position": str(k), "item": {
                "@type": "Apartment", "name": x["title"], "latitude": x["lat"], "longitude": x["lon"],
                "image": [f"{self.images_base}/images/{p}_600x450.jpg" for p in x["photos"]]}}
                for k, x in enumerate(xs)]
        css = "cl-search-result-changed" if "html_list" in self.changed else "cl-static-search-result"
        items = "".join(f"""<li class="{css}" title="{html.escape(t)}"><a href="{u}">
<div class="title">{html.escape(t)}</div><div class="details"><div class="price">{p}</div>
<div class="location">{loc}</div></div></a></li>""" for u, t, p, loc in rows)
        # "</" escaped as a server must inside a script (a title may contain "</script>")
        block = json.dumps({"@context": "https://schema.org", "@type": "ItemList",
                            "itemListElement": ld}).replace("</", "<\\/")
        return 200, f"""<html><head><script type="application/ld+json" id="ld_searchpage_results">{block}</script>
</head><body><ol class="cl-static-search-results">{items}</ol></body></html>"""

    def view_page(self, path: str) -> tuple[int, str]:
        """A posting at ``/view/d/<slug>/<token>``: photos as ``a.thumb`` links, id only in the text."""
        slug, token = path.split("/")[3:5]
        found = [portland_listing(n) for n in range(self.portland)]
        found = [x for x in found if x["token"] == token]
        if token == f"B{'y' * 21}":
            x = {"id_offset": 99, "posted_offset": 0, "price": 900, "photos": ["00q0q_boise1"],
                 "title": "Boise room"}
        elif found:
            x = found[0]
        else:
            return 404, "<html>no such posting</html>"
        links = "".join(f'<a class="thumb" data-imgid="3:{p}" href="{self.images_base}/images/{p}_600x450.jpg">'
                        f'<img src="{self.images_base}/images/{p}_50x50c.jpg"></a>' for p in x["photos"])
        posted = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(MIN_POSTED + x["posted_offset"]))
        return 200, f"""<html><head><title>{html.escape(x['title'])}</title></head><body>
<h1 class="postingtitle"><span class="postingtitletext"><span id="titletextonly">{html.escape(x['title'])}</span>
<span class="price">${x['price']:,}</span></span></h1><div class="gallery"><div id="thumbs">{links}</div></div>
<div class="postinginfos"><p class="postinginfo">post id: {MIN_ID + x['id_offset']}</p>
<p class="postinginfo reveal">posted: <time class="date timeago" datetime="{posted}">ago</time></p></div>
</body></html>"""

    def old_rows(self, site: str, rows: list[tuple]) -> str:
        """``li.result-row`` list; rows are (pid, title, price, posted, image ids)."""
        items = []
        for pid, title, price, posted, ids in rows:
            url = f"{self.base}/site/{site}/apa/d/listing-{pid}/{pid}.html"
            data_ids = ",".join(f"3:{i}" for i in ids)
            items.append(f"""<li class="result-row" data-pid="{pid}">
<a href="{url}" class="result-image gallery" data-ids="{data_ids}"><span class="result-price">{price}</span></a>
<div class="result-info"><time class="result-date" datetime="{posted}">date</time>
<h3 class="result-heading"><a href="{url}" data-id="{pid}" class="result-title hdrlnk">{html.escape(title)}</a></h3>
<span class="result-meta"><span class="result-price">{price}</span></span></div></li>""")
        return f'<html><body><ul class="rows">{"".join(items)}</ul></body></html>'

    def static_rows(self, site: str, rows: list[tuple]) -> str:
        """``li.cl-static-search-result`` list; rows are (listing path, title, price)."""
        items = [f"""<li class="cl-static-search-result" title="{html.escape(title)}">
<a href="{self.base}{path}"><div class="title">{html.escape(title)}</div>
<div class="details"><div class="price">{price}</div><div class="location">x</div></div></a></li>"""
                 for path, title, price in rows]
        return f'<html><body><ol class="cl-static-search-results">{"".join(items)}</ol></body></html>'

    def posting(self, title: str, price: str, posted: str, thumbs=(), imglist=()) -> str:
        links = "".join(f'<a href="{href}" class="thumb"><img src="{src}"></a>' for href, src in thumbs)
        thumbs_html = f'<div id="thumbs">{links}</div>' if thumbs else ""
        script = ""
        if imglist:
            entries = [{"shortid": str(i), "imgid": f"3:{i}", "url": url, "thumb": thumb}
                       for i, (url, thumb) in enumerate(imglist)]
            script = f"<script>\nvar imgList = {json.dumps(entries)};\n</script>"
        return f"""<html><head><title>{html.escape(title)} - fixture</title></head><body>
<h1 class="postingtitle"><span class="postingtitletext"><span id="titletextonly">{html.escape(title)}</span>
<span class="price">{price}</span></span></h1>
<section id="postingbody">A room. {html.escape(title)}</section>
{thumbs_html}
<div class="postinginfos"><p class="postinginfo reveal">posted:
<time class="date timeago" datetime="{posted}">ago</time></p></div>{script}</body></html>"""

    def img(self, name: str) -> str:
        return f"{self.base}/images/{name}"

    def results(self, site: str, offset: int) -> tuple[int, str]:
        b = self.base
        if site == "sfbay":
            pages = {
                0: [(7000000001, "Sunny room", "$2,500", "2022-09-01 10:00", ["00a0a_sf1", "00a0a_sf2"]),
                    (7000000002, HOSTILE_TITLE, "$1,900", "2022-09-02 11:00", ["00r0r_sf429", "00a0a_sf3"]),
                    (7000000003, "Same photo again", "$2,100", "2022-09-03 12:00", ["00a0a_sf1", "00a0a_sf4"])],
                3: [(7000000004, "Cut short", "$3,000", "2022-09-04 09:00", ["00c0c_sfcut", "00a0a_sf5"]),
                    (7000000005, "Html photo", "$1,200", "2022-09-05 09:30", ["00h0h_sfhtml", "00a0a_sf6"]),
                    (7000000006, "No photos", "$999", "2022-09-06 08:00", [])],
            }
            if offset == 3:
                self.counts["sfbay-page-3"] += 1
                if self.counts["sfbay-page-3"] <= 2:
                    return 500, "<html>temporarily broken</html>"
            return 200, self.old_rows(site, pages.get(offset, []))
        if site == "losangeles":
            rows = [(7200000000 + n, f"Bulk {n}", f"${1000 + n}", "2022-10-01 10:00",
                     [f"00l0l_la{n}_{k}" for k in range(3)]) for n in range(self.bulk)]
            return 200, self.old_rows(site, rows[offset:offset + 20])
        if site == "newyork":
            pages = {
                0: [("/site/newyork/apa/d/loft/7100000001.html", "Loft", "$4,000"),
                    ("/site/newyork/apa/d/studio/7100000002.html", "Studio", "$3,100")],
                2: [("/site/newyork/apa/d/hostile/7100000003.html", "Hostile names", "$2,000"),
                    ("/site/newyork/apa/d/faults/7100000004.html", "Faults", "$2,200"),
                    ("/private/7100000005.html", "Robots says no", "$1")],
            }
            return 200, self.static_rows(site, pages.get(offset, []))
        if site == "austin":
            return 200, self.static_rows(site, [])
        if site == "reno":
            rows = [(f"/site/reno/apa/d/r/{7300000000 + n}.html", f"Reno {n}", "$800") for n in range(5)]
            return 200, self.static_rows(site, rows[offset:offset + 5])
        return 404, "<html>no such site</html>"

    def posting_page(self, path: str) -> tuple[int, str]:
        b, i = self.base, self.img
        if path.startswith("/site/reno/"):
            if path.endswith("7300000000.html"):
                return 200, self.posting("Reno 0", "$800", "2022-11-01T10:00:00-0800",
                                         thumbs=[(i("00e0e_reno0_600x450.jpg"), i("00e0e_reno0_50x50c.jpg"))])
            if self.blocked:
                return 403, "<html>blocked</html>"
            number = path.rsplit("/", 1)[1].split(".")[0][-1]
            return 200, self.posting(f"Reno {number}", "$800", "2022-11-01T10:00:00-0800",
                                     thumbs=[(i(f"00e0e_reno{number}_600x450.jpg"), "")])
        if path.endswith("7100000001.html"):
            return 200, self.posting(
                "Loft", "$4,000", "2022-09-10T10:00:00-0400",
                thumbs=[(i("00b0b_ny1_600x450.jpg"), i("00b0b_ny1_50x50c.jpg")), (i("x.jpg"), i("x.jpg"))],
                imglist=[(i("00b0b_ny1_1200x900.jpg"), i("00b0b_ny1_50x50c.jpg"))])
        if path.endswith("7100000002.html"):
            return 200, self.posting(
                "Studio", "$3,100", "2022-09-11T10:00:00-0400",
                imglist=[(i("00b0b_ny2_600x450.jpg"), i("00b0b_ny2_50x50c.jpg")),
                         (i("00b0b_ny3_600x450.jpg"), i("00b0b_ny3_50x50c.jpg"))])
        if path.endswith("7100000003.html"):
            return 200, self.posting(
                "Hostile names", "$2,000", "2022-09-12T10:00:00-0400",
                thumbs=[(i("..%2F..%2Fx.jpg"), ""), (i(".bashrc"), ""), (i("-rf.jpg"), "")])
        if path.endswith("7100000004.html"):
            port = b.rsplit(":", 1)[1]
            return 200, self.posting(
                "Faults", "$2,200", "2022-09-13T10:00:00-0400",
                thumbs=[(i("moved.jpg"), ""), (f"http://localhost:{port}/images/foreign.jpg", ""),
                        (f"{b}/private/secret.jpg", ""), (i("slow.jpg"), ""), (i("huge.jpg"), ""),
                        (i("giant.png"), ""), (i("00a0a_sf1_600x450.jpg"), ""),
                        (i("00b0b_ny4_600x450.jpg"), "")])
        return 404, "<html>no such posting</html>"

    # -- dispatch -------------------------------------------------------------------------------

    def respond(self, handler: "Handler") -> int:
        """Write the response for one request; returns its status."""
        parts = urlsplit(handler.path)
        path = parts.path
        if path == "/robots.txt":
            return handler.send(200, ROBOTS.encode(), "text/plain")
        query = parse_qs(parts.query)
        if query.get("format") == ["rss"]:
            return handler.send(403, b"<html>forbidden</html>", "text/html")
        if path == "/about/sites":
            page = self.sites_page() if self.sites_form == "old" else self.current_sites_page()
            return handler.send(200, page.encode(), "text/html")
        if path == "/Areas":
            return handler.send(200, self.areas().encode(), "application/json")
        if path.startswith("/sapi/web/v8/postings/search/"):
            status, body = self.api(path, query)
            return handler.send(status, body.encode(), "application/json")
        if path.startswith("/site/") and path.endswith("/search/apa") and path.split("/")[2] in ("portland", "boise"):
            target = f"{self.base}/search/area/{path.split('/')[2]}?{parts.query}"
            return handler.send(301, b"", "text/html", {"Location": target})
        if path.startswith("/search/area/"):
            status, body = self.current_results(path.split("/")[3])
            return handler.send(status, body.encode(), "text/html")
        if path.startswith("/view/d/") and path.count("/") == 4:
            status, body = self.view_page(path)
            return handler.send(status, body.encode(), "text/html")
        if path.startswith("/site/") and path.endswith("/search/apa"):
            site = path.split("/")[2]
            offset = int(parse_qs(parts.query).get("s", ["0"])[0])
            status, body = self.results(site, offset)
            return handler.send(status, body.encode(), "text/html")
        if path.startswith("/images/"):
            return self.image(handler, path[len("/images/"):])
        if path.endswith(".html"):
            status, body = self.posting_page(path)
            return handler.send(status, body.encode(), "text/html")
        return handler.send(404, b"not found", "text/plain")

    def respond_images(self, handler: "Handler") -> int:
        """The images host: its own robots.txt, photos, and no 1200x900 size for ``no1200`` ids."""
        path = urlsplit(handler.path).path
        if path == "/robots.txt":
            status = self.images_robots_status
            return handler.send(status, ROBOTS.encode() if status == 200 else b"forbidden", "text/plain")
        if path.startswith("/images/"):
            name = path[len("/images/"):]
            if self.images_down:
                return handler.send(503, b"service unavailable", "text/plain")
            if self.images_challenge:
                return handler.send(200, b"<!DOCTYPE html><html><body>Are you a robot?</body></html>",
                                    "image/jpeg")
            if "no1200" in name and "_1200x900" in name:
                return handler.send(404, b"not found", "text/plain")
            return handler.send(200, photo_bytes(name), "image/jpeg")
        return handler.send(404, b"not found", "text/plain")

    def image(self, handler: "Handler", name: str) -> int:
        if "sf429" in name:
            self.counts["429"] += 1
            if self.counts["429"] == 1:
                return handler.send(429, b"slow down", "text/plain", {"Retry-After": str(RETRY_AFTER_S)})
        if "sfcut" in name and self.cut_short:
            return handler.send(200, photo_bytes(name)[:1000], "image/jpeg", {"Content-Length": "5000"})
        if "sfhtml" in name:
            return handler.send(200, b"<html><body>Not a photo</body></html>", "image/jpeg")
        if name == "moved.jpg":
            port = self.base.rsplit(":", 1)[1]
            return handler.send(302, b"", "text/plain", {"Location": f"http://localhost:{port}/images/offsite.jpg"})
        if name == "slow.jpg":
            return handler.trickle(self.stopping)
        if name == "huge.jpg":
            return handler.send(200, b"\xff" * 300_000, "image/jpeg", length=False)
        if name == "giant.png":
            return handler.send(200, giant_png(), "image/png")
        return handler.send(200, photo_bytes(name), "image/jpeg")


class Handler(BaseHTTPRequestHandler):
    """Records each request in the site's log, then lets the site answer."""

    site: FixtureSite  # set on a subclass per server
    images_host = False  # True on the images host (127.0.0.2)

    def do_GET(self):  # noqa: N802 (the http.server API)
        record = Request(time.time(), self.path, self.headers.get("Host", ""),
                         self.headers.get("User-Agent", ""))
        with self.site.lock:
            self.site.requests.append(record)
        try:
            record.status = self.site.respond_images(self) if self.images_host else self.site.respond(self)
        except (BrokenPipeError, ConnectionResetError):
            record.status = -1

    def send(self, status: int, body: bytes, ctype: str, headers: dict | None = None,
             length: bool = True) -> int:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        headers = dict(headers or {})
        if length:
            headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        return status

    def trickle(self, stopping: threading.Event) -> int:
        """A response that never ends: one byte every 50 ms until the client gives up."""
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", "5000")
        self.end_headers()
        deadline = time.time() + 30
        while time.time() < deadline and not stopping.is_set():
            self.wfile.write(b"\xff")
            self.wfile.flush()
            time.sleep(0.05)
        return 200

    def log_message(self, *args):  # keep test output quiet
        pass


@contextlib.contextmanager
def serve_fixture_site(bulk: int = 0, portland: int = 5):
    """Run the fixture site on 127.0.0.1 and its images host on 127.0.0.2 (ephemeral ports).

    Yields the :class:`FixtureSite`: ``site.url`` is the base URL, ``site.images_base`` the images
    host's, and ``site.requests`` the servers' own request log (both hosts).
    """
    site = FixtureSite(bulk=bulk, portland=portland)
    servers = []
    for address, images in (("127.0.0.1", False), ("127.0.0.2", True)):
        handler = type("BoundHandler", (Handler,), {"site": site, "images_host": images})
        server = ThreadingHTTPServer((address, 0), handler)
        server.daemon_threads = True
        servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    site.base = f"http://127.0.0.1:{servers[0].server_address[1]}"
    site.images_base = f"http://127.0.0.2:{servers[1].server_address[1]}"
    try:
        yield site
    finally:
        site.stopping.set()
        for server in servers:
            server.shutdown()
            server.server_close()


def scrape_settings(base_url: str, **overrides) -> dict:
    """``craigslist`` settings that point the scraper at the fixture site, with test-sized pauses."""
    settings = {
        "sites_url": f"{base_url}/about/sites",
        "site_url": f"{base_url}/site/{{site}}",
        "image_url": f"{base_url}/images/{{image_id}}_1200x900.jpg",
        "allowed_hosts": ["127.0.0.1"],
        "pages": 5,
        "delay_s": 0.05,
        "jitter": 0.2,
        "timeout_s": 0.5,
        "retries": 2,
        "max_bytes": 200_000,
        "user_agent": "vacancy-test/0.1 (+http://127.0.0.1/contact)",
    }
    settings.update(overrides)
    return settings


def current_settings(site: FixtureSite, **overrides) -> dict:
    """Settings for the fixture's current formats: Areas JSON, search API, the images host."""
    current = {"areas_url": f"{site.url}/Areas", "api_url": f"{site.url}/sapi/web/v8/postings/search/full",
               "image_url": f"{site.images_base}/images/{{image_id}}_{{size}}.jpg",
               "allowed_hosts": ["127.0.0.1", "127.0.0.2"]}
    return scrape_settings(site.url, **{**current, **overrides})


def config_overrides(base_url: str, locations=("losangeles",), **overrides) -> dict:
    """Overrides of ``config.yaml`` for a workflow run with ``source: craigslist`` on the fixture."""
    return {"source": "craigslist",
            "craigslist": scrape_settings(base_url, locations=list(locations), **overrides)}
