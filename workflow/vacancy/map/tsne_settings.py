"""The t-SNE settings a run uses, from the config and a named preset (standard library only).

Why a module of its own: the Snakefile resolves them when it is parsed, to pass them as the
``tsne`` rule's params (so a changed preset or value reruns t-SNE), and every Snakemake process
parses the Snakefile, on a cluster once per job; :mod:`vacancy.map.tsne` pulls in openTSNE and
scikit-learn, about a second of imports that the parse must not pay.

The ``original`` preset is the 2017 project's: learning rate 1000, Barnes-Hut with angle 0.2,
1000 iterations, perplexity 30.
"""

from __future__ import annotations

PRESETS = {
    "default": {},
    "original": {"learning_rate": 1000.0, "n_iter": 1000, "perplexity": 30.0,
                 "method": "bh", "theta": 0.2},
}


def resolve_settings(preset: str, perplexity: float, learning_rate, n_iter: int, seed: int,
                     neighbours: int | None = None) -> dict:
    """Settings the run will use: the config values, overridden by a named preset.

    The rule passes the result as ``params``, so a change of preset or value reruns t-SNE.
    ``neighbours`` (tsne.neighbours) is rule neighbours' param, not one of these: the tsne job
    takes as many of the saved neighbours as its perplexity needs.
    """
    if preset not in PRESETS:
        raise ValueError(f"tsne.preset {preset!r} is not one of {sorted(PRESETS)}")
    settings = {"perplexity": float(perplexity), "learning_rate": learning_rate,
                "n_iter": int(n_iter), "seed": int(seed), "method": "fft", "theta": 0.5}
    settings.update(PRESETS[preset])
    return settings
