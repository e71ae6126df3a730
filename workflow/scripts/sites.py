"""Checkpoint sites: the US sites of the sites page, cached as a CSV."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

import logging  # noqa: E402

from vacancy.sources.scrape import list_sites  # noqa: E402
from vacancy.sources.scrape.sites import SitesError  # noqa: E402

settings = dict(snakemake.params.settings)
try:
    list_sites(settings["sites_url"], settings, cache=snakemake.output[0],
               lock_dir=Path(snakemake.output[0]).parent / ".scrape-locks")
except SitesError as exc:  # one clear message instead of a MissingOutputException
    logging.getLogger("vacancy.sources.scrape").error("%s", exc)
    sys.exit(f"sites: {exc}")
