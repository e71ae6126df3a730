"""Craigslist's JSON search API (what its own search page calls): request URLs and item decoding.

Why an API path: one request returns up to 360 listings *with their photo ids*, so a location
costs a handful of requests plus one per photo, where the HTML path needs a posting page per
listing. The answer is compact and positional (documented by the scrapers cited in
``tests/fixture_site.py``)::

    {"data": {"items": [[id offset, date offset, category, price, "loc~lat~lon",
                         [4, "3:<photo id>", ...], [6, "<slug>"], [10, "$1,350"], "<title>",
                         [5, <beds>, <sqft>]], ...],
              "decode": {"minPostingId": N, "minPostedDate": T, "locations": [...]},
              "totalResultCount": n, "cacheId": "...", "areas": ..., "location": ...}}

Nothing here fetches: :func:`search_url` builds a URL, :func:`decode_batch` reads an answer. An
item this module cannot read is skipped and counted, never fatal; an answer whose shape is not
known at all (or whose items all fail) raises :class:`ApiError`, which is what makes
``method: auto`` fall back to HTML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlencode

from .parse import loads_json

#: Listings in the first answer and in each continuation batch (what the site's front end asks).
FIRST_BATCH = 360
NEXT_BATCH = 1080
#: Tags of the tagged blocks inside an item.
TAG_PHOTOS, TAG_BEDS_SQFT, TAG_SLUG, TAG_PRICE = 4, 5, 6, 10
PHOTO_ID_RE = re.compile(r"[A-Za-z0-9_-]{3,80}")


class ApiError(Exception):
    """The API answer cannot be used for this location; ``str()`` says why, for log and state."""


@dataclass
class Batch:
    """One decoded answer: its listings and what the answer says about itself."""

    listings: list[dict]
    total: int
    cache_id: str
    items: int                      # items in the answer, decoded or not
    skipped: int                    # items that could not be decoded
    answered: list[str] = field(default_factory=list)  # areas the answer names


def search_url(api_url: str, area_id: int, offset: int = 0, max_price: float | None = None,
               cache_id: str = "") -> str:
    """The URL of the first batch (``offset`` 0) or of a continuation batch from ``offset``.

    Continuation batches live at the same path with ``/batch`` in place of ``/full`` and carry the
    ``cacheId`` of the first answer, so every batch is a slice of one and the same result list.
    """
    if offset == 0:
        base, batch = api_url, f"{area_id}-0-{FIRST_BATCH}-0-0"
    else:
        base = api_url[: -len("/full")] + "/batch" if api_url.endswith("/full") else api_url
        batch = f"{area_id}-{offset}-{NEXT_BATCH}-0-0"
    query = {"batch": batch, "cc": "US", "lang": "en", "searchPath": "apa"}
    if max_price:
        query["max_price"] = int(max_price)
    if offset and cache_id:
        query["cacheId"] = cache_id
    return f"{base}?{urlencode(query)}"


def decode_batch(body: bytes | str, site_base: str) -> Batch:
    """Listings of one API answer; ApiError when its shape is unknown.

    ``site_base`` (the site's ``site_url``) makes the listing URLs: ``<site>/apa/d/<slug>/<id>.html``,
    the numeric form Craigslist redirects to the posting (no fetch needs it on this path).
    """
    try:
        answer = loads_json(body)
    except ValueError as exc:
        raise ApiError(f"answer is not JSON ({exc})") from None
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ApiError("format unknown: no data.items list in the answer")
    items, decode = data["items"], data.get("decode")
    answered = area_names(data.get("areas"))
    batch = Batch([], _int(data.get("totalResultCount"), len(items)), str(data.get("cacheId") or ""),
                  len(items), 0, answered)
    if not items:
        return batch
    if not isinstance(decode, dict) or not isinstance(decode.get("minPostingId"), int):
        raise ApiError("format unknown: no data.decode.minPostingId")
    for item in items:
        try:
            listing = decode_item(item, decode, site_base)
        except (TypeError, ValueError, OverflowError, OSError):  # e.g. a date offset out of range
            listing = None
        if listing is None:
            batch.skipped += 1
        else:
            batch.listings.append(listing)
    if not batch.listings:
        raise ApiError(f"format unknown: none of {len(items)} items could be decoded")
    return batch


def area_names(areas) -> list[str]:
    """Area ids and host names found in ``data.areas`` (a list or a dict of area records)."""
    records = areas.values() if isinstance(areas, dict) else areas if isinstance(areas, list) else []
    names = []
    for record in records:
        if isinstance(record, dict):
            for key in ("areaId", "AreaID", "id", "hostname", "Hostname", "abbreviation"):
                if key in record and record[key] not in (None, ""):
                    names.append(str(record[key]).lower())
    return names


def check_area(batch: Batch, area_id: int, hostname: str) -> None:
    """ApiError when the answer names areas and none is the one asked for.

    Why: without ``postal=`` the API is reported to scope results by the caller's IP address; an
    answer for another city must stop this location rather than fill it with the wrong listings.
    """
    if batch.answered and not {str(area_id), hostname.lower()} & set(batch.answered):
        raise ApiError(f"answer is for area {', '.join(dict.fromkeys(batch.answered))}, "
                       f"not {hostname} (area {area_id})")


def _int(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _blocks(item: list) -> dict[int, list]:
    """Tagged blocks ``[tag, value, ...]`` of an item by tag (the first of each tag)."""
    blocks: dict[int, list] = {}
    for part in item[5:]:
        if isinstance(part, list) and part and isinstance(part[0], int):
            blocks.setdefault(part[0], part[1:])
    return blocks


def _title(item: list) -> str:
    """The last plain string of an item: housing items end with a ``[5, beds, sqft]`` block."""
    for part in reversed(item[5:]):
        if isinstance(part, str):
            return " ".join(part.split())
    return ""


def _lat_lon(value) -> tuple[str, str]:
    """``"locIdx[:...]~lat~lon"`` to latitude and longitude as text ('' when absent)."""
    parts = value.split("~") if isinstance(value, str) else []
    try:
        lat, lon = float(parts[1]), float(parts[2])
    except (IndexError, ValueError):
        return "", ""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return "", ""
    return f"{lat:g}", f"{lon:g}"


def photo_ids(block: list | None) -> list[str]:
    """Photo ids of a ``[4, "3:<id>", ...]`` block, the ``N:`` prefix stripped, unsafe ids dropped."""
    ids = []
    for entry in block or []:
        if isinstance(entry, str):
            photo = entry.split(":", 1)[-1]
            if PHOTO_ID_RE.fullmatch(photo) and photo not in ids:
                ids.append(photo)
    return ids


def decode_item(item, decode: dict, site_base: str) -> dict | None:
    """One listing from a positional item, or None when it is not of the known shape."""
    if not isinstance(item, list) or len(item) < 5:
        return None
    id_offset, date_offset, price = item[0], item[1], item[3]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (id_offset, date_offset)):
        return None
    blocks = _blocks(item)
    posting_id = decode["minPostingId"] + id_offset
    posted = ""
    if isinstance(decode.get("minPostedDate"), int):
        when = datetime.fromtimestamp(decode["minPostedDate"] + date_offset, timezone.utc)
        posted = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    price_text = blocks.get(TAG_PRICE, [""])[0] if blocks.get(TAG_PRICE) else ""
    if not isinstance(price_text, str) or not price_text:
        price_text = f"${price:,}" if isinstance(price, int) and price >= 0 else ""
    slug = blocks.get(TAG_SLUG, [""])[0] if blocks.get(TAG_SLUG) else ""
    slug = slug if isinstance(slug, str) and re.fullmatch(r"[a-z0-9-]{1,200}", slug) else "listing"
    lat, lon = _lat_lon(item[4])
    return {
        "listing_url": f"{site_base.rstrip('/')}/apa/d/{slug}/{posting_id}.html",
        "listing_id": str(posting_id),
        "title": _title(item),
        "price": " ".join(price_text.split()),
        "posted": posted,
        "latitude": lat,
        "longitude": lon,
        "image_ids": photo_ids(blocks.get(TAG_PHOTOS)),
        "layout": "api",
    }
