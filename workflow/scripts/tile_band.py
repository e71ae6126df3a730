"""Rule tile_band: one band of the pyramid's top zooms, from the stored thumbnails."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.tiles import read_grid_shape, render_band  # noqa: E402

i, p = snakemake.input, snakemake.params
cols, rows = read_grid_shape(i.grid)
render_band(i.grid, snakemake.output[0], cols, rows, int(snakemake.wildcards.band), p.jobs,
            list(i.thumbs), cell_px=p.cell_px, tile_px=p.tile_px, quality=p.quality,
            background=p.background)
