"""Fit the triage model (workflow/vacancy/triage_model.json) on the real-image set, and say how good it is.

    .venv/bin/python bench/fit_triage.py [--set bench/cache/realset] [--demo 300] [--write]
                                         [--draft-side N]

Why a fitted model: on real images no single entropy cut keeps 98% of photos while letting
through at most 5% of graphics (the distributions overlap: maps and screenshots sit around 4 nats,
the moon and dark stages below). A logistic regression on the standardised signals of
:func:`vacancy.images.triage.signals` separates them; its parameters are a few numbers in a JSON file.

The signals are measured by ``prepare``'s own :func:`vacancy.images.prepare.measure_image` (reduced-scale
decode as in the workflow), on the photos and graphics of the set (kind "other" is left out). The synthetic demo (``--demo``
images: rooms and exteriors as photos, floor plans and ads as graphics) is never fitted on: it is
a held-out check that the model still does what the entropy rule did there.
Copies and "moved" twins are grouped with their original, so cross-validation never trains on a
copy of a held-out image. Printed: the 5-fold grouped cross-validated figures (each image scored by
a model that never saw it or its copies) at the default thresholds, beside the entropy rule's, and
the in-sample figures of the final fit, and the final model's figures on the demo. Also
cross-validated: the set's original photos and graphics at the size Craigslist serves listing
photos (shrunk to fit 600x450, JPEG quality 85), which are never fitted on: most of the set is
larger, and ``prepare`` decodes a 600x450 JPEG at a smaller scale than a big one; also for the
originals at least LISTING_MIN_SIDE px a side only (no icons). ``--draft-side`` measures every
signal at another ``prepare.draft_side`` than the schema's. ``--write`` writes the model; without
it nothing changes.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from wand.image import Image as WandImage
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "bench"))

from realset import CACHE, build, read_labels  # noqa: E402
from vacancy.common import config_defaults  # noqa: E402
from vacancy.imaging import Rejected, check_blob, header_size, read_blob  # noqa: E402
from vacancy.images.prepare import decode_options, measure_image  # noqa: E402
from vacancy.images.triage import MODEL_PATH, SIGNALS, score  # noqa: E402

#: Regularisation of the logistic regression (inverse strength). Chosen by the cross-validated
#: figures printed here (0.3, 1, 3, 10 tried: 1 keeps the most photos at <= 5% graphics).
C = 1.0
#: Hard variants of each original photo added to the fit, and their weight beside a real image
#: (0.3: chosen by the cross-validated figures; 1.0 let 5.9% of graphics through).
HARD_VARIANTS = ("dark", "blown-out")
AUGMENT_WEIGHT = 0.3


#: Craigslist's listing photo size (images.craigslist.org/<id>_600x450.jpg): the listing-size
#: check shrinks the set's originals to fit it.
LISTING_SIZE = "600x450>"
LISTING = "listing"
#: Icons and buttons are graphics no listing carries: the listing-size figures are also given for
#: the originals whose shorter side is at least this.
LISTING_MIN_SIDE = 200
#: The listing-size copies are measured, not fitted on (weight 0): with them in the fit (weight
#: 0.5 or 1) the cross-validated share of their graphics on the map fell only to 0.14 / 0.12,
#: and the originals' photos on the map from 0.996 to 0.968 (2026-12-07, draft_side 96); at
#: 128, weight 1 (``--listing-weight 1``) gives 0.136, and the dark and blown-out variants
#: classed photo fall from 0.966 / 0.974 to 0.931 / 0.922 (README "Triage: signals and model").
LISTING_WEIGHT = 0.0
#: prepare's decode hint; ``--draft-side`` replaces it.
OPTIONS = decode_options(True, config_defaults()["tiles"]["cell_px"])

#: The demo's kinds as the set's: rooms and exteriors are photos, floor plans and ads graphics.
DEMO_KINDS = {"interior": "photo", "exterior": "photo", "hallway": "photo",
              "floorplan": "graphic", "ad": "graphic"}


def signal_row(blob: bytes) -> list[float] | None:
    """The signals of one image as ``prepare`` measures them (None for an unreadable file)."""
    try:
        triage = measure_image(blob, OPTIONS, 3.9, 4.4, 8, "gray", 64, (24, 24, 24))["triage"]
    except Rejected as exc:
        print(f"skipped an image: {exc}", file=sys.stderr)
        return None
    return [float(triage[name]) for name in SIGNALS]


def hard_variant(blob: bytes, variant: str) -> bytes:
    """A listing photo's hard cases made from a real photo: a dark room (brightness 35%) or
    white walls and windows blown out (the top 30% of levels clipped to white)."""
    with WandImage(blob=blob) as img:
        if img.alpha_channel:
            img.alpha_channel = "remove"
        if variant == "dark":
            img.modulate(brightness=35)
        else:
            img.level(0.0, 0.7)
        img.format = "jpeg"
        img.compression_quality = 85
        return img.make_blob()


def listing_copy(blob: bytes) -> bytes:
    """The image as a listing shows it: shrunk to fit 600x450 (never enlarged), JPEG quality 85,
    transparency flattened on white."""
    with WandImage(blob=blob) as img:
        if img.alpha_channel:
            img.alpha_channel = "remove"
        img.transform(resize=LISTING_SIZE)
        img.format = "jpeg"
        img.compression_quality = 85
        return img.make_blob()


def measure_set(root: Path, listing_weight: float = LISTING_WEIGHT) -> dict[str, list]:
    """Signals, is-photo, group, variant and weight of the set's photos and graphics.

    A copy's or twin's group is its original; each original photo also gives a dark and a
    blown-out variant (its group, weight AUGMENT_WEIGHT), so the model learns that these are
    still photos without the variants outweighing the real images.
    """
    out: dict[str, list] = {"x": [], "y": [], "group": [], "variant": [], "weight": [],
                            "side": []}
    for row in read_labels(root / "labels.csv"):
        if row["kind"] == "other":
            continue
        blob = read_blob(root / row["id"])
        side = min(header_size(blob, check_blob(blob)))  # the file as shipped, from its header
        copy = row["category"] in ("copy", "moved")
        group = row["source"].split(" of ")[-1] if copy else row["id"]
        variants = [("", blob)]
        if row["kind"] == "photo" and row["category"] == "photo":
            variants += [(v, hard_variant(blob, v)) for v in HARD_VARIANTS]
        if not copy:
            variants.append((LISTING, listing_copy(blob)))
        for variant, data in variants:
            values = signal_row(data)
            if values is None:
                continue
            weight = {"": 1.0, LISTING: listing_weight}.get(variant, AUGMENT_WEIGHT)
            for key, value in (("x", values), ("y", row["kind"] == "photo"), ("group", group),
                               ("variant", variant), ("weight", weight), ("side", side)):
                out[key].append(value)
    return {key: np.array(value) if key != "group" else value for key, value in out.items()}


def measure_demo(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The same for ``n`` demo images (generated once into bench/cache/corpus-N)."""
    from vacancy.sources.demo import generate_corpus

    corpus = CACHE / f"corpus-{n}"
    if not (corpus / "truth.csv").is_file():
        generate_corpus(corpus / "raw", corpus / "truth.csv.part", ["sfbay", "boston"], n, 1)
        (corpus / "truth.csv.part").rename(corpus / "truth.csv")
    with open(corpus / "truth.csv", newline="") as f:
        truth = [t for t in csv.DictReader(f) if t["kind"] in DEMO_KINDS]
    rows = [(signal_row(read_blob(corpus / "raw" / t["id"])), t) for t in truth]
    rows = [(x, t) for x, t in rows if x is not None]
    return (np.array([x for x, _ in rows]),
            np.array([DEMO_KINDS[t["kind"]] == "photo" for _, t in rows]))


def figures(p: np.ndarray, y: np.ndarray, photo_above: float) -> str:
    """Share of photos and of graphics that would reach the map (class photo)."""
    return (f"photos on the map {np.mean(p[y] > photo_above):.4f}, "
            f"graphics on the map {np.mean(p[~y] > photo_above):.4f}")


def fit(x: np.ndarray, y: np.ndarray, weight: np.ndarray):
    """The standardisation and logistic regression, fitted with per-image weights (rows of
    weight 0 are left out of both)."""
    used = weight > 0
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
    return pipeline.fit(x[used], y[used], logisticregression__sample_weight=weight[used])


def cross_validate(data: dict) -> np.ndarray:
    """Each image's score by a model fitted without its group (its copies and variants)."""
    scores = np.zeros(len(data["y"]))
    for train, test in GroupKFold(5).split(data["x"], data["y"], data["group"]):
        model = fit(data["x"][train], data["y"][train], data["weight"][train])
        scores[test] = model.predict_proba(data["x"][test])[:, 1]
    return scores


def model_json(pipeline) -> dict:
    """The fitted pipeline as the plain numbers :func:`vacancy.images.triage.score` reads."""
    scaler, logistic = pipeline[0], pipeline[-1]
    return {"signals": list(SIGNALS), "mean": scaler.mean_.round(6).tolist(),
            "scale": scaler.scale_.round(6).tolist(),
            "coef": logistic.coef_[0].round(6).tolist(),
            "intercept": round(float(logistic.intercept_[0]), 6),
            "fitted_by": "bench/fit_triage.py", "C": C, "hard_variants": list(HARD_VARIANTS),
            "hard_variant_weight": AUGMENT_WEIGHT}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, default=CACHE / "realset")
    parser.add_argument("--demo", type=int, default=300,
                        help="demo images to check the fitted model on (0: none)")
    parser.add_argument("--write", action="store_true", help=f"write {MODEL_PATH.name}")
    parser.add_argument("--draft-side", type=int, metavar="N",
                        help="measure the signals at this prepare.draft_side")
    parser.add_argument("--listing-weight", type=float, default=LISTING_WEIGHT, metavar="W",
                        help="fit on the listing-size copies too, at this weight (default: "
                             "measured only; the written model records it)")
    args = parser.parse_args(argv)
    global OPTIONS
    if args.draft_side:
        OPTIONS = decode_options(True, config_defaults()["tiles"]["cell_px"], args.draft_side)
    print(f"signals measured with ImageMagick's {OPTIONS}")
    if not (args.set / "labels.csv").is_file():
        build(args.set)
    data = measure_set(args.set, args.listing_weight)
    x, y, variant = data["x"], data["y"], data["variant"]
    defaults = config_defaults()["triage"]
    above = defaults["score_photo_above"]
    held_out = cross_validate(data)
    pipeline = fit(x, y, data["weight"])
    in_sample = pipeline.predict_proba(x)[:, 1]
    # the model the workflow uses now, on these signals (it may have been fitted on others)
    shipped = np.array([score(dict(zip(SIGNALS, row))) for row in x])
    real = variant == ""
    print(f"real set: {int(y[real].sum())} photos, {int((~y[real]).sum())} graphics")
    print(f"  entropy rule (> {defaults['photo_above']} nats): "
          + figures(x[real, 0], y[real], defaults["photo_above"]))
    for name, p in (("5-fold grouped cross-validation", held_out), ("in sample", in_sample),
                    (f"as shipped ({MODEL_PATH.name})", shipped)):
        print(f"  model, {name} (score > {above}): " + figures(p[real], y[real], above)
              + "".join(f", {v} variants classed photo {np.mean(p[variant == v] > above):.4f}"
                        for v in HARD_VARIANTS))
    for v in HARD_VARIANTS:
        print(f"  entropy rule, {v} variants classed photo "
              f"{np.mean(x[variant == v, 0] > defaults['photo_above']):.4f}")
    at = variant == LISTING
    print(f"the set's originals at listing size ({LISTING_SIZE}, JPEG 85, never fitted on): "
          f"{int(y[at].sum())} photos, {int((~y[at]).sum())} graphics")
    print("  entropy rule: " + figures(x[at, 0], y[at], defaults["photo_above"]))
    for name, p in (("5-fold grouped cross-validation", held_out), ("in sample", in_sample),
                    ("as shipped", shipped)):
        print(f"  model, {name}: " + figures(p[at], y[at], above))
    big = data["side"] >= LISTING_MIN_SIDE
    for label, rows in (("at listing size", at & big), ("as shipped", real & big)):
        print(f"  model, cross-validated, originals at least {LISTING_MIN_SIDE} px a side "
              f"({int(y[rows].sum())} photos, {int((~y[rows]).sum())} graphics), {label}: "
              + figures(held_out[rows], y[rows], above))
    if args.demo:
        dx, dy = measure_demo(args.demo)
        print(f"demo (held out: never fitted on): {int(dy.sum())} photos, "
              f"{int((~dy).sum())} graphics")
        print("  entropy rule: " + figures(dx[:, 0], dy, defaults["photo_above"]))
        print("  model: " + figures(pipeline.predict_proba(dx)[:, 1], dy, above))
    model = model_json(pipeline)
    if args.listing_weight:
        model["listing_weight"] = args.listing_weight
    print("standardised weights: " + ", ".join(f"{n} {c:+.2f}" for n, c in zip(SIGNALS, model["coef"])))
    if args.write:
        MODEL_PATH.write_text(json.dumps(model, indent=1) + "\n")
        print(f"wrote {MODEL_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
