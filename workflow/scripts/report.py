"""Rules report_*: the curator's report's figures, sheets and tables (vacancy.report.build)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.report import build  # noqa: E402

i, o, p, rule = snakemake.input, snakemake.output, snakemake.params, snakemake.rule  # noqa: F821
if rule == "report_triage":
    build.triage_report(list(i.inventories), list(i.triage), i.selected, dict(o.items()),
                        **p.scale, near=p.near, max_maybe=p.max_maybe, sheet_px=p.sheet_px,
                        max_pixels=p.max_pixels)
elif rule == "report_duplicates":
    build.duplicates_report(i.duplicates, list(i.inventories), list(i.triage), i.selected, o.sheet,
                            max_distance=p.max_distance, min_correlation=p.min_correlation,
                            groups=p.groups, sheet_px=p.sheet_px, max_pixels=p.max_pixels)
elif rule == "report_rejects":
    build.rejects_report(i.rejects, o.html, max_rows=p.max_rows)
elif rule == "report_map":
    build.map_report(i.tiles, o.overview, max_px=p.map_px)
    build.tsne_report(i.tsne, i.selected, o.tsne)
    build.grid_report(i.tsne, i.grid, i.pca, o.displacement, o.quality)
elif rule == "report_resources":
    build.resources_report(p.benchmarks, o.bars, o.table)
else:
    raise ValueError(f"report.py does not make rule {rule!r}")
