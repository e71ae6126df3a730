# The per-image stage, one job per location so --cores is used; then the global dedup and select.


rule prepare:
    """One decode per image: triage class, dHash, features and thumbnail of a location's images."""
    input:
        f"{R}/inventory/{{location}}.csv",
    output:
        triage=f"{R}/triage/{{location}}.csv",
        hashes=f"{R}/hashes/{{location}}.csv",
        features=f"{R}/features/{{location}}.h5",
        thumbs=f"{R}/thumbs/{{location}}.h5",
        rejects=f"{R}/prepare/{{location}}.rejects.csv",
    log:
        f"{R}/logs/prepare/{{location}}.log",
    benchmark:
        f"{R}/benchmarks/prepare/{{location}}.tsv"
    conda:
        f"{ENVS}/images.yaml"
    # worker processes for a location that is a large share of all images (README "Preparation")
    threads:
        sizing.prepare_threads(
            per_location(f"{R}/inventory/{{location}}.csv"), workflow.resource_settings.cores
        )
    resources:
        mem_mb=sizing.mem_per_thread(1000, 500),
        runtime=sizing.runtime_per_image(ms_per_image=5),
    params:
        graphic_below=config["triage"]["graphic_below"],
        photo_above=config["triage"]["photo_above"],
        method=config["triage"]["method"],
        score_graphic_below=config["triage"]["score_graphic_below"],
        score_photo_above=config["triage"]["score_photo_above"],
        hash_size=config["dedup"]["hash_size"],
        color=config["features"]["color"],
        batch_size=config["features"]["batch_size"],
        cell_px=config["tiles"]["cell_px"],
        background=config["tiles"]["background"],
        draft=config["prepare"]["draft"],
        draft_side=config["prepare"]["draft_side"],
        max_pixels=config["max_pixels"],
        # the rows of the last run, for images that did not change (not an output: Snakemake
        # deletes outputs before a job, and this must survive it; README "Preparation")
        reuse_dir=lambda wildcards: f"{R}/cache/prepare/{wildcards.location}",
    script:
        "../scripts/prepare.py"


rule dedup:
    """Group copies among the images that can reach the map; keep the largest of each group."""
    input:
        hashes=per_location(f"{R}/hashes/{{location}}.csv"),
        triage=per_location(f"{R}/triage/{{location}}.csv"),
        features=per_location(f"{R}/features/{{location}}.h5"),
        exclude=curator_file("exclude_file"),
        # layout.mode: extend: the saved map's images are kept before any copy of them
        placed=layout_file("grid.csv"),
    output:
        f"{R}/duplicates.csv",
    log:
        f"{R}/logs/dedup.log",
    benchmark:
        f"{R}/benchmarks/dedup.tsv"
    conda:
        f"{ENVS}/images.yaml"
    # two processes read the feature files, two threads check the candidate pairs
    threads: 2
    resources:
        # about 4 KB per image compared plus the 2 reader processes (bench/million_images.py:
        # 0.7 GB at 125,000 images, 3.7 GB + 1.1 GB of readers at a million; the hash tables
        # are ~70 bytes per image: 2.1 GB asked at 125,000, 6.5 GB at a million)
        mem_mb=sizing.mem_per_mb(base_mb=1500, mb_per_input_mb=75, only="hashes"),
        # the feature files are most of the input (~3 GB at 125,000) and are read once
        runtime=sizing.runtime_per_mb(minutes_per_mb=0.005),
    params:
        max_distance=config["dedup"]["max_distance"],
        check=config["dedup"]["check"],
        inner_distance=config["dedup"]["inner_distance"],
        min_correlation=config["dedup"]["min_correlation"],
        keep_maybe=config["triage"]["keep_maybe"],
        exclude_file=config.get("exclude_file") or "",
        placed_csv=os.path.join(LAYOUT, "grid.csv") if EXTEND else "",
    script:
        "../scripts/dedup.py"


rule select:
    """Photos (and maybe, all or those the include file names), minus copies, minus rejects,
    minus the curator's exclude file."""
    input:
        inventories=per_location(f"{R}/inventory/{{location}}.csv"),
        triage=per_location(f"{R}/triage/{{location}}.csv"),
        rejects=per_location(f"{R}/prepare/{{location}}.rejects.csv"),
        duplicates=f"{R}/duplicates.csv",
        exclude=curator_file("exclude_file"),
        include=curator_file("include_file"),
    output:
        selected=f"{R}/selected.csv",
        rejects=f"{R}/rejects.csv",
    log:
        f"{R}/logs/select.log",
    benchmark:
        f"{R}/benchmarks/select.tsv"
    conda:
        f"{ENVS}/images.yaml"
    threads: 1
    resources:
        # every inventory row and 4 triage columns as dicts: 0.4 GB at 125,000 images, 2.5 GB
        # at a million (bench/million_images.py), whose tables are 68 and ~540 MB
        mem_mb=sizing.mem_per_mb(base_mb=1500, mb_per_input_mb=4.5),
        runtime=sizing.runtime_per_mb(minutes_per_mb=0.2),
    params:
        keep_maybe=config["triage"]["keep_maybe"],
        exclude_file=config.get("exclude_file") or "",
        include_file=config.get("include_file") or "",
    script:
        "../scripts/select.py"
