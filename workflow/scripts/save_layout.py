"""Rule save_layout: keep this run's layout in layout.dir, for later runs with layout.mode: extend."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging, write_json  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.map.layout import save_layout  # noqa: E402
from vacancy.map.tiles import TileSpec  # noqa: E402

i, p = snakemake.input, snakemake.params  # noqa: F821
spec = TileSpec.for_grid(i.grid, p)
record = save_layout(p.layout_dir, i.pca, i.model, i.tsne, i.grid, i.tiles, spec, dict(p.stages))
write_json(snakemake.output[0], {"layout": p.layout_dir, **record})  # noqa: F821
