"""The report's figures, drawn with matplotlib (its object API: no pyplot state, no display).

Each function returns a :class:`matplotlib.figure.Figure` so tests can read back what was drawn
(bar heights, line positions); :func:`save_png` writes it atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..common import atomic_path

#: Triage classes in the order they stack, with colours a curator reads at a glance.
CLASS_COLOURS = {"graphic": "#d62728", "maybe": "#ff7f0e", "photo": "#1f77b4"}
#: Histogram bin width on the triage scale (0.05 nats: the thresholds' own precision).
BIN_WIDTH = 0.05


def histogram_bins(values: np.ndarray, thresholds: Sequence[float], width: float = BIN_WIDTH) -> np.ndarray:
    """Bin edges of ``width`` covering the values and both thresholds, aligned so that each
    threshold is a bin edge: a bar never straddles a threshold."""
    lo = min([float(np.min(values)) if len(values) else 0.0, *thresholds])
    hi = max([float(np.max(values)) if len(values) else 1.0, *thresholds])
    anchor = thresholds[0]
    start = anchor - np.ceil((anchor - lo) / width + 1e-9) * width
    count = int(np.ceil((hi - start) / width + 1e-9)) + 1
    return start + width * np.arange(count + 1)


def triage_histogram(values_by_class: Mapping[str, np.ndarray], low: float, high: float,
                     label: str) -> Figure:
    """Stacked histogram of the triage value by class, the two thresholds as labelled lines."""
    everything = np.concatenate([np.asarray(v, float) for v in values_by_class.values()] or [[]])
    bins = histogram_bins(everything, (low, high))
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot()
    names = [name for name in CLASS_COLOURS if name in values_by_class]
    names += sorted(set(values_by_class) - set(names))
    ax.hist([np.asarray(values_by_class[n], float) for n in names], bins=bins, stacked=True,
            color=[CLASS_COLOURS.get(n, "#7f7f7f") for n in names],
            label=[f"{n} ({len(values_by_class[n])})" for n in names])
    for value, name in ((low, "graphic below"), (high, "photo above")):
        ax.axvline(value, color="black", linestyle="--", linewidth=1)
        ax.annotate(f"{name} {value:g}", (value, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -12), textcoords="offset points", fontsize=9)
    ax.set_xlabel(label)
    ax.set_ylabel("images")
    ax.legend(loc="upper left")
    return fig


def tsne_scatter(x: np.ndarray, y: np.ndarray, locations: Sequence[str]) -> Figure:
    """The t-SNE map, one colour per location (a location that clusters on its own means the
    map sorts by something other than the room, e.g. one site's watermark)."""
    fig = Figure(figsize=(8, 8), layout="constrained")
    ax = fig.add_subplot()
    locations = np.asarray(locations)
    names = sorted(set(locations.tolist()))
    size = float(np.clip(2000 / max(len(x), 1), 0.5, 12))
    for k, name in enumerate(names):
        mine = locations == name
        ax.scatter(x[mine], y[mine], s=size, color=f"C{k % 10}", marker="os^v"[k // 10 % 4],
                   linewidths=0, label=f"{name} ({int(mine.sum())})")
    ax.set_aspect("equal", "datalim")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="upper right", fontsize=8, markerscale=max(1, 4 / size ** 0.5), ncols=1 + len(names) // 20)
    return fig


def displacement_histogram(moved: np.ndarray, stats: Mapping[str, float]) -> Figure:
    """How far the grid moved each image from its t-SNE position, with the mean, the 95th
    percentile and DPQ16 written on it."""
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.hist(moved, bins=50, color="#1f77b4")
    for key, name in (("displacement_mean", "mean"), ("displacement_p95", "95th percentile")):
        ax.axvline(stats[key], color="black", linestyle="--", linewidth=1)
        ax.annotate(f"{name} {stats[key]:.2f}", (stats[key], 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -12), textcoords="offset points", fontsize=9)
    ax.set_xlabel("displacement from the t-SNE position (cells)")
    ax.set_ylabel("images")
    ax.set_title(f"DPQ16 {stats['dpq16']:.3f} (1 = ideal, 0 = random; {stats['dpq_queries']} queries)")
    return fig


def resources_bars(rows: Sequence[Mapping]) -> Figure:
    """Per rule: wall time summed over its jobs, and the largest job's peak memory."""
    fig = Figure(figsize=(9, 0.8 + 0.35 * max(len(rows), 1) * 2), layout="constrained")
    rules = [r["rule"] for r in rows]
    for k, (key, label) in enumerate((("s", "wall time, s (sum of jobs)"),
                                      ("max_rss", "peak memory, MB (largest job)"))):
        ax = fig.add_subplot(2, 1, k + 1)
        values = [float(r[key]) for r in rows]
        ax.barh(rules, values, color="#1f77b4")
        ax.invert_yaxis()
        ax.set_xlabel(label)
        for rule, value in zip(rules, values):
            ax.annotate(f"{value:.1f}", (value, rule), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=8)
    return fig


def save_png(fig: Figure, path: str | Path, dpi: int = 100) -> None:
    """Write a figure as PNG, atomically."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
