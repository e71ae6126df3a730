"""Rule pca: PCA fitted on the selection (fresh), or new rows projected with a saved layout's
model (layout.mode: extend)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

i, o, p = snakemake.input, snakemake.output, dict(snakemake.params)  # noqa: F821
mode, layout_dir = p.pop("mode"), p.pop("layout_dir")
if mode == "extend":
    from vacancy.map.layout import extend_pca  # noqa: E402

    extend_pca(list(i.features), i.selected, layout_dir, o.pca, o.model, p["batch_size"],
               workers=snakemake.threads)  # noqa: F821
else:
    from vacancy.map.pca import run_pca  # noqa: E402

    run_pca(list(i.features), o.pca, selected_csv=i.selected, model_out=o.model,
            workers=snakemake.threads, **p)  # noqa: F821
