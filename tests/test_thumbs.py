"""Thumbnails are made once; tiles drawn from them equal tiles drawn from the originals."""
import csv

import h5py
import numpy as np
from PIL import Image

from vacancy.common import write_csv
from vacancy.thumbs import ThumbStore, thumbs_for_location
from vacancy.tiles import make_thumb, render_tiles

COLUMNS = ["id", "location", "filename", "path"]


def corpus(tmp_path, n=11):
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = []
    rng = np.random.default_rng(0)
    for k in range(n):
        path = raw / f"{k:02d}.jpg"
        pixels = rng.integers(0, 255, size=(45, 60, 3), dtype=np.uint8)
        pixels[:, :, k % 3] = 40 + 15 * k
        Image.fromarray(pixels).save(path, quality=90)
        rows.append({"id": f"sf/{path.name}", "location": "sf", "filename": path.name, "path": str(path)})
    (raw / "bad.jpg").write_bytes(b"<html>not a photo</html>")
    rows.append({"id": "sf/bad.jpg", "location": "sf", "filename": "bad.jpg", "path": str(raw / "bad.jpg")})
    write_csv(tmp_path / "inventory.csv", rows, COLUMNS)
    return rows


def test_thumbs_equal_make_thumb_and_mark_failures(tmp_path):
    rows = corpus(tmp_path)
    result = thumbs_for_location(tmp_path / "inventory.csv", tmp_path / "sf.h5", cell_px=32)
    assert result == {"images": 12, "placeholders": 1}
    with h5py.File(tmp_path / "sf.h5") as h5:
        assert [i.decode() for i in h5["ids"][:]] == [r["id"] for r in rows]
        assert h5["ok"][:].tolist() == [True] * 11 + [False]
        assert np.array_equal(h5["thumbs"][3], make_thumb(rows[3]["path"], 32))
    store = ThumbStore([tmp_path / "sf.h5"])
    got = store.get(["sf/bad.jpg", "sf/07.jpg", "unknown/x.jpg"], 32)
    store.close()
    assert got[0] is None and got[2] is None
    assert np.array_equal(got[1], make_thumb(rows[7]["path"], 32))


def test_tiles_from_thumbs_equal_tiles_from_originals(tmp_path):
    rows = corpus(tmp_path)
    thumbs_for_location(tmp_path / "inventory.csv", tmp_path / "sf.h5", cell_px=64)
    with open(tmp_path / "grid.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "col", "row"])
        for k, row in enumerate(rows):
            writer.writerow([row["id"], k % 5, k // 5])
    write_csv(tmp_path / "selected.csv", rows, COLUMNS)
    a = render_tiles(tmp_path / "grid.csv", tmp_path / "selected.csv", tmp_path / "a", 5, 3)
    b = render_tiles(tmp_path / "grid.csv", tmp_path / "selected.csv", tmp_path / "b", 5, 3,
                     thumb_files=[tmp_path / "sf.h5"])
    assert a["placeholders"] == b["placeholders"] == 1
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.jpg"))
    assert files
    for rel in files:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / rel)),
                              np.asarray(Image.open(tmp_path / "b" / rel))), rel
