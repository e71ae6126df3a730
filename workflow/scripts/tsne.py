"""Rule tsne: 2-D embedding of the PCA coordinates (fresh), or the new images embedded in a
saved layout's map (layout.mode: extend)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

i, p = snakemake.input, snakemake.params  # noqa: F821
if p.mode == "extend":
    from vacancy.map.layout import extend_tsne  # noqa: E402

    extend_tsne(i.pca, p.layout_dir, snakemake.output[0], dict(p.settings),  # noqa: F821
                n_jobs=snakemake.threads)  # noqa: F821
else:
    from vacancy.map.tsne import run_tsne  # noqa: E402

    run_tsne(i.pca, snakemake.output[0], dict(p.settings), n_jobs=snakemake.threads,  # noqa: F821
             neighbours_npz=i.neighbours)
