"""Reading Craigslist pages: the sites list, both result-page layouts, posting pages.

Why pure functions over HTML text: the fetcher decides *whether* something may be fetched, these
decide *what* a page says, so both can be tested apart. Listing text is data: it is extracted as
plain text (``get_text``) and stored, never evaluated or rendered.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from urllib.parse import unquote, urljoin, urlsplit

from bs4 import BeautifulSoup

from ...common import IMAGE_SUFFIXES

log = logging.getLogger("vacancy.sources.scrape")

#: Craigslist's size suffix on image file names: ``<id>_600x450.jpg``, ``<id>_50x50c.jpg``.
SIZE_RE = re.compile(r"_(\d{1,5})x(\d{1,5})c?$")
#: The posting id in a listing URL: ``.../d/some-title/7512345678.html``.
LISTING_ID_RE = re.compile(r"(\d{5,})\.html?$")
#: The posting id a posting page shows ("post id: 7512345678"), needed for ``/view/d/<slug>/<token>``.
POST_ID_RE = re.compile(r"post\s+id:\s*(\d{5,})", re.I)
#: The ``var imgList = [...];`` script of posting pages.
IMGLIST_RE = re.compile(r"imgList\s*=\s*(\[.*?\])\s*;", re.S)
#: Longest file name written (the filesystem limit is 255 bytes; leave room for ``.x.part``).
MAX_NAME = 120


def _soup(html: str | bytes) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


def _text(node) -> str:
    """Plain text of a node, whitespace collapsed (listing text is data, kept as text)."""
    if node is None:
        return ""
    return " ".join(node.get_text(" ", strip=True).split())


def loads_json(text: str | bytes):
    """``json.loads``, with ValueError also for nesting too deep for Python's parser: a hostile
    ``[[[[...`` raises RecursionError, which the callers' ``except ValueError`` would miss."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _http_url(base: str, href: str | None) -> str | None:
    """``href`` made absolute against ``base``; None unless it is an http(s) URL that parses."""
    if not href:
        return None
    try:
        url = urljoin(base, href.strip())
        return url if urlsplit(url).scheme in ("http", "https") else None
    except ValueError:  # e.g. "http://[::1/x": not a URL
        return None


# --- sites page -------------------------------------------------------------------------------

def site_pattern(site_url: str) -> re.Pattern:
    """A regex that recovers the site name from a link made by the ``site_url`` template.

    Scheme and trailing slash are ignored, so ``https://sfbay.craigslist.org/`` and
    ``//sfbay.craigslist.org`` both give ``sfbay``.
    """
    marker = "SITEMARKER"
    filled = site_url.format(site=marker)
    rest = filled.split("://", 1)[-1].rstrip("/")
    body = re.escape(rest).replace(marker, r"(?P<site>[A-Za-z0-9_-]+)")
    return re.compile(rf"^(?:[a-z]+:)?//{body}/?$", re.I)


#: A link of the current sites page: ``https://www.craigslist.org/area/<site>``.
AREA_LINK_RE = re.compile(r"^(?:[a-z]+:)?//[^/]+/area/(?P<site>[A-Za-z0-9_-]+)/?$", re.I)


def _us_heading(soup):
    """The heading that opens the US section: ``<h1><a name="US">`` (older) or an ``h2`` (2026)."""
    for heading in soup.find_all(["h1", "h2"]):
        anchor = heading.find("a", attrs={"name": True})
        name = anchor["name"].upper() if anchor else (heading.get("id") or "").upper()
        if name == "US" or _text(heading).upper() in ("US", "USA", "UNITED STATES"):
            return heading
    return None


def parse_sites(html: str | bytes, page_url: str, site_url: str) -> list[dict]:
    """The US section of the sites page: ``[{site, name, state, url}]`` in page order.

    Two forms are read. Older: one ``<h1><a name="US">`` per country, ``<h4>`` per state,
    ``<li><a href="https://<site>.craigslist.org">``. Current (reported 2026): ``<h2>`` per country,
    ``<h4>`` per state, links ``https://www.craigslist.org/area/<site>``. The section ends at the
    next heading of the same level (Canada, ...).
    """
    soup = _soup(html)
    pattern = site_pattern(site_url)
    heading = _us_heading(soup)
    if heading is None:
        log.warning("sites page %s: no US section found", page_url)
        return []
    sites, seen, state = [], set(), ""
    for node in heading.find_all_next([heading.name, "h1", "h4", "a"]):
        if node.name in ("h1", heading.name):
            break
        if node.name == "h4":
            state = _text(node)
        elif node.parent is not None and node.parent.name == "li":
            url = _http_url(page_url, node.get("href"))
            rest = url.split(":", 1)[1] if url else ""
            match = pattern.match(rest) or AREA_LINK_RE.match(rest)
            if not match:
                log.info("sites page: link %r matches neither site_url nor /area/<site>, skipped", node.get("href"))
                continue
            site = match.group("site").lower()
            if site not in seen:
                seen.add(site)
                sites.append({"site": site, "name": _text(node), "state": state, "url": url})
    return sites


def parse_areas(body: str | bytes, site_url: str) -> list[dict]:
    """The US areas of the Areas JSON (``reference.craigslist.org/Areas``), in its order.

    Each is ``{site, name, state, url, area_id, hostname, region, latitude, longitude}``; the site
    name is the ``Hostname`` (what ``locations`` names), the state the ``Region``. ValueError when
    the body is not a JSON array of area records.
    """
    areas = loads_json(body)
    if not isinstance(areas, list) or not all(isinstance(a, dict) for a in areas):
        raise ValueError("not a JSON array of area records")
    sites, seen = [], set()
    for area in areas:
        host = str(area.get("Hostname") or "").strip().lower()
        if str(area.get("Country", "")).upper() != "US" or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", host):
            continue
        if host in seen or not isinstance(area.get("AreaID"), int):
            continue
        seen.add(host)
        sites.append({
            "site": host, "name": " ".join(str(area.get("Description") or host).split()),
            "state": str(area.get("Region") or ""), "url": site_url.format(site=host),
            "area_id": area["AreaID"], "hostname": host, "region": str(area.get("Region") or ""),
            "latitude": area.get("Latitude", ""), "longitude": area.get("Longitude", ""),
        })
    return sites


# --- result pages -----------------------------------------------------------------------------

def _listing_id(url: str, pid: str | None = None) -> str:
    if pid and pid.strip().isdigit():
        return pid.strip()
    match = LISTING_ID_RE.search(urlsplit(url).path)
    return match.group(1) if match else ""


def _data_ids(value: str | None) -> list[str]:
    """Image ids of an old result row: ``data-ids="3:00L0L_abc,3:00x0x_def"``."""
    ids = []
    for item in (value or "").split(","):
        image_id = item.strip().split(":", 1)[-1].strip()
        if re.fullmatch(r"[A-Za-z0-9_-]{3,80}", image_id):
            ids.append(image_id)
    return ids


def _old_row(li, page_url: str) -> dict | None:
    """A ``li.result-row`` (the older layout): images are named in ``data-ids``."""
    link = li.select_one("a.result-title") or li.find("a", href=True)
    url = _http_url(page_url, link.get("href") if link else None)
    if not url:
        return None
    holder = li.select_one("[data-ids]")
    when = li.select_one("time[datetime]")
    return {
        "listing_url": url,
        "listing_id": _listing_id(url, li.get("data-pid")),
        "title": _text(li.select_one(".result-title")) or _text(link),
        "price": _text(li.select_one(".result-price")),
        "posted": when["datetime"].strip() if when else "",
        "image_ids": _data_ids(holder.get("data-ids") if holder else None),
        "layout": "result-row",
    }


def _static_row(li, page_url: str) -> dict | None:
    """A ``li.cl-static-search-result`` (the current static layout): no images, no date."""
    link = li.find("a", href=True)
    url = _http_url(page_url, link.get("href") if link else None)
    if not url:
        return None
    return {
        "listing_url": url,
        "listing_id": _listing_id(url, li.get("data-pid")),
        "title": _text(li.select_one(".title")) or " ".join(str(li.get("title", "")).split()),
        "price": _text(li.select_one(".price")),
        "posted": "",
        "image_ids": None,  # None: the posting page must be read for images
        "layout": "static",
    }


def search_ld(soup) -> list[dict]:
    """Items of the ``<script type="application/ld+json" id="ld_searchpage_results">`` block.

    Each is ``{name, images, latitude, longitude}`` in list order; the block names no listing URL,
    so it is joined to the static rows by position and title (see :func:`parse_results`).
    """
    node = soup.select_one('script#ld_searchpage_results[type="application/ld+json"]')
    try:
        block = loads_json(node.string or "") if node else {}
    except ValueError:
        log.info("result page: ld_searchpage_results is not valid JSON, ignored")
        return []
    elements = block.get("itemListElement") if isinstance(block, dict) else None
    items = []
    for element in elements if isinstance(elements, list) else []:
        item = element.get("item") if isinstance(element, dict) else None
        if not isinstance(item, dict):
            continue
        images = item.get("image")
        images = [images] if isinstance(images, str) else images if isinstance(images, list) else []
        items.append({"name": " ".join(str(item.get("name") or "").split()),
                      "images": [u for u in images if isinstance(u, str)],
                      "latitude": str(item.get("latitude") or ""), "longitude": str(item.get("longitude") or "")})
    return items


def _join_ld(rows: list[dict], items: list[dict]) -> None:
    """Latitude and longitude from the JSON-LD items onto static rows, when position and title agree."""
    if len(items) != len(rows):
        return
    for row, item in zip(rows, items):
        if item["name"] and item["name"] == row["title"]:
            row["latitude"], row["longitude"] = item["latitude"], item["longitude"]


def parse_results(html: str | bytes, page_url: str) -> list[dict]:
    """Listings of one result page, either layout, in page order, each listing URL once."""
    soup = _soup(html)
    rows = [_old_row(li, page_url) for li in soup.select("li.result-row")]
    static = [r for r in (_static_row(li, page_url) for li in soup.select("li.cl-static-search-result")) if r]
    _join_ld(static, search_ld(soup))
    rows += static
    out, seen = [], set()
    for row in rows:
        if row and row["listing_url"] not in seen:
            seen.add(row["listing_url"])
            out.append(row)
    return out


# --- posting pages ----------------------------------------------------------------------------

def _imglist_urls(soup, page_url: str) -> list[str]:
    """URLs named in the ``var imgList = [...]`` script (``url`` and ``thumb`` of each entry)."""
    urls = []
    for script in soup.find_all("script"):
        text = script.string or ""
        match = IMGLIST_RE.search(text)
        if not match:
            continue
        try:
            entries = loads_json(match.group(1))
        except ValueError:
            log.info("posting %s: imgList is not valid JSON, ignored", page_url)
            continue
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict):
                for field in ("url", "thumb"):
                    url = _http_url(page_url, entry.get(field)) if isinstance(entry.get(field), str) else None
                    if url:
                        urls.append(url)
    return urls


def _thumb_ids(soup) -> list[str]:
    """Photo ids of ``a.thumb`` links (``data-imgid="3:00x0x_abc"``, the ``N:`` prefix dropped)."""
    ids = []
    for link in soup.select("a.thumb[data-imgid]"):
        image_id = str(link["data-imgid"]).strip().split(":", 1)[-1]
        if re.fullmatch(r"[A-Za-z0-9_-]{3,80}", image_id) and image_id not in ids:
            ids.append(image_id)
    return ids


def parse_posting(html: str | bytes, page_url: str) -> dict:
    """Title, price, date, post id, photo ids and image URLs (largest size of each) of a posting.

    Photos: ``a.thumb`` links (``href`` to the 600x450 image, ``data-imgid``; the current form,
    inside ``#thumbs``), ``#thumbs``/``.gallery`` images and the older ``var imgList`` script.
    """
    soup = _soup(html)
    urls = [_http_url(page_url, a.get("href")) for a in soup.select("#thumbs a[href], a.thumb[href]")]
    urls += [_http_url(page_url, img.get("src")) for img in soup.select("#thumbs img[src], .gallery img[src]")]
    urls += _imglist_urls(soup, page_url)
    when = soup.select_one(".postinginfos time[datetime], time.date[datetime], time[datetime]")
    title = _text(soup.select_one("#titletextonly")) or _text(soup.find("title"))
    post_id = POST_ID_RE.search(_text(soup.select_one(".postinginfos")) or _text(soup.body))
    return {
        "title": title,
        "price": _text(soup.select_one(".postingtitletext .price, .price")),
        "posted": when["datetime"].strip() if when else "",
        "listing_id": post_id.group(1) if post_id else _listing_id(page_url),
        "image_ids": _thumb_ids(soup),
        "images": largest_images(u for u in urls if u),
    }


# --- image URLs and file names ----------------------------------------------------------------

def _split_name(url: str) -> tuple[str, str, str]:
    """(folder part of the URL, stem, suffix) of the last path segment, size suffix included."""
    parts = urlsplit(url)
    folder, _, last = parts.path.rpartition("/")
    stem, dot, suffix = last.rpartition(".")
    if not dot:
        stem, suffix = last, ""
    return f"{parts.netloc.lower()}{folder}", stem, suffix


def image_key(url: str) -> str:
    """What identifies a photo across sizes, listings and locations: host, folder, id.

    Craigslist serves one photo as ``<id>_50x50c.jpg``, ``<id>_600x450.jpg``, ``<id>_1200x900.jpg``;
    the key drops the size so every occurrence of a cross-posted photo maps to one download.
    """
    folder, stem, _ = _split_name(url)
    return f"{folder}/{SIZE_RE.sub('', stem)}"


def image_area(url: str) -> int:
    """Pixel area named by the size suffix, 0 when there is none."""
    match = SIZE_RE.search(_split_name(url)[1])
    return int(match.group(1)) * int(match.group(2)) if match else 0


def largest_images(urls) -> list[str]:
    """One URL per image key, the largest size offered, in order of first appearance."""
    best: dict[str, str] = {}
    for url in urls:
        key = image_key(url)
        if key not in best or image_area(url) > image_area(best[key]):
            best[key] = url
    return list(best.values())


def sanitize_filename(name: str, max_len: int = MAX_NAME) -> str:
    """A safe local file name: no separators, no ``..``, no leading dot or dash, bounded length.

    Path segments are dropped rather than kept (``../../x.jpg`` -> ``x.jpg``), characters outside
    ``[A-Za-z0-9._-]`` become ``_``, and a name without an image suffix gets ``.jpg`` (every
    download is checked to be an image, and later stages pick files by suffix).
    """
    name = unicodedata.normalize("NFKC", name)
    parts = [p for p in re.split(r"[/\\]", name) if p.strip() not in ("", ".", "..")]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", "_".join(parts))
    name = re.sub(r"\.{2,}", ".", name).lstrip("._-")
    stem, dot, suffix = name.rpartition(".")
    if not dot or f".{suffix.lower()}" not in IMAGE_SUFFIXES:
        stem, suffix = name, "jpg"
    stem = stem.rstrip(".")[: max_len - len(suffix) - 1] or "image"
    return f"{stem}.{suffix}"


def url_filename(url: str) -> str:
    """The original file name of an image URL (last path segment, percent-decoded), made safe."""
    last = urlsplit(url).path.rpartition("/")[2]
    return sanitize_filename(unquote(last))
