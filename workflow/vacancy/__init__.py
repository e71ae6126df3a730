"""vacancy: rental-listing photos -> a zoomable map of similar rooms.

One module per stage, each called by a thin Snakemake rule (workflow/rules/*.smk):
sources (inventory), demo (synthetic corpus), triage, hashes, dedup, select, features, pca,
tsne, grid, tiles, viewer; common holds the helpers they share.
"""

__version__ = "0.1.0"
