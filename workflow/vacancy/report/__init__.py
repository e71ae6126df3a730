"""The curator's report: figures, contact sheets and tables that ``snakemake --report`` collects.

A curator decides from it alone which triage thresholds to move, which ``maybe`` images to put on
the map (the include file), whether dedup's distance limit is right, and what the run cost. The
modules are small on purpose: :mod:`.sheets` (JPEG contact sheets of original images with their
names), :mod:`.plots` (matplotlib figures), :mod:`.tables` (self-contained HTML tables), and
:mod:`.build` (what each report rule reads and writes). Nothing here needs a server: every output
is a file that the report embeds.
"""
