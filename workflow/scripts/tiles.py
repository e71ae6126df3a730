"""Rule tiles: the bands joined into the z/x/y pyramid (and, if asked, one PMTiles archive); with
layout.mode: extend, the saved layout's tiles linked and only the changed ones rendered."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.map.publish import write_pmtiles  # noqa: E402
from vacancy.map.tiles import TileSpec, assemble_tiles  # noqa: E402

i, p = snakemake.input, snakemake.params
spec = TileSpec.for_grid(i.grid, p)
if p.mode == "extend":
    from vacancy.map.tile_update import update_tiles  # noqa: E402

    update_tiles(i.grid, Path(p.layout_dir) / "tiles", list(i.thumbs), snakemake.output[0], spec)
else:
    assemble_tiles(list(i.bands), snakemake.output[0], spec)
if len(snakemake.output) > 1:
    write_pmtiles(snakemake.output[0], snakemake.output[1])
