"""Stage ``select``: decide which images go on the map, and gather everything known about them.

An image is selected when its triage class is ``photo`` (or ``maybe`` with ``keep_maybe``, or a
``maybe`` named in the curator's include file) and it is none of: a non-kept copy in ``duplicates.csv``, an id in the curator's exclude file, an id in
any rejects CSV (prepare). The result, ``selected.csv``, joins the inventory (listing data)
with the triage measurements, so later stages need no other table. All reject CSVs are merged into
one ``rejects.csv`` so a curator has one place to look for what went wrong.

Exclude file format (a person's manual culling; the viewer exports the same format):

* UTF-8 text (a leading byte-order mark is tolerated), one image id ``location/filename`` a line;
* surrounding whitespace of a line is stripped (so an id cannot start or end with spaces);
* blank lines and lines starting with ``#`` (after stripping) are ignored, e.g.::

      # blurry or off-topic, culled 2024-05-01
      sfbay/7712_0.jpg
      nyc/IMG 0001.jpg

Ids not in the inventory are logged as warnings (a typo, or an image since removed), not errors.

The include file (``include_file``) has the same format and is the mirror: the ``maybe`` images it
names go on the map (the report's ``maybe-include-template.txt`` lists them all, commented out).
Only ``maybe`` images can be included: a graphic has no features or thumbnail (move
``triage.graphic_below`` instead), a photo is on the map already; such ids are logged. An id in
both files stays off the map (excluding is the later, more specific decision).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..common import iter_csv, provenance, read_csv, write_csv

log = logging.getLogger("vacancy.images.select")

STAGE = "select"
SELECTED_COLUMNS = [
    "id", "location", "filename", "path", "class", "entropy", "width", "height", "title", "price",
    "posted", "listing_url", "listing_id", "state", "image_url",
]
REJECT_COLUMNS = ["id", "stage", "reason"]
TRIAGE_FIELDS = ("class", "entropy", "width", "height")


def read_exclude_file(path, what: str = "exclude") -> set[str]:
    """Ids listed in a curator's exclude (or include: ``what``) file (format in the module
    docstring).

    A missing file is an error: the config named it, so silently excluding nothing would be wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file named in the config does not exist: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} file {path} is not UTF-8 text: {exc}") from exc
    ids = set()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            ids.add(line)
    return ids


def _rows_by_id(paths, what: str, fields: tuple[str, ...] | None = None) -> dict[str, dict]:
    """All rows of several CSVs keyed by id (only ``fields`` of each, if given: the triage
    table's 17 columns held for a million images take 2 GB, the 4 select uses a third of it);
    a repeated id is logged and its first row kept."""
    rows: dict[str, dict] = {}
    for path in paths:
        for row in iter_csv(path):
            if row["id"] in rows:
                log.warning("%s: id %r appears again in %s; keeping the first", what, row["id"], path)
                continue
            rows[row["id"]] = row if fields is None else {key: row.get(key, "") for key in fields}
    return rows


def _merged_rejects(reject_csvs) -> list[dict]:
    """Rows of every rejects CSV, sorted by id then stage (then reason, for a stable file)."""
    rows = [row for path in reject_csvs for row in read_csv(path)]
    return sorted(rows, key=lambda row: (row["id"], row["stage"], row["reason"]))


def _warn_unknown(excluded: set[str], inventory: dict, what: str = "exclude") -> set[str]:
    """Log exclude-file (or include-file) ids that are not in the inventory; return those that are."""
    unknown = sorted(excluded - inventory.keys())
    for image in unknown[:20]:
        log.warning("%s file names an unknown id: %r", what, image)
    if len(unknown) > 20:
        log.warning("... and %d more unknown ids in the %s file", len(unknown) - 20, what)
    return excluded & inventory.keys()


def _check_included(included: set[str], triage: dict, excluded: set[str]) -> set[str]:
    """The include-file ids that can go on the map (``maybe`` images); the others are logged
    with what to do instead."""
    usable = set()
    for image in sorted(included):
        klass = triage.get(image, {}).get("class", "")
        if image in excluded:
            log.warning("include file names %r, which the exclude file also names: left off", image)
        elif klass == "maybe":
            usable.add(image)
        elif klass == "photo":
            log.info("include file names %r, a photo: it is a candidate anyway", image)
        else:
            log.warning("include file names %r, which is %s: only maybe images can be included "
                        "(a graphic has no features; lower triage.graphic_below instead)",
                        image, klass or "not triaged (rejected)")
    return usable


def _selected_row(row: dict, triage_row: dict) -> dict:
    """One output row: the inventory's listing data plus the triage measurements."""
    return {**row, **{field: triage_row.get(field, "") for field in TRIAGE_FIELDS}}


def select_images(
    inventory_csvs,
    triage_csvs,
    duplicates_csv,
    reject_csvs,
    out_selected,
    out_rejects,
    keep_maybe: bool = False,
    exclude_file: str | os.PathLike | None = None,
    include_file: str | os.PathLike | None = None,
) -> dict:
    """Write ``selected.csv`` and the merged ``rejects.csv``; return (and log) the curator's counts.

    Counts: ``inventory`` images; triage ``photo``/``maybe``/``graphic``; ``duplicates`` (non-kept
    copies); ``excluded`` (exclude-file ids present in the inventory); ``rejected`` (distinct ids in
    any rejects CSV); ``selected``; plus ``candidates`` (photo, and maybe if kept),
    ``untriaged`` (neither triaged nor rejected: a sign of a broken upstream stage) and
    ``exclude_unknown`` (exclude-file ids not in the inventory), ``included`` (maybe images the
    include file adds to the candidates) and ``include_unknown``.
    """
    inventory = _rows_by_id(inventory_csvs, "inventory")
    triage = _rows_by_id(triage_csvs, "triage", TRIAGE_FIELDS)
    duplicates = {row["id"]: row["kept_id"] for row in read_csv(duplicates_csv)}
    rejects = _merged_rejects(reject_csvs)
    rejected = {row["id"] for row in rejects}
    listed = read_exclude_file(exclude_file) if exclude_file else set()
    excluded = _warn_unknown(listed, inventory)
    asked = read_exclude_file(include_file, "include") if include_file else set()
    included = _check_included(_warn_unknown(asked, inventory, "include"), triage, excluded)
    wanted = {"photo", "maybe"} if keep_maybe else {"photo"}
    selected, counts = _choose(inventory, triage, wanted, included,
                               removed=duplicates.keys() | excluded | rejected, rejected=rejected)
    _warn_lost_copies(duplicates, rejected, inventory)
    if counts["untriaged"]:
        log.warning("%d inventory images have neither a triage row nor a reject", counts["untriaged"])
    params = {"keep_maybe": keep_maybe, "exclude_file": str(exclude_file) if exclude_file else None,
              "include_file": str(include_file) if include_file else None,
              "classes": sorted(wanted), "included": len(included)}
    write_csv(out_selected, selected, SELECTED_COLUMNS, prov=provenance(STAGE, params))
    write_csv(out_rejects, rejects, REJECT_COLUMNS, prov=provenance(STAGE, params))
    counts.update(
        inventory=len(inventory), duplicates=len(duplicates), excluded=len(excluded),
        rejected=len(rejected), selected=len(selected), exclude_unknown=len(listed - excluded),
        included=len(included), include_unknown=len(asked - inventory.keys()),
    )
    _log_counts(counts)
    return counts


def _choose(inventory: dict, triage: dict, wanted: set[str], included: set[str], *,
            removed: set[str], rejected: set[str]) -> tuple[list[dict], dict]:
    """The selected rows in id order, and the triage counts: every inventory image of a
    ``wanted`` class (or named by the include file) is a candidate; a candidate is selected
    unless it is ``removed`` (a copy, excluded or rejected)."""
    counts = {key: 0 for key in ("photo", "maybe", "graphic", "candidates", "untriaged")}
    selected = []
    for image in sorted(inventory):
        triage_row = triage.get(image)
        if triage_row is None:
            counts["untriaged"] += image not in rejected
            continue
        klass = triage_row.get("class", "")
        if klass in ("photo", "maybe", "graphic"):
            counts[klass] += 1
        if klass not in wanted and image not in included:
            continue
        counts["candidates"] += 1
        if image not in removed:
            selected.append(_selected_row(inventory[image], triage_row))
    return selected, counts


def _log_counts(counts: dict) -> None:
    """One line a curator can check: every inventory image is accounted for."""
    triaged = counts["photo"] + counts["maybe"] + counts["graphic"]
    log.info("select: %d inventory = %d photo + %d maybe + %d graphic (+ %d rejected/untriaged); "
             "%d candidates; removed: %d duplicates, %d excluded, %d rejected; %d selected",
             counts["inventory"], counts["photo"], counts["maybe"], counts["graphic"],
             counts["inventory"] - triaged, counts["candidates"], counts["duplicates"],
             counts["excluded"], counts["rejected"], counts["selected"])


def _warn_lost_copies(duplicates: dict[str, str], rejected: set[str], inventory: dict) -> None:
    """Warn when a duplicate's kept copy is rejected or unknown: that picture is then lost entirely.

    Dedup only sees hashes, so it can keep a copy that triage later rejects; the count tells the
    curator whether this matters (it is rare: the kept copy is the largest, normally the best).
    """
    lost = [image for image, kept in duplicates.items() if kept in rejected or kept not in inventory]
    if lost:
        log.warning("%d duplicates were removed in favour of a copy that is rejected or not in the "
                    "inventory (first: %r)", len(lost), sorted(lost)[0])
