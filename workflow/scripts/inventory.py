"""Rule inventory: list a location's images and their listing data."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.sources.inventory import build_inventory  # noqa: E402

build_inventory(snakemake.params.location_dir, snakemake.wildcards.location, snakemake.output[0])
