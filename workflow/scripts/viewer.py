"""Rule viewer: the Leaflet site, built from the grid before the tiles are drawn."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.map.tiles import TileSpec  # noqa: E402
from vacancy.map.viewer import build_site  # noqa: E402

i, p = snakemake.input, snakemake.params
layout = TileSpec.for_grid(i.grid, p).meta()
build_site(layout, i.grid, i.selected, snakemake.output[0], Path(i.leaflet).parent,
           pmtiles_url=p.pmtiles_url, originals_dir=p.originals_dir, pmtiles_js=i.pmtiles_js,
           regions_csv=i.regions)
