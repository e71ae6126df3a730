"""Rule regions: named regions of the map (k-means on the PCA vectors of the grid's images)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.map.regions import run_regions  # noqa: E402

run_regions(snakemake.input.pca, snakemake.input.grid, snakemake.output[0],  # noqa: F821
            **snakemake.params)  # noqa: F821
