"""layout.reserve: a fresh grid keeps spare cells among its images, and an extend fills them with
new images of the same kind before it grows the grid."""
import json

import h5py
import numpy as np
import pytest

from vacancy.common import config_defaults, read_csv, write_csv
from vacancy.map.grid import (assign, choose_repair_passes, grid_shape, refine_cells,
                              reserve_count, run_grid)
from vacancy.map.layout import extend_grid

GRID = config_defaults()["grid"]


def _families(n: int, seed: int, k: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """t-SNE points of k families of different sizes (spots on a circle), their PCA-like
    vectors (one far-apart centre per family) and their family labels."""
    rng = np.random.default_rng(seed)
    label = rng.choice(k, n, p=np.array([0.4, 0.3, 0.2, 0.1])[:k] / sum([0.4, 0.3, 0.2, 0.1][:k]))
    angle = 2 * np.pi * np.arange(k) / k
    spots = np.column_stack([np.cos(angle), np.sin(angle)]) * 10
    xy = spots[label] + rng.normal(size=(n, 2)) * 2.0
    centres = np.eye(k, 8) * 20
    features = centres[label] + rng.normal(size=(n, 8))
    return xy, features, label


def _write_inputs(folder, ids, xy, features):
    """``tsne.csv`` and ``pca.h5`` as the tsne and pca rules write them."""
    folder.mkdir(exist_ok=True)
    write_csv(folder / "tsne.csv", [{"id": i, "x": x, "y": y} for i, (x, y) in zip(ids, xy)],
              ["id", "x", "y"])
    with h5py.File(folder / "pca.h5", "w") as h5:
        h5.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
        h5.create_dataset("pca", data=np.asarray(features, dtype=np.float32))


def _grid(path) -> tuple[dict[str, int], int, int]:
    """``id -> row-major cell`` of a grid.csv and its cols, rows."""
    meta = json.loads((path.parent / (path.name + ".meta.json")).read_text())
    cols = meta["cols"]
    return ({r["id"]: int(r["row"]) * cols + int(r["col"]) for r in read_csv(path)}, cols,
            meta["rows"])


@pytest.mark.parametrize("method, refine", [("dense", "none"), ("blocks", "none"),
                                            ("blocks", "flas")])
def test_reserve_zero_gives_exactly_the_plain_grid(tmp_path, method, refine):
    xy, features, _ = _families(600, 0)
    ids = [f"a/{i}.jpg" for i in range(600)]
    _write_inputs(tmp_path, ids, xy, features)
    settings = {**GRID, "method": method, "refine": refine}
    run_grid(tmp_path / "tsne.csv", tmp_path / "grid.csv", pca_h5=tmp_path / "pca.h5",
             reserve=0.0, **settings)
    cells, cols, rows = _grid(tmp_path / "grid.csv")
    want_cols, want_rows = grid_shape(600)
    passes = choose_repair_passes("auto", refine)
    plain, _ = assign(xy, want_cols, want_rows, method, GRID["block"], GRID["dense_max"],
                      GRID["holes"], passes)
    plain = refine_cells(refine, features, plain, want_cols, want_rows, GRID["radius_decay"],
                         GRID["refine_dims"])
    assert (cols, rows) == (want_cols, want_rows)
    assert [cells[i] for i in ids] == plain.tolist()


@pytest.mark.parametrize("method, refine", [("dense", "none"), ("blocks", "flas")])
def test_a_reserve_leaves_its_share_of_cells_spare_all_over_the_map(tmp_path, method, refine):
    n, reserve = 1500, 0.1
    xy, features, _ = _families(n, 1)
    ids = [f"a/{i}.jpg" for i in range(n)]
    _write_inputs(tmp_path, ids, xy, features)
    stats = run_grid(tmp_path / "tsne.csv", tmp_path / "grid.csv", pca_h5=tmp_path / "pca.h5",
                     reserve=reserve, **{**GRID, "method": method, "refine": refine})
    cells, cols, rows = _grid(tmp_path / "grid.csv")
    assert len(cells) == n and len(set(cells.values())) == n  # one cell each, none shared
    assert stats["n_reserved"] == reserve_count(n, reserve) == 167
    spare = cols * rows - n
    assert reserve * cols * rows <= spare <= reserve * cols * rows + cols
    taken = np.zeros((rows, cols), bool)
    taken.flat[list(cells.values())] = True
    # every quarter of the map that holds images has spare cells, about in proportion
    for r0, r1 in ((0, rows // 2), (rows // 2, rows)):
        for c0, c1 in ((0, cols // 2), (cols // 2, cols)):
            part = taken[r0:r1, c0:c1]
            if part.sum():
                assert (~part).sum() >= 0.5 * reserve * part.size
    # and the spare cells lie among images, not in one empty stretch: most have an image beside
    padded = np.pad(taken, 1)
    beside = sum(padded[1 + dy:1 + dy + rows, 1 + dx:1 + dx + cols]
                 for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)
    assert np.mean(beside[~taken] >= 4) > 0.7


def _save_layout(folder, ids, xy, features, reserve):
    """A saved layout with what extend_grid reads: grid.csv, its sidecar, provenance.json."""
    _write_inputs(folder, ids, xy, features)
    run_grid(folder / "tsne.csv", folder / "grid.csv", pca_h5=folder / "pca.h5", reserve=reserve,
             **{**GRID, "method": "dense", "refine": "none"})
    (folder / "provenance.json").write_text(json.dumps({"quality": {}}))


@pytest.mark.parametrize("reserve", [0.0, 0.1])
def test_an_extend_fills_the_reserve_among_their_kind_before_growing(tmp_path, reserve):
    xy, features, label = _families(1100, 2)
    ids = [f"a/{i}.jpg" for i in range(1100)]
    base, new = slice(0, 1000), slice(1000, 1100)
    layout = tmp_path / "layout"
    _save_layout(layout, ids[base], xy[base], features[base], reserve)
    saved, cols, rows = _grid(layout / "grid.csv")
    run = tmp_path / "run"
    _write_inputs(run, ids, xy, features)  # the new images' t-SNE points: near their kind
    stats = extend_grid(run / "tsne.csv", run / "pca.h5", layout, run / "grid.csv",
                        cell_px=64, tile_px=256)
    cells, new_cols, _ = _grid(run / "grid.csv")
    assert all(cells[i] % new_cols == c % cols and cells[i] // new_cols == c // cols
               for i, c in saved.items())  # no saved image moves
    owner = {c: k for k, c in enumerate(cells[i] for i in ids)}
    shares = []
    for k in range(1000, 1100):
        col, row = cells[ids[k]] % new_cols, cells[ids[k]] // new_cols
        around = [owner.get((row + dy) * new_cols + col + dx) for dy in (-1, 0, 1)
                  for dx in (-1, 0, 1) if (dx or dy) and 0 <= col + dx < new_cols]
        around = [a for a in around if a is not None]
        shares.append(np.mean([label[a] == label[k] for a in around]) if around else 0.0)
    if reserve:  # 111 reserved cells: the 100 new images fit, the grid keeps its size
        assert (stats["cols"], stats["rows"]) == (cols, rows)
        assert np.mean(shares) > 0.8
    else:  # no room inside: the grid grows and new images sit at its edge, among strangers
        assert stats["cols"] * stats["rows"] > cols * rows
        assert np.mean(shares) < 0.8


def test_a_reserve_outside_0_to_half_is_refused():
    for bad in (-0.1, 0.6, True, "10%"):
        with pytest.raises(ValueError, match="reserve"):
            reserve_count(100, bad)


def test_saving_a_fresh_grid_without_reserve_warns(caplog):
    from vacancy.map.layout import _warn_without_reserve

    _warn_without_reserve({"mode": "fresh", "n_reserved": 40})
    _warn_without_reserve({"mode": "extend"})  # an extended grid: its reserve was used
    assert not caplog.records
    _warn_without_reserve({"n_reserved": 0})
    assert "no reserve" in caplog.text
