"""Shared fixtures: a real Snakemake run of the workflow on a small demo corpus."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

#: A demo small enough for a test, big enough to exercise every stage and a 15x15 grid.
SMALL_DEMO = {
    "source": "demo",
    "demo": {"n_images": 240, "seed": 7, "locations": ["sfbay", "newyork", "chicago"]},
    "tsne": {"perplexity": 20, "n_iter": 500},
    "tiles": {"cell_px": 32, "jobs": 3},   # 2 tile rows: two bands with tiles, one empty
}


#: ImageMagick CLI names by major version, in the order they are tried. A bare ``convert`` on PATH
#: is taken only if it says it is ImageMagick 6 (some machines have a stand-in of that name).
IMAGEMAGICK_CLIS = {6: ("convert-im6.q16", "convert-im6.q16hdri", "convert-im6", "convert"),
                    7: ("magick", "convert-im7.q16", "convert-im7.q16hdri")}


def imagemagick_cli() -> str:
    """Path of the ImageMagick CLI of the same major version as the library Wand loaded.

    The tests compare our numbers with what ImageMagick's own command line prints, as an
    independent reference; 6 and 7 differ, so the reference must be the version we run.
    """
    from wand.version import MAGICK_VERSION_NUMBER

    major = MAGICK_VERSION_NUMBER >> 8
    for name in IMAGEMAGICK_CLIS[major]:
        path = shutil.which(name)
        if not path:
            continue
        version = subprocess.run([path, "-version"], capture_output=True, text=True).stdout
        if re.search(rf"ImageMagick {major}\.", version):
            return path
    raise RuntimeError(f"no ImageMagick {major} command line found (tried "
                       f"{', '.join(IMAGEMAGICK_CLIS[major])}); Wand loaded ImageMagick {major}")


def write_config(workdir: Path, overrides: dict) -> Path:
    """The repository's config.yaml with ``overrides`` merged in, written into ``workdir``."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def no_slurm_controller(workdir: Path) -> dict[str, str]:
    """Environment for a local run on a machine with SLURM's tools but no controller up.

    The SLURM executor plugin runs ``scontrol show config`` whenever Snakemake starts (to word a
    help text); with the test cluster's slurm.conf and its controller stopped, scontrol retries
    for about 9 s, on every Snakemake command of the suite. A slurm.conf of our own whose
    controller answers within a second makes it fail at once; local runs never ask SLURM.
    """
    conf = workdir / ".no-slurm.conf"
    conf.write_text("ClusterName=none\nSlurmctldHost=localhost\nMessageTimeout=1\n")
    return {"SLURM_CONF": str(conf)}


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real Snakemake on the repository's Snakefile with ``workdir`` as working dir."""
    cmd = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), *args]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if "--profile" not in args:
        env.update(no_slurm_controller(workdir))
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def planned_jobs(workdir: Path, target: str = "tiles") -> dict[str, int]:
    """Jobs a dry run plans, per rule, read from Snakemake's 'Job stats' table."""
    result = snakemake(workdir, "--dry-run", "--cores", "2", target)
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    jobs = {}
    for line in table.splitlines():
        match = re.fullmatch(r"\s*([A-Za-z_][\w]*)\s+(\d+)\s*", line)
        if match and match.group(1) not in ("total", "job", "count"):
            jobs[match.group(1)] = int(match.group(2))
        elif line.strip().startswith("total"):
            break
    return jobs


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """A finished run of ``snakemake tiles`` on the small demo; returns its working dir."""
    workdir = tmp_path_factory.mktemp("demo_run")
    write_config(workdir, SMALL_DEMO)
    snakemake(workdir, "--cores", "2", "tiles")
    return workdir


def store_thumbs(folder: Path, rows, cell_px: int) -> Path:
    """The prepare stage's thumbnail file for ``rows`` (dicts with id and path), as the workflow
    makes it, since tiles never decode originals; flat test colours count as photos here (both
    triage thresholds 0). Returns the thumbs HDF5 path in ``folder/prepared``."""
    from vacancy.common import write_csv
    from vacancy.images.prepare import prepare_location

    out = folder / "prepared"
    write_csv(out / "inventory.csv", rows, ["id", "path"])
    prepare_location(out / "inventory.csv", out / "triage.csv", out / "hashes.csv",
                     out / "features.h5", out / "thumbs.h5", out / "rejects.csv",
                     graphic_below=0.0, photo_above=0.0, cell_px=cell_px)
    return out / "thumbs.h5"


def write_map_inputs(folder: Path, entries) -> tuple[Path, Path]:
    """``grid.csv`` and ``selected.csv`` in ``folder`` for ``entries`` of (selected row, col, row):
    the inputs of the tiles and viewer stages, for tests that place known images on known cells."""
    from vacancy.common import write_csv
    from vacancy.images.select import SELECTED_COLUMNS

    entries = list(entries)
    grid, selected = folder / "grid.csv", folder / "selected.csv"
    write_csv(grid, ({"id": r["id"], "col": c, "row": w} for r, c, w in entries), ["id", "col", "row"])
    write_csv(selected, (r for r, _, _ in entries), SELECTED_COLUMNS)
    return grid, selected
