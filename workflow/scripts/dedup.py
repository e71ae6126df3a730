"""Rule dedup: group copies across all locations."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.images.dedup import dedup  # noqa: E402

i, p = snakemake.input, snakemake.params  # noqa: F821
dedup(list(i.hashes), snakemake.output[0], max_distance=p.max_distance,  # noqa: F821
      triage_csvs=list(i.triage), feature_h5s=list(i.features), keep_maybe=p.keep_maybe,
      exclude_file=p.exclude_file or None, check=p.check, inner_distance=p.inner_distance,
      min_correlation=p.min_correlation, threads=snakemake.threads,  # noqa: F821
      placed_csv=p.placed_csv or None)
