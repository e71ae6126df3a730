"""The curator's report: its sheet, histogram, map and table functions on known inputs (pixels and
values), and a real ``snakemake --report`` on the small demo, checked for its sections and images."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import SMALL_DEMO, snakemake, write_config
from vacancy.common import read_csv, write_csv
from vacancy.report import build, plots, sheets


def solid(rgb, width, height) -> np.ndarray:
    return np.tile(np.array(rgb, dtype=np.uint8), (height, width, 1))


def near_colour(pixel, rgb, tol=12) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, rgb))


# --------------------------------------------------------------------------- contact sheets


def test_contact_sheet_places_pictures_letterboxed_with_labels():
    px, cols = 40, 2
    red, blue = solid((220, 20, 20), 40, 20), solid((20, 20, 220), 10, 40)
    sheet = sheets.contact_sheet(
        [("first", [sheets.Item(red, ["a/red.jpg", "3.100 graphic"]),
                    sheets.Item(blue, ["a/blue.jpg", "4.000 maybe"]),
                    sheets.Item(None, ["a/broken.jpg", "?"])]),
         ("second", [])], px, cols)
    line = 11 + 2
    cell_h = px + sheets.LABEL_LINES * line + sheets.GAP
    assert sheet.size == (sheets.GAP + cols * (px + sheets.GAP),
                          sheets.GAP + sheets.TITLE_PX + 2 * cell_h + sheets.TITLE_PX + cell_h)
    x0, y0 = sheets.GAP, sheets.GAP + sheets.TITLE_PX
    pixels = np.asarray(sheet)
    # red 40x20: centred vertically, paper above and below it
    assert near_colour(pixels[y0 + px // 2, x0 + px // 2], (220, 20, 20))
    assert near_colour(pixels[y0 + 3, x0 + px // 2], sheets.PAPER)
    # blue 10x40: centred horizontally, paper at the sides
    x1 = x0 + px + sheets.GAP
    assert near_colour(pixels[y0 + px // 2, x1 + px // 2], (20, 20, 220))
    assert near_colour(pixels[y0 + px // 2, x1 + 3], sheets.PAPER)
    # the unreadable one: a grey square on the second row
    y1 = y0 + cell_h
    assert near_colour(pixels[y1 + px // 2, x0 + px // 2], sheets.UNREADABLE, tol=2)
    # text under each picture: dark pixels in the label band, none in the empty gap beside it
    label = pixels[y0 + px + 1:y0 + px + sheets.LABEL_LINES * line, x0:x0 + px]
    assert (label.min(axis=2) < 100).sum() > 20


def test_wrap_keeps_the_location_and_the_end_of_a_long_id():
    face = sheets.font(11)
    long_id = "sfbay/" + "x" * 80 + "_END.jpg"
    lines = sheets.wrap(long_id, face, 100, 2)
    assert len(lines) == 2 and lines[0].startswith("sfbay/") and lines[1].endswith("_END.jpg")
    assert all(face.getlength(line) <= 100 for line in lines)
    assert sheets.wrap("a/b.jpg", face, 100, 2) == ["a/b.jpg"]


def test_read_picture_fits_the_square_keeps_aspect_and_survives_broken_files(tmp_path):
    left_red = np.concatenate([solid((230, 0, 0), 300, 200), solid((0, 0, 230), 300, 200)], axis=1)
    path = tmp_path / "wide.jpg"
    Image.fromarray(left_red).save(path, quality=95)
    picture = sheets.read_picture(path, 64)
    assert picture.shape[1:] == (64, 3) and abs(picture.shape[0] - 64 / 3) <= 1  # 600 x 200
    assert near_colour(picture[10, 5], (230, 0, 0), tol=30)
    assert near_colour(picture[10, 60], (0, 0, 230), tol=30)
    broken = tmp_path / "cut.jpg"
    broken.write_bytes(path.read_bytes()[:300])
    assert sheets.read_picture(broken, 64) is None
    assert sheets.read_picture(tmp_path / "missing.jpg", 64) is None


# --------------------------------------------------------------------------- triage figures


VALUES = [("a/1", 3.80, "graphic"), ("a/2", 3.89, "graphic"), ("a/3", 3.90, "maybe"),
          ("a/4", 4.10, "maybe"), ("a/5", 4.40, "maybe"), ("a/6", 4.41, "photo"),
          ("a/7", 5.00, "photo"), ("a/8", 3.00, "graphic")]


def test_triage_values_skip_rows_without_a_number_with_one_warning(tmp_path, caplog):
    write_csv(tmp_path / "t.csv", [{"id": "a/1", "entropy": "4.5", "class": "photo"},
                                   {"id": "a/2", "entropy": "", "class": "photo"},
                                   {"id": "a/3", "entropy": "nan", "class": "photo"},
                                   {"id": "a/4", "entropy": "x", "class": "maybe"}],
              ["id", "entropy", "class"])
    assert build.triage_values([tmp_path / "t.csv"], "entropy") == [("a/1", 4.5, "photo")]
    assert "2 rows have no number in column 'entropy' (first: 'a/2')" in caplog.text
    assert build.triage_values([tmp_path / "t.csv"], "score") == []
    assert "4 rows have no number in column 'score'" in caplog.text


def test_nearest_takes_each_side_of_a_threshold_as_classify_does():
    below, above = build.nearest(VALUES, 3.9, 2, below_is_strict=True)
    assert [v[0] for v in below] == ["a/2", "a/1"] and [v[0] for v in above] == ["a/3", "a/4"]
    below, above = build.nearest(VALUES, 4.4, 2, below_is_strict=False)
    assert [v[0] for v in below] == ["a/5", "a/4"] and [v[0] for v in above] == ["a/6", "a/7"]


def test_histogram_counts_each_class_and_draws_both_thresholds():
    by_class = {}
    for _, value, klass in VALUES:
        by_class.setdefault(klass, []).append(value)
    fig = plots.triage_histogram({k: np.array(v) for k, v in by_class.items()}, 3.9, 4.4, "entropy")
    ax = fig.axes[0]
    # stacked: each class is one container of bars; its heights sum to the class count
    heights = [sum(bar.get_height() for bar in c) for c in ax.containers]
    stacked = np.cumsum([len(by_class[k]) for k in ("graphic", "maybe", "photo")])
    assert heights[0] == stacked[0]  # first layer: graphics alone
    # bars never straddle a threshold: both are bin edges
    edges = plots.histogram_bins(np.array([v for _, v, _ in VALUES]), (3.9, 4.4))
    assert np.isclose(edges, 3.9).any() and np.isclose(edges, 4.4).any()
    lines = sorted(line.get_xdata()[0] for line in ax.lines)
    assert lines == pytest.approx([3.9, 4.4])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["graphic (3)", "maybe (3)", "photo (2)"]


def test_triage_report_writes_sheets_and_an_include_template_select_reads(tmp_path):
    """On real JPEGs: the maybe template lists every maybe, highest value first, commented out
    unless on the map; as an include file it names exactly the maybe images on the map, and with
    its comment marks removed it names them all."""
    from vacancy.images.select import read_exclude_file

    rows, triage = [], []
    for k, (image, value, klass) in enumerate(VALUES):
        path = tmp_path / f"{image.replace('/', '_')}.jpg"
        Image.fromarray(solid((30 * k, 100, 200 - 20 * k), 60, 40)).save(path)
        rows.append({"id": image, "path": str(path)})
        triage.append({"id": image, "entropy": value, "class": klass})
    write_csv(tmp_path / "inv.csv", rows, ["id", "path"])
    write_csv(tmp_path / "tri.csv", triage, ["id", "entropy", "class"])
    write_csv(tmp_path / "sel.csv", [{"id": "a/4"}, {"id": "a/6"}, {"id": "a/7"}], ["id"])
    out = {key: tmp_path / f"{key}.{ext}" for key, ext in (
        ("histogram", "png"), ("low_sheet", "jpg"), ("high_sheet", "jpg"), ("maybe_sheet", "jpg"),
        ("maybe_list", "txt"))}
    counts = build.triage_report([tmp_path / "inv.csv"], [tmp_path / "tri.csv"], tmp_path / "sel.csv",
                                 out, column="entropy", label="entropy", low=3.9, high=4.4, near=2,
                                 max_maybe=10, sheet_px=48)
    assert counts == {"graphic": 3, "maybe": 3, "photo": 2}
    text = out["maybe_list"].read_text()
    assert [line for line in text.splitlines() if "a/" in line] == ["# a/5", "a/4", "# a/3"]
    assert read_exclude_file(out["maybe_list"]) == {"a/4"}
    out["maybe_list"].write_text(text.replace("# a/", "a/"))
    assert read_exclude_file(out["maybe_list"]) == {"a/3", "a/4", "a/5"}
    low = Image.open(out["low_sheet"])
    assert low.width == sheets.GAP + 2 * (48 + sheets.GAP)
    # the first picture below the graphic threshold is a/2 (3.89), the 3rd image made (k = 1)
    x, y = sheets.GAP + 24, sheets.GAP + sheets.TITLE_PX + 20
    assert near_colour(low.getpixel((x, y)), (30, 100, 180), tol=16)


def test_duplicate_groups_nearest_the_limit_first():
    rows = [{"id": "x/2", "kept_id": "x/1", "distance": "1", "correlation": ""},
            {"id": "y/2", "kept_id": "y/1", "distance": "4", "correlation": ""},
            {"id": "y/3", "kept_id": "y/1", "distance": "0", "correlation": ""},
            {"id": "z/2", "kept_id": "z/1", "distance": "3", "correlation": ""}]
    assert build.duplicate_groups(rows, 2, 5) == [("y/1", [("y/2", 4, None), ("y/3", 0, None)]),
                                                 ("z/1", [("z/2", 3, None)])]


def test_duplicate_groups_with_the_second_check_lowest_correlation_first():
    """With dedup.check features the correlation decided, so the copy nearest min_correlation is
    the doubtful one, whatever its distance."""
    rows = [{"id": "x/2", "kept_id": "x/1", "distance": "6", "correlation": "0.9990"},
            {"id": "y/2", "kept_id": "y/1", "distance": "1", "correlation": "0.9912"},
            {"id": "y/3", "kept_id": "y/1", "distance": "7", "correlation": "0.9950"},
            {"id": "z/2", "kept_id": "z/1", "distance": "0", "correlation": "0.9930"}]
    assert build.duplicate_groups(rows, 2, 5) == [
        ("y/1", [("y/2", 1, 0.9912), ("y/3", 7, 0.995)]), ("z/1", [("z/2", 0, 0.993)])]


# --------------------------------------------------------------------------- map, tables


def test_map_overview_stitches_the_deepest_zoom_that_fits(tmp_path):
    meta = {"tile_size": 256, "max_zoom": 2, "width_px": 600, "height_px": 300,
            "background": "#181818", "format": "jpg"}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    for z, x, rgb in ((0, 0, (200, 0, 0)), (1, 0, (0, 200, 0)), (1, 1, (0, 0, 200))):
        (tmp_path / str(z) / str(x)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(solid(rgb, 256, 256)).save(tmp_path / f"{z}/{x}/0.jpg")
    small, z = build.map_overview(tmp_path, 200)
    assert z == 0 and small.size == (150, 75)
    assert near_colour(small.getpixel((10, 10)), (200, 0, 0))
    larger, z = build.map_overview(tmp_path, 300)
    assert z == 1 and larger.size == (300, 150)
    assert near_colour(larger.getpixel((10, 10)), (0, 200, 0))
    assert near_colour(larger.getpixel((280, 10)), (0, 0, 200))


def test_rejects_table_counts_reasons_and_escapes_them(tmp_path):
    rows = [{"id": "a/<b>.jpg", "stage": "prepare", "reason": "empty file (0 bytes)"},
            {"id": "a/2.jpg", "stage": "prepare", "reason": "empty file (0 bytes)"},
            {"id": "a/3.jpg", "stage": "prepare", "reason": "looks like HTML"}]
    write_csv(tmp_path / "rejects.csv", rows, ["id", "stage", "reason"])
    assert build.rejects_report(tmp_path / "rejects.csv", tmp_path / "r.html", max_rows=2) == 3
    text = (tmp_path / "r.html").read_text()
    assert "<td>empty file (0 bytes)</td><td class=n>2</td>" in text
    assert "a/&lt;b&gt;.jpg" in text and "<b>" not in text
    assert "a/3.jpg" not in text and "the first 2 are listed" in text


def test_benchmarks_are_summed_per_rule(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (tmp_path / "prepare").mkdir()
    (tmp_path / "prepare/a.tsv").write_text(header + "2.5\t0:00:02\t90.0\t1\t1\t1\t0\t0\t50\t2.0\n")
    (tmp_path / "prepare/b.tsv").write_text(header + "1.5\t0:00:01\t110.0\t1\t1\t1\t0\t0\t50\tNA\n")
    (tmp_path / "tsne.tsv").write_text(header + "9.0\t0:00:09\t300.0\t1\t1\t1\t0\t0\t50\t12.0\n")
    rows = build.read_benchmarks(tmp_path)
    assert [r["rule"] for r in rows] == ["tsne", "prepare"]
    assert rows[1] == {"rule": "prepare", "jobs": 2, "s": 4.0, "max_s": 2.5, "cpu_s": 2.0,
                       "max_rss": 110.0}


# --------------------------------------------------------------------------- the real report


def report_contents(html: str) -> tuple[dict, dict]:
    """The results (path -> record with its embedded data) and categories of a Snakemake report."""
    start = html.index('<script id="results">')
    body = html[html.index("var results = ", start) + len("var results = "):html.index("</script>", start)]
    results = json.loads(body.strip().rstrip(";"))
    cats = re.search(r"var categories = (\{.*?\});\n", html).group(1)
    return results, json.loads(cats)


def embedded_bytes(record: dict) -> bytes:
    return base64.b64decode(record["data_uri"].split(",", 1)[1])


@pytest.mark.slow
def test_snakemake_report_shows_every_section_with_its_images(demo_run):
    snakemake(demo_run, "--cores", "2", "report_figures")
    snakemake(demo_run, "--report", "report.html")
    results, categories = report_contents((demo_run / "report.html").read_text())
    assert list(categories) == ["1. Triage", "2. Duplicates", "3. Rejects", "4. Map",
                                "5. Grid quality", "6. Time and memory"]
    assert set(categories["1. Triage"]) == {"histogram", "near the thresholds", "maybe"}
    names = {record["name"] for record in results.values()}
    assert names == {"triage-histogram.png", "triage-near-graphic-threshold.jpg",
                     "triage-near-photo-threshold.jpg", "triage-maybe.jpg",
                     "maybe-include-template.txt", "duplicates-near-limit.jpg", "rejects.html",
                     "map-overview.jpg", "tsne-by-location.png", "grid-displacement.png",
                     "grid-quality.html", "resources.png", "resources.html"}
    for path, record in results.items():
        data = embedded_bytes(record)
        assert data == (demo_run / path).read_bytes(), path  # the report embeds the file itself
        if record["mime_type"].startswith("image/"):
            with Image.open(io.BytesIO(data)) as img:
                assert img.width >= 300 and img.height >= 100, path
        assert record["caption"], f"{path} has no caption"
    # captions are rendered with the run's values: the thresholds of the run's triage method
    triage = yaml.safe_load((demo_run / "config.yaml").read_text())["triage"]
    low, high = ((triage["score_graphic_below"], triage["score_photo_above"])
                 if triage["method"] == "model" else (triage["graphic_below"], triage["photo_above"]))
    caption = results["results/report/triage-histogram.png"]["caption"]
    assert f">{low}<" in caption and f">{high}<" in caption, caption


@pytest.mark.slow
def test_report_values_match_the_run(demo_run):
    """What the report shows is the run's: every broken demo file among the rejects, every
    copy group's keeper and copies on the duplicates sheet's scale, the rules' timings."""
    out = demo_run / "results/report"
    if not (out / "resources.html").exists():
        snakemake(demo_run, "--cores", "2", "report_figures")
    rejects = (out / "rejects.html").read_text()
    for row in read_csv(demo_run / "results/rejects.csv"):
        assert row["id"] in rejects
    broken = [r for r in read_csv(demo_run / "results/demo/truth.csv") if r["kind"] == "broken"]
    assert broken and all(r["id"] in rejects for r in broken)
    resources = (out / "resources.html").read_text()
    for rule in ("prepare", "dedup", "select", "pca", "tsne", "grid", "tile_band", "tiles",
                 "report_triage", "report_map"):
        assert f"<td>{rule}</td>" in resources
    quality = (out / "grid-quality.html").read_text()
    dpq = float(re.search(r"DPQ16[^<]*</td><td class=n>([0-9.]+)<", quality).group(1))
    assert 0.5 < dpq <= 1.0
    overview = Image.open(out / "map-overview.jpg")
    meta = json.loads((demo_run / "results/tiles/meta.json").read_text())
    assert overview.size == (meta["width_px"], meta["height_px"])  # the small map fits 1024 px
    sheet = Image.open(out / "triage-near-graphic-threshold.jpg")
    near = SMALL_DEMO.get("report", {}).get("near", 16)
    assert sheet.width == sheets.GAP + build.sheets_columns(near) * (128 + sheets.GAP)


@pytest.mark.slow
def test_include_file_reruns_select_and_what_follows(demo_run):
    """The include file is an input (and param) of select: naming it plans select onwards, and
    no prepare, dedup or inventory, for the map and for the report alike."""
    include = demo_run / "include.txt"
    include.write_text("# kept from the report's maybe sheet\nsfbay/not-a-maybe.jpg\n")
    try:
        write_config(demo_run, {**SMALL_DEMO, "include_file": str(include)})
        from conftest import planned_jobs

        jobs = planned_jobs(demo_run)
        jobs.pop("all", None)
        bands = SMALL_DEMO["tiles"]["jobs"]
        assert jobs == {"select": 1, "pca": 1, "neighbours": 1, "tsne": 1, "grid": 1,
                        "regions": 1, "viewer": 1, "tile_band": bands, "tiles": 1}
        everything = planned_jobs(demo_run, "all")
        assert not {"prepare", "dedup", "inventory", "demo"} & set(everything)
        assert {"select", "report_triage", "report_duplicates", "report_map"} <= set(everything)
    finally:
        write_config(demo_run, SMALL_DEMO)
