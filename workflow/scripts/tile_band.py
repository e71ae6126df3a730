"""Rule tile_band: one band of the pyramid's top zooms, from the stored thumbnails."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.map.tiles import TileSpec, render_band  # noqa: E402

i, p = snakemake.input, snakemake.params
spec = TileSpec.for_grid(i.grid, p)
render_band(i.grid, snakemake.output[0], spec, int(snakemake.wildcards.band), p.jobs,
            list(i.thumbs))
