"""Embed the PCA coordinates in 2-D with openTSNE, so similar rooms land near each other.

openTSNE's FFT-accelerated gradients and approximate nearest neighbours keep the cost near
linear in the number of images. ``learning_rate: auto`` (n / early exaggeration) is the default:
the original's fixed 1000 under-converges from about 50,000 images. The original settings are
kept as the ``original`` preset: learning rate 1000, Barnes-Hut with angle 0.2, 1000 iterations,
perplexity 30.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from openTSNE import TSNE

from .common import provenance, write_csv
from .pca import read_pca

log = logging.getLogger(__name__)

#: Iterations openTSNE spends in early exaggeration; ``n_iter`` in config counts them too.
EARLY_EXAGGERATION_ITER = 250

PRESETS = {
    "default": {},
    "original": {"learning_rate": 1000.0, "n_iter": 1000, "perplexity": 30.0,
                 "method": "bh", "theta": 0.2},
}


def resolve_settings(preset: str, perplexity: float, learning_rate, n_iter: int, seed: int) -> dict:
    """Settings the run will use: the config values, overridden by a named preset.

    The rule passes the result as ``params``, so a change of preset or value reruns t-SNE.
    """
    if preset not in PRESETS:
        raise ValueError(f"tsne.preset {preset!r} is not one of {sorted(PRESETS)}")
    settings = {"perplexity": float(perplexity), "learning_rate": learning_rate,
                "n_iter": int(n_iter), "seed": int(seed), "method": "fft", "theta": 0.5}
    settings.update(PRESETS[preset])
    return settings


def effective_perplexity(perplexity: float, n: int) -> float:
    """openTSNE needs about 3 x perplexity neighbours: lower it for tiny collections."""
    limit = max(1.0, (n - 1) / 3.0)
    if perplexity > limit:
        log.warning("tsne: perplexity %.1f is too high for %d images; using %.1f", perplexity, n, limit)
        return limit
    return perplexity


def embed(points: np.ndarray, perplexity: float = 30.0, learning_rate="auto", n_iter: int = 750,
          seed: int = 42, method: str = "fft", theta: float = 0.5, n_jobs: int = 1) -> np.ndarray:
    """2-D t-SNE embedding of ``points`` (n x d); deterministic for a given seed and n_jobs."""
    n = len(points)
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 images, got {n}")
    model = TSNE(
        n_components=2,
        perplexity=effective_perplexity(perplexity, n),
        learning_rate=learning_rate,
        early_exaggeration_iter=min(EARLY_EXAGGERATION_ITER, n_iter - 1),
        n_iter=max(1, n_iter - EARLY_EXAGGERATION_ITER),
        negative_gradient_method=method,
        theta=theta,
        neighbors="auto",
        n_jobs=n_jobs,
        random_state=seed,
        verbose=False,
    )
    return np.asarray(model.fit(np.ascontiguousarray(points, dtype=np.float32)), dtype=np.float64)


def run_tsne(pca_h5: str | Path, out_csv: str | Path, settings: dict, n_jobs: int = 1) -> dict:
    """Embed the PCA output and write ``id, x, y`` to ``out_csv``."""
    ids, points = read_pca(pca_h5)
    log.info("tsne: %d images, %d dims, settings %s, %d threads", len(ids), points.shape[1],
             settings, n_jobs)
    coords = embed(points, perplexity=settings["perplexity"],
                   learning_rate=settings["learning_rate"], n_iter=settings["n_iter"],
                   seed=settings["seed"], method=settings["method"], theta=settings["theta"],
                   n_jobs=n_jobs)
    rows = ({"id": i, "x": f"{x:.6f}", "y": f"{y:.6f}"} for i, (x, y) in zip(ids, coords))
    count = write_csv(out_csv, rows, ["id", "x", "y"], prov=provenance("tsne", settings))
    log.info("tsne: wrote %d points", count)
    return {"n_images": count}
