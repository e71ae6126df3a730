"""Craigslist scraper: one location per call, polite, resumable, safe with hostile input.

Entry points for the workflow (the ``scrape`` rule runs :func:`scrape_location` per location):

* :func:`list_sites` - the US sites of the sites page (cached as a CSV with each site's state);
* :func:`select_sites` - ``craigslist.locations`` / ``start`` / ``count`` to site names;
* :func:`max_rent_for` - the rent cap of ``craigslist.max_rent`` (``census``: 30% of the state's
  median household income, per month);
* :func:`scrape_location` - photos + ``manifest.csv`` + ``scrape_state.json`` of one site;
* :data:`DEFAULTS` - every ``craigslist.*`` key with its default.

Modules: ``fetch`` (HTTP rules), ``parse`` (HTML), ``sites``, ``location`` (the driver).
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
