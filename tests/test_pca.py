"""PCA streams every row, including a last partial batch, and matches a full-memory PCA, whether
fitted on every row (IncrementalPCA) or on a sample of rows spread over the shards."""
import json

import h5py
import hdf5plugin
import numpy as np
import pytest
from sklearn.decomposition import PCA
from threadpoolctl import threadpool_limits

from vacancy.map.pca import (SVD_SEED, FeatureShards, batch_bounds, load_pca_model, read_pca,
                             read_runs, run_pca, sample_positions)


def write_shard(path, ids, features, chunk_rows=None):
    """A feature file; with ``chunk_rows``, stored as prepare stores them (chunks, Bitshuffle)."""
    storage = dict(chunks=(chunk_rows, features.shape[1]), **hdf5plugin.Bitshuffle(cname="lz4")) \
        if chunk_rows and len(features) else {}
    with h5py.File(path, "w") as h5:
        h5.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
        h5.create_dataset("features", data=features.astype(np.float32), **storage)


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


def chunk_numbers(sizes, per_chunk):
    """Chunk of every row of shards of ``sizes`` rows (all selected), numbered through them."""
    numbers, first = [], 0
    for size in sizes:
        numbers.append(first + np.arange(size) // per_chunk)
        first += -(-size // per_chunk)
    return np.concatenate(numbers)


def test_a_sample_is_whole_chunks_spread_over_every_location_in_proportion():
    """Shards are locations, in order: an even spread of chunks gives each its share of the fit,
    and the fit reads about fit_rows rows (whole chunks), not every row."""
    chunks = chunk_numbers([7000, 2000, 1000], 64)
    positions = sample_positions(chunks, 1000)
    assert len(positions) == 1000 and np.all(np.diff(positions) > 0)
    picked = np.unique(chunks[positions])
    assert len(picked) == 16  # ceil(1000 / 64): the fewest chunks that hold 1000 rows
    rows_read = np.isin(chunks, picked).sum()
    assert 1000 <= rows_read <= 16 * 64 and rows_read < 0.11 * len(chunks)
    shares = np.histogram(positions, bins=[0, 7000, 9000, 10_000])[0]
    assert np.all(np.abs(shares - [700, 200, 100]) <= 64), shares
    assert np.array_equal(sample_positions(chunks, 1000), positions)  # deterministic
    assert np.array_equal(sample_positions(chunks[:500], 1000), np.arange(500))
    assert sample_positions(chunks, "all") is None


def test_a_sample_from_a_sparse_selection_still_has_fit_rows_rows():
    """Chunks with few selected rows: more chunks are taken until they hold fit_rows rows."""
    stored = np.flatnonzero(np.random.default_rng(3).random(20_000) < 0.3)  # 30% selected
    chunks = stored // 64
    positions = sample_positions(chunks, 2000)
    assert len(np.unique(positions)) == 2000
    assert len(np.unique(chunks[positions])) < 2000 / (0.3 * 64) * 1.2


def test_reads_are_runs_of_whole_chunks_and_bounded():
    assert read_runs(np.array([0, 5, 64, 200, 1300]), 64, 1310) == \
        [(0, 128), (192, 256), (1280, 1310)]
    assert read_runs(np.arange(0, 3000, 7), 64, 3000) == [(0, 1024), (1024, 2048), (2048, 3000)]
    assert read_runs(np.array([3, 4]), 1, 10) == [(3, 5)]


def test_rows_of_a_selection_are_read_from_chunked_files(tmp_path):
    data = low_rank_data(700, 16, 3, seed=4)
    write_shard(tmp_path / "a.h5", [f"a/{i}" for i in range(300)], data[:300], chunk_rows=64)
    write_shard(tmp_path / "b.h5", [f"b/{i}" for i in range(400)], data[300:], chunk_rows=64)
    keep = {f"a/{i}" for i in range(0, 300, 3)} | {f"b/{i}" for i in range(150, 400)}
    shards = FeatureShards([tmp_path / "a.h5", tmp_path / "b.h5"], keep)
    table = np.concatenate([data[0:300:3], data[450:700]])
    assert len(shards) == 350 and shards.ids()[99:101] == ["a/297", "b/150"]
    assert np.array_equal(shards.rows(0, 350), table)
    assert np.array_equal(shards.rows(90, 110), table[90:110])
    picked = np.array([0, 1, 99, 100, 101, 349])
    assert np.array_equal(shards.take(picked), table[picked])
    # chunk numbers run on through the shards: a.h5 has chunks 0-4, b.h5 5-11
    assert shards.chunks()[[0, 99, 100, 349]].tolist() == [0, 4, 5 + 150 // 64, 5 + 399 // 64]


@pytest.mark.parametrize("fit_rows", [900, "all"])
def test_the_fit_uses_the_sampled_rows_and_every_row_is_transformed_as_sklearn_does(
        tmp_path, fit_rows):
    """The output is scikit-learn's PCA of the sampled rows, applied to every selected row by
    sklearn's own transform (1 BLAS thread, the same batches: BLAS may sum a row differently in a
    matrix of another shape), to the last bit, with 1 worker or 3."""
    data = low_rank_data(3200, 48, rank=6, seed=5)
    ids = [f"a/{i}" for i in range(3200)]
    write_shard(tmp_path / "a.h5", ids[:2000], data[:2000], chunk_rows=64)
    write_shard(tmp_path / "b.h5", ids[2000:], data[2000:], chunk_rows=64)
    selected = tmp_path / "selected.csv"
    kept = [i for i in range(3200) if i % 5]
    selected.write_text("id\n" + "".join(f"{ids[i]}\n" for i in kept))
    outputs = {}
    for workers in (1, 3):
        out = tmp_path / f"pca-{workers}.h5"
        result = run_pca([tmp_path / "a.h5", tmp_path / "b.h5"], out, n_components=6,
                         batch_size=500, fit_rows=fit_rows, selected_csv=selected,
                         model_out=tmp_path / "model.npz", workers=workers)
        assert result["n_images"] == 2560
        assert result["rows_fitted"] == (900 if fit_rows == 900 else 2560)
        got_ids, outputs[workers] = read_pca(out)
        assert got_ids == [ids[i] for i in kept]
    assert np.array_equal(outputs[1], outputs[3])
    table = data[kept]
    model = load_pca_model(tmp_path / "model.npz")
    if fit_rows == 900:
        shards = FeatureShards([tmp_path / "a.h5", tmp_path / "b.h5"], set(got_ids))
        sample = table[sample_positions(shards.chunks(), 900)]
        with threadpool_limits(limits=2, user_api="blas"):
            fitted = PCA(6, svd_solver="randomized", random_state=SVD_SEED).fit(sample)
        assert np.array_equal(fitted.components_, model["components"])
        assert np.array_equal(fitted.mean_, model["mean"])
    reference = PCA(6)
    reference.mean_, reference.components_ = model["mean"], model["components"]
    reference.n_features_in_ = 48
    with threadpool_limits(limits=1, user_api="blas"):
        direct = [reference.transform(table[a:b]) for a, b in batch_bounds(2560, 500, 1)]
    assert np.array_equal(np.concatenate(direct).astype(np.float32), outputs[1])


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
