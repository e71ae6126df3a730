"""vacancy: rental-listing photos -> a zoomable map of similar rooms.

One module per stage, each called by a thin Snakemake rule, in a sub-package named like the
rule file that holds the rule (workflow/rules/*.smk): ``sources`` (demo, inventory, scrape),
``images`` (prepare with triage, hashes, features and thumbs; dedup, select), ``map`` (pca, tsne,
grid + refine, regions, viewer, tiles, publish), ``report``. The modules at the top (common,
formats, imaging, resources, evaluate, serve) are shared by several stages or by the rules.
"""

import os

__version__ = "0.1.0"

# Wand finds ImageMagick by trying some 30 library names, each wrong guess running a subprocess:
# 0.23 s of every job's start-up. Debian's and conda-forge's ImageMagick 6 are "-6.Q16", so that
# name is tried first (Wand still searches on if it is not there).
os.environ.setdefault("WAND_MAGICK_LIBRARY_SUFFIX", "-6.Q16")
