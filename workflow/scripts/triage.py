"""Rule triage: entropy class of each image of one location."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.triage import triage_location  # noqa: E402

out = snakemake.output
triage_location(snakemake.input[0], out.table, out.rejects, **snakemake.params)
