"""Rule features: feature vectors of one location's selected images, to HDF5."""
import os
import sys
from pathlib import Path

# ImageMagick reads its thread limit when it loads: match the rule's threads so parallel jobs
# do not oversubscribe the cores (measured: 13 ms/image with default threads, 7.4 ms with 1).
os.environ.setdefault("MAGICK_THREAD_LIMIT", str(snakemake.threads))  # noqa: F821

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.features import features_for_location  # noqa: E402

features_for_location(snakemake.input[0], snakemake.wildcards.location, snakemake.output[0],
                      **snakemake.params)
