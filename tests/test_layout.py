"""The pieces of a living map (vacancy.map.layout, vacancy.map.tile_update) on small known inputs."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from vacancy.map.layout import _place_greedy, embed_new, grow, place_new
from vacancy.map.pca import load_pca_model, project, read_pca, run_pca
from vacancy.map.tile_update import tile_manifest
from vacancy.map.tiles import TileSpec


@pytest.mark.parametrize("cols, rows, occupied, needed, per, want", [
    (10, 10, 90, 5, 4, (10, 10)),      # enough free cells: no growth
    (10, 10, 95, 10, 4, (12, 10)),     # pad the columns to whole tiles first
    (12, 12, 144, 1, 4, (16, 12)),     # then a tile column on the shorter (equal) side
    (16, 12, 192, 1, 4, (16, 16)),     # then a tile row, the shorter side
])
def test_the_grid_grows_by_whole_tiles_on_its_shorter_side(cols, rows, occupied, needed, per, want):
    assert grow(cols, rows, occupied, needed, per) == want


def test_new_images_get_distinct_free_cells_nearest_their_targets():
    free = np.array([0, 1, 2, 7, 8, 9])  # cells of a 5-column grid
    targets = np.array([[4.5, 1.5], [0.5, 0.5], [2.5, 0.5]])  # (col, row) centres: cells 9, 0, 2
    assert place_new(targets, free, 5).tolist() == [9, 0, 2]
    greedy = place_new(np.repeat([[0.5, 0.5]], 6, axis=0), free, 5)
    assert sorted(greedy.tolist()) == free.tolist()


@pytest.mark.parametrize("solver", ["exact", "greedy"])
def test_a_hole_is_taken_only_within_reach_of_the_target(solver):
    # a 10-column grid: holes of the saved grid at cells 3 (col 3, row 0) and 7 (col 7),
    # grown cells in row 8; targets (col, row): one beside hole 3, one 3 cells from hole 7 and
    # 5 from the nearest grown cell (87)
    free = np.array([3, 7, 80, 81, 87, 88])
    hole = np.array([True, True, False, False, False, False])
    targets = np.array([[3.5, 1.0], [7.5, 3.5]])
    if solver == "exact":
        got = place_new(targets, free, 10, hole=hole, reach=2.0)
    else:
        centres = np.column_stack([free % 10, free // 10]) + 0.5
        got = free[_place_greedy(targets, centres, hole, 2.0)]
    assert got.tolist() == [3, 87]  # the near hole; the far one is left for a grown cell
    # with no limit the second image takes the hole 3 cells away, as before
    assert place_new(targets, free, 10, hole=hole, reach=10.0).tolist() == [3, 7]


def test_a_stored_model_projects_a_row_as_the_fitted_pca_did(tmp_path):
    rng = np.random.default_rng(0)
    rows = rng.random((60, 40), dtype=np.float32)
    with h5py.File(tmp_path / "f.h5", "w") as h5:
        h5["ids"] = np.array([f"a/{i}.jpg" for i in range(60)], dtype=object)
        h5["features"] = rows
    run_pca([tmp_path / "f.h5"], tmp_path / "pca.h5", n_components=10, batch_size=16,
            fit_rows=30, model_out=tmp_path / "model.npz")
    _, fitted = read_pca(tmp_path / "pca.h5")
    again = project(rows, load_pca_model(tmp_path / "model.npz"))
    np.testing.assert_allclose(again, fitted, atol=1e-5)


def test_new_points_land_among_their_neighbours_and_the_reference_stays(tmp_path):
    rng = np.random.default_rng(1)
    centres = np.array([[0.0] * 10, [20.0] * 10])
    ref = np.concatenate([c + rng.normal(size=(150, 10)) for c in centres]).astype(np.float32)
    coords = np.concatenate([np.full((150, 2), -30.0), np.full((150, 2), 30.0)])
    coords += rng.normal(size=coords.shape)
    before = coords.copy()
    new = (centres[1] + rng.normal(size=(5, 10))).astype(np.float32)
    placed = embed_new(ref, coords, new, seed=3)
    np.testing.assert_array_equal(coords, before)
    assert np.all(np.linalg.norm(placed - 30.0, axis=1) < 15)


def test_a_tile_keeps_its_key_when_only_other_tiles_change(tmp_path):
    spec = TileSpec(cols=8, rows=4, cell_px=64, tile_px=256, background=(0, 0, 0), quality=80)
    cells = [(c, r) for r in range(4) for c in range(8)]

    def manifest(ids, cols=8, rows=4):
        path = tmp_path / "g.csv"
        path.write_text("id,col,row\n" + "".join(f"{i},{c},{r}\n" for i, (c, r) in ids.items()))
        (tmp_path / "g.csv.meta.json").write_text(f'{{"cols": {cols}, "rows": {rows}}}')
        return tile_manifest(path, TileSpec(cols, rows, 64, 256, (0, 0, 0), 80))

    ids = {f"a/{k}": cell for k, cell in enumerate(cells)}
    before = manifest(ids)
    moved = dict(ids)
    moved["a/7"] = (7, 3)  # a/7 swaps into the right-hand tile...
    moved["a/31"] = (7, 0)
    after = manifest(moved)
    assert after["0/0/0"] == before["0/0/0"] and after["0/1/0"] != before["0/1/0"]
    assert after["1/0/0"] != before["1/0/0"]
    grown = manifest(ids, cols=12, rows=4)  # an empty tile column added: nothing old changes
    assert all(grown[k] == v for k, v in before.items() if k.startswith("0/"))
    assert spec.max_zoom == 1
