"""Rule neighbours: every image's nearest neighbours in PCA space, found once for t-SNE."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402
from vacancy.map.tsne import run_neighbours  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

run_neighbours(snakemake.input.pca, snakemake.output[0], snakemake.params.k,  # noqa: F821
               snakemake.params.seed, n_jobs=snakemake.threads)  # noqa: F821
