"""Rule triage: entropy class of each image of one location."""
import os
import sys
from pathlib import Path

# ImageMagick reads its thread limit when it loads: match the rule's threads so parallel jobs
# do not oversubscribe the cores (measured: 13 ms/image with default threads, 7.4 ms with 1).
os.environ.setdefault("MAGICK_THREAD_LIMIT", str(snakemake.threads))  # noqa: F821

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.triage import triage_location  # noqa: E402

out = snakemake.output
triage_location(snakemake.input[0], out.table, out.rejects, **snakemake.params)
