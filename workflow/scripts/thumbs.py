"""Rule thumbs: one location's cell-sized thumbnails, made once for every layout."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.thumbs import thumbs_for_location  # noqa: E402

thumbs_for_location(snakemake.input[0], snakemake.output[0], threads=snakemake.threads,
                    **snakemake.params)
