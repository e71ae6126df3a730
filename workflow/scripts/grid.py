"""Rule grid: assign each image one cell."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.map.grid import run_grid  # noqa: E402

run_grid(snakemake.input.tsne, snakemake.output[0],  # noqa: F821
         pca_h5=snakemake.input.get("pca") or None, **snakemake.params)  # noqa: F821
