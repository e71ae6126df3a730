"""Benchmark the scraper's two paths: requests per location and per 1,000 photos, and a full US scrape.

    .venv/bin/python bench/scrape.py                      # 400 listings, about a minute
    .venv/bin/python bench/scrape.py --listings 1500 --us-photos 8

One location of the fixture Craigslist (``tests/fixture_site.py``, real HTTP over loopback) with
``--listings`` listings is scraped twice, the same photos each time: ``method: api`` (the search
API: one request per 360/1080 listings, photo ids included) and ``method: html`` (the static
result list, then one ``/view/d/`` posting page per listing). The server's own request log is
counted: listing requests (site list, API batches, result pages and their redirect hops,
postings), robots.txt, photos. ``delay_s`` is 0 here (the count, not the pause, is measured).

Then the wall time of a full US scrape at ``delay_s: 2`` (jitter 0.5: a mean pause of 2.5 s per
request and host) is estimated from those counts. Hosts are paced independently (one lock per
host, shared by all jobs), so the scrape takes as long as its busiest host: the images host on
both paths, the www host too on the HTML path. Listings per location and photos per listing of
the live site are assumptions (``--us-listings``, ``--us-photos``; the probe shows a site's real
counts); transfer time is left out, so the estimates are lower bounds.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "tests"))

from fixture_site import current_settings, serve_fixture_site  # noqa: E402
from vacancy.sources.scrape import scrape_location  # noqa: E402
from vacancy.sources.scrape.api import FIRST_BATCH, NEXT_BATCH  # noqa: E402

US_AREAS = 413


def kind(path: str) -> str:
    if path == "/robots.txt":
        return "robots"
    return "photo" if path.startswith("/images/") else "listing"


def run(method: str, listings: int, root: Path) -> dict:
    """Scrape portland with ``listings`` listings by ``method``; the server's counts."""
    with serve_fixture_site(portland=listings) as site:
        site.api_first = FIRST_BATCH
        settings = current_settings(site, method=method, delay_s=0.0, jitter=0.0, timeout_s=10,
                                    max_bytes=20_000_000)
        start = time.perf_counter()
        result = scrape_location("portland", root / method / "portland", settings, lock_dir=root / method / "locks")
        wall = time.perf_counter() - start
        counts = {"listing": 0, "robots": 0, "photo": 0}
        for request in site.requests:
            counts[kind(request.path)] += 1
    assert result["complete"] and result["method"] == method, result
    return {"method": method, "listings": result["listings"], "photos": result["downloaded"], **counts,
            "total": sum(counts.values()), "wall_s": wall}


def print_measured(rows: list[dict]) -> None:
    print(f"{'method':6} {'listings':>8} {'photos':>6} {'listing req':>11} {'photo req':>9} {'robots':>6} "
          f"{'total':>6} {'req/location':>12} {'listing req/1k photos':>21} {'total req/1k photos':>19} "
          f"{'wall s':>6}")
    for r in rows:
        print(f"{r['method']:6} {r['listings']:8d} {r['photos']:6d} {r['listing']:11d} {r['photo']:9d} "
              f"{r['robots']:6d} {r['total']:6d} {r['total']:12d} {1000 * r['listing'] / r['photos']:21.1f} "
              f"{1000 * r['total'] / r['photos']:19.1f} {r['wall_s']:6.1f}")


def print_estimate(listings_per_location: list[int], photos_per_listing: float, pause_s: float) -> None:
    """Busiest-host wall time of a scrape of every US area, per method."""
    print(f"\nfull US scrape ({US_AREAS} areas), delay_s 2, jitter 0.5 (mean pause {pause_s:.2f} s per "
          f"request and host), {photos_per_listing:g} photos per listing (assumed):")
    print(f"{'listings/area':>13} {'photos':>10} {'api: API req':>12} {'html: www req':>13} "
          f"{'api days':>8} {'html days':>9}")
    for n in listings_per_location:
        batches = 1 + max(0, math.ceil((n - FIRST_BATCH) / NEXT_BATCH))
        photos = US_AREAS * n * photos_per_listing
        api_host = US_AREAS * batches + 1
        www = US_AREAS * (n + 2) + 1  # a posting per listing, the result page and its redirect
        api_days = max(api_host, photos) * pause_s / 86400
        html_days = max(www, photos) * pause_s / 86400
        print(f"{n:13d} {photos:10,.0f} {api_host:12,d} {www:13,d} {api_days:8.1f} {html_days:9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listings", type=int, default=400, help="listings of the fixture location")
    parser.add_argument("--us-listings", default="100,360,1000", help="listings per area for the estimate")
    parser.add_argument("--us-photos", type=float, default=8.0, help="photos per listing for the estimate")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scrape-") as tmp:
        rows = [run(method, args.listings, Path(tmp)) for method in ("api", "html")]
    print_measured(rows)
    api, html = rows
    assert api["photos"] == html["photos"], "both paths must fetch the same photos"
    print(f"\nlisting requests, html / api: {html['listing'] / api['listing']:.0f}x "
          f"({html['listing']} / {api['listing']}) for the same {api['photos']} photos; "
          f"all requests: {html['total'] / api['total']:.2f}x")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print_estimate([int(n) for n in args.us_listings.split(",")], args.us_photos, 2.0 * 1.25)


if __name__ == "__main__":
    main()
