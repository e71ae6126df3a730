# The curator's report. The rules below make its figures, sheets and tables (part of `all`);
# `snakemake --report report.html` then collects every output marked report() into one file.
# Captions are in workflow/report/. Only the stdlib is imported here (the Snakefile is parsed by
# every job).

RP = f"{R}/report"
REPORT = config["report"]


report: "../report/workflow.rst"


rule report_triage:
    """Histogram of the triage value by class with the thresholds; sheets of the images nearest
    each threshold and of the maybe images; the maybe ids as an include-file template."""
    input:
        inventories=per_location(f"{R}/inventory/{{location}}.csv"),
        triage=per_location(f"{R}/triage/{{location}}.csv"),
        selected=f"{R}/selected.csv",
    output:
        histogram=report(
            f"{RP}/triage-histogram.png",
            caption="../report/triage_histogram.rst",
            category="1. Triage",
            subcategory="histogram",
        ),
        low_sheet=report(
            f"{RP}/triage-near-graphic-threshold.jpg",
            caption="../report/triage_sheet.rst",
            category="1. Triage",
            subcategory="near the thresholds",
        ),
        high_sheet=report(
            f"{RP}/triage-near-photo-threshold.jpg",
            caption="../report/triage_sheet.rst",
            category="1. Triage",
            subcategory="near the thresholds",
        ),
        maybe_sheet=report(
            f"{RP}/triage-maybe.jpg",
            caption="../report/triage_maybe.rst",
            category="1. Triage",
            subcategory="maybe",
        ),
        maybe_list=report(
            f"{RP}/maybe-include-template.txt",
            caption="../report/maybe_list.rst",
            category="1. Triage",
            subcategory="maybe",
        ),
    log:
        f"{R}/logs/report/triage.log",
    benchmark:
        f"{R}/benchmarks/report_triage.tsv"
    conda:
        f"{ENVS}/report.yaml"
    threads: 1
    resources:
        mem_mb=sizing.mem_fixed(1000),
        runtime=sizing.runtime_per_mb(minutes_per_mb=0.1),
    params:
        scale=triage_scale(),
        near=REPORT["near"],
        max_maybe=REPORT["max_maybe"],
        sheet_px=REPORT["sheet_px"],
        max_pixels=config["max_pixels"],
    script:
        "../scripts/report.py"


rule report_duplicates:
    """The duplicate groups nearest the distance limit: keeper beside the removed copies."""
    input:
        duplicates=f"{R}/duplicates.csv",
        inventories=per_location(f"{R}/inventory/{{location}}.csv"),
        triage=per_location(f"{R}/triage/{{location}}.csv"),
        selected=f"{R}/selected.csv",
    output:
        sheet=report(
            f"{RP}/duplicates-near-limit.jpg",
            caption="../report/duplicates.rst",
            category="2. Duplicates",
        ),
    log:
        f"{R}/logs/report/duplicates.log",
    benchmark:
        f"{R}/benchmarks/report_duplicates.tsv"
    conda:
        f"{ENVS}/report.yaml"
    threads: 1
    resources:
        mem_mb=sizing.mem_fixed(1000),
        runtime=sizing.runtime_per_mb(minutes_per_mb=0.1),
    params:
        max_distance=config["dedup"]["max_distance"],
        min_correlation=config["dedup"]["min_correlation"],
        groups=REPORT["dedup_groups"],
        sheet_px=REPORT["sheet_px"],
        max_pixels=config["max_pixels"],
    script:
        "../scripts/report.py"


rule report_rejects:
    """Every image that could not be used, with the reason, counted by reason."""
    input:
        rejects=f"{R}/rejects.csv",
    output:
        html=report(f"{RP}/rejects.html", caption="../report/rejects.rst", category="3. Rejects"),
    log:
        f"{R}/logs/report/rejects.log",
    benchmark:
        f"{R}/benchmarks/report_rejects.tsv"
    conda:
        f"{ENVS}/report.yaml"
    threads: 1
    resources:
        mem_mb=sizing.mem_fixed(1000),
    params:
        max_rows=REPORT["max_rows"],
    script:
        "../scripts/report.py"


rule report_map:
    """A low-zoom picture of the finished map, the t-SNE scatter by location, grid quality."""
    input:
        tiles=f"{R}/tiles",
        tsne=f"{R}/tsne.csv",
        grid=f"{R}/grid.csv",
        pca=f"{R}/pca.h5",
        selected=f"{R}/selected.csv",
    output:
        overview=report(
            f"{RP}/map-overview.jpg", caption="../report/map_overview.rst", category="4. Map"
        ),
        tsne=report(f"{RP}/tsne-by-location.png", caption="../report/tsne.rst", category="4. Map"),
        displacement=report(
            f"{RP}/grid-displacement.png",
            caption="../report/grid_quality.rst",
            category="5. Grid quality",
        ),
        quality=report(
            f"{RP}/grid-quality.html",
            caption="../report/grid_quality.rst",
            category="5. Grid quality",
        ),
    log:
        f"{R}/logs/report/map.log",
    benchmark:
        f"{R}/benchmarks/report_map.tsv"
    conda:
        f"{ENVS}/report.yaml"
    threads: 1
    resources:
        mem_mb=sizing.mem_fixed(2000),
        runtime=sizing.runtime_per_image(ms_per_image=1, table="grid"),
    params:
        map_px=REPORT["map_px"],
    script:
        "../scripts/report.py"


REPORT_FIGURES = [
    *rules.report_triage.output,
    *rules.report_duplicates.output,
    *rules.report_rejects.output,
    *rules.report_map.output,
]


rule report_resources:
    """Time and memory of every rule of the run, from Snakemake's benchmark files; it comes
    last (after the map and the other report rules) so that their records are in it."""
    input:
        tiles=f"{R}/tiles",
        figures=REPORT_FIGURES,
    output:
        bars=report(
            f"{RP}/resources.png", caption="../report/resources.rst", category="6. Time and memory"
        ),
        table=report(
            f"{RP}/resources.html",
            caption="../report/resources.rst",
            category="6. Time and memory",
        ),
    log:
        f"{R}/logs/report/resources.log",
    conda:
        f"{ENVS}/report.yaml"
    threads: 1
    resources:
        mem_mb=sizing.mem_fixed(1000),
    params:
        benchmarks=f"{R}/benchmarks",
    script:
        "../scripts/report.py"


rule report_figures:
    """Everything `snakemake --report` shows (`all` depends on it)."""
    input:
        REPORT_FIGURES,
        rules.report_resources.output,
