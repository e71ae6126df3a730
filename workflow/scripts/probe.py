"""Rule craigslist_probe: about five requests, one table on stdout and in the log; nothing under raw/."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

import logging  # noqa: E402

from vacancy.sources.scrape.probe import probe  # noqa: E402

result = probe(snakemake.params.site, dict(snakemake.params.settings))  # noqa: F821
table = result.table()
print(table, flush=True)
logging.getLogger("vacancy.sources.scrape").info("\n%s", table)
if not (result.api_ok or result.html_ok):
    sys.exit("craigslist_probe: neither the search API nor the HTML pages yield photos (table above)")
