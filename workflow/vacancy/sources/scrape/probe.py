"""A one-minute check of the live Craigslist formats before a scrape that runs for days.

Why: nobody can test against the live site, and a changed format makes a parser come back with
zero listings or zero photos. The probe makes about five polite requests (the Areas JSON, one
search API batch, one result page, one posting, one photo; plus each host's robots.txt), runs
every parser on them and prints one table: which format each answer has, how many listings and
photo ids each parser found, which method ``auto`` would use, and what looks wrong. It writes
nothing under ``results/raw/`` (its host locks live in a temporary folder).

Run: ``python -m vacancy.sources.scrape.probe SITE [--configfile config.yaml]
[--set key=value ...]`` or
``snakemake --cores 1 craigslist_probe`` (the first configured location).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from .api import ApiError, check_area, decode_batch, search_url
from .defaults import resolve
from .fetch import FetchError, Fetcher
from .location import Skip, check_image
from .parse import parse_areas, parse_posting, parse_results, parse_sites, search_ld

log = logging.getLogger("vacancy.sources.scrape")


@dataclass
class Row:
    """One probe step: what was asked, what came back, what the parsers made of it."""

    step: str
    url: str = ""
    status: str = "-"
    found: str = ""
    listings: str = "-"
    photos: str = "-"
    problem: str = ""          # empty when the step looks right

    @property
    def verdict(self) -> str:
        return f"WRONG: {self.problem}" if self.problem else "ok"


class Probe:
    """The steps, in order; each keeps what the next needs (area id, a listing, a photo URL)."""

    def __init__(self, site: str, settings: dict, lock_dir):
        self.site, self.s = site, resolve(settings)
        self.fetcher = Fetcher(self.s, lock_dir)
        self.rows: list[Row] = []
        self.area_id: int | None = None
        self.api_ok = self.html_ok = False
        self.listing_url = ""
        self.photo_url = ""

    def get(self, row: Row, url: str):
        """The body of ``url``, or None with the row filled in with why not."""
        row.url = url
        try:
            response = self.fetcher.get(url)
        except FetchError as exc:
            row.status = str(exc.status or "-")
            row.problem = exc.reason
            return None
        row.status = str(response.status)
        return response

    def areas(self) -> None:
        row = Row("areas")
        self.rows.append(row)
        response = self.get(row, self.s["areas_url"])
        if response is not None:
            try:
                sites = parse_areas(response.body, self.s["site_url"])
            except ValueError as exc:
                row.found, row.problem = "not the Areas JSON", f"{exc}"
                sites = []
            else:
                row.found = f"Areas JSON, {len(sites)} US areas"
            match = [s for s in sites if s["site"] == self.site]
            if match:
                self.area_id = int(match[0]["area_id"])
                row.listings = f"area {self.area_id}"
            elif sites:
                row.problem = f"{self.site!r} is not among its US areas"
        if self.area_id is None:
            self.sites_page()

    def sites_page(self) -> None:
        """Only when the Areas JSON failed: is the site at least on the sites page?"""
        row = Row("sites page")
        self.rows.append(row)
        response = self.get(row, self.s["sites_url"])
        if response is None:
            return
        sites = parse_sites(response.body, response.url, self.s["site_url"])
        row.found = f"{len(sites)} US sites"
        if self.site not in {s["site"] for s in sites}:
            row.problem = f"{self.site!r} not found (links must match site_url or /area/<site>)"

    def api(self) -> None:
        row = Row("search API")
        self.rows.append(row)
        if self.area_id is None:
            row.problem = "no area id (the Areas JSON did not give one), so the API cannot be asked"
            return
        response = self.get(row, search_url(self.s["api_url"], self.area_id))
        if response is None:
            return
        try:
            batch = decode_batch(response.body, self.s["site_url"].format(site=self.site))
            check_area(batch, self.area_id, self.site)
        except ApiError as exc:
            row.found, row.problem = "unknown", str(exc)
            return
        ids = [i for listing in batch.listings for i in listing["image_ids"]]
        row.found = f"v8 items, {batch.items} of {batch.total} ({batch.skipped} not decodable)"
        row.listings, row.photos = str(len(batch.listings)), str(len(ids))
        if batch.listings and not ids:
            row.problem = "listings but no photo ids (has the photo block's tag changed?)"
        elif not batch.listings:
            row.problem = "no listings (an empty area, or a changed format)"
        else:
            self.api_ok = True
            self.photo_url = self.s["image_url"].format(image_id=ids[0], size=self.s["image_size"])

    def results(self) -> None:
        row = Row("result page")
        self.rows.append(row)
        base = self.s["site_url"].format(site=self.site).rstrip("/")
        response = self.get(row, f"{base}/search/apa?{urlencode({'s': 0})}")
        if response is None:
            return
        from bs4 import BeautifulSoup  # the parse module's own parser, for the JSON-LD count

        listings = parse_results(response.body, response.url)
        ld = search_ld(BeautifulSoup(response.body, "html.parser"))
        layouts = sorted({x["layout"] for x in listings})
        row.found = (", ".join(layouts) or "no known list") + (f" + JSON-LD ({len(ld)} items)" if ld else "")
        row.listings = str(len(listings))
        old_ids = sum(len(x["image_ids"] or []) for x in listings)
        ld_images = sum(len(x["images"]) for x in ld)
        row.photos = f"{old_ids} rows, {ld_images} JSON-LD"
        if not listings:
            row.problem = "no li.result-row nor li.cl-static-search-result (class names changed?)"
            return
        with_ids = [x for x in listings if x["image_ids"]]
        if with_ids:  # the older rows name their photos: no posting page needed
            self.html_ok = True
            self.photo_url = self.photo_url or self.s["image_url"].format(
                image_id=with_ids[0]["image_ids"][0], size=self.s["image_size"])
        need_page = [x for x in listings if x["image_ids"] is None]
        self.listing_url = need_page[0]["listing_url"] if need_page else ""

    def posting(self) -> None:
        row = Row("posting")
        self.rows.append(row)
        if not self.listing_url:
            if self.html_ok:
                row.found = "not needed (the result rows name their photo ids)"
            else:
                row.problem = "no listing URL from the result page"
            return
        response = self.get(row, self.listing_url)
        if response is None:
            return
        found = parse_posting(response.body, response.url)
        kinds = [k for k, hit in (("a.thumb data-imgid", found["image_ids"]), ("image links", found["images"])) if hit]
        row.found = ", ".join(kinds) or "no photos found"
        row.listings = f"id {found['listing_id'] or '?'}"
        row.photos = str(max(len(found["image_ids"]), len(found["images"])))
        if not kinds:
            row.problem = "no #thumbs / a.thumb / imgList photos (the posting may have none, or the form changed)"
            return
        self.html_ok = True
        if not self.photo_url:
            ids = found["image_ids"]
            self.photo_url = (self.s["image_url"].format(image_id=ids[0], size=self.s["image_size"])
                              if ids else found["images"][0])

    def photo(self) -> None:
        row = Row("photo")
        self.rows.append(row)
        if not self.photo_url:
            row.problem = "no photo id from the API or the posting"
            return
        response = self.get(row, self.photo_url)
        if response is None:
            return
        with tempfile.NamedTemporaryFile(suffix=".img") as handle:
            handle.write(response.body)
            handle.flush()
            try:
                row.found = f"{check_image(Path(handle.name), 50_000_000)}, {len(response.body)} bytes"
            except Skip as exc:
                row.found, row.problem = "not an image", str(exc)

    def run(self) -> "Probe":
        try:
            for step in (self.areas, self.api, self.results, self.posting, self.photo):
                step()
        finally:
            self.fetcher.close()
        return self

    @property
    def auto(self) -> str:
        """What ``method: auto`` would do for this site, in words."""
        if self.api_ok:
            return "api (the search API gives listings with photo ids)"
        if self.html_ok:
            return "html (the search API failed; result page and posting work)"
        return "NONE: neither path yields photos; do not start a long scrape"

    def table(self) -> str:
        head = ("step", "url", "http", "format found", "listings", "photo ids", "verdict")
        body = [(r.step, r.url, r.status, r.found, r.listings, r.photos, r.verdict) for r in self.rows]
        widths = [max(len(str(line[i])) for line in [head, *body]) for i in range(len(head) - 1)]
        lines = ["  ".join(str(v).ljust(w) for v, w in zip(line, widths)) + "  " + line[-1]
                 for line in [head, *body]]
        wrong = [f"  - {r.step}: {r.problem}" for r in self.rows if r.problem]
        return "\n".join([f"craigslist probe of {self.site!r}", *lines, "",
                          f"auto would use: {self.auto}",
                          "looks wrong:" if wrong else "looks wrong: nothing", *wrong,
                          f"requests made: {self.fetcher.requests} (robots.txt included)"])


def probe(site: str, settings: dict, lock_dir=None) -> Probe:
    """Run the probe for ``site``; host locks in ``lock_dir`` (default: a temporary folder)."""
    if lock_dir is not None:
        return Probe(site, settings, lock_dir).run()
    with tempfile.TemporaryDirectory(prefix="vacancy-probe-") as tmp:
        return Probe(site, settings, tmp).run()


def _settings(configfile: str | None, overrides: list[str]) -> dict:
    """The ``craigslist`` section of a config file, with ``key=value`` overrides (YAML values)."""
    import yaml

    settings = {}
    path = Path(configfile) if configfile else Path("config.yaml")
    if path.is_file():
        settings = (yaml.safe_load(path.read_text()) or {}).get("craigslist") or {}
    elif configfile:
        raise SystemExit(f"probe: config file {configfile!r} does not exist")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"probe: --set wants key=value, not {item!r}")
        settings[key.strip()] = yaml.safe_load(value)
    return settings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vacancy.sources.scrape.probe",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("site", help="a site name (host name) such as sfbay")
    parser.add_argument("--configfile", help="a config with a craigslist: section (default: ./config.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a craigslist.* key (YAML value), e.g. --set delay_s=3")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    result = probe(args.site, _settings(args.configfile, args.set))
    print(result.table())
    return 0 if (result.api_ok or result.html_ok) else 1


if __name__ == "__main__":
    sys.exit(main())
