# Per-image stages, sharded per location so --cores is used; then the global dedup and select.


rule triage:
    """Entropy of each image (ImageMagick through Wand): graphic, maybe or photo."""
    input:
        f"{R}/inventory/{{location}}.csv",
    output:
        table=f"{R}/triage/{{location}}.csv",
        rejects=f"{R}/triage/{{location}}.rejects.csv",
    params:
        graphic_below=config["triage"]["graphic_below"],
        photo_above=config["triage"]["photo_above"],
        max_pixels=config["max_pixels"],
    threads: 1
    resources:
        mem_mb=sizing.mem_fixed(1000),
        runtime=sizing.runtime_per_image(ms_per_image=10),
    log:
        f"{R}/logs/triage/{{location}}.log",
    benchmark:
        f"{R}/benchmarks/triage/{{location}}.tsv"
    conda:
        f"{ENVS}/images.yaml"
    script:
        "../scripts/triage.py"


rule hashes:
    """Perceptual hash (dHash, imagehash) of each image."""
    input:
        f"{R}/inventory/{{location}}.csv",
    output:
        table=f"{R}/hashes/{{location}}.csv",
        rejects=f"{R}/hashes/{{location}}.rejects.csv",
    params:
        hash_size=config["dedup"]["hash_size"],
        max_pixels=config["max_pixels"],
    threads: 1
    resources:
        mem_mb=sizing.mem_fixed(1000),
        runtime=sizing.runtime_per_image(ms_per_image=5),
    log:
        f"{R}/logs/hashes/{{location}}.log",
    benchmark:
        f"{R}/benchmarks/hashes/{{location}}.tsv"
    conda:
        f"{ENVS}/images.yaml"
    script:
        "../scripts/hashes.py"


rule dedup:
    """Group copies across all locations; keep the largest of each group."""
    input:
        per_location(f"{R}/hashes/{{location}}.csv"),
    output:
        f"{R}/duplicates.csv",
    params:
        max_distance=config["dedup"]["max_distance"],
    threads: 1
    resources:
        mem_mb=sizing.mem_fixed(2000),
        runtime=sizing.runtime_per_mb(minutes_per_mb=0.5),
    log:
        f"{R}/logs/dedup.log",
    benchmark:
        f"{R}/benchmarks/dedup.tsv"
    conda:
        f"{ENVS}/images.yaml"
    script:
        "../scripts/dedup.py"


def exclude_input(wildcards):
    """The curator's exclude file is an input, so editing it reruns select and what follows."""
    return [config["exclude_file"]] if config.get("exclude_file") else []


rule select:
    """Photos (and maybe), minus copies, minus rejects, minus the curator's exclude file."""
    input:
        inventories=per_location(f"{R}/inventory/{{location}}.csv"),
        triage=per_location(f"{R}/triage/{{location}}.csv"),
        rejects=per_location(f"{R}/{{stage}}/{{location}}.rejects.csv", stage=["triage", "hashes"]),
        duplicates=f"{R}/duplicates.csv",
        exclude=exclude_input,
    output:
        selected=f"{R}/selected.csv",
        rejects=f"{R}/rejects.csv",
    params:
        keep_maybe=config["triage"]["keep_maybe"],
        exclude_file=config.get("exclude_file") or "",
    threads: 1
    resources:
        mem_mb=sizing.mem_fixed(2000),
        runtime=sizing.runtime_per_mb(minutes_per_mb=0.2),
    log:
        f"{R}/logs/select.log",
    benchmark:
        f"{R}/benchmarks/select.tsv"
    conda:
        f"{ENVS}/images.yaml"
    script:
        "../scripts/select.py"


rule features:
    """64x64 gray + blurred copies of each selected image of a location, to HDF5."""
    input:
        f"{R}/selected.csv",
    output:
        f"{R}/features/{{location}}.h5",
    params:
        color=config["features"]["color"],
        batch_size=config["features"]["batch_size"],
        draft=config["features"]["draft"],
        max_pixels=config["max_pixels"],
    threads: 1
    resources:
        mem_mb=sizing.mem_fixed(1500),
        runtime=sizing.runtime_per_image(ms_per_image=10, per_location=True),
    log:
        f"{R}/logs/features/{{location}}.log",
    benchmark:
        f"{R}/benchmarks/features/{{location}}.tsv"
    conda:
        f"{ENVS}/images.yaml"
    script:
        "../scripts/features.py"


rule thumbs:
    """A cell-sized thumbnail of every image, made once: new layouts reuse it."""
    input:
        f"{R}/inventory/{{location}}.csv",
    output:
        f"{R}/thumbs/{{location}}.h5",
    params:
        cell_px=config["tiles"]["cell_px"],
        background=config["tiles"]["background"],
    threads: 1
    resources:
        mem_mb=sizing.mem_fixed(1000),
        runtime=sizing.runtime_per_image(ms_per_image=3),
    log:
        f"{R}/logs/thumbs/{{location}}.log",
    benchmark:
        f"{R}/benchmarks/thumbs/{{location}}.tsv"
    conda:
        f"{ENVS}/viewer.yaml"
    script:
        "../scripts/thumbs.py"
