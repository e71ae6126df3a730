"""Rule scrape: one Craigslist location into results/raw/<location>/."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.sources.scrape import scrape_location  # noqa: E402

p = snakemake.params
scrape_location(snakemake.wildcards.location, p.out_dir, dict(p.settings), lock_dir=p.lock_dir)
