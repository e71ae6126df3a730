# From features to the map: PCA, t-SNE, grid, viewer and the tile pyramid.


rule pca:
    """PCA fitted on pca.fit_rows of the selected images' rows, from whole HDF5 chunks (or all,
    by IncrementalPCA), then every row transformed in batches, in one process per thread."""
    input:
        features=per_location(f"{R}/features/{{location}}.h5"),
        selected=f"{R}/selected.csv",
        # layout.mode: extend: saved images keep their vectors, new rows are projected
        model=layout_file("pca_model.npz"),
        reference=layout_file("reference.h5"),
    output:
        pca=f"{R}/pca.h5",
        model=f"{R}/pca_model.npz",
    log:
        f"{R}/logs/pca.log",
    benchmark:
        f"{R}/benchmarks/pca.tsv"
    conda:
        f"{ENVS}/map.yaml"
    # The SVDs use 2 BLAS threads whatever the job gets (vacancy.map.pca.BLAS_THREADS:
    # the numbers depend on the count), so ask for 2 cores; the transform runs in one process
    # per thread given (the same numbers for any count).
    threads: 2
    resources:
        mem_mb=sizing.mem_fixed(2500),
        runtime=sizing.runtime_per_mb(minutes_per_mb=0.002),
    params:
        mode=LAYOUT_MODE,
        layout_dir=LAYOUT if EXTEND else None,
        n_components=config["pca"]["n_components"],
        batch_size=config["pca"]["batch_size"],
        fit_rows=config["pca"]["fit_rows"],
    script:
        "../scripts/pca.py"


rule neighbours:
    """Every image's tsne.neighbours nearest neighbours in PCA space, found once: a perplexity
    change reruns tsne from them (it takes the first 3 x perplexity) instead of searching again.
    Not used by layout.mode extend (its tsne places new images in the saved map)."""
    input:
        pca=f"{R}/pca.h5",
    output:
        f"{R}/neighbours.npz",
    log:
        f"{R}/logs/neighbours.log",
    benchmark:
        f"{R}/benchmarks/neighbours.tsv"
    conda:
        f"{ENVS}/map.yaml"
    threads: 8
    resources:
        mem_mb=sizing.mem_per_mb(base_mb=1000, mb_per_input_mb=10),
        runtime=sizing.runtime_per_mb(minutes_per_mb=0.05),
    params:
        k=config["tsne"]["neighbours"],
        seed=config["tsne"]["seed"],
    script:
        "../scripts/neighbours.py"


rule tsne:
    """2-D embedding with openTSNE (extend: new images embedded in the saved map)."""
    input:
        pca=f"{R}/pca.h5",
        neighbours=[] if EXTEND else f"{R}/neighbours.npz",
        reference=layout_file("reference.h5"),
    output:
        f"{R}/tsne.csv",
    log:
        f"{R}/logs/tsne.log",
    benchmark:
        f"{R}/benchmarks/tsne.tsv"
    conda:
        f"{ENVS}/map.yaml"
    threads: 8
    resources:
        mem_mb=sizing.mem_per_mb(base_mb=1000, mb_per_input_mb=25, only="pca"),
        runtime=sizing.runtime_per_mb(minutes_per_mb=0.125, only="pca"),
    params:
        mode=LAYOUT_MODE,
        layout_dir=LAYOUT if EXTEND else None,
        settings=resolve_settings(**config["tsne"]),
    script:
        "../scripts/tsne.py"


rule grid:
    """One image per cell of a near-square grid (lapjv), refined in PCA space (FLAS) unless
    grid.refine is none (auto: above dense_max images); only with none is pca.h5 not an input."""
    input:
        tsne=f"{R}/tsne.csv",
        pca=f"{R}/pca.h5" if config["grid"]["refine"] != "none" or EXTEND else [],
        saved_grid=layout_file("grid.csv"),
        saved_provenance=layout_file("provenance.json"),
    output:
        f"{R}/grid.csv",
    log:
        f"{R}/logs/grid.log",
    benchmark:
        f"{R}/benchmarks/grid.tsv"
    conda:
        f"{ENVS}/map.yaml"
    # the blocks of each assignment pass are solved on 2 threads (the same cells for any count)
    threads: 2
    resources:
        # 0.38 GB at 103,615 images, 2.0 GB at a million (bench/million.py): pca.h5 is most of
        # the input (70 MB, ~670 MB)
        mem_mb=sizing.mem_per_mb(base_mb=1500, mb_per_input_mb=1.5),
        runtime=sizing.runtime_per_image(ms_per_image=1),
    params:
        mode=LAYOUT_MODE,
        layout_dir=LAYOUT if EXTEND else None,
        # extend grows the grid by whole tiles; a fresh grid does not depend on the tiles
        cell_px=config["tiles"]["cell_px"] if EXTEND else None,
        tile_px=config["tiles"]["tile_px"] if EXTEND else None,
        # spare cells a fresh grid keeps among the images; an extend keeps the saved grid's
        reserve=None if EXTEND else config["layout"]["reserve"],
        method=config["grid"]["method"],
        dense_max=config["grid"]["dense_max"],
        block=config["grid"]["block"],
        holes=config["grid"]["holes"],
        repair_passes=config["grid"]["repair_passes"],
        refine=config["grid"]["refine"],
        radius_decay=config["grid"]["radius_decay"],
        refine_dims=config["grid"]["refine_dims"],
    script:
        "../scripts/grid.py"


rule regions:
    """Named regions of the map: k-means on the PCA vectors of the grid's images (their own
    rule, so changing regions.* reruns only it and the viewer)."""
    input:
        pca=f"{R}/pca.h5",
        grid=f"{R}/grid.csv",
    output:
        f"{R}/regions.csv",
    log:
        f"{R}/logs/regions.log",
    benchmark:
        f"{R}/benchmarks/regions.tsv"
    # before the tile bands, which are many and need nothing of it, so that regions and the
    # viewer run beside them rather than after (a chain of ~10 s at 125,000 images)
    priority: 1
    conda:
        f"{ENVS}/map.yaml"
    threads: 1
    resources:
        # 0.41 GB at 103,615 images, 2.4 GB at a million (bench/million.py); pca.h5 ~670 MB there
        mem_mb=sizing.mem_per_mb(base_mb=1000, mb_per_input_mb=3),
        runtime=sizing.runtime_per_image(ms_per_image=0.5, table="grid"),
    params:
        k=config["regions"]["k"],
        dims=config["regions"]["dims"],
        seed=config["regions"]["seed"],
    script:
        "../scripts/regions.py"


rule viewer:
    """The Leaflet site: page, offline copy of Leaflet, per-block cell metadata, per-cell field
    arrays and the named regions."""
    input:
        grid=f"{R}/grid.csv",
        selected=f"{R}/selected.csv",
        regions=f"{R}/regions.csv",
        leaflet=repo_path("node_modules/leaflet/dist/leaflet.js"),
        pmtiles_js=repo_path("node_modules/pmtiles/dist/pmtiles.js"),
    output:
        directory(f"{R}/site"),
    log:
        f"{R}/logs/viewer.log",
    benchmark:
        f"{R}/benchmarks/viewer.tsv"
    priority: 1  # as regions: beside the tile bands
    conda:
        f"{ENVS}/viewer.yaml"
    threads: 1
    resources:
        # 0.31 GB at 103,615 images, 1.8 GB at a million (bench/million.py), whose tables are
        # 51 and ~500 MB
        mem_mb=sizing.mem_per_mb(base_mb=1000, mb_per_input_mb=3),
        runtime=sizing.runtime_per_image(ms_per_image=0.5, table="grid"),
    params:
        pmtiles_url="../tiles.pmtiles" if config["publish"]["pmtiles"] else None,
        # as the user wrote it: a relative folder moves with the working directory
        originals_dir=config["folder"]["path"] if config["source"] == "folder" else None,
        cell_px=config["tiles"]["cell_px"],
        tile_px=config["tiles"]["tile_px"],
        background=config["tiles"]["background"],
    script:
        "../scripts/viewer.py"


# layout.mode: extend makes no bands: the tiles rule links the saved tiles and renders the others
TILE_BANDS = range(config["tiles"]["jobs"]) if not EXTEND else []


rule tile_band:
    """One horizontal band of the pyramid's top zooms, drawn from the stored thumbnails."""
    input:
        grid=f"{R}/grid.csv",
        thumbs=per_location(f"{R}/thumbs/{{location}}.h5"),
    output:
        directory(f"{R}/tile-bands/{{band}}"),
    log:
        f"{R}/logs/tile_band/{{band}}.log",
    benchmark:
        f"{R}/benchmarks/tile_band/{{band}}.tsv"
    wildcard_constraints:
        band=r"\d+",
    conda:
        f"{ENVS}/viewer.yaml"
    threads: 1
    resources:
        mem_mb=sizing.mem_fixed(1000),
        runtime=sizing.runtime_per_image(
            ms_per_image=0.5, table="grid", fraction=1 / config["tiles"]["jobs"]
        ),
    params:
        jobs=config["tiles"]["jobs"],
        cell_px=config["tiles"]["cell_px"],
        tile_px=config["tiles"]["tile_px"],
        quality=config["tiles"]["quality"],
        background=config["tiles"]["background"],
    script:
        "../scripts/tile_band.py"


rule tiles:
    """The tile pyramid z/x/y joined from the bands; the target that makes the whole map."""
    input:
        grid=f"{R}/grid.csv",
        site=f"{R}/site",
        bands=expand(f"{R}/tile-bands/{{band}}", band=TILE_BANDS),
        thumbs=per_location(f"{R}/thumbs/{{location}}.h5") if EXTEND else [],
        saved_manifest=layout_file("tiles/manifest.json"),
    output:
        directory(f"{R}/tiles"),
        # the PMTiles archive, only when publish.pmtiles is on
        [f"{R}/tiles.pmtiles"] if config["publish"]["pmtiles"] else [],
    log:
        f"{R}/logs/tiles.log",
    benchmark:
        f"{R}/benchmarks/tiles.tsv"
    conda:
        f"{ENVS}/viewer.yaml"
    threads: 1
    resources:
        mem_mb=sizing.mem_fixed(1000),
        runtime=sizing.runtime_per_image(ms_per_image=0.05, table="grid"),
    params:
        mode=LAYOUT_MODE,
        layout_dir=LAYOUT if EXTEND else None,
        cell_px=config["tiles"]["cell_px"],
        tile_px=config["tiles"]["tile_px"],
        quality=config["tiles"]["quality"],
        background=config["tiles"]["background"],
    script:
        "../scripts/tiles.py"


rule save_layout:
    """Keep this run's layout (PCA model, t-SNE map, grid, tiles and their manifest) in
    layout.dir for later extends. Run it by hand after a fresh run worth keeping; its output is
    a receipt in results/, never the layout folder itself, so no rule can ever remake a layout
    that the extend rules read."""
    input:
        pca=f"{R}/pca.h5",
        model=f"{R}/pca_model.npz",
        tsne=f"{R}/tsne.csv",
        grid=f"{R}/grid.csv",
        tiles=f"{R}/tiles",
    output:
        f"{R}/layout-saved.json",
    log:
        f"{R}/logs/save_layout.log",
    benchmark:
        f"{R}/benchmarks/save_layout.tsv"
    conda:
        f"{ENVS}/map.yaml"
    threads: 1
    resources:
        mem_mb=sizing.mem_fixed(1000),
        runtime=sizing.runtime_per_image(ms_per_image=0.5, table="grid"),
    params:
        layout_dir=LAYOUT,
        cell_px=config["tiles"]["cell_px"],
        tile_px=config["tiles"]["tile_px"],
        quality=config["tiles"]["quality"],
        background=config["tiles"]["background"],
        stages={
            **{k: config[k] for k in ("pca", "tsne", "grid", "tiles")},
            "reserve": config["layout"]["reserve"],
        },
    script:
        "../scripts/save_layout.py"
