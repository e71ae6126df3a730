"""Triage: sort each image into graphic / maybe / photo by the entropy of its grey levels.

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
shares between all its measurements (see :mod:`vacancy.prepare`), not from a full decode: on the
2,000-image demo that moves H by 0.05 nats on average (-0.01 net) and changes the class of 0.2% of
images. The full-decode definition is kept as the tests' reference (``tests/reference.py``).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from wand.image import Image

from .imaging import export_pixels

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


def classify(entropy: float, graphic_below: float = 3.9, photo_above: float = 4.4) -> str:
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


def _sample_rgb8(rgb16: np.ndarray | None, q16: np.ndarray) -> np.ndarray:
    """About SAMPLE_SIDE x SAMPLE_SIDE 8-bit RGB pixels of the decode, by striding."""
    src = rgb16 if rgb16 is not None else np.repeat(q16[..., None], 3, axis=2)
    h, w = src.shape[:2]
    step_y, step_x = max(1, h // SAMPLE_SIDE), max(1, w // SAMPLE_SIDE)
    return (src[::step_y, ::step_x] // 257).astype(np.int32)


def _identical_neighbours(rgb: np.ndarray, clipped: np.ndarray) -> tuple[float, float]:
    """Share of right and lower neighbours with identical RGB: of all pairs, and of the pairs
    not both clipped to white or black (a blown-out window or a black night sky is a photo's
    only source of identical runs; a drawing's fills are identical in any colour)."""
    equal = [(rgb[:, 1:] == rgb[:, :-1]).all(axis=2), (rgb[1:] == rgb[:-1]).all(axis=2)]
    open_ = [~(clipped[:, 1:] & clipped[:, :-1]), ~(clipped[1:] & clipped[:-1])]
    pairs = sum(e.size for e in equal)
    unclipped = sum(int(o.sum()) for o in open_)
    same = sum(int(e.sum()) for e in equal) / max(1, pairs)
    same_mid = sum(int((e & o).sum()) for e, o in zip(equal, open_)) / max(1, unclipped)
    return float(same), float(same_mid)


def signals(counts: np.ndarray, small: np.ndarray, q16: np.ndarray,
            rgb16: np.ndarray | None) -> dict[str, float]:
    """The cheap measurements triage combines, from what ``prepare`` has decoded anyway.

    ``counts``: the 256-level grey histogram of the decode; ``small``: the features' 64x64 grey
    image (0..1); ``rgb16``: the decode's Q16 RGB (None for CMYK: colour signals then see grey).
    What each one catches is in the README ("Triage"). All are shares or means in 0..1.
    """
    p = np.sort(np.asarray(counts, dtype=np.float64))[::-1] / max(1, counts.sum())
    rgb = _sample_rgb8(rgb16, q16)
    quant = (rgb[..., 0] >> 3) << 10 | (rgb[..., 1] >> 3) << 5 | (rgb[..., 2] >> 3)
    top, bottom = rgb.max(axis=2), rgb.min(axis=2)
    same, same_mid = _identical_neighbours(rgb, (bottom >= 250) | (top <= 5))
    gx = np.abs(np.diff(small, axis=1))[:-1]
    gy = np.abs(np.diff(small, axis=0))[:, :-1]
    grad = np.hypot(gx, gy)
    lap = np.abs(small[1:-1, 1:-1] * 4 - small[:-2, 1:-1] - small[2:, 1:-1]
                 - small[1:-1, :-2] - small[1:-1, 2:])
    return {
        "entropy": entropy_nats(counts),
        "peak": float(p[0]),
        "top4": float(p[:4].sum()),
        "colors": float(np.unique(quant).size / quant.size),
        "same": same,
        "same_mid": same_mid,
        "flat": float((grad < 0.004).mean()),
        "sat": float(((top - bottom) / np.maximum(top, 1)).mean()),
        "gray": float(((top - bottom) <= 6).mean()),
        "edge": float(grad.mean()),
        "sharp": float((grad > 0.25).mean()),
        "noise": float(np.median(lap)),
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


def score(values: dict[str, float], model: dict | None = None) -> float:
    """Probability (0..1) that the image is a photograph, by the shipped logistic model."""
    model = model or load_model()
    x = np.array([values[name] for name in SIGNALS])
    z = (x - np.asarray(model["mean"])) / np.asarray(model["scale"])
    logit = float(z @ np.asarray(model["coef"]) + model["intercept"])
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
