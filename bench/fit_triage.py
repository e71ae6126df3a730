"""Fit the triage model (workflow/vacancy/triage_model.json) on the real-image set, and say how good it is.

    .venv/bin/python bench/fit_triage.py [--set bench/cache/realset] [--write]

Why a fitted model: on real images no single entropy cut keeps 98% of photos while letting
through at most 5% of graphics (the distributions overlap: maps and screenshots sit around 4 nats,
the moon and dark stages below). A logistic regression on the standardised signals of
:func:`vacancy.triage.signals` separates them; its parameters are a few numbers in a JSON file.

The signals are measured by ``prepare``'s own :func:`vacancy.prepare.measure_image` (reduced-scale
decode as in the workflow), on the photos and graphics of the set (kind "other" is left out).
Copies and "moved" twins are grouped with their original, so cross-validation never trains on a
copy of a held-out image. Printed: the 5-fold grouped cross-validated figures (each image scored by
a model that never saw it or its copies) at the default thresholds, beside the entropy rule's, and
the in-sample figures of the final fit. ``--write`` writes the model; without it nothing changes.
"""

from __future__ import annotations

import argparse
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


def measure_set(root: Path) -> tuple[np.ndarray, np.ndarray, list[str], list[dict]]:
    """(signals matrix, is-photo, group of each row, label rows) for the set's photos and graphics."""
    rows = [r for r in read_labels(root / "labels.csv") if r["kind"] != "other"]
    options = decode_options(True, config_defaults()["tiles"]["cell_px"])
    x, kept = [], []
    for row in rows:
        try:
            result = measure_image(read_blob(root / row["id"]), options, 3.9, 4.4, 8, "gray",
                                   64, (24, 24, 24))
        except Rejected as exc:
            print(f"skipped {row['id']}: {exc}", file=sys.stderr)
            continue
        triage = result["triage"]
        x.append([float(triage[name]) for name in SIGNALS])
        kept.append(row)
    y = np.array([r["kind"] == "photo" for r in kept])
    groups = [r["source"].split(" of ")[-1] if r["category"] in ("copy", "moved") else r["id"]
              for r in kept]
    return np.array(x), y, groups, kept


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
    parser.add_argument("--write", action="store_true", help=f"write {MODEL_PATH.name}")
    args = parser.parse_args(argv)
    if not (args.set / "labels.csv").is_file():
        build(args.set)
    x, y, groups, _ = measure_set(args.set)
    defaults = config_defaults()["triage"]
    print(f"{len(y)} images: {int(y.sum())} photos, {int((~y).sum())} graphics")
    print(f"entropy rule (> {defaults['photo_above']} nats): "
          + figures(x[:, 0], y, defaults["photo_above"]))
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
    held_out = cross_val_predict(pipeline, x, y, cv=GroupKFold(5), groups=groups,
                                 method="predict_proba")[:, 1]
    above = defaults["score_photo_above"]
    print(f"model, 5-fold grouped cross-validation (score > {above}): " + figures(held_out, y, above))
    pipeline.fit(x, y)
    print(f"model, in sample (score > {above}): "
          + figures(pipeline.predict_proba(x)[:, 1], y, above))
    model = model_json(pipeline)
    print("standardised weights: " + ", ".join(f"{n} {c:+.2f}" for n, c in zip(SIGNALS, model["coef"])))
    if args.write:
        MODEL_PATH.write_text(json.dumps(model, indent=1) + "\n")
        print(f"wrote {MODEL_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
