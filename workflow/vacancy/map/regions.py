"""Stage ``regions``: named regions of the map, for labels at low zoom in the viewer.

k-means (scikit-learn) on the first ``dims`` PCA components of the images on the grid: the
t-SNE layout puts similar images together, so each cluster is mostly one patch of the map, and
clustering the PCA vectors (not the grid positions) keeps a region to one kind of room instead
of a square of the map. Regions are numbered 1..k in the reading order (row, then column) of
their anchor, the member cell nearest the members' mean position, where the viewer puts the
label; the representative image is the member nearest the cluster's centre in PCA space.

Writes ``regions.csv``: ``id, region, representative, anchor`` (representative and anchor are
1 for one image of each region). A rule of its own, so changing ``regions.*`` reruns only it and the viewer.
"""

from __future__ import annotations

import logging

import numpy as np

from ..common import provenance, write_csv

log = logging.getLogger("vacancy.map.regions")
STAGE = "regions"
REGION_COLUMNS = ["id", "region", "representative", "anchor"]


def assign_regions(vectors: np.ndarray, cells: np.ndarray, k: int, dims: int,
                   seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(region per image, 1..k; representative flags; anchor flags)`` for ``vectors`` (n x d)
    on grid ``cells`` (n x 2, col and row). ``k`` is capped at the number of images."""
    from sklearn.cluster import KMeans

    n = len(vectors)
    k = max(1, min(k, n))
    data = np.ascontiguousarray(vectors[:, :dims], dtype=np.float64)
    model = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(data)
    labels = model.labels_
    anchors, reps, anchor_flag = [], np.zeros(n, dtype=np.int8), np.zeros(n, dtype=np.int8)
    for c in range(k):
        members = np.flatnonzero(labels == c)
        if not len(members):
            anchors.append((np.inf, np.inf))
            continue
        pos = cells[members].astype(float)
        anchor = members[np.argmin(((pos - pos.mean(axis=0)) ** 2).sum(axis=1))]
        anchors.append((cells[anchor][1], cells[anchor][0]))
        anchor_flag[anchor] = 1
        reps[members[np.argmin(((data[members] - model.cluster_centers_[c]) ** 2).sum(axis=1))]] = 1
    number = np.empty(k, dtype=np.int64)
    number[sorted(range(k), key=lambda c: anchors[c])] = np.arange(1, k + 1)
    return number[labels], reps, anchor_flag


def run_regions(pca_h5, grid_csv, out_csv, k: int, dims: int, seed: int) -> int:
    """Cluster the grid's images into ``k`` regions and write ``out_csv``; return the count."""
    from ..common import read_csv
    from .pca import read_pca

    ids, vectors = read_pca(pca_h5)
    row_of = {image_id: i for i, image_id in enumerate(ids)}
    every = read_csv(grid_csv)
    grid = [r for r in every if r["id"] in row_of]
    missing = len(every) - len(grid)
    if missing:
        log.warning("regions: %d grid images have no PCA row; left out", missing)
    if not grid:
        return write_csv(out_csv, [], REGION_COLUMNS, prov=provenance(STAGE, {"k": k}))
    cells = np.array([(int(r["col"]), int(r["row"])) for r in grid])
    region, reps, anchors = assign_regions(vectors[[row_of[r["id"]] for r in grid]], cells, k,
                                           dims, seed)
    rows = ({"id": r["id"], "region": int(g), "representative": int(p), "anchor": int(a)}
            for r, g, p, a in zip(grid, region, reps, anchors))
    count = write_csv(out_csv, rows, REGION_COLUMNS,
                      prov=provenance(STAGE, {"k": k, "dims": dims, "seed": seed}))
    log.info("regions: %d images in %d regions written to %s", count, int(region.max()), out_csv)
    return count
