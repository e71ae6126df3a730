"""A living map: add new images to a saved layout without moving the images already placed.

A *layout* is the folder ``save_layout`` writes after a fresh run (config ``layout.dir``, kept
outside ``results/`` so a clean keeps it):

- ``pca_model.npz``: the PCA's ``mean`` and ``components``, so new rows are projected exactly as
  the fresh run projected its rows (``(x - mean) @ components.T``), never refitted;
- ``reference.h5``: ``ids``, their PCA vectors ``pca`` and t-SNE coordinates ``tsne``;
- ``grid.csv`` and its sidecar (cols, rows), the grid every later extend keeps;
- ``tiles/`` (hard links of the pyramid) and ``tiles/manifest.json`` (what each tile shows,
  :mod:`vacancy.map.tile_update`), so an extend re-renders only the tiles whose cells changed;
- ``provenance.json``: date, image count, the stages' config and the fresh grid's quality, the
  figures each extend's drift is compared with.

With ``layout.mode: extend`` the rules ``pca``, ``tsne`` and ``grid`` call the ``extend_*``
functions below instead of fitting anew; ``tiles`` calls :func:`vacancy.map.tile_update.update_tiles`.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from pathlib import Path

import h5py
import numpy as np

from ..common import (atomic_dir, atomic_path, iter_csv, link_tree, provenance, read_csv,
                      write_csv)

log = logging.getLogger(__name__)

MODEL = "pca_model.npz"
REFERENCE = "reference.h5"
GRID = "grid.csv"
PROVENANCE = "provenance.json"
#: openTSNE's own default for placing new points (``TSNEEmbedding.transform``): a low
#: perplexity, since each new point is fitted to the fixed reference only.
TRANSFORM_PERPLEXITY = 5
#: Old neighbours (in t-SNE space) whose grid cells give a new image's target cell.
TARGET_NEIGHBOURS = 8
#: Most free cells for which the placement is solved exactly (lapjv on a free x free cost matrix,
#: as grid.dense_max's 4,000: 128 MB); above it, the nearest free cell greedily.
EXACT_FREE_MAX = 4000
#: Query images of the drift measure (DPQ16): fewer than the report's 1,000, since every extend
#: pays for it (two DPQ16 of 250 queries took 38 s at 135,000 images) and it only has to show
#: a trend against the saved layout's figure, computed the same way.
DRIFT_QUERIES = 150
#: How far (in cells) from its target a new image may take a hole inside the saved grid (a
#: reserved or gap cell); an image with no hole that near goes to the grown tiles instead. Without
#: this limit, least total squared distance fills the scattered holes with images pushed out of
#: a full family, so a large addition landed among other families (bench/extend.py, 100% added
#: to a layout with reserve 0.1: DPQ16 0.801 -> 0.836 and family share 0.715 -> 0.770 with 2;
#: 1.5 to 3 do about as well, 5 loses half the gain; 10% added: unchanged).
HOLE_REACH = 2.0


# --------------------------------------------------------------------------- PCA


def read_reference(layout_dir) -> dict:
    """``ids``, ``pca`` and ``tsne`` of the saved layout's images."""
    with h5py.File(Path(layout_dir) / REFERENCE, "r") as h5:
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in h5["ids"][:]]
        return {"ids": ids, "pca": h5["pca"][:], "tsne": h5["tsne"][:]}


def extend_pca(feature_h5s, selected_csv, layout_dir, out_h5, out_model, batch_size: int,
               workers: int = 1) -> dict:
    """``pca.h5`` of the selection: saved images keep their stored vectors, new ones are projected
    with the stored model (no refit) as a fresh run projects its rows (``workers`` processes).
    Saved images no longer selected are dropped (holes later)."""
    from .pca import FeatureShards, load_pca_model, project_shards

    selected = {row["id"] for row in iter_csv(selected_csv)}
    ref = read_reference(layout_dir)
    model = load_pca_model(Path(layout_dir) / MODEL)
    keep_old = [i for i, id_ in enumerate(ref["ids"]) if id_ in selected]
    shards = FeatureShards(feature_h5s, selected - set(ref["ids"]))
    n_new, k = len(shards), ref["pca"].shape[1]
    ids = [ref["ids"][i] for i in keep_old] + shards.ids()
    new = project_shards(shards, model, batch_size, workers)
    with atomic_path(out_h5, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
            h5.create_dataset("pca", data=np.concatenate([ref["pca"][keep_old], new]))
            h5.create_dataset("explained_variance_ratio",
                              data=model["explained_variance_ratio"].astype(np.float32))
            params = {"mode": "extend", "layout": str(layout_dir), "n_components": k}
            h5.attrs["provenance"] = json.dumps(provenance(
                "pca", params, n_images=len(ids), n_new=n_new,
                n_removed=len(ref["ids"]) - len(keep_old)))
    shutil.copyfile(Path(layout_dir) / MODEL, out_model)
    log.info("pca extend: %d saved images kept, %d new projected, %d saved images gone",
             len(keep_old), n_new, len(ref["ids"]) - len(keep_old))
    return {"n_old": len(keep_old), "n_new": n_new}


# --------------------------------------------------------------------------- t-SNE


def _reference_affinities(points: np.ndarray, perplexity: float, n_jobs: int, seed: int):
    """openTSNE affinities that can only place new points (``to_new``): the Annoy forest of the
    reference, built on one thread (:class:`vacancy.map.tsne.FixedTreesAnnoy`: the same trees for
    any thread count), without the reference's own neighbour queries and P matrix, which a
    transform never uses and which cost most of a fresh t-SNE's neighbour search."""
    from openTSNE import affinity
    from scipy import sparse

    from .tsne import FixedTreesAnnoy

    k = min(len(points) - 1, int(3 * perplexity))
    index = FixedTreesAnnoy(points, k, metric="euclidean", n_jobs=n_jobs, random_state=seed)
    index.build_forest()
    aff = affinity.PerplexityBasedNN.__new__(affinity.PerplexityBasedNN)
    affinity.Affinities.__init__(aff)
    aff.knn_index, aff.perplexity, aff.n_jobs = index, perplexity, n_jobs
    aff.symmetrize, aff.knn_kwargs = False, None
    # TSNEEmbedding checks P's size; a transform never reads the reference's own affinities
    aff.P = sparse.csr_matrix((len(points), len(points)))
    return aff


def embed_new(ref_points, ref_coords, new_points, seed: int, n_jobs: int = 1) -> np.ndarray:
    """t-SNE coordinates of ``new_points`` in the fixed map ``ref_coords`` (openTSNE's
    ``TSNEEmbedding.transform``: each new point is optimised against the reference only, which
    never moves). transform centres the reference in place, so its shift is undone here."""
    from openTSNE import TSNEEmbedding
    from threadpoolctl import threadpool_limits

    if len(new_points) == 0:
        return np.empty((0, 2))
    ref_points = np.ascontiguousarray(ref_points, dtype=np.float32)
    coords = np.array(ref_coords, dtype=np.float64)
    shift = (coords.max(axis=0) + coords.min(axis=0)) / 2
    aff = _reference_affinities(ref_points, TRANSFORM_PERPLEXITY, n_jobs, seed)
    embedding = TSNEEmbedding(coords, aff, negative_gradient_method="fft", n_jobs=n_jobs,
                              random_state=seed)
    with threadpool_limits(limits=1, user_api="blas"):
        placed = embedding.transform(np.ascontiguousarray(new_points, dtype=np.float32),
                                     perplexity=TRANSFORM_PERPLEXITY)
    return np.asarray(placed, dtype=np.float64) + shift


def extend_tsne(pca_h5, layout_dir, out_csv, settings: dict, n_jobs: int = 1) -> dict:
    """``tsne.csv``: saved images at their stored coordinates, new ones embedded among them."""
    from .pca import read_pca

    ids, points = read_pca(pca_h5)
    ref = read_reference(layout_dir)
    stored = {id_: i for i, id_ in enumerate(ref["ids"])}
    new = [i for i, id_ in enumerate(ids) if id_ not in stored]
    start = time.perf_counter()
    placed = embed_new(ref["pca"], ref["tsne"], points[new], settings["seed"], n_jobs)
    log.info("tsne extend: %d new images embedded among %d saved ones in %.1f s", len(new),
             len(ref["ids"]), time.perf_counter() - start)
    coords = {ids[i]: xy for i, xy in zip(new, placed)}
    rows = []
    for id_ in ids:
        x, y = ref["tsne"][stored[id_]] if id_ in stored else coords[id_]
        rows.append({"id": id_, "x": f"{x:.6f}", "y": f"{y:.6f}"})
    params = {**settings, "mode": "extend", "layout": str(layout_dir),
              "transform_perplexity": TRANSFORM_PERPLEXITY}
    count = write_csv(out_csv, rows, ["id", "x", "y"], prov=provenance("tsne", params,
                                                                       n_new=len(new)))
    return {"n_images": count, "n_new": len(new)}


# --------------------------------------------------------------------------- grid


def read_saved_grid(layout_dir) -> tuple[dict[str, int], int, int]:
    """``id -> (col, row)`` of the saved grid as a flat cell index, and its cols, rows."""
    meta = json.loads((Path(layout_dir) / (GRID + ".meta.json")).read_text())
    cols, rows = int(meta["cols"]), int(meta["rows"])
    cells = {r["id"]: int(r["row"]) * cols + int(r["col"])
             for r in iter_csv(Path(layout_dir) / GRID)}
    return cells, cols, rows


def grow(cols: int, rows: int, occupied: int, needed: int, per_tile: int) -> tuple[int, int]:
    """The smallest growth by whole tile columns or rows (``per_tile`` cells each) that leaves
    ``needed`` free cells: the grid is first padded to whole tiles, then a tile column or row is
    added to the shorter side, so the map stays near-square and no existing tile moves (cells
    keep their col, row, and the pyramid grows to the right and downwards only)."""
    while cols * rows - occupied < needed:
        if cols % per_tile:
            cols += per_tile - cols % per_tile
        elif rows % per_tile:
            rows += per_tile - rows % per_tile
        elif cols <= rows:
            cols += per_tile
        else:
            rows += per_tile
    return cols, rows


def _target_cells(old_xy, old_cells, new_xy, cols: int) -> np.ndarray:
    """Where each new image wants to sit: the mean grid position (col, row) of its
    ``TARGET_NEIGHBOURS`` nearest saved images in t-SNE space, the map the grid was made from."""
    from scipy.spatial import cKDTree

    k = min(TARGET_NEIGHBOURS, len(old_xy))
    _, nearest = cKDTree(old_xy).query(new_xy, k=k)
    nearest = np.asarray(nearest).reshape(len(new_xy), k)
    pos = np.column_stack([old_cells % cols, old_cells // cols]).astype(np.float64) + 0.5
    return pos[nearest].mean(axis=1)


def place_new(targets: np.ndarray, free: np.ndarray, cols: int, hole=None,
              reach: float = HOLE_REACH) -> np.ndarray:
    """A distinct free cell per new image, near its target: exact (lapjv, least total squared
    distance; the spare cells are zero-cost dummy images, as in the grid's dense solve) up to
    ``EXACT_FREE_MAX`` free cells, else greedily, the images nearest a free cell first.

    ``hole`` marks the free cells inside the saved grid: an image takes one only within
    ``reach`` cells of its target (:data:`HOLE_REACH`), unless no other cell is left."""
    centres = np.column_stack([free % cols, free // cols]).astype(np.float64) + 0.5
    hole = np.zeros(len(free), dtype=bool) if hole is None else np.asarray(hole, dtype=bool)
    if len(targets) == 0:
        return np.empty(0, dtype=np.int64)
    if 1 < len(free) <= EXACT_FREE_MAX:
        return free[_place_exact(targets, centres, hole, reach)]
    return free[_place_greedy(targets, centres, hole, reach)]


def _place_exact(targets, centres, hole, reach) -> np.ndarray:
    """lapjv over the free cells; a hole beyond ``reach`` costs more than any cell within it."""
    from lapjv import lapjv

    n = len(targets)
    cost = np.zeros((len(centres), len(centres)), dtype=np.float64)  # rows past n: dummies
    cost[:n] = ((targets[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    far = hole[None, :] & (cost[:n] > reach * reach)
    # more than any squared distance on this grid, and no more: lapjv loses precision with
    # huge entries (1e9 here undid most of the limit's gain, measured)
    extent = centres.max(axis=0) + 1.0
    cost[:n][far] += extent @ extent
    row_to_cell, _, _ = lapjv(cost)
    return np.asarray(row_to_cell[:n], dtype=np.int64)


def _place_greedy(targets, centres, hole, reach) -> np.ndarray:
    """Images nearest a free cell first, each the nearest cell left that is not a hole beyond
    ``reach``; the k nearest cells are asked for, 4 times more until one is allowed."""
    from scipy.spatial import cKDTree

    tree = cKDTree(centres)
    first, _ = tree.query(targets, k=1)
    taken = np.zeros(len(centres), dtype=bool)
    out = np.empty(len(targets), dtype=np.int64)
    for i in np.argsort(first, kind="stable"):
        k = 16
        while True:
            dist, near = tree.query(targets[i], k=min(k, len(centres)))
            dist, near = np.atleast_1d(dist), np.atleast_1d(near)
            allowed = ~taken[near] & ~(hole[near] & (dist > reach))
            if allowed.any():
                pick = near[np.argmax(allowed)]
                break
            if k >= len(centres):  # every cell left is a far hole: take the nearest of them
                pick = near[np.argmax(~taken[near])]
                break
            k *= 4
        taken[pick] = True
        out[i] = pick
    return out


def drift(features: np.ndarray, cell_index: np.ndarray, cols: int, new_mask=None) -> dict:
    """DPQ16 of a grid in PCA space (:func:`vacancy.map.quality.dpq`, ``DRIFT_QUERIES`` queries)
    and, for an extended one, DPQ16 with the new images as queries: how far the extended grid
    has drifted from what a fresh layout gives."""
    from .quality import dpq

    out = {"dpq16": round(dpq(features, cell_index, cols, n_queries=DRIFT_QUERIES), 4)}
    if new_mask is not None and new_mask.sum() >= 2:
        from .quality import neighbour_curves, _pnorm, DPQ_P

        q = np.flatnonzero(new_mask)
        if len(q) > DRIFT_QUERIES:
            q = np.sort(np.random.default_rng(0).choice(q, DRIFT_QUERIES, replace=False))
        grid_curve, ideal_curve = neighbour_curves(features, cell_index, cols, q)
        mean_d = ideal_curve[-1]
        gain = lambda c: np.clip((mean_d - c) / mean_d, 0.0, None)  # noqa: E731
        out["dpq16_new"] = round(float(_pnorm(gain(grid_curve), DPQ_P) /
                                       _pnorm(gain(ideal_curve), DPQ_P)), 4)
    return out


def extend_grid(tsne_csv, pca_h5, layout_dir, out_csv, cell_px: int, tile_px: int) -> dict:
    """``grid.csv`` with an ``added`` column: saved images keep their cells, images gone leave
    their cells empty (not reused: a removal changes one cell, nothing else), new ones take the
    other free cells near their embedded position; the grid grows by whole tile
    columns or rows when the free cells run out. The sidecar holds the new cols, rows and the
    drift figures beside the saved layout's."""
    from .grid import _pca_rows

    saved, cols, rows = read_saved_grid(layout_dir)
    tsne = read_csv(tsne_csv)
    ids = [r["id"] for r in tsne]
    xy = np.array([[float(r["x"]), float(r["y"])] for r in tsne], dtype=np.float64)
    is_old = np.array([i in saved for i in ids])
    old_cells = np.array([saved[i] for i in np.array(ids)[is_old]], dtype=np.int64)
    n_new = int((~is_old).sum())
    per_tile = max(1, tile_px // cell_px)
    new_cols, new_rows = grow(cols, rows, len(saved), n_new, per_tile)
    widen = lambda cells: (cells // cols) * new_cols + cells % cols  # noqa: E731 (same col, row)
    old_cells = widen(old_cells)
    present = set(ids)
    gone = widen(np.array([c for i, c in saved.items() if i not in present], dtype=np.int64))
    occupied = np.zeros(new_cols * new_rows, dtype=bool)
    occupied[old_cells] = True
    occupied[gone] = True  # an image gone leaves its cell empty until the next fresh layout
    free = np.flatnonzero(~occupied)
    start = time.perf_counter()
    cell_index = np.empty(len(ids), dtype=np.int64)
    cell_index[is_old] = old_cells
    if n_new:
        targets = _target_cells(xy[is_old], old_cells, xy[~is_old], new_cols)
        inside = (free % new_cols < cols) & (free // new_cols < rows)  # holes of the saved grid
        cell_index[~is_old] = place_new(targets, free, new_cols, hole=inside)
    seconds = time.perf_counter() - start
    figures = drift(_pca_rows(pca_h5, ids), cell_index, new_cols, ~is_old)
    fresh = json.loads((Path(layout_dir) / PROVENANCE).read_text()).get("quality", {})
    log.info("grid extend: %d saved images kept, %d gone (holes), %d new placed in %.1f s; "
             "grid %dx%d -> %dx%d", len(old_cells), len(saved) - len(old_cells), n_new, seconds,
             cols, rows, new_cols, new_rows)
    log.info("grid extend: drift: DPQ16 %.4f now, %.4f at the saved fresh layout (new images as "
             "queries: %s); a fresh layout is worth it when the gap passes about 0.02 (README)",
             figures["dpq16"], fresh.get("dpq16", math.nan), figures.get("dpq16_new", "n/a"))
    out_rows = ({"id": i, "col": int(c % new_cols), "row": int(c // new_cols), "added": int(not o)}
                for i, c, o in zip(ids, cell_index, is_old))
    stats = {"cols": new_cols, "rows": new_rows, "n_images": len(ids), "mode": "extend",
             "method": "extend",
             "n_kept": len(old_cells), "n_added": n_new, "n_removed": len(saved) - len(old_cells),
             "saved_cols": cols, "saved_rows": rows, "seconds": round(seconds, 3),
             "drift": figures, "saved_quality": fresh}
    params = {"mode": "extend", "refine": "none", "layout": str(layout_dir), "cell_px": cell_px,
              "tile_px": tile_px,
              "target_neighbours": TARGET_NEIGHBOURS, "hole_reach": HOLE_REACH}
    write_csv(out_csv, out_rows, ["id", "col", "row", "added"],
              prov=provenance("grid", params, **stats))
    return stats


# --------------------------------------------------------------------------- save


def _write_reference(path: Path, pca_h5, tsne_csv, grid_csv) -> int:
    """``reference.h5``: the grid's images with their PCA vectors and t-SNE coordinates."""
    from .grid import _pca_rows

    placed = [r["id"] for r in iter_csv(grid_csv)]
    coords = {r["id"]: (float(r["x"]), float(r["y"])) for r in iter_csv(tsne_csv)}
    with h5py.File(path, "w") as h5:
        h5.create_dataset("ids", data=np.array(placed, dtype=object), dtype=h5py.string_dtype())
        h5.create_dataset("pca", data=_pca_rows(pca_h5, placed).astype(np.float32))
        h5.create_dataset("tsne", data=np.array([coords[i] for i in placed], dtype=np.float64))
    return len(placed)


def _warn_without_reserve(grid_meta: dict) -> None:
    """Say so when a fresh grid without ``layout.reserve`` is saved: its free cells are only in
    the t-SNE gaps, so an extend puts new images at the map's edge (README, "A living map")."""
    if grid_meta.get("mode", "fresh") == "fresh" and not grid_meta.get("n_reserved"):
        log.warning("save_layout: the grid has no reserve (layout.reserve 0): later extends will "
                    "place new images at its edge, away from their kind; lay out fresh with "
                    "layout.reserve 0.1 before saving to keep room among them")


def save_layout(layout_dir, pca_h5, pca_model, tsne_csv, grid_csv, tiles_dir, spec,
                stages: dict) -> dict:
    """Write the layout folder (atomically: built beside it, renamed into place) from a finished
    run; ``stages`` is the config of the stages it depends on, kept in its provenance."""
    from .grid import _pca_rows
    from .grid_csv import read_grid_shape
    from .tile_update import tile_manifest, write_manifest

    cols, _ = read_grid_shape(grid_csv)
    placed = read_csv(grid_csv)
    cells = np.array([int(r["row"]) * cols + int(r["col"]) for r in placed], dtype=np.int64)
    quality = drift(_pca_rows(pca_h5, [r["id"] for r in placed]), cells, cols)
    with atomic_dir(layout_dir) as tmp:
        shutil.copyfile(pca_model, tmp / MODEL)
        n = _write_reference(tmp / REFERENCE, pca_h5, tsne_csv, grid_csv)
        shutil.copyfile(grid_csv, tmp / GRID)
        shutil.copyfile(str(grid_csv) + ".meta.json", tmp / (GRID + ".meta.json"))
        n_tiles = link_tree(Path(tiles_dir), tmp / "tiles")
        write_manifest(tmp / "tiles" / "manifest.json", tile_manifest(grid_csv, spec), spec)
        grid_meta = json.loads(Path(str(grid_csv) + ".meta.json").read_text())
        _warn_without_reserve(grid_meta)
        record = provenance("save_layout", stages, n_images=n, n_tiles=n_tiles, quality=quality,
                            saved_from_mode=grid_meta.get("mode", "fresh"),
                            saved_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        (tmp / PROVENANCE).write_text(json.dumps(record, indent=1))
    log.info("save_layout: %d images, %d tiles, DPQ16 %.4f saved to %s", n, n_tiles,
             quality["dpq16"], layout_dir)
    return record
