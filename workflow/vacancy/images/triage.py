"""Triage: sort each image into graphic / maybe / photo.

Two methods (config ``triage.method``). ``entropy``, the original rule: the entropy of the grey
levels against two thresholds (below). ``model``, the default: on real images the entropies of
photos and graphics overlap (maps and dialogs near 4 nats, the moon or a dark stage below 3.9), so
:func:`signals` adds cheap measurements of the same decode (dominant grey levels, identical
neighbours, colour count, flat area, chroma, gradients, noise) and :func:`score` combines them
with the entropy in a logistic model whose parameters ship in ``triage_model.json`` (fitted on
the real-image set by ``bench/fit_triage.py``); the score, the probability of a photo, is cut at
``triage.score_graphic_below`` and ``triage.score_photo_above``. README: "Triage: signals and
model".

Why entropy: floor plans, logos, "call now" banners and screenshots use few, flat grey levels;
photos of rooms spread over most of the 256. The original scripts measured the Shannon entropy
of the 8-bit grayscale histogram that ImageMagick reports and cut at 3.9 and 4.4; we keep that
scale so the thresholds people tuned still mean the same thing.

Definition (exactly what ImageMagick reports): the image is converted with ImageMagick's own
``-colorspace gray`` (Rec. 709 luma of the sRGB values; a CMYK or already-gray image is handled
by ImageMagick as usual), reduced to depth 8 as ``-depth 8`` does in the Q16 build (which
*truncates*: level = q16 // 257, not rounds), counted into 256 bins, and

    H = -sum(p_i * ln p_i)   over non-empty bins, in nats: 0 (flat) .. ln 256 = 5.545 (uniform).

It equals, to 1e-6, the entropy of ``convert-im6.q16 f -colorspace gray -depth 8 -format %c
histogram:info:-`` (see tests/test_triage.py). The histogram is counted in numpy from the 16-bit
pixels ImageMagick exports; the grey conversion and quantisation are ImageMagick's.

Relation to ImageMagick's own ``%[entropy]`` (measured with ImageMagick 6.9.11-60 Q16): it is
*not* ``H / ln 256``. ImageMagick divides by the log of the number of *non-empty* bins of the
histogram at the image's current depth: ``%[entropy] = H / ln(k)``. Measured on four images,
``convert f -colorspace gray -depth 8 -format %[entropy] info:`` gave 0.916103, 0.886376,
0.266256, 0.898616 where H / ln k with k = 187, 96, 256, 208 occupied levels gives exactly those
numbers, while H / ln 256 gives 0.864216, 0.729594, 0.266256, 0.864967 (equal only when all 256
levels occur). Without ``-depth 8`` the histogram has 65536 bins in Q16 and the value changes
again (0.967, 0.968, 0.222, 0.990 for the same images). Because k varies per image,
``%[entropy]`` is not a monotonic function of H across images (an image using 96 levels evenly
scores higher than a richer photo), so it cannot replace H and the 3.9/4.4 thresholds have no
``%[entropy]`` equivalent.

In the workflow the histogram is taken from the reduced-scale decode that the ``prepare`` stage
shares between all its measurements (see :mod:`vacancy.images.prepare`), not from a full decode:
on the 2,000-image demo that moves H by 0.05 nats on average (-0.01 net) and changes the class of 0.2% of
images. The full-decode definition is kept as the tests' reference (``tests/reference.py``).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from wand.image import Image

from ..imaging import export_pixels

CLASSES = ("graphic", "maybe", "photo")
#: ``method: model`` scores the signals below with this fitted model (bench/fit_triage.py).
MODEL_PATH = Path(__file__).with_name("triage_model.json")
METHODS = ("model", "entropy")


def gray_q16(img: Image) -> np.ndarray:
    """The image's ``-colorspace gray`` (ImageMagick's own conversion) as (h, w) uint16."""
    with img.clone() as gray:
        gray.transform_colorspace("gray")
        return export_pixels(gray, "R", "short")[..., 0]


def histogram_of_q16(q16: np.ndarray) -> np.ndarray:
    """256 counts of Q16 grey values after ``-depth 8``."""
    # Q16 "-depth 8" maps q to floor(255 * q / 65535) = q // 257 (65535 = 255 * 257).
    return np.bincount((np.asarray(q16) // 257).ravel(), minlength=256)


def entropy_nats(counts: np.ndarray) -> float:
    """Shannon entropy, natural log, of a histogram (empty bins ignored)."""
    counts = np.asarray(counts, dtype=np.float64)
    counts = counts[counts > 0]
    if counts.size == 0:
        raise ValueError("empty histogram")
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p))) + 0.0  # "+ 0.0" turns -0.0 into 0.0


def classify(entropy: float, graphic_below: float, photo_above: float) -> str:
    """'graphic' below ``graphic_below``, 'photo' above ``photo_above``, else 'maybe'."""
    if graphic_below > photo_above:
        raise ValueError(f"graphic_below {graphic_below} > photo_above {photo_above}")
    if math.isnan(entropy):
        raise ValueError("entropy is NaN")
    if entropy < graphic_below:
        return "graphic"
    if entropy > photo_above:
        return "photo"
    return "maybe"


#: The triage signals (one list: the model JSON, the triage CSV, bench/fit_triage.py and the
#: README's table all follow it). The entropy comes first and keeps its own column.
SIGNALS = ("entropy", "peak", "top4", "colors", "same", "same_mid", "flat", "sat", "gray", "edge",
           "sharp", "noise")
#: The triage CSV: the original five columns, then the score and the other signals.
OUT_COLUMNS = ("id", "entropy", "class", "width", "height", "score", *SIGNALS[1:])
#: Side of the colour sample taken from the decode by striding (no resampling: cheap).
SAMPLE_SIDE = 64


def _sample_channels(rgb16: np.ndarray | None, q16: np.ndarray) -> tuple[np.ndarray, ...]:
    """At most SAMPLE_SIDE x SAMPLE_SIDE pixels of the decode, by striding: 8-bit R, G, B planes.

    One strided shift into a (3, h, w) int32 array: the planes are its contiguous rows (a third
    of the cost of shifting and converting each channel on its own).
    """
    h, w = q16.shape[:2]
    step_y, step_x = -(-h // SAMPLE_SIDE), -(-w // SAMPLE_SIDE)  # ceil: at most SAMPLE_SIDE
    if rgb16 is None:
        gray = (q16[::step_y, ::step_x] >> 8).astype(np.int32)
        return gray, gray, gray
    sample = np.moveaxis(rgb16[::step_y, ::step_x], 2, 0)
    planes = np.empty(sample.shape, dtype=np.int32)
    np.right_shift(sample, 8, out=planes, casting="unsafe")  # the high byte: 8 bits, no division
    return planes[0], planes[1], planes[2]


def _identical_neighbours(packed: np.ndarray, clipped: np.ndarray) -> tuple[float, float]:
    """Share of right and lower neighbours with identical RGB: of all pairs, and of the pairs
    not both clipped to white or black (a blown-out window or a black night sky is a photo's
    only source of identical runs; a drawing's fills are identical in any colour)."""
    equal = [packed[:, 1:] == packed[:, :-1], packed[1:] == packed[:-1]]
    open_ = [~(clipped[:, 1:] & clipped[:, :-1]), ~(clipped[1:] & clipped[:-1])]
    pairs = sum(e.size for e in equal)
    unclipped = sum(int(np.count_nonzero(o)) for o in open_)
    same = sum(int(np.count_nonzero(e)) for e in equal) / max(1, pairs)
    same_mid = (sum(int(np.count_nonzero(e & o)) for e, o in zip(equal, open_))
                / max(1, unclipped))
    return float(same), float(same_mid)


def signals(counts: np.ndarray, small: np.ndarray, q16: np.ndarray,
            rgb16: np.ndarray | None) -> dict[str, float]:
    """The cheap measurements triage combines, from what ``prepare`` has decoded anyway.

    ``counts``: the 256-level grey histogram of the decode; ``small``: the features' 64x64 grey
    image (0..1); ``rgb16``: the decode's Q16 RGB (None for CMYK: colour signals then see grey).
    What each one catches is in the README ("Triage: signals and model"). All are shares or
    means in 0..1. Written with per-channel planes and packed integers, not reductions over the
    colour axis: this runs for every image and must stay a small part of ``prepare``'s cost.
    """
    p = np.sort(np.asarray(counts, dtype=np.float64))[::-1] / max(1, counts.sum())
    r, g, b = _sample_channels(rgb16, q16)
    packed = r << 16 | g << 8 | b
    quant = (r >> 4) << 8 | (g >> 4) << 4 | (b >> 4)
    top, bottom = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    chroma = top - bottom
    same, same_mid = _identical_neighbours(packed, (bottom >= 250) | (top <= 5))
    # L1 gradient (|dx| + |dy|): the same ranking as the Euclidean one, without a square root
    across = np.diff(small, axis=1)  # shared with the noise: np.diff(small, 2) is its diff
    grad = np.abs(across)[:-1] + np.abs(np.diff(small, axis=0))[:, :-1]
    return {
        "entropy": entropy_nats(counts),
        "peak": float(p[0]),
        "top4": float(p[:4].sum()),
        "colors": float(np.count_nonzero(np.bincount(quant.ravel(), minlength=1 << 12))
                        / quant.size),
        "same": same,
        "same_mid": same_mid,
        # shares as count / size: what .mean() of a boolean array gives (an exact float sum of
        # 0s and 1s, divided once), without the conversion to float
        "flat": np.count_nonzero(grad < 0.004) / grad.size,
        "sat": float(chroma.mean() / 255),  # chroma: saturation without a division
        "gray": np.count_nonzero(chroma <= 6) / chroma.size,
        "edge": float(grad.mean()),
        "sharp": np.count_nonzero(grad > 0.25) / grad.size,
        "noise": float(np.abs(np.diff(across, axis=1)).mean()),  # 2nd difference along rows
    }


@lru_cache(maxsize=4)
def load_model(path: str | Path = MODEL_PATH) -> dict:
    """The shipped logistic model: standardisation and weights per signal, checked against SIGNALS."""
    model = json.loads(Path(path).read_text())
    if tuple(model["signals"]) != SIGNALS:
        raise ValueError(f"{path}: model signals {model['signals']} are not {list(SIGNALS)}; "
                         "refit with bench/fit_triage.py")
    for key in ("mean", "scale", "coef"):
        if len(model[key]) != len(SIGNALS):
            raise ValueError(f"{path}: {key} has {len(model[key])} values, not {len(SIGNALS)}")
    return model


@lru_cache(maxsize=4)
def _weights(path: str | Path = MODEL_PATH) -> tuple[np.ndarray, float]:
    """The model folded into one weight per raw signal and an intercept (same logit, fewer ops)."""
    model = load_model(path)
    coef = np.asarray(model["coef"]) / np.asarray(model["scale"])
    return coef, float(model["intercept"] - coef @ np.asarray(model["mean"]))


def score(values: dict[str, float], path: str | Path = MODEL_PATH) -> float:
    """Probability (0..1) that the image is a photograph, by the shipped logistic model."""
    coef, intercept = _weights(path)
    logit = float(sum(values[name] * w for name, w in zip(SIGNALS, coef.tolist())) + intercept)
    return 1.0 / (1.0 + math.exp(-min(max(logit, -50.0), 50.0)))


def triage_class(values: dict[str, float], method: str, graphic_below: float, photo_above: float,
                 score_graphic_below: float, score_photo_above: float) -> tuple[str, float]:
    """(class, score): by the model's score, or by the entropy alone as before (score is then "")."""
    if method == "entropy":
        return classify(values["entropy"], graphic_below, photo_above), float("nan")
    if method != "model":
        raise ValueError(f"triage.method {method!r} is not one of {METHODS}")
    value = score(values)
    return classify(value, score_graphic_below, score_photo_above), value
