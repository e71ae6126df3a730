"""Every ``craigslist.*`` config key with its default, for the scraper's own modules.

The defaults live in the workflow's config schema (``craigslist`` in
``workflow/schemas/config.schema.yaml``), the one place for every default; the commented copy is
``config.yaml``. The fetcher, the parsers, the probe and the per-location driver read them from
here when they run outside the workflow (tests, the probe command).
"""

from __future__ import annotations

from ...common import config_defaults

#: Defaults of the ``craigslist:`` config section, as the schema states them.
DEFAULTS: dict = config_defaults()["craigslist"]

#: The photo size every Craigslist photo has (the fall back of ``image_size``).
BASE_SIZE = "600x450"
#: Redirect hops followed (each hop is checked against allowed_hosts and robots.txt).
MAX_REDIRECTS = 5
#: Size cap of a page: a result or posting page, an API answer, the sites list (photos keep
#: ``max_bytes``). The site's are tens to hundreds of KB; parsing is where a hostile one costs
#: memory: BeautifulSoup's tree of 2 MB of unclosed tags took 433 MB (20 MB: 1.7 GB and 194 s),
#: and the scrape rule asks for 500 MB.
MAX_PAGE_BYTES = 2_000_000
#: Pixels above which a downloaded image is rejected (the workflow's ``max_pixels``).
MAX_PIXELS: int = config_defaults()["max_pixels"]


def resolve(settings: dict | None) -> dict:
    """DEFAULTS overlaid with the given settings (unknown keys kept, None values kept)."""
    return {**DEFAULTS, **(settings or {})}
