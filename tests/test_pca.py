"""PCA streams every row, including a last partial batch, and matches a full-memory PCA."""
import h5py
import numpy as np
import pytest
from sklearn.decomposition import PCA

from vacancy.pca import FeatureShards, batch_bounds, read_pca, run_pca


def write_shard(path, ids, features):
    with h5py.File(path, "w") as h5:
        h5.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
        h5.create_dataset("features", data=features.astype(np.float32))


def low_rank_data(n, d, rank, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d)) * 0.1 + 0.5).astype(np.float32)


def test_batch_bounds_cover_every_row_once_and_merge_a_short_tail():
    assert batch_bounds(2500, 1000, 150) == [(0, 1000), (1000, 2000), (2000, 2500)]
    assert batch_bounds(2100, 1000, 150) == [(0, 1000), (1000, 2100)]
    assert batch_bounds(999, 1000, 150) == [(0, 999)]
    bounds = batch_bounds(12345, 1000, 150)
    covered = np.concatenate([np.arange(a, b) for a, b in bounds])
    assert np.array_equal(covered, np.arange(12345))


def test_shards_read_as_one_table(tmp_path):
    data = low_rank_data(37, 12, 3)
    write_shard(tmp_path / "a.h5", [f"a/{i}" for i in range(20)], data[:20])
    write_shard(tmp_path / "empty.h5", [], data[:0])
    write_shard(tmp_path / "b.h5", [f"b/{i}" for i in range(17)], data[20:])
    shards = FeatureShards([tmp_path / "a.h5", tmp_path / "empty.h5", tmp_path / "b.h5"])
    assert len(shards) == 37
    assert np.array_equal(shards.rows(15, 25), data[15:25])
    assert shards.ids()[19:21] == ["a/19", "b/0"]


def test_every_row_transformed_when_n_is_not_a_multiple_of_the_batch(tmp_path):
    n, d = 2345, 64
    data = low_rank_data(n, d, rank=5, seed=1)
    write_shard(tmp_path / "a.h5", [f"a/{i}" for i in range(1200)], data[:1200])
    write_shard(tmp_path / "b.h5", [f"b/{i}" for i in range(n - 1200)], data[1200:])
    result = run_pca([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "pca.h5",
                     n_components=5, batch_size=1000)
    assert result["n_images"] == n and result["n_components"] == 5
    ids, coords = read_pca(tmp_path / "pca.h5")
    assert len(ids) == n and ids[-1] == f"b/{n - 1201}"
    reference = PCA(n_components=5).fit_transform(data)
    # Components may flip sign; compare absolute correlation per component, row by row.
    for k in range(5):
        corr = np.corrcoef(coords[:, k], reference[:, k])[0, 1]
        assert abs(corr) > 0.999, (k, corr)
    # The last rows (the original kept garbage there) are real projections.
    assert np.allclose(np.abs(coords[-45:, 0]), np.abs(reference[-45:, 0]), atol=1e-3)
    with h5py.File(tmp_path / "pca.h5") as h5:
        assert "provenance" in h5.attrs and "scikit-learn" in h5.attrs["provenance"]


def test_fewer_images_than_components(tmp_path):
    data = low_rank_data(40, 30, rank=4)
    write_shard(tmp_path / "a.h5", [f"a/{i}" for i in range(40)], data)
    result = run_pca([tmp_path / "a.h5"], tmp_path / "pca.h5", n_components=150, batch_size=1000)
    assert result["n_components"] == 30
    _, coords = read_pca(tmp_path / "pca.h5")
    assert coords.shape == (40, 30)


def test_too_few_images_is_a_clear_error(tmp_path):
    write_shard(tmp_path / "a.h5", ["a/0"], low_rank_data(1, 8, 1))
    with pytest.raises(ValueError, match="at least 2 images"):
        run_pca([tmp_path / "a.h5"], tmp_path / "pca.h5")
    assert not (tmp_path / "pca.h5").exists()
