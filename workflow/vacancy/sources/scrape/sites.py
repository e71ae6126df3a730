"""Which Craigslist sites to scrape, their states and area ids, and the rent cap of ``max_rent: census``.

Why a cached site list: ``locations: all`` must be known before Snakemake builds its DAG, and
every scrape job needs its site's state (manifest column, census rent cap) and area id (the search
API asks by area id). The list comes from the Areas JSON (``areas_url``), else from the sites page
(``sites_url``, current or older form); it is fetched once and kept as a results CSV with a file
lock, so parallel jobs do not refetch it. An empty list is an error that names what to check.
"""

from __future__ import annotations

import csv
import fcntl
import logging
import os
from functools import lru_cache
from pathlib import Path

from ...common import provenance, read_csv, write_csv
from .defaults import resolve
from .fetch import FetchError, Fetcher
from .parse import parse_areas, parse_sites
from .selection import select_sites  # noqa: F401  (part of this module's interface)

log = logging.getLogger("vacancy.sources.scrape")

#: ACS median household income by state, with year and source columns.
CENSUS_CSV = Path(__file__).resolve().parents[3] / "data" / "acs_median_income.csv"
SITES_COLUMNS = ["site", "name", "state", "url", "area_id", "hostname", "region", "latitude", "longitude"]
#: The command that checks the live formats (named in every "found nothing" message).
PROBE_HINT = ("python -m vacancy.sources.scrape.probe <site> "
              "(or: snakemake --cores 1 craigslist_probe)")


class SitesError(Exception):
    """Neither the Areas JSON nor the sites page gave a single US site."""
#: Share of income a household can afford for rent (the usual 30% rule).
RENT_SHARE = 0.30


def list_sites(sites_url: str, settings: dict, cache: str | os.PathLike | None = None,
               lock_dir: str | os.PathLike | None = None) -> list[dict]:
    """US sites: ``[{site, name, state, url, area_id, ...}]`` from the Areas JSON or the sites page.

    With ``cache`` (a CSV path) nothing is fetched when the cache exists; the check and the fetch
    happen under a file lock so concurrent jobs fetch once. SitesError when both sources give no
    site (the message names the URLs, what was expected and found, and the probe to run).
    """
    settings = resolve({**settings, "sites_url": sites_url})
    if cache is None:
        return _fetch_sites(settings, lock_dir)
    cache = Path(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.with_name(cache.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if cache.exists():
            return read_csv(cache)
        sites = _fetch_sites(settings, lock_dir or cache.parent / ".scrape-locks")
        write_csv(cache, sites, SITES_COLUMNS, prov=provenance(
            "scrape-sites", {k: settings[k] for k in ("areas_url", "sites_url", "site_url")}))
        return sites


def _fetch_sites(settings: dict, lock_dir) -> list[dict]:
    """The Areas JSON first; the sites page when it fails or has no US area."""
    fetcher = Fetcher(settings, lock_dir or Path(".scrape-locks"))
    found = []
    try:
        for url, parse, expected in (
            (settings["areas_url"], lambda body, _: parse_areas(body, settings["site_url"]),
             "a JSON array of areas with Country US and a Hostname"),
            (settings["sites_url"], lambda body, page: parse_sites(body, page, settings["site_url"]),
             f"a US heading with site links of the form {settings['site_url']} or .../area/<site>"),
        ):
            if not url:
                continue
            try:
                page = fetcher.get_page(url)
                sites = parse(page.body, page.url)
            except (FetchError, ValueError) as exc:
                found.append(f"{url}: {getattr(exc, 'reason', exc)} (expected {expected})")
                log.warning("site list %s unusable: %s", url, getattr(exc, "reason", exc))
                continue
            log.info("site list %s: %d US sites", url, len(sites))
            if sites:
                return sites
            found.append(f"{url}: 0 US sites in {len(page.body)} bytes (expected {expected})")
    finally:
        fetcher.close()
    raise SitesError("no US Craigslist site found; " + "; ".join(found)
                     + f". The site's format may have changed: run {PROBE_HINT}")


def state_code(state: str) -> str:
    """The two-letter code of a state name from the sites page (as the demo writes it), else as is."""
    return _codes().get((state or "").strip().lower(), (state or "").strip())


@lru_cache(maxsize=1)
def _codes() -> dict[str, str]:
    with open(CENSUS_CSV, newline="", encoding="utf-8") as handle:
        return {row["state"].strip().lower(): row["abbreviation"].strip() for row in csv.DictReader(handle)}


@lru_cache(maxsize=1)
def _census() -> dict[str, float]:
    table = {}
    with open(CENSUS_CSV, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            income = float(row["median_household_income"])
            table[row["state"].strip().lower()] = income
            table[row["abbreviation"].strip().lower()] = income
    return table


def max_rent_for(state: str, max_rent) -> float | None:
    """The monthly rent cap for a site in ``state``: None, the given number, or from the census.

    ``census``: 30% of the state's ACS median household income, per month, whole dollars. A
    state the table does not have (territories other than Puerto Rico) gives None (no cap).
    """
    if max_rent is None or max_rent == "":
        return None
    if isinstance(max_rent, str) and max_rent.strip().lower() == "census":
        income = _census().get((state or "").strip().lower())
        if income is None:
            log.warning("max_rent census: no median income for state %r, no rent cap", state)
            return None
        return float(round(income * RENT_SHARE / 12))
    value = float(max_rent)
    if value <= 0:
        raise ValueError(f"craigslist.max_rent must be positive, not {max_rent!r}")
    return value
