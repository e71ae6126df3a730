"""Every ``craigslist.*`` config key with its default, in one place.

Why a module of its own: the fetcher, the parsers and the per-location driver all read these,
and the workflow's config schema mirrors them (``craigslist`` in ``workflow/schemas/config.schema.yaml``).
"""

from __future__ import annotations

#: Defaults of the ``craigslist:`` config section. The first keys are the names of the issue.
DEFAULTS: dict = {
    # what to scrape
    "locations": [],            # site names (sfbay, newyork, ...) or "all"
    "start": 0,                 # slice of the site list: first index ...
    "count": None,              # ... and how many (None: to the end)
    "method": "auto",           # auto (search API, HTML as fallback), api or html
    "max_listings": None,       # listings per location (None: all the search returns)
    "pages": None,              # API batches / result pages per location (None: no limit)
    "max_rent": None,           # None, a monthly rent, or "census"
    # where (tests and mirrors point these elsewhere; nothing else is hard-coded)
    "areas_url": "https://reference.craigslist.org/Areas",
    "sites_url": "https://www.craigslist.org/about/sites",
    "site_url": "https://{site}.craigslist.org",
    "api_url": "https://sapi.craigslist.org/web/v8/postings/search/full",
    "image_url": "https://images.craigslist.org/{image_id}_{size}.jpg",
    "image_size": "600x450",    # or 1200x900 (600x450 where the larger one is missing)
    "allowed_hosts": ["craigslist.org"],
    # politeness
    "delay_s": 2.0,             # pause between two requests to one host, across all jobs
    "jitter": 0.5,              # the pause is delay_s * (1 + uniform(0, jitter))
    "timeout_s": 30.0,          # whole-response deadline (connect + headers + body)
    "retries": 3,               # extra attempts after a timeout, a 5xx or a 429
    "user_agent": "vacancy-scraper/0.1 (+https://github.com/vacancy-map/vacancy)",
    "max_bytes": 20_000_000,    # response size cap
    "max_forbidden": 3,         # this many 403s in a row stop the location
    "max_retry_after_s": 600.0, # longest Retry-After honoured (longer ones are clamped)
}

#: The photo size every Craigslist photo has (the fall back of ``image_size``).
BASE_SIZE = "600x450"
#: Redirect hops followed (each hop is checked against allowed_hosts and robots.txt).
MAX_REDIRECTS = 5
#: Pixels above which a downloaded image is rejected (the workflow's ``max_pixels``).
MAX_PIXELS = 50_000_000


def resolve(settings: dict | None) -> dict:
    """DEFAULTS overlaid with the given settings (unknown keys kept, None values kept)."""
    return {**DEFAULTS, **(settings or {})}
