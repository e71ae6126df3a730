"""What each report rule reads and writes (``workflow/rules/report.smk``, one function a rule).

The triage figures take the column and thresholds as arguments (the rule file decides them in
one function), so the same code shows the entropy or a triage model's score.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from ..common import atomic_path, iter_csv, read_csv, sidecar_path
from ..imaging import DEFAULT_MAX_PIXELS
from . import plots, sheets, tables

log = logging.getLogger("vacancy.report")

#: Pictures to a row on every sheet.
COLUMNS = 8


# --------------------------------------------------------------------------- shared readers


def image_paths(inventory_csvs: Sequence) -> dict[str, str]:
    """id -> path of the original file, from the inventories."""
    return {row["id"]: row["path"] for path in inventory_csvs for row in iter_csv(path)}


def triage_values(triage_csvs: Sequence, column: str) -> list[tuple[str, float, str]]:
    """(id, value of ``column``, class) of every triaged image; rows without a number are
    left out with one warning per file naming it, the column and the first such id (the report
    is still made)."""
    out = []
    for path in triage_csvs:
        missing = []
        for row in iter_csv(path):
            try:
                value = float(row[column])
            except (KeyError, TypeError, ValueError):
                missing.append(row.get("id"))
                continue
            if math.isfinite(value):
                out.append((row["id"], value, row.get("class", "")))
        if missing:
            log.warning("%s: %d rows have no number in column %r (first: %r); left out of the "
                        "report", path, len(missing), column, missing[0])
    return out


def selected_ids(selected_csv) -> set[str]:
    return {row["id"] for row in iter_csv(selected_csv)}


def nearest(values: Sequence[tuple[str, float, str]], threshold: float, near: int,
            below_is_strict: bool) -> tuple[list, list]:
    """The ``near`` images on each side of ``threshold``, nearest first. ``below_is_strict``:
    the lower side is ``value < threshold`` (the graphic threshold: exactly at it is maybe);
    otherwise ``value <= threshold`` (the photo threshold: exactly at it is still maybe)."""
    if below_is_strict:
        below = [v for v in values if v[1] < threshold]
        above = [v for v in values if v[1] >= threshold]
    else:
        below = [v for v in values if v[1] <= threshold]
        above = [v for v in values if v[1] > threshold]
    below.sort(key=lambda v: (-v[1], v[0]))
    above.sort(key=lambda v: (v[1], v[0]))
    return below[:near], above[:near]


def _items(entries, paths: dict, on_map: set, px: int, max_pixels: int) -> list[sheets.Item]:
    """Sheet items for (id, value, class) entries: the picture and "value class [on map]"."""
    items = []
    for image, value, klass in entries:
        status = " · on map" if image in on_map else ""
        pixels = sheets.read_picture(paths[image], px, max_pixels) if image in paths else None
        items.append(sheets.Item(pixels, [image, f"{value:.3f} {klass}{status}"]))
    return items


# --------------------------------------------------------------------------- rule report_triage


def triage_report(inventory_csvs, triage_csvs, selected_csv, out, *, column: str, label: str,
                  low: float, high: float, near: int, max_maybe: int, sheet_px: int,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> dict:
    """The histogram by class with both thresholds, a sheet per threshold (``near`` images each
    side), the sheet of the ``maybe`` images (highest value first, at most ``max_maybe``) and
    the list of every ``maybe`` id as an include-file template. ``out``: paths by key
    histogram, low_sheet, high_sheet, maybe_sheet, maybe_list. Returns the counts."""
    values = triage_values(triage_csvs, column)
    paths = image_paths(inventory_csvs)
    on_map = selected_ids(selected_csv)
    by_class: dict[str, list[float]] = defaultdict(list)
    for _, value, klass in values:
        by_class[klass].append(value)
    plots.save_png(plots.triage_histogram({k: np.array(v) for k, v in by_class.items()},
                                          low, high, label), out["histogram"])
    for key, threshold, strict, lower, upper in (
            ("low_sheet", low, True, "graphic", "maybe" if low < high else "photo"),
            ("high_sheet", high, False, "maybe" if low < high else "graphic", "photo")):
        below, above = nearest(values, threshold, near, strict)
        sections = [(f"{label} below {threshold:g} ({lower}), nearest first: {len(below)}",
                     _items(below, paths, on_map, sheet_px, max_pixels)),
                    (f"{label} above {threshold:g} ({upper}), nearest first: {len(above)}",
                     _items(above, paths, on_map, sheet_px, max_pixels))]
        sheets.save_jpeg(sheets.contact_sheet(sections, sheet_px, sheets_columns(near)), out[key])
    maybe = sorted((v for v in values if v[2] == "maybe"), key=lambda v: (-v[1], v[0]))
    shown = maybe[:max_maybe]
    title = (f"maybe: {len(maybe)} images, highest {label} first"
             + (f" (the first {len(shown)}; report.max_maybe)" if len(shown) < len(maybe) else ""))
    sheets.save_jpeg(sheets.contact_sheet([(title, _items(shown, paths, on_map, sheet_px, max_pixels))],
                                          sheet_px, COLUMNS), out["maybe_sheet"])
    write_maybe_list(out["maybe_list"], maybe, on_map, label)
    counts = {klass: len(v) for klass, v in by_class.items()}
    log.info("triage report: %s; %d maybe shown of %d", counts, len(shown), len(maybe))
    return counts


def sheets_columns(near: int) -> int:
    """Columns of a threshold sheet: one row a side up to ``COLUMNS`` pictures."""
    return max(1, min(near, COLUMNS))


def write_maybe_list(path, maybe, on_map: set, label: str) -> None:
    """Every ``maybe`` id, commented out, in the include file's format: a curator deletes the
    ``# `` before the ids to keep and names the file as ``include_file``."""
    with atomic_path(path, suffix=".txt") as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write("# The maybe images of this run, highest " + label + " first.\n"
                         "# To put some on the map: delete the '# ' before their ids, save this\n"
                         "# file and set include_file: <its path> in config.yaml (README, 'Curating').\n")
            handle.write("# Ids without '# ' are on the map now (include file or keep_maybe).\n")
            for image, _, _ in maybe:
                handle.write(f"{image}\n" if image in on_map else f"# {image}\n")


# --------------------------------------------------------------------------- rule report_duplicates


def _copy_record(row: dict) -> tuple[str, int, float | None]:
    """(removed id, dHash distance, correlation or None): ``duplicates.csv``'s correlation is
    empty where the second check did not run (``dedup.check: none``)."""
    correlation = row.get("correlation") or ""
    return row["id"], int(float(row["distance"])), float(correlation) if correlation else None


def _doubt(copy: tuple[str, int, float | None]) -> tuple[float, int]:
    """Sort key, most doubtful copy first: with the second check the lowest correlation (nearest
    ``dedup.min_correlation``, the limit that decided), without it the largest distance."""
    _, distance, correlation = copy
    return (1.0 if correlation is None else correlation, -distance)


def duplicate_groups(duplicate_rows: Sequence[dict], groups: int, per_group: int) -> list[tuple[str, list]]:
    """The ``groups`` groups (keeper, [(removed id, distance, correlation), ...]) whose most
    doubtful copy is nearest the limit (:func:`_doubt`), most doubtful first; each group's copies
    in the same order, at most ``per_group``. Ties go by id so the sheet is the same on every run."""
    by_keeper: dict[str, list[tuple[str, int, float | None]]] = defaultdict(list)
    for row in duplicate_rows:
        by_keeper[row["kept_id"]].append(_copy_record(row))
    for copies in by_keeper.values():
        copies.sort(key=lambda c: (_doubt(c), c[0]))
    order = sorted(by_keeper, key=lambda k: (_doubt(by_keeper[k][0]), k))
    return [(keeper, by_keeper[keeper][:per_group]) for keeper in order[:groups]]


def _copy_caption(distance: int, correlation: float | None) -> str:
    """``4 bits`` or ``4 bits · r 0.994``: what decided that the picture is a copy."""
    return f"{distance} bits" + ("" if correlation is None else f" · r {correlation:.3f}")


def duplicates_report(duplicates_csv, inventory_csvs, triage_csvs, selected_csv, out_sheet, *,
                      max_distance: int, min_correlation: float, groups: int, sheet_px: int,
                      max_pixels: int) -> int:
    """One row per duplicate group nearest the limit: the keeper, then the copies removed in
    its favour with their Hamming distance (and correlation). Returns the number of groups shown."""
    rows = read_csv(duplicates_csv)
    paths = image_paths(inventory_csvs)
    classes = {row["id"]: row.get("class", "") for path in triage_csvs for row in iter_csv(path)}
    on_map = selected_ids(selected_csv)
    chosen = duplicate_groups(rows, groups, COLUMNS - 1)
    limits = f"limits {max_distance} bits, r {min_correlation}"
    sections = []
    for keeper, copies in chosen:
        status = "on map" if keeper in on_map else "NOT on map"
        items = [sheets.Item(_picture(paths, keeper, sheet_px, max_pixels),
                             [keeper, f"kept · {classes.get(keeper, '?')} · {status}"])]
        items += [sheets.Item(_picture(paths, image, sheet_px, max_pixels),
                              [image, f"removed · {_copy_caption(distance, correlation)}"
                                      f" · {classes.get(image, '?')}"])
                  for image, distance, correlation in copies]
        total = sum(1 for r in rows if r["kept_id"] == keeper)
        more = f" (+{total - len(copies)} more)" if total > len(copies) else ""
        sections.append((f"{_copy_caption(*copies[0][1:])} ({limits}): 1 kept, {total} removed{more}",
                         items))
    if not sections:
        sections = [(f"no duplicates within {max_distance} bits", [])]
    widest = max((len(items) for _, items in sections), default=1)
    sheets.save_jpeg(sheets.contact_sheet(sections, sheet_px, max(3, min(widest, COLUMNS))), out_sheet)
    log.info("duplicates report: %d groups of %d shown", len(chosen),
             len({r["kept_id"] for r in rows}))
    return len(chosen)


def _picture(paths: dict, image: str, px: int, max_pixels: int):
    return sheets.read_picture(paths[image], px, max_pixels) if image in paths else None


# --------------------------------------------------------------------------- rule report_rejects


def rejects_report(rejects_csv, out_html, *, max_rows: int) -> int:
    """Counts by stage and reason, then the rejects themselves (at most ``max_rows``)."""
    rows = read_csv(rejects_csv)
    counts = Counter((r["stage"], r["reason"]) for r in rows)
    summary = [{"stage": s, "reason": reason, "images": n}
               for (s, reason), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    note = (f"{len(rows)} images could not be used" +
            (f"; the first {max_rows} are listed (report.max_rows)" if len(rows) > max_rows else ""))
    text = tables.page("Rejects", tables.table(["stage", "reason", "images"], summary, "by reason"),
                       tables.table(["id", "stage", "reason"], rows[:max_rows], "images"), note=note)
    tables.write_page(out_html, text)
    return len(rows)


# --------------------------------------------------------------------------- rule report_map


def map_overview(tiles_dir, max_px: int):
    """The finished map at the deepest zoom whose whole picture fits in ``max_px`` a side,
    stitched from the pyramid's own tiles (so it shows exactly what the viewer shows)."""
    from PIL import Image

    tiles_dir = Path(tiles_dir)
    meta = json.loads((tiles_dir / "meta.json").read_text())
    tile, top = int(meta["tile_size"]), int(meta["max_zoom"])
    z = top
    while z > 0 and max(meta["width_px"], meta["height_px"]) / 2 ** (top - z) > max_px:
        z -= 1
    width = max(1, math.ceil(meta["width_px"] / 2 ** (top - z)))
    height = max(1, math.ceil(meta["height_px"] / 2 ** (top - z)))
    picture = Image.new("RGB", (width, height), meta["background"])
    for x in range(math.ceil(width / tile)):
        for y in range(math.ceil(height / tile)):
            path = tiles_dir / str(z) / str(x) / f"{y}.{meta['format']}"
            if path.is_file():
                with Image.open(path) as img:
                    picture.paste(img.convert("RGB"), (x * tile, y * tile))
    return picture, z


def map_report(tiles_dir, out_jpg, *, max_px: int) -> int:
    """Write the overview picture; returns its zoom."""
    picture, z = map_overview(tiles_dir, max_px)
    sheets.save_jpeg(picture, out_jpg)
    log.info("map overview: zoom %d, %dx%d px", z, *picture.size)
    return z


def tsne_report(tsne_csv, selected_csv, out_png) -> None:
    """The t-SNE scatter coloured by location."""
    location = {row["id"]: row["location"] for row in iter_csv(selected_csv)}
    rows = read_csv(tsne_csv)
    x = np.array([float(r["x"]) for r in rows])
    y = np.array([float(r["y"]) for r in rows])
    plots.save_png(plots.tsne_scatter(x, y, [location.get(r["id"], "?") for r in rows]), out_png)


def grid_report(tsne_csv, grid_csv, pca_h5, out_png, out_html) -> dict:
    """Displacement (histogram) and DPQ16 of the finished grid, with the grid's own record."""
    from ..map.grid import displacement
    from ..map.pca import read_pca
    from ..map.quality import grid_quality

    ids, features = read_pca(pca_h5)
    tsne = {r["id"]: (float(r["x"]), float(r["y"])) for r in iter_csv(tsne_csv)}
    cell = {r["id"]: (int(r["col"]), int(r["row"])) for r in iter_csv(grid_csv)}
    meta = json.loads(sidecar_path(grid_csv).read_text())
    cols, rows = int(meta["cols"]), int(meta["rows"])
    points = np.array([tsne[i] for i in ids]).reshape(-1, 2)
    cell_index = np.array([cell[i][1] * cols + cell[i][0] for i in ids], dtype=np.int64)
    moved = displacement(points, cell_index, cols, rows)
    stats = grid_quality(features, points, cell_index, cols, rows)
    plots.save_png(plots.displacement_histogram(moved, stats), out_png)
    params = meta.get("params", {})
    facts = [
        {"measure": "images on the grid", "value": len(ids)},
        {"measure": "grid (cols x rows)", "value": f"{cols} x {rows}"},
        {"measure": "method, refinement", "value": f"{meta.get('method', params.get('method', '?'))}, "
                                                  f"{params.get('refine', '?')}"},
        {"measure": "mean displacement (cells)", "value": round(stats["displacement_mean"], 3)},
        {"measure": "95th percentile displacement (cells)", "value": round(stats["displacement_p95"], 3)},
        {"measure": "mean displacement of the assignment before refinement",
         "value": round(float(meta.get("assigned_displacement_mean", stats["displacement_mean"])), 3)},
        {"measure": f"DPQ16 ({stats['dpq_queries']} query images; 1 ideal, 0 random)",
         "value": round(stats["dpq16"], 3)},
    ]
    tables.write_page(out_html, tables.page("Grid quality", tables.table(["measure", "value"], facts)))
    return stats


# --------------------------------------------------------------------------- rule report_resources


def read_benchmarks(benchmark_dir) -> list[dict]:
    """Per rule, from Snakemake's benchmark files: jobs, wall s summed over jobs and of the
    longest job, CPU s, the largest job's peak memory (max RSS, MB). Longest total first."""
    per_rule: dict[str, dict] = {}
    root = Path(benchmark_dir)
    for path in sorted(root.rglob("*.tsv")):
        rule = path.parent.name if path.parent != root else path.stem
        with open(path, newline="") as handle:
            row = next(csv.DictReader(handle, delimiter="\t"), None)
        if row is None:
            continue
        entry = per_rule.setdefault(rule, {"rule": rule, "jobs": 0, "s": 0.0, "max_s": 0.0,
                                           "cpu_s": 0.0, "max_rss": 0.0})
        entry["jobs"] += 1
        entry["s"] += _number(row.get("s"))
        entry["max_s"] = max(entry["max_s"], _number(row.get("s")))
        entry["cpu_s"] += _number(row.get("cpu_time"))
        entry["max_rss"] = max(entry["max_rss"], _number(row.get("max_rss")))
    return sorted(per_rule.values(), key=lambda r: (-r["s"], r["rule"]))


def _number(text) -> float:
    """A benchmark value; Snakemake writes NA for what it could not sample."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) else 0.0


def resources_report(benchmark_dir, out_png, out_html) -> list[dict]:
    """Bars and a table of every rule's time and memory in this run's benchmark files."""
    rows = read_benchmarks(benchmark_dir)
    plots.save_png(plots.resources_bars(rows), out_png)
    columns = ["rule", "jobs", "s", "max_s", "cpu_s", "max_rss"]
    pretty = [{**r, **{k: round(r[k], 1) for k in ("s", "max_s", "cpu_s", "max_rss")}} for r in rows]
    tables.write_page(out_html, tables.page(
        "Time and memory per rule", tables.table(columns, pretty),
        note="s: wall seconds summed over the rule's jobs; max_s: its longest job; cpu_s: "
             "sampled CPU seconds (misses most of short jobs); max_rss: peak memory of its "
             "largest job in MB. From results/benchmarks/ (Snakemake's benchmark files)."))
    return rows
