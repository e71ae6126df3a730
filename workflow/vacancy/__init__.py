"""vacancy: rental-listing photos -> a zoomable map of similar rooms.

One module per stage, each called by a thin Snakemake rule (workflow/rules/*.smk):
sources (inventory), demo (synthetic corpus), prepare (one decode per image for triage, hashes,
features and thumbs), dedup, select, pca, tsne, grid (+ refine), tiles, viewer; common holds the
helpers they share.
"""

import os

__version__ = "0.1.0"

# Wand finds ImageMagick by trying some 30 library names, each wrong guess running a subprocess:
# 0.23 s of every job's start-up. Debian's and conda-forge's ImageMagick 6 are "-6.Q16", so that
# name is tried first (Wand still searches on if it is not there).
os.environ.setdefault("WAND_MAGICK_LIBRARY_SUFFIX", "-6.Q16")
