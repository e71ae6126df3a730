"""Which sites a run scrapes, from ``craigslist.locations`` / ``start`` / ``count`` (standard library only).

Why a module of its own: the Snakefile calls :func:`select_sites` when it is parsed (to know the
locations before the DAG is built), and every Snakemake process parses it, on a cluster once per
job; the rest of the scraper pulls in requests and BeautifulSoup, which the parse must not pay.
"""

from __future__ import annotations

import logging

log = logging.getLogger("vacancy.sources.scrape")


def select_sites(sites: list[dict], locations, start: int = 0, count: int | None = None) -> list[str]:
    """Site names to scrape: ``locations`` (a list, or ``"all"`` = every listed site), sliced.

    ``start``/``count`` take a slice so a huge scrape can be done in parts; names repeat once.
    """
    if isinstance(locations, str):
        if locations != "all":
            raise ValueError(f"craigslist.locations must be a list of site names or 'all', not {locations!r}")
        names = [s["site"] for s in sites]
    else:
        names = [str(n) for n in locations]
        known = {s["site"] for s in sites}
        for name in names:
            if known and name not in known:
                log.warning("craigslist location %r is not on the sites page", name)
    names = list(dict.fromkeys(names))
    start = max(int(start or 0), 0)
    return names[start:] if count is None else names[start:start + int(count)]
