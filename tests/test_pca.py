"""PCA streams every row, including a last partial batch, and matches a full-memory PCA, whether
fitted on every row (IncrementalPCA) or on a sample of rows spread over the shards."""
import json

import h5py
import numpy as np
import pytest
from sklearn.decomposition import PCA

from vacancy.map.pca import FeatureShards, batch_bounds, read_pca, run_pca, sample_positions


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


@pytest.mark.parametrize("fit_rows", ["all", 800, 5000])
def test_every_row_transformed_when_n_is_not_a_multiple_of_the_batch(tmp_path, fit_rows):
    """all: IncrementalPCA over every row; 800: a sample; 5000: more than n, so every row."""
    n, d = 2345, 64
    data = low_rank_data(n, d, rank=5, seed=1)
    write_shard(tmp_path / "a.h5", [f"a/{i}" for i in range(1200)], data[:1200])
    write_shard(tmp_path / "b.h5", [f"b/{i}" for i in range(n - 1200)], data[1200:])
    result = run_pca([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "pca.h5",
                     n_components=5, batch_size=1000, fit_rows=fit_rows)
    assert result["n_images"] == n and result["n_components"] == 5
    assert result["rows_fitted"] == (800 if fit_rows == 800 else n)
    ids, coords = read_pca(tmp_path / "pca.h5")
    assert len(ids) == n and ids[-1] == f"b/{n - 1201}"
    reference = PCA(n_components=5).fit_transform(data)
    # The same 5-D subspace: the reference coordinates are a linear map of ours, to within 0.1%.
    mapped = coords @ np.linalg.lstsq(coords, reference, rcond=None)[0]
    assert np.sum((mapped - reference) ** 2) < 1e-3 * np.sum(reference ** 2)
    # Fitted on every row, each component too (components may flip sign); from a sample of 800
    # rows, components of near-equal variance may mix within the subspace, so only it is checked.
    for k in range(5 if fit_rows != 800 else 0):
        corr = np.corrcoef(coords[:, k], reference[:, k])[0, 1]
        assert abs(corr) > 0.999, (k, corr)
    # The last rows (the original kept garbage there) are real projections.
    assert np.allclose(mapped[-45:], reference[-45:], atol=0.02 * np.abs(reference).max())
    with h5py.File(tmp_path / "pca.h5") as h5:
        assert "provenance" in h5.attrs and "scikit-learn" in h5.attrs["provenance"]


def test_fewer_images_than_components(tmp_path):
    data = low_rank_data(40, 30, rank=4)
    write_shard(tmp_path / "a.h5", [f"a/{i}" for i in range(40)], data)
    result = run_pca([tmp_path / "a.h5"], tmp_path / "pca.h5", n_components=150, batch_size=1000,
                     fit_rows=20000)
    assert result["n_components"] == 30
    _, coords = read_pca(tmp_path / "pca.h5")
    assert coords.shape == (40, 30)


def test_too_few_images_is_a_clear_error(tmp_path):
    write_shard(tmp_path / "a.h5", ["a/0"], low_rank_data(1, 8, 1))
    with pytest.raises(ValueError, match="at least 2 images"):
        run_pca([tmp_path / "a.h5"], tmp_path / "pca.h5", n_components=150, batch_size=1000,
                fit_rows=20000)
    assert not (tmp_path / "pca.h5").exists()


def test_a_sample_takes_every_location_in_proportion_and_no_row_twice():
    """Shards are locations, in order: an even spread gives each its share of the fit."""
    positions = sample_positions(10_000, 1000)
    assert len(positions) == 1000 and len(np.unique(positions)) == 1000
    assert positions[0] == 0 and positions[-1] == 9999
    shares = np.histogram(positions, bins=[0, 7000, 9000, 10_000])[0]  # three locations
    assert shares.tolist() == [700, 200, 100]
    assert np.array_equal(sample_positions(500, 1000), np.arange(500))
    assert sample_positions(500, "all") is None


def test_a_sample_fit_records_what_it_fitted(tmp_path):
    data = low_rank_data(3000, 40, rank=4, seed=2)
    write_shard(tmp_path / "a.h5", [f"a/{i}" for i in range(3000)], data)
    run_pca([tmp_path / "a.h5"], tmp_path / "pca.h5", n_components=4, batch_size=500,
            fit_rows=600)
    with h5py.File(tmp_path / "pca.h5") as h5:
        params = json.loads(h5.attrs["provenance"])["params"]
        ratio = h5["explained_variance_ratio"][:]
    assert params["fit_rows"] == 600 and params["rows_fitted"] == 600
    assert ratio.sum() > 0.99  # rank-4 data: four components explain it all
