"""Craigslist scraper: one location per call, polite, resumable, safe with hostile input.

Entry points for the workflow (the ``scrape`` rule runs :func:`scrape_location` per location):

* :func:`list_sites` - the US sites of the Areas JSON or the sites page (cached as a CSV with each
  site's state, area id and position);
* :func:`select_sites` - ``craigslist.locations`` / ``start`` / ``count`` to site names;
* :func:`max_rent_for` - the rent cap of ``craigslist.max_rent`` (``census``: 30% of the state's
  median household income, per month);
* :func:`scrape_location` - photos + ``manifest.csv`` + ``scrape_state.json`` of one site;
* :data:`DEFAULTS` - every ``craigslist.*`` key with its default.

Modules: ``fetch`` (HTTP rules), ``api`` (the JSON search API), ``parse`` (HTML and the Areas
JSON), ``sites``, ``location`` (the driver: API or HTML per ``method``), ``probe`` (the live check:
``python -m vacancy.sources.scrape.probe SITE``).
"""

import importlib

#: Public name -> the module that defines it. Imported on first use (PEP 562), so that the
#: Snakefile can import the light ``vacancy.sources.scrape.selection`` without requests and
#: BeautifulSoup.
_EXPORTS = {
    "DEFAULTS": "defaults", "Blocked": "fetch", "Failing": "fetch", "FetchError": "fetch",
    "NotAllowed": "fetch",
    "check_image": "location", "scrape_location": "location", "sanitize_filename": "parse",
    "list_sites": "sites", "max_rent_for": "sites", "select_sites": "selection",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vacancy.sources.scrape' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
