"""Scrape one location: listings (search API or result pages) -> photos, resumably, into ``raw/<location>/``.

Two ways to the listings (``craigslist.method``): the JSON search API (``api``: one request per
360 listings, photo ids included) or the HTML result pages plus one posting page per listing
(``html``); ``auto`` uses the API and falls back to HTML when the API's first batch fails or its
format is unknown. The path taken and the reason are journaled, logged and written to
``scrape_state.json``.

Why a journal: a kill -9 may come at any moment. Every finished step (a parsed result page, a
parsed posting, a photo renamed into place) is appended as one JSON line to
``.scrape-journal.jsonl`` *after* it is complete, and a rerun replays the journal: pages and
postings are not fetched again, finished photos are not downloaded again, and the manifest is
rebuilt from the journal in page order, so it ends identical to an uninterrupted run's.
Photos are written as ``.<name>.part``, checked to decode with Pillow, then renamed.

Cross-posted photos (one Craigslist image id in several listings or locations) are fetched once:
within a location the later rows name the same file; across locations a shared index
(``<lock_dir>/images.sqlite``) finds the first download and the file is hard-linked into this
location's folder (a copy where links are impossible), so every location's folder is complete
on its own, costs no extra space, and the dedup stage sees the cross-post as an exact duplicate.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import logging
import os
import shutil
import sqlite3
import time
import warnings
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

from PIL import Image

from ...common import provenance, write_csv, write_json
from ...formats import MAX_JPEG_SCANS, Rejected, describe_content, jpeg_scans
from ...images.isolate import in_own_process
from ..inventory import MANIFEST_COLUMNS
from .api import ApiError, check_area, decode_batch, search_url
from .defaults import BASE_SIZE, MAX_PIXELS, resolve
from .fetch import Blocked, Failing, FetchError, Fetcher
from .parse import image_key, largest_images, parse_posting, parse_results, url_filename
from .sites import SitesError, list_sites, max_rent_for, state_code
from .status import STATE

log = logging.getLogger("vacancy.sources.scrape")

JOURNAL = ".scrape-journal.jsonl"
#: Manifest columns that come from the listing (the rest describe the photo file).
LISTING_FIELDS = ("listing_url", "listing_id", "title", "price", "posted", "latitude", "longitude")
#: Image formats accepted (what the later stages decode).
FORMATS = {"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"}


class Skip(Exception):
    """One page, listing or photo is left out; the reason goes to the log and the counts."""


class HtmlPage(Skip):
    """A photo URL answered with an HTML page: an error page, or, when it keeps coming, a block
    or challenge page served with status 200 (see :meth:`LocationScrape.download`)."""


# --- journal ----------------------------------------------------------------------------------

class Journal:
    """Append-only record of finished steps; one ``os.write`` per line, so a kill leaves whole lines."""

    def __init__(self, path: Path):
        self.path = path
        self.entries = self._load()
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _load(self) -> list[dict]:
        entries = []
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    if isinstance(entry, dict) and "kind" in entry:
                        entries.append(entry)
        return entries

    def add(self, entry: dict) -> None:
        os.write(self.fd, (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8"))

    def close(self) -> None:
        os.close(self.fd)


class Names:
    """File names per image key; a name already used by another key gets ``_2``, ``_3``, ..."""

    def __init__(self):
        self.by_key: dict[str, str] = {}
        self.taken: set[str] = set()

    def keep(self, key: str, name: str) -> None:
        self.by_key[key] = name
        self.taken.add(name.lower())

    def assign(self, key: str, wanted: str) -> str:
        if key in self.by_key:
            return self.by_key[key]
        stem, dot, suffix = wanted.rpartition(".")
        name, n = wanted, 1
        while name.lower() in self.taken:
            n += 1
            name = f"{stem}_{n}{dot}{suffix}"
        self.keep(key, name)
        return name

    def release(self, key: str) -> None:
        """Forget the name of ``key`` (its download came under another name)."""
        name = self.by_key.pop(key, None)
        if name:
            self.taken.discard(name.lower())


class SharedIndex:
    """Image key -> file already downloaded by any location (SQLite, safe across processes)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=60, isolation_level=None)
        # A cache, not a record: losing the last rows to a crash only costs a download, so no fsync.
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE IF NOT EXISTS images (key TEXT PRIMARY KEY, path TEXT, "
                        "bytes INTEGER, sha256 TEXT, fetched_at TEXT, image_url TEXT)")

    def find(self, key: str) -> dict | None:
        fields = ("path", "bytes", "sha256", "fetched_at", "image_url")
        row = self.db.execute(f"SELECT {', '.join(fields)} FROM images WHERE key = ?", (key,)).fetchone()
        return dict(zip(fields, row)) if row else None

    def add(self, key: str, rec: dict) -> None:
        self.db.execute("INSERT OR IGNORE INTO images VALUES (?, ?, ?, ?, ?, ?)",
                        (key, rec["path"], rec["bytes"], rec["sha256"], rec["fetched_at"], rec["image_url"]))

    def close(self) -> None:
        self.db.close()


# --- photos -----------------------------------------------------------------------------------

def check_image(path: Path, max_pixels: int) -> str:
    """The format of a decodable image file, else Skip: judged by the bytes, never by name or type.

    The size is checked from the header before decoding (gigantic dimensions are refused without
    allocating), then the whole image is decoded, which catches bodies cut short. An HTML page
    (an error or block page sent as the photo) is :class:`HtmlPage`. A photo comes from a server
    we do not control, so the decode cannot take the job down with it: a JPEG of more scans
    than MAX_JPEG_SCANS is refused undecoded (each scan is a pass over the whole frame: 300 of a
    few bytes each kept Pillow busy for 9 s, and a server may send thousands), and the decode
    runs in a process of its own (:func:`vacancy.images.isolate.in_own_process`, a fork: 5-10 ms
    against the 2 s pause between requests), so a crash or a hang in the decoder skips the
    photo, with the reason.
    """
    blob = path.read_bytes()
    if describe_content(blob[:512]) == "HTML":
        raise HtmlPage("an HTML page, not an image")
    if blob.startswith(b"\xff\xd8") and jpeg_scans(blob) > MAX_JPEG_SCANS:
        raise Skip(f"a JPEG of more than {MAX_JPEG_SCANS} scans (each a pass over the whole "
                   f"picture: a decoder bomb), not decoded")
    Image.init()  # Pillow's format plugins, loaded once here, not again in every child (15 ms)
    try:
        return in_own_process(_decoded_format, blob, max_pixels)
    except Rejected as exc:
        raise Skip(f"not a decodable image ({exc})") from None


def _decoded_format(blob: bytes, max_pixels: int) -> str:
    """Pillow's format of ``blob`` after a full decode (in a process of its own), else Skip."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(blob))
        with im:
            fmt = im.format
            if fmt not in FORMATS:
                raise Skip(f"unsupported image format {fmt}")
            width, height = im.size
            if width * height > max_pixels:
                raise Skip(f"gigantic dimensions {width}x{height} (> {max_pixels} pixels)")
            im.load()
    except Skip:
        raise
    except Image.DecompressionBombError as exc:
        raise Skip(f"gigantic dimensions ({exc})") from None
    except Exception as exc:  # Pillow raises many kinds for bad bytes
        raise Skip(f"not a decodable image ({type(exc).__name__}: {exc})") from None
    return fmt


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _link_or_copy(src: Path, dest: Path) -> str:
    """Put ``src`` at ``dest`` atomically: a hard link (no space, no download) or else a copy."""
    tmp = dest.with_name(f".{dest.name}.part")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
        how = "linked"
    except OSError:
        shutil.copyfile(src, tmp)
        how = "copied"
    os.replace(tmp, dest)
    return how


# --- the location -----------------------------------------------------------------------------

class LocationScrape:
    """State of one location's scrape; methods are the steps, each journaled when finished."""

    def __init__(self, location, out_dir, settings, lock_dir, logger, state, site=None):
        self.location, self.out, self.s, self.log = location, Path(out_dir), settings, logger
        self.state, self.site = state, site or {}
        self.method: str | None = None     # "api" or "html" once decided (journaled)
        self.method_reason = ""
        self.out.mkdir(parents=True, exist_ok=True)
        for stale in self.out.glob(".*.part"):
            stale.unlink()
        self.journal = Journal(self.out / JOURNAL)
        self.fetcher = Fetcher(settings, lock_dir, logger)
        self.index = SharedIndex(Path(lock_dir) / "images.sqlite")
        self.pages: dict[int, list[dict]] = {}
        self.batches: dict[int, dict] = {}  # API batch offset -> total, cacheId, item count
        self.postings: dict[str, dict] = {}
        self.images: dict[str, dict] = {}
        self.names = Names()
        self.failed: set[str] = set()
        self.over_max_photos: set[str] = set()  # listings that named more than max_photos
        self.html_in_a_row = 0  # photos answered with an HTML page, in a row (download)
        self.skipped: Counter = Counter()
        self.retryable: Counter = Counter()          # what -> skips whose cause may pass
        self.retryable_reasons: Counter = Counter()  # and their reasons
        self.count = Counter()
        self.last_log = time.monotonic()
        self._replay()

    def _replay(self) -> None:
        for entry in self.journal.entries:
            if entry["kind"] == "page":
                self.pages[entry["offset"]] = entry["listings"]
                if entry.get("source") == "api":
                    self.batches[entry["offset"]] = entry
            elif entry["kind"] == "method":
                self.method, self.method_reason = entry["method"], entry.get("reason", "")
            elif entry["kind"] == "posting":
                self.postings[entry["listing_url"]] = entry
            elif entry["kind"] == "image" and (self.out / entry["filename"]).exists():
                self.images[entry["key"]] = entry
                self.names.keep(entry["key"], entry["filename"])
        if self.journal.entries:
            self.log.info("%s: resuming: %d pages, %d postings, %d photos already done",
                          self.location, len(self.pages), len(self.postings), len(self.images))

    def close(self) -> None:
        self.journal.close()
        self.fetcher.close()
        self.index.close()

    # -- steps ----------------------------------------------------------------------------------

    def result_url(self, offset: int, max_rent: float | None) -> str:
        query = {"s": offset}
        if max_rent:
            query["max_price"] = int(max_rent)
        base = self.s["site_url"].format(site=self.location).rstrip("/")
        return f"{base}/search/apa?{urlencode(query)}"

    def page(self, offset: int, max_rent: float | None) -> list[dict]:
        """Listings of the result page at ``offset`` (from the journal when already read)."""
        if offset not in self.pages:
            url = self.result_url(offset, max_rent)
            listings = parse_results(self.fetcher.get_page(url).body, url)
            self.journal.add({"kind": "page", "offset": offset, "url": url, "listings": listings})
            self.pages[offset] = listings
        return self.pages[offset]

    def image_urls(self, ids) -> list[str]:
        """Photo URLs of image ids at ``image_size`` (templates without ``{size}`` ignore it)."""
        return [self.s["image_url"].format(image_id=i, size=self.s["image_size"]) for i in ids]

    def fallback_url(self, url: str) -> str | None:
        """The 600x450 URL of a photo asked for at a larger ``image_size`` (every photo has 600x450)."""
        size = str(self.s["image_size"])
        if size == BASE_SIZE or f"_{size}." not in url:
            return None
        return url.replace(f"_{size}.", f"_{BASE_SIZE}.")

    def posting(self, listing: dict) -> dict:
        """Title, price, date and image URLs of a listing (posting page read if needed)."""
        if listing.get("image_ids") is not None:
            images = self.image_urls(listing["image_ids"])
            return {**listing, "images": self.within_max_photos(listing["listing_url"], images)}
        url = listing["listing_url"]
        if url not in self.postings:
            parsed = parse_posting(self.fetcher.get_page(url).body, url)
            entry = {"kind": "posting", "listing_url": url, **parsed}
            self.journal.add(entry)
            self.postings[url] = entry
        found = self.postings[url]
        images = largest_images(self.image_urls(found.get("image_ids") or []) + found["images"])
        fields = ("title", "price", "posted", "listing_id", "latitude", "longitude")
        return {**listing, **{k: found.get(k) or listing.get(k, "") for k in fields},
                "images": self.within_max_photos(url, images)}

    def within_max_photos(self, listing_url: str, images: list[str]) -> list[str]:
        """The first ``max_photos`` photos of a listing; more are counted and named in the log.

        Why: a Craigslist posting holds at most 24 photos, so a listing that names more is a
        broken or hostile answer, and without a cap its thousands of photo ids would each be
        fetched, one per ``delay_s``, for hours. The listing is still scraped, with the rest.
        """
        cap = self.s.get("max_photos")
        if cap is None or len(images) <= int(cap):
            return images
        if listing_url not in self.over_max_photos:  # once per listing (manifest_rows asks again)
            self.over_max_photos.add(listing_url)
            self.count["photos_over_max"] += len(images) - int(cap)
            self.log.warning("%s: listing %s names %d photos, more than max_photos (%d): only the "
                             "first %d are fetched", self.location, listing_url, len(images),
                             int(cap), int(cap))
        return images[:int(cap)]

    def photo(self, url: str) -> None:
        """Make sure the photo at ``url`` is in the folder (download, link or already there)."""
        key = image_key(url)
        if key in self.images or key in self.failed:
            return
        shared = self._shared(key)
        name = self.names.assign(key, Path(shared["path"]).name if shared else url_filename(url))
        dest = self.out / name
        if shared:
            how = _link_or_copy(Path(shared["path"]), dest)
            rec = {k: shared[k] for k in ("image_url", "bytes", "sha256", "fetched_at")}
            rec["source"] = shared["path"]
            self.count[how] += 1
        else:
            url, dest, fetched = self._download_sized(key, url, dest)
            rec = {"image_url": url, **fetched}
            self.count["downloaded"] += 1
            self.count["bytes"] += rec["bytes"]
        rec = {"kind": "image", "key": key, "filename": dest.name, **rec}
        self.journal.add(rec)
        self.images[key] = rec
        self.index.add(key, {**rec, "path": str(dest.resolve())})

    def _download_sized(self, key: str, url: str, dest: Path) -> tuple[str, Path, dict]:
        """Download ``url``; on a 404 of a larger size, the 600x450 one under its own name."""
        try:
            return url, dest, self.download(url, dest)
        except FetchError as exc:
            small = self.fallback_url(url)
            if exc.status != 404 or not small:
                raise
        self.log.info("%s: %s missing, taking %s", self.location, url, small)
        self.count["size_fallback"] += 1
        self.names.release(key)
        dest = self.out / self.names.assign(key, url_filename(small))
        return small, dest, self.download(small, dest)

    def _shared(self, key: str) -> dict | None:
        """Another location's finished file of this photo, if it is still there intact."""
        found = self.index.find(key)
        if not found:
            return None
        path = Path(found["path"])
        if path.parent == self.out.resolve() or not path.is_file() or path.stat().st_size != found["bytes"]:
            return None
        return found

    def download(self, url: str, dest: Path) -> dict:
        """Fetch to ``.<name>.part``, check it decodes, rename into place.

        A site that blocks may answer every photo with an HTML page and status 200 instead of a
        403: each photo would be skipped as "not an image" and the location end "complete" with
        nothing. So HTML pages in a row count as 403s do: ``max_forbidden`` of them stop the
        location (:class:`Blocked`); one among photos is only that photo's error page.
        """
        body = self.fetcher.get(url).body
        part = dest.with_name(f".{dest.name}.part")
        try:
            with open(part, "wb") as handle:
                handle.write(body)
            try:
                check_image(part, int(self.s.get("max_pixels") or MAX_PIXELS))
            except Skip as exc:
                self.html_in_a_row = self.html_in_a_row + 1 if isinstance(exc, HtmlPage) else 0
                if self.html_in_a_row >= int(self.s["max_forbidden"]):
                    raise Blocked(url, f"an HTML page instead of a photo {self.html_in_a_row} "
                                       "times in a row (a block or challenge page?)", 200) from exc
                raise
            os.replace(part, dest)
        finally:
            part.unlink(missing_ok=True)
        self.html_in_a_row = 0
        return {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(), "fetched_at": _now()}

    # -- flow -----------------------------------------------------------------------------------

    def skip(self, what: str, target: str, exc: Exception) -> None:
        """Leave one result page, listing or photo out: logged and counted by reason.

        One whose cause may pass (:attr:`FetchError.transient`: a timeout, a 5xx or 429 after
        every retry, an unreadable robots.txt) is also counted in ``retryable``: the location is
        then not complete, and a rerun asks for it again (a skip is never journaled).
        """
        reason = getattr(exc, "reason", str(exc))
        cause = reason.split(" (")[0]  # the kind, without the details that vary
        self.skipped[cause] += 1
        self.count["skipped"] += 1
        if getattr(exc, "transient", False):
            self.retryable[what] += 1
            self.retryable_reasons[cause] += 1
        self.log.warning("%s: skipped %s %s: %s", self.location, what, target, reason)

    def retry_reason(self) -> str:
        """Why a location whose every step ran is still not complete: what a rerun would fetch."""
        missing = ", ".join(f"{n} {what}{'s' if n > 1 else ''}" for what, n in self.retryable.items())
        causes = ", ".join(f"{cause}: {n}" for cause, n in self.retryable_reasons.most_common())
        return f"{missing} not fetched for reasons that may pass ({causes}); rerun to fetch them"

    def progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_log >= 5:
            self.last_log = now
            c = self.count
            self.log.info("%s: pages %d, listings %d, photos %d (downloaded %d, %.1f MB; linked %d), skipped %d",
                          self.location, c["pages"], c["listings"], len(self.images), c["downloaded"],
                          c["bytes"] / 1e6, c["linked"] + c["copied"], c["skipped"])

    def listing(self, listing: dict) -> None:
        try:
            full = self.posting(listing)
        except Blocked:
            raise
        except FetchError as exc:
            self.count["listing_failed"] += 1
            self.skip("listing", exc.url, exc)
            return
        self.count["listings"] += 1
        for url in full["images"]:
            try:
                self.photo(url)
            except Blocked:
                raise
            except (FetchError, Skip) as exc:
                self.failed.add(image_key(url))
                self.skip("photo", url, exc)
            self.progress()

    def run(self, max_rent: float | None) -> tuple[bool, str]:
        """Collect the listings by the configured method; returns (complete, reason if not)."""
        if self.method is None and self.s["method"] == "html":
            self.decide("html", "method: html in the config")
        if self.method in (None, "api"):
            try:
                return self.run_api(max_rent)
            except ApiError as exc:
                if self.s["method"] == "api":
                    self.method_reason = f"search API unusable: {exc}"
                    return False, f"search API: {exc} (method: api, so no HTML fall back)"
                self.log.warning("%s: search API unusable (%s): falling back to HTML", self.location, exc)
                self.decide("html", f"search API unusable: {exc}")
        return self.run_html(max_rent)

    def decide(self, method: str, reason: str) -> None:
        """Fix the path of this location for this and every resumed run (journaled)."""
        self.method, self.method_reason = method, reason
        self.journal.add({"kind": "method", "method": method, "reason": reason})
        self.log.info("%s: listings from %s (%s)", self.location,
                      "the search API" if method == "api" else "HTML pages", reason)

    def limits(self):
        """Page/batch numbers allowed by ``pages`` (None: no limit)."""
        return range(int(self.s["pages"])) if self.s.get("pages") else itertools.count()

    def full(self) -> bool:
        """True once ``max_listings`` listings are done."""
        cap = self.s.get("max_listings")
        return bool(cap) and self.count["listings"] + self.count["listing_failed"] >= int(cap)

    def batch(self, offset: int, max_rent, cache_id: str) -> dict:
        """The API batch at ``offset`` (journaled); ApiError when it is unusable."""
        if offset in self.batches:
            return self.batches[offset]
        area, host = self.site.get("area_id"), self.site.get("hostname") or self.location
        if not str(area or "").isdigit():
            raise ApiError(f"no area id for {self.location} in the site list (the sites page has "
                           "none; the Areas JSON has)")
        url = search_url(self.s["api_url"], int(area), offset, max_rent, cache_id)
        try:
            body = self.fetcher.get_page(url).body
        except Blocked:
            raise
        except FetchError as exc:
            raise ApiError(f"{exc.reason} ({exc.url})") from None
        site_base = self.s["site_url"].format(site=self.location)
        found = decode_batch(body, site_base)
        check_area(found, int(area), host)
        if found.skipped:
            self.log.warning("%s: %d of %d API items not decodable, skipped", self.location,
                             found.skipped, found.items)
        entry = {"kind": "page", "source": "api", "offset": offset, "url": url, "listings": found.listings,
                 "total": found.total, "cache_id": found.cache_id, "items": found.items,
                 "skipped": found.skipped}
        self.journal.add(entry)
        self.pages[offset], self.batches[offset] = found.listings, entry
        return entry

    def run_api(self, max_rent: float | None) -> tuple[bool, str]:
        """Walk the API batches: the first from ``/full``, then ``/batch`` ones with its cacheId."""
        offset, cache_id, seen = 0, "", set()
        for number in self.limits():
            try:
                entry = self.batch(offset, max_rent, cache_id)
            except ApiError as exc:
                if offset == 0:
                    raise
                return False, f"search API batch from {offset} failed: {exc}"
            if self.method is None:
                self.decide("api", "the search API answered; HTML not needed")
            cache_id = cache_id or entry["cache_id"]
            self.count["pages"] += 1
            self.count["api_items_skipped"] += entry["skipped"]
            new = [x for x in entry["listings"] if x["listing_url"] not in seen]
            self.log.info("%s: API batch %d (from %d): %d listings, %d new, %d of %d in all", self.location,
                          number + 1, offset, len(entry["listings"]), len(new), offset + entry["items"],
                          entry["total"])
            for listing in new:
                if self.full():
                    return True, ""
                seen.add(listing["listing_url"])
                self.listing(listing)
            offset += entry["items"]
            if not new or not entry["items"] or offset >= entry["total"] or self.full():
                break
        return True, ""

    def run_html(self, max_rent: float | None) -> tuple[bool, str]:
        """Walk the result pages until one brings no new listing (the static list has no paging)."""
        offset, seen = 0, set()
        for number in self.limits():
            try:
                listings = self.page(offset, max_rent)
            except Blocked:
                raise
            except FetchError as exc:
                self.skip("result page", exc.url, exc)
                return False, f"result page s={offset} failed: {exc.reason}"
            self.count["pages"] += 1
            new = [x for x in listings if x["listing_url"] not in seen]
            self.log.info("%s: result page %d (s=%d): %d listings, %d new", self.location, number + 1,
                          offset, len(listings), len(new))
            for listing in new:
                if self.full():
                    return True, ""
                seen.add(listing["listing_url"])
                self.listing(listing)
            if not new or self.full():
                break
            offset += len(listings)
        return True, ""

    def manifest_rows(self) -> list[dict]:
        """One row per photo occurrence, in page/listing/photo order, from what is complete."""
        rows, seen, cap = [], set(), self.s.get("max_listings")
        for offset in sorted(self.pages):
            for listing in self.pages[offset]:
                if listing["listing_url"] in seen or (cap and len(seen) >= int(cap)):
                    continue
                seen.add(listing["listing_url"])
                if listing.get("image_ids") is None and listing["listing_url"] not in self.postings:
                    continue
                full = self.posting(listing)
                for url in full["images"]:
                    rec = self.images.get(image_key(url))
                    if rec:
                        rows.append({**{k: full.get(k, "") for k in LISTING_FIELDS},
                                     "filename": rec["filename"], "image_url": rec["image_url"],
                                     "state": self.state,
                                     "bytes": rec["bytes"], "sha256": rec["sha256"],
                                     "fetched_at": rec["fetched_at"]})
        return rows


def _site_row(location: str, settings: dict, sites_cache: Path, lock_dir: Path, logger) -> dict:
    """The site's row of the cached site list (state, area id, ...), fetched once if missing."""
    try:
        sites = list_sites(settings["sites_url"], settings, cache=sites_cache, lock_dir=lock_dir)
    except (FetchError, SitesError) as exc:
        logger.warning("%s: site list unavailable (%s): state and area id unknown", location,
                       getattr(exc, "reason", exc))
        return {}
    for site in sites:
        if site["site"] == location:
            return site
    logger.warning("%s: not among the US sites of %s / %s: state and area id unknown", location,
                   settings["areas_url"], settings["sites_url"])
    return {}


def scrape_location(location: str, out_dir, settings: dict, lock_dir=None, log=None,
                    state: str | None = None, sites_cache=None) -> dict:
    """Scrape one site into ``out_dir``: photo files, ``manifest.csv``, ``scrape_state.json``.

    Never raises for what the network or the site does: a block (repeated 403s) or a failed
    result page ends the location early, recorded as incomplete with the reason, and what was
    done is kept; a rerun resumes from the journal. A location whose listings and photos were
    all tried but some failed for a reason that may pass is recorded as incomplete too, saying
    how many; a rerun fetches only those. ``state`` defaults to the site's state in the
    sites list (``sites_cache``, default ``<out_dir>/../sites.csv``); ``lock_dir`` (default
    ``<out_dir>/../.scrape-locks``) must be shared by all jobs that scrape at the same time.
    Returns the counts that also go to the state file.
    """
    logger = log or logging.getLogger("vacancy.sources.scrape")
    settings = resolve(settings)
    out_dir = Path(out_dir)
    lock_dir = Path(lock_dir) if lock_dir else out_dir.parent / ".scrape-locks"
    site = _site_row(location, settings, Path(sites_cache or out_dir.parent / "sites.csv"), lock_dir, logger)
    state = state_code(site.get("state", "") if state is None else state)
    max_rent = max_rent_for(state, settings["max_rent"])
    job = LocationScrape(location, out_dir, settings, lock_dir, logger, state, site)
    try:
        try:
            complete, reason = job.run(max_rent)
        except Blocked as exc:
            kind = "host failing" if isinstance(exc, Failing) else "blocked"
            complete, reason = False, f"{kind}: {exc.reason} (last {exc.url}); rerun to resume"
            logger.error("%s: stopped, %s", location, reason)
        if complete and job.retryable:
            complete, reason = False, job.retry_reason()
        rows = job.manifest_rows()
        params = {k: settings[k] for k in ("method", "pages", "max_listings", "max_photos",
                                           "site_url", "api_url", "image_url", "image_size",
                                           "max_rent", "delay_s")}
        write_csv(out_dir / "manifest.csv", rows, MANIFEST_COLUMNS,
                  prov=provenance("scrape", {"location": location, **params}))
        result = {
            "location": location, "state": state, "max_rent": max_rent, "complete": complete,
            "reason": reason, "method": job.method, "method_reason": job.method_reason,
            "pages": job.count["pages"], "listings": job.count["listings"],
            "api_items_skipped": job.count["api_items_skipped"], "size_fallback": job.count["size_fallback"],
            "photos_over_max": job.count["photos_over_max"],
            "rows": len(rows), "files": len({r["filename"] for r in rows}),
            "downloaded": job.count["downloaded"], "linked": job.count["linked"] + job.count["copied"],
            "bytes_downloaded": job.count["bytes"], "skipped": job.count["skipped"],
            "skipped_by_reason": dict(job.skipped), "retryable": sum(job.retryable.values()),
            "requests": job.fetcher.requests,
            "finished": _now(),
        }
        write_json(out_dir / STATE, result)
        job.progress(force=True)
        logger.info("%s: %s, %d manifest rows, %d files%s", location,
                    "complete" if complete else "INCOMPLETE", len(rows), result["files"],
                    f" ({reason})" if reason else "")
        return result
    finally:
        job.close()
