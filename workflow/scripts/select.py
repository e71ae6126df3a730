"""Rule select: the images that go on the map, and every image that could not be read."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.images.select import select_images  # noqa: E402

i, o, p = snakemake.input, snakemake.output, snakemake.params
select_images(list(i.inventories), list(i.triage), i.duplicates, list(i.rejects), o.selected,
              o.rejects, keep_maybe=p.keep_maybe, exclude_file=p.exclude_file or None,
              include_file=p.include_file or None)
