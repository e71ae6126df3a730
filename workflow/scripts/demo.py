"""Rule demo: write the synthetic demo corpus and its ground truth."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.sources.demo import generate_corpus  # noqa: E402

p = snakemake.params
generate_corpus(p.raw_dir, snakemake.output.truth, list(p.locations), p.n_images, p.seed)
