"""Fit the triage model (workflow/vacancy/triage_model.json) on the real-image set, and say how good it is.

    .venv/bin/python bench/fit_triage.py [--set bench/cache/realset] [--demo 300] [--write]

Why a fitted model: on real images no single entropy cut keeps 98% of photos while letting
through at most 5% of graphics (the distributions overlap: maps and screenshots sit around 4 nats,
the moon and dark stages below). A logistic regression on the standardised signals of
:func:`vacancy.triage.signals` separates them; its parameters are a few numbers in a JSON file.

The signals are measured by ``prepare``'s own :func:`vacancy.prepare.measure_image` (reduced-scale
decode as in the workflow), on the photos and graphics of the set (kind "other" is left out). The synthetic demo (``--demo``
images: rooms and exteriors as photos, floor plans and ads as graphics) is never fitted on: it is
a held-out check that the model still does what the entropy rule did there.
Copies and "moved" twins are grouped with their original, so cross-validation never trains on a
copy of a held-out image. Printed: the 5-fold grouped cross-validated figures (each image scored by
a model that never saw it or its copies) at the default thresholds, beside the entropy rule's, and
the in-sample figures of the final fit, and the final model's figures on the demo. ``--write`` writes the model; without it nothing changes.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "bench"))

from realset import CACHE, build, read_labels  # noqa: E402
from vacancy.common import config_defaults  # noqa: E402
from vacancy.imaging import Rejected, read_blob  # noqa: E402
from vacancy.prepare import decode_options, measure_image  # noqa: E402
from vacancy.triage import MODEL_PATH, SIGNALS  # noqa: E402

#: Regularisation of the logistic regression (inverse strength). Chosen by the cross-validated
#: figures printed here (0.3, 1, 3, 10 tried: 1 keeps the most photos at <= 5% graphics).
C = 1.0


#: The demo's kinds as the set's: rooms and exteriors are photos, floor plans and ads graphics.
DEMO_KINDS = {"interior": "photo", "exterior": "photo", "hallway": "photo",
              "floorplan": "graphic", "ad": "graphic"}


def signal_rows(paths: list[Path]) -> tuple[list[list[float]], list[int]]:
    """Signals of each readable image as ``prepare`` measures them; indices of those read."""
    options = decode_options(True, config_defaults()["tiles"]["cell_px"])
    x, kept = [], []
    for i, path in enumerate(paths):
        try:
            triage = measure_image(read_blob(path), options, 3.9, 4.4, 8, "gray", 64,
                                   (24, 24, 24))["triage"]
        except Rejected as exc:
            print(f"skipped {path}: {exc}", file=sys.stderr)
            continue
        x.append([float(triage[name]) for name in SIGNALS])
        kept.append(i)
    return x, kept


def measure_set(root: Path) -> tuple[list, list[bool], list[str]]:
    """(signals, is-photo, group) of the set's photos and graphics; a copy's group is its original."""
    rows = [r for r in read_labels(root / "labels.csv") if r["kind"] != "other"]
    x, kept = signal_rows([root / r["id"] for r in rows])
    rows = [rows[i] for i in kept]
    groups = [r["source"].split(" of ")[-1] if r["category"] in ("copy", "moved") else r["id"]
              for r in rows]
    return x, [r["kind"] == "photo" for r in rows], groups


def measure_demo(n: int) -> tuple[list, list[bool], list[str]]:
    """The same for ``n`` demo images (generated once into bench/cache/corpus-N)."""
    from vacancy.demo import generate_corpus

    corpus = CACHE / f"corpus-{n}"
    if not (corpus / "truth.csv").is_file():
        generate_corpus(corpus / "raw", corpus / "truth.csv.part", ["sfbay", "boston"], n, 1)
        (corpus / "truth.csv.part").rename(corpus / "truth.csv")
    with open(corpus / "truth.csv", newline="") as f:
        truth = [t for t in csv.DictReader(f) if t["kind"] in DEMO_KINDS]
    x, kept = signal_rows([corpus / "raw" / t["id"] for t in truth])
    truth = [truth[i] for i in kept]
    return (x, [DEMO_KINDS[t["kind"]] == "photo" for t in truth],
            ["demo:" + (t["duplicate_of"] or t["id"]) for t in truth])


def figures(p: np.ndarray, y: np.ndarray, photo_above: float) -> str:
    """Share of photos and of graphics that would reach the map (class photo)."""
    return (f"photos on the map {np.mean(p[y] > photo_above):.4f}, "
            f"graphics on the map {np.mean(p[~y] > photo_above):.4f}")


def model_json(pipeline) -> dict:
    """The fitted pipeline as the plain numbers :func:`vacancy.triage.score` reads."""
    scaler, logistic = pipeline[0], pipeline[-1]
    return {"signals": list(SIGNALS), "mean": scaler.mean_.round(6).tolist(),
            "scale": scaler.scale_.round(6).tolist(),
            "coef": logistic.coef_[0].round(6).tolist(),
            "intercept": round(float(logistic.intercept_[0]), 6),
            "fitted_by": "bench/fit_triage.py", "C": C}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, default=CACHE / "realset")
    parser.add_argument("--demo", type=int, default=300,
                        help="demo images to check the fitted model on (0: none)")
    parser.add_argument("--write", action="store_true", help=f"write {MODEL_PATH.name}")
    args = parser.parse_args(argv)
    if not (args.set / "labels.csv").is_file():
        build(args.set)
    x, y, groups = measure_set(args.set)
    x, y = np.array(x), np.array(y)
    defaults = config_defaults()["triage"]
    above = defaults["score_photo_above"]
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
    held_out = cross_val_predict(pipeline, x, y, cv=GroupKFold(5), groups=groups,
                                 method="predict_proba")[:, 1]
    pipeline.fit(x, y)
    print(f"real set: {int(y.sum())} photos, {int((~y).sum())} graphics")
    print(f"  entropy rule (> {defaults['photo_above']} nats): "
          + figures(x[:, 0], y, defaults["photo_above"]))
    print(f"  model, 5-fold grouped cross-validation (score > {above}): "
          + figures(held_out, y, above))
    print(f"  model, in sample (score > {above}): "
          + figures(pipeline.predict_proba(x)[:, 1], y, above))
    if args.demo:
        dx, dy, _ = measure_demo(args.demo)
        dx, dy = np.array(dx), np.array(dy)
        print(f"demo (held out: never fitted on): {int(dy.sum())} photos, "
              f"{int((~dy).sum())} graphics")
        print("  entropy rule: " + figures(dx[:, 0], dy, defaults["photo_above"]))
        print("  model: " + figures(pipeline.predict_proba(dx)[:, 1], dy, above))
    model = model_json(pipeline)
    print("standardised weights: " + ", ".join(f"{n} {c:+.2f}" for n, c in zip(SIGNALS, model["coef"])))
    if args.write:
        MODEL_PATH.write_text(json.dumps(model, indent=1) + "\n")
        print(f"wrote {MODEL_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
