"""Rule dedup: group copies across all locations."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.dedup import dedup  # noqa: E402

dedup(list(snakemake.input), snakemake.output[0], max_distance=snakemake.params.max_distance)
