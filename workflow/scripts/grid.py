"""Rule grid: assign each image one cell (fresh), or keep a saved layout's cells and place the
new images on free ones (layout.mode: extend)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

i, o, p = snakemake.input, snakemake.output, dict(snakemake.params)  # noqa: F821
mode, layout_dir, cell_px, tile_px = (p.pop(k) for k in ("mode", "layout_dir", "cell_px", "tile_px"))
if mode == "extend":
    p.pop("reserve")
    from vacancy.map.layout import extend_grid  # noqa: E402

    extend_grid(i.tsne, i.pca, layout_dir, o[0], cell_px, tile_px)
else:
    from vacancy.map.grid import run_grid  # noqa: E402

    workers = snakemake.threads  # noqa: F821
    run_grid(i.tsne, o[0], pca_h5=i.get("pca") or None, workers=workers, **p)
