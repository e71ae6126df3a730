# vacancy: rental-listing photos -> a zoomable map of similar rooms.
# `snakemake --cores 8 tiles` runs the whole DAG; README.md documents every rule and output.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/sources.smk"
include: "workflow/rules/images.smk"
include: "workflow/rules/map.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.tiles.output,
        rules.report_figures.input,
