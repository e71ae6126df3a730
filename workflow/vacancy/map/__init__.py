"""Rules of map.smk: PCA, t-SNE, grid (+ FLAS refinement, quality), regions, the viewer site, the
tile pyramid and its PMTiles archive.

Nothing is imported here: the rule files import some of these modules at parse
time (standard library only).
"""
