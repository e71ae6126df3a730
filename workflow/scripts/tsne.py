"""Rule tsne: 2-D embedding of the PCA coordinates."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.map.tsne import run_tsne  # noqa: E402

run_tsne(snakemake.input[0], snakemake.output[0], dict(snakemake.params.settings),
         n_jobs=snakemake.threads)
