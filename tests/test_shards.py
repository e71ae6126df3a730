"""Sharded features (one HDF5 per location, read as one table) equal unsharded ones bit for bit."""
import h5py
import numpy as np
from PIL import Image

from vacancy.common import write_csv
from vacancy.features import features_for_location
from vacancy.pca import FeatureShards


def test_sharded_features_equal_unsharded_bit_for_bit(tmp_path):
    rng = np.random.default_rng(5)
    rows = []
    for k in range(23):
        location = ["sfbay", "austin", "miami"][k % 3]
        path = tmp_path / f"{k:02d}.jpg"
        Image.fromarray(rng.integers(0, 255, (45 + k, 60, 3), dtype=np.uint8)).save(path, quality=85)
        rows.append({"id": f"{location}/{path.name}", "location": location, "path": str(path)})
    write_csv(tmp_path / "sharded.csv", rows, ["id", "location", "path"])
    write_csv(tmp_path / "whole.csv", [{**r, "location": "all"} for r in rows],
              ["id", "location", "path"])
    shards = []
    for location in ["sfbay", "austin", "miami"]:
        shards.append(tmp_path / f"{location}.h5")
        features_for_location(tmp_path / "sharded.csv", location, shards[-1], batch_size=4)
    features_for_location(tmp_path / "whole.csv", "all", tmp_path / "whole.h5", batch_size=7)

    table = FeatureShards(shards)
    with h5py.File(tmp_path / "whole.h5") as h5:
        whole = h5["features"][:]
        whole_ids = [i.decode() for i in h5["ids"][:]]
    order = [whole_ids.index(i) for i in table.ids()]
    assert len(table) == 23 and sorted(order) == list(range(23))
    assert np.array_equal(table.rows(0, 23), whole[order])  # bit for bit, any batch size
