# Sources: each ends in results/raw/<location>/ (or the user's folder) and an inventory table.
# Where each source keeps its files is the SOURCES registry in common.smk; the rules that make
# those files (a generated demo, a scrape) exist only for their own source.


if config["source"] == "demo":

    rule demo:
        """A synthetic corpus laid out exactly as a scrape would be, plus its ground truth."""
        output:
            manifests=expand(f"{R}/raw/{{location}}/manifest.csv", location=LOCATIONS),
            truth=f"{R}/demo/truth.csv",
        log:
            f"{R}/logs/demo.log",
        benchmark:
            f"{R}/benchmarks/demo.tsv"
        conda:
            f"{ENVS}/images.yaml"
        resources:
            mem_mb=sizing.mem_fixed(1000),
            runtime=60,
        params:
            # results/raw, from the outputs (lint: a path prefix is derived, not written twice)
            raw_dir=lambda wildcards, output: os.path.dirname(os.path.dirname(output.manifests[0])),
            locations=LOCATIONS,
            n_images=config["demo"]["n_images"],
            seed=config["demo"]["seed"],
        script:
            "../scripts/demo.py"


if config["source"] == "craigslist":

    # A location left incomplete keeps its outputs, so Snakemake would not say so: we do.
    onsuccess:
        report_incomplete_scrapes()

    onerror:
        report_incomplete_scrapes()

    localrules:
        sites,
        craigslist_probe,

    # About five polite requests to check the live formats; prints a table, writes no raw data.
    # (A comment, not a docstring: snakefmt 2.1 moves the docstring of a rule without input or
    # output below its first directives, where Snakemake cannot parse it.)
    rule craigslist_probe:
        log:
            f"{R}/logs/craigslist_probe.log",
        conda:
            f"{ENVS}/scrape.yaml"
        params:
            site=(
                (config["craigslist"]["locations"] or ["sfbay"])[0]
                if isinstance(config["craigslist"]["locations"], list)
                else "sfbay"
            ),
            settings={**config["craigslist"]},
        script:
            "../scripts/probe.py"

    checkpoint sites:
        """The US sites (Areas JSON, else the sites page), cached with state, area id and position."""
        output:
            f"{R}/raw/sites.csv",
        log:
            f"{R}/logs/sites.log",
        conda:
            f"{ENVS}/scrape.yaml"
        params:
            settings={**config["craigslist"], "max_pixels": config["max_pixels"]},
        script:
            "../scripts/sites.py"

    rule scrape:
        """One location's listings and photos, politely; resumable after any interruption."""
        output:
            manifest=f"{R}/raw/{{location}}/manifest.csv",
            state=f"{R}/raw/{{location}}/scrape_state.json",
        log:
            f"{R}/logs/scrape/{{location}}.log",
        benchmark:
            f"{R}/benchmarks/scrape/{{location}}.tsv"
        conda:
            f"{ENVS}/scrape.yaml"
        threads: 1
        resources:
            mem_mb=500,
            runtime=24 * 60,
        params:
            out_dir=lambda wildcards: f"{R}/raw/{wildcards.location}",
            lock_dir=f"{R}/raw/.scrape-locks",
            settings={**config["craigslist"], "max_pixels": config["max_pixels"]},
        script:
            "../scripts/scrape.py"


localrules:
    inventory,


rule inventory:
    """One table per location of its images and their listing data."""
    input:
        location_input,
    output:
        f"{R}/inventory/{{location}}.csv",
    log:
        f"{R}/logs/inventory/{{location}}.log",
    conda:
        f"{ENVS}/images.yaml"
    params:
        location_dir=location_dir,
    script:
        "../scripts/inventory.py"
