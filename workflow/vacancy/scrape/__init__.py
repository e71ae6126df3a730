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
``python -m vacancy.scrape.probe SITE``).
"""

from .defaults import DEFAULTS
from .fetch import Blocked, FetchError, NotAllowed
from .location import check_image, scrape_location
from .parse import sanitize_filename
from .sites import list_sites, max_rent_for, select_sites

__all__ = [
    "DEFAULTS", "Blocked", "FetchError", "NotAllowed", "check_image", "list_sites", "max_rent_for",
    "sanitize_filename", "scrape_location", "select_sites",
]
