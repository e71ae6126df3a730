"""Rule pca: IncrementalPCA over all feature shards."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.map.pca import run_pca  # noqa: E402

run_pca(list(snakemake.input.features), snakemake.output[0],  # noqa: F821
        selected_csv=snakemake.input.selected, **snakemake.params)  # noqa: F821
