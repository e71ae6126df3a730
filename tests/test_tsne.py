"""t-SNE keeps clusters apart, is reproducible, and the preset resolves to the original settings."""
import numpy as np
import pytest

from vacancy.map.tsne import (embed, find_neighbours, read_neighbours, run_neighbours, run_tsne,
                               write_neighbours)
from vacancy.map.tsne_settings import resolve_settings


def clusters(seed=0, per=60, k=3, d=20):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10, size=(k, d))
    points = np.concatenate([c + rng.normal(size=(per, d)) for c in centres])
    return points, np.repeat(np.arange(k), per)


def test_clusters_stay_apart_and_runs_repeat():
    points, labels = clusters()
    a = embed(points, perplexity=20, n_iter=400, seed=3)
    b = embed(points, perplexity=20, n_iter=400, seed=3)
    assert np.allclose(a, b)
    # Each point's nearest neighbour in 2-D is from its own cluster.
    dist = ((a[:, None] - a[None]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    assert (labels[dist.argmin(1)] == labels).mean() > 0.98


def test_perplexity_too_high_for_tiny_input_is_lowered():
    points, _ = clusters(per=5)
    coords = embed(points, perplexity=30, n_iter=300)
    assert coords.shape == (15, 2) and np.isfinite(coords).all()


def test_original_preset_overrides_config_values():
    original = resolve_settings("original", 50, "auto", 750, 1)
    assert original == {"perplexity": 30.0, "learning_rate": 1000.0, "n_iter": 1000, "seed": 1,
                        "method": "bh", "theta": 0.2}
    default = resolve_settings("default", 50, "auto", 750, 1)
    assert default["perplexity"] == 50 and default["method"] == "fft"
    with pytest.raises(ValueError):
        resolve_settings("fast", 30, "auto", 750, 1)


def test_embedding_is_the_same_for_any_thread_count():
    # 1,200 points: above openTSNE's exact-neighbour limit, so the approximate (Annoy) index is
    # used, whose forest openTSNE would build differently per thread count.
    points, _ = clusters(per=400, k=3, d=30)
    one = embed(points, perplexity=30, n_iter=300, seed=5, n_jobs=1)
    for n_jobs in (2, 3):
        assert np.array_equal(embed(points, perplexity=30, n_iter=300, seed=5, n_jobs=n_jobs), one)
    # ... and the seed still matters, so the comparison above can fail.
    assert not np.array_equal(embed(points, perplexity=30, n_iter=300, seed=6, n_jobs=1), one)


def test_neighbours_are_near_real_and_the_same_for_any_thread_count():
    # 3,000 points, 4 Gaussian clusters in 50-d, 30 neighbours: the Annoy search in spatial order
    # over three query chunks, with fewer candidates (1,550) than points, so it is approximate.
    # Gaussian clusters fill all 50 dimensions, a harder case for Annoy's trees than PCA
    # features. Found here of the exact 30: 98.6 % by the old search (50 trees, 50 x 31
    # candidates, points in their own order), 98.6 % by the new (8 trees, as many candidates),
    # 94.4 % with a third fewer candidates (tried, dropped): the bound, 97 %, tells them apart.
    # A point order that was not mapped back would find about 30 / 3,000.
    from sklearn.neighbors import NearestNeighbors

    points, _ = clusters(per=750, k=4, d=50)
    indices, distances = find_neighbours(points, 30, 1, seed=5)
    for n_jobs in (2, 3):
        again = find_neighbours(points, 30, n_jobs, seed=5)
        assert np.array_equal(again[0], indices) and np.array_equal(again[1], distances)
    # ... and the seed matters (Annoy's trees), so the comparison above can fail.
    assert not np.array_equal(find_neighbours(points, 30, 1, seed=6)[0], indices)
    # Each found neighbour is another point, at the stated distance, nearest first.
    rows = np.arange(len(points))[:, None]
    assert (indices != rows).all() and (np.diff(distances, axis=1) >= 0).all()
    true = np.linalg.norm(points[indices] - points[rows], axis=2)
    assert np.allclose(distances, true, rtol=1e-4)
    exact = NearestNeighbors(n_neighbors=31).fit(points).kneighbors(points)[1][:, 1:]
    found = np.mean([len(set(a) & set(b)) / 30 for a, b in zip(indices, exact)])
    assert found > 0.97


def test_saved_neighbours_give_the_same_map_as_neighbours_found_in_the_job(tmp_path):
    # 180 points: exact neighbours, so the first 30 of 150 are exactly the 30 nearest.
    points, _ = clusters()
    ids = [f"im{i}" for i in range(len(points))]
    write_neighbours(tmp_path / "nn.npz", ids, *find_neighbours(points, 150, 1, 3))
    saved = read_neighbours(tmp_path / "nn.npz", ids)
    assert saved[0].shape == (180, 150)
    direct = embed(points, perplexity=10, n_iter=300, seed=3)
    assert np.array_equal(embed(points, perplexity=10, n_iter=300, seed=3, neighbours=saved), direct)
    # Too few saved neighbours for the perplexity: the job finds its own, the same map again.
    few = tuple(a[:, :20] for a in saved)
    assert np.array_equal(embed(points, perplexity=10, n_iter=300, seed=3, neighbours=few), direct)
    # ... and the neighbours do matter, so the comparisons above can fail.
    shuffled = (saved[0][:, ::-1].copy(), saved[1][:, ::-1].copy())
    assert not np.array_equal(embed(points, perplexity=10, n_iter=300, seed=3,
                                    neighbours=shuffled), direct)


def test_rules_neighbours_then_tsne_write_a_map_and_refuse_other_images(tmp_path):
    import h5py

    points, _ = clusters(per=400, k=3, d=30)  # 1,200 points: the Annoy index
    ids = [f"im{i}" for i in range(len(points))]
    with h5py.File(tmp_path / "pca.h5", "w") as h5:
        h5["ids"] = np.array(ids, dtype="S")
        h5["pca"] = points.astype(np.float32)
    assert run_neighbours(tmp_path / "pca.h5", tmp_path / "nn.npz", 150, 5, n_jobs=2) == {
        "n_images": 1200, "k": 150}
    settings = resolve_settings("default", 30, "auto", 300, 5)
    assert run_tsne(tmp_path / "pca.h5", tmp_path / "tsne.csv", settings, n_jobs=2,
                    neighbours_npz=tmp_path / "nn.npz") == {"n_images": 1200}
    with pytest.raises(ValueError, match="other images"):
        read_neighbours(tmp_path / "nn.npz", ids[::-1])
