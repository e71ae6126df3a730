"""The workflow through profiles/slurm on a real single-node SLURM (tools/slurm-test-cluster.sh).

Proves what a cluster user relies on: every non-local rule is submitted as its own SLURM job
(SLURM's accounting, not Snakemake's word, says so), local rules stay local, and the map is the
same as a local run of the same corpus, byte for byte.

SLURM comes from the cluster script: a cluster already running is used and left running; otherwise
the test starts one and stops it afterwards (by the daemons' process ids). Where SLURM is not
installed the test is skipped, unless VACANCY_REQUIRE_SLURM=1 (CI), where it installs it (root)
or fails saying why.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import REPO, planned_jobs, snakemake, write_config
from test_envs import workflow_rules
from vacancy.common import read_csv

pytestmark = pytest.mark.slow

SCRIPT = REPO / "tools" / "slurm-test-cluster.sh"
REQUIRE = os.environ.get("VACANCY_REQUIRE_SLURM") == "1"
#: The first line of every config tools/slurm-test-cluster.sh writes (read from the script).
CONF_MARK = re.search(r'^MARK="(.*)"$', SCRIPT.read_text(), re.M)[1]
#: What tools/slurm-test-cluster.sh sets up.
PARTITION, ACCOUNT = "debug", "vacancy"
#: Small (120 images, 2 locations) so the ~14 jobs finish in a couple of minutes on 2 cores.
DEMO = {
    "source": "demo",
    "demo": {"n_images": 120, "seed": 11, "locations": ["sfbay", "chicago"]},
    "tsne": {"perplexity": 15, "n_iter": 300},
    "tiles": {"cell_px": 32},
}


def _cluster(action: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), action], capture_output=True, text=True,
                          timeout=timeout)


def _unavailable(reason: str):
    if REQUIRE:
        pytest.fail(f"VACANCY_REQUIRE_SLURM=1 but no SLURM to test on: {reason}")
    pytest.skip(f"no SLURM here ({reason}); start one with: sudo {SCRIPT.relative_to(REPO)} up")


@pytest.fixture(scope="module")
def slurm():
    """A SLURM that takes jobs; stopped afterwards only if this fixture started it."""
    if shutil.which("sbatch") and _cluster("status", 30).returncode == 0:
        yield False
        return
    if os.geteuid() != 0 and not shutil.which("sudo"):
        _unavailable("starting it needs root")
    if not shutil.which("slurmctld") and not REQUIRE:
        _unavailable("slurmctld is not installed")
    started = _cluster("up" if REQUIRE else "start")
    if started.returncode != 0:
        _cluster("stop", 120)
        _unavailable(f"{SCRIPT.name} failed:\n{started.stderr[-3000:]}")
    try:
        yield True
    finally:
        stopped = _cluster("stop", 180)
        assert stopped.returncode == 0, stopped.stderr
        assert _cluster("status", 30).returncode != 0, "SLURM daemons still running after stop"
        # ... and its clients fail at once: `scontrol show config`, which the Snakemake SLURM
        # plugin runs at every start, retried for 9 s against the stopped controller.
        conf = Path("/etc/slurm/slurm.conf").read_text().splitlines()
        if CONF_MARK in conf:
            assert conf.count("MessageTimeout=1") == 1
            assert subprocess.run(["scontrol", "show", "config"], capture_output=True).returncode


def test_profile_keeps_placeholders_for_the_user():
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert "CHANGE-ME" in profile["default-resources"]["slurm_partition"]
    assert "CHANGE-ME" in profile["default-resources"]["slurm_account"]
    assert profile["rerun-incomplete"] is True and profile["latency-wait"] >= 30


def test_workflow_profile_leaves_local_runs_and_cluster_settings_alone():
    """profiles/default is loaded for every run and overrides --profile key by key: it must not
    carry an executor, resources or job limits (they would silently replace the SLURM ones)."""
    default = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    assert not {"executor", "default-resources", "set-resources", "jobs", "cores", "resources",
                "set-threads", "max-threads"} & set(default)


def _test_profile(tmp_path: Path) -> Path:
    """profiles/slurm as shipped, with the test cluster's partition/account and quick polling; the
    threads are capped to the node's 2 CPUs (t-SNE asks for 8 on a real cluster)."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    profile["default-resources"].update(slurm_partition=PARTITION, slurm_account=ACCOUNT)
    profile.update({
        "max-threads": 2,
        "latency-wait": 5,
        "retries": 0,  # a failure must show, not be retried away
        "seconds-between-status-checks": 2,
        "slurm-init-seconds-before-status-checks": 2,
    })
    folder = tmp_path / "profile"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def _slurm_jobs(workdir: Path, since: str) -> list[dict[str, str]]:
    """SLURM's accounting records of the jobs that ran in ``workdir`` (one per allocation)."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-a", "-S", since, "--format",
         "JobID,JobName%60,Comment%200,State,Partition,Account,WorkDir%400"],
        capture_output=True, text=True, check=True).stdout
    keys = ["id", "name", "comment", "state", "partition", "account", "workdir"]
    rows = [dict(zip(keys, line.split("|"))) for line in out.splitlines() if line.strip()]
    return [r for r in rows if Path(r["workdir"]).resolve() == workdir.resolve()]


def _rule_of(comment: str) -> str:
    """The Snakemake executor puts ``rule_<name>`` (``_wildcards_<...>``) in each job's comment."""
    match = re.fullmatch(r"rule_(.+?)(?:_wildcards_.*)?", comment)
    assert match, f"not a Snakemake job comment: {comment!r}"
    return match.group(1)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_slurm_run_submits_every_non_local_rule_and_matches_a_local_run(slurm, tmp_path):
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    for workdir in (local, cluster):
        workdir.mkdir()
        write_config(workdir, DEMO)
    planned = planned_jobs(cluster)
    rules = workflow_rules()
    expected = Counter({r: n for r, n in planned.items() if not rules[r]["local"]})
    assert expected["prepare"] == 2 and expected["tsne"] == 1 and "inventory" not in expected

    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 2))
    started = time.monotonic()
    snakemake(cluster, "--profile", str(_test_profile(tmp_path)), "tiles")
    print(f"SLURM run: {time.monotonic() - started:.0f} s")
    snakemake(local, "--cores", "2", "tiles")

    jobs = _slurm_jobs(cluster, since)
    ran = Counter(_rule_of(j["comment"]) for j in jobs)
    assert ran == expected, f"SLURM jobs per rule {dict(ran)}, planned non-local {dict(expected)}"
    assert {j["state"] for j in jobs} == {"COMPLETED"}
    assert {(j["partition"], j["account"]) for j in jobs} == {(PARTITION, ACCOUNT)}

    # Same map: selected ids, grid cells, and every tile and site file, byte for byte.
    def ids(workdir):
        return sorted(r["id"] for r in read_csv(workdir / "results/selected.csv"))

    def cells(workdir):
        return sorted((r["id"], r["col"], r["row"]) for r in read_csv(workdir / "results/grid.csv"))

    assert len(ids(cluster)) > 60 and ids(cluster) == ids(local)
    assert cells(cluster) == cells(local)
    tiles_cluster, tiles_local = _tree(cluster / "results/tiles"), _tree(local / "results/tiles")
    assert any(name.endswith(".jpg") for name in tiles_cluster)
    assert tiles_cluster.keys() == tiles_local.keys()
    assert [n for n in tiles_cluster if tiles_cluster[n] != tiles_local[n]] == []


class _Input(list):
    """Stands in for a job's input (Snakemake's Namedlist: indexable, files by name)."""

    def __init__(self, *files, **named):
        super().__init__([*files, *named.values()])
        self.__dict__.update(named)


def test_resource_requests_grow_with_the_input_and_with_each_retry(tmp_path):
    from types import SimpleNamespace

    from vacancy import resources

    table = tmp_path / "selected.csv"
    rows = [f"{'sfbay' if i % 3 else 'chicago'}/{i}.jpg" for i in range(15_000)]
    table.write_text("id,width\n" + "".join(f"{r},640\n" for r in rows))
    wc = SimpleNamespace(location="chicago")
    per_image = resources.runtime_per_image(ms_per_image=10)
    # 10 min + 3 x 15,000 x 10 ms = 17.5 -> 18 min; a retry asks twice as long.
    assert per_image(wc, _Input(str(table)), 1) == 18 and per_image(wc, _Input(str(table)), 2) == 35
    # Before the input exists (dry run), the base value.
    assert per_image(wc, _Input(str(tmp_path / "missing.csv")), 1) == 10
    by_name = resources.runtime_per_image(ms_per_image=10, table="grid")
    assert by_name(wc, _Input(grid=str(table), selected="nope"), 1) == 18
    # a tile band draws its share of the grid: 10 + 3 x 3,750 x 10 ms = 11.9 -> 12 min
    band = resources.runtime_per_image(ms_per_image=10, table="grid", fraction=1 / 4)
    assert band(wc, _Input(grid=str(table)), 1) == 12
    # t-SNE memory from pca.h5: 80 MB (125,000 images x 150 float32) -> 3 GB.
    pca = tmp_path / "pca.h5"
    with open(pca, "wb") as handle:
        handle.truncate(80_000_000)
    assert resources.mem_per_mb(1000, 25)(wc, _Input(str(pca)), 1) == 3000
    assert resources.mem_fixed(1500)(wc, 2) == 3000
    # dedup's memory from its hash tables only (one per location), not the feature files
    hashes = []
    for name in ("a", "b"):
        hashes.append(tmp_path / f"{name}.csv")
        with open(hashes[-1], "wb") as handle:
            handle.truncate(4_000_000)
    dedup = resources.mem_per_mb(1500, 75, only="hashes")
    assert dedup(wc, _Input(hashes=[str(h) for h in hashes], features=str(pca)), 1) == 2100
    assert dedup(wc, _Input(hashes=[str(h) for h in hashes], features=str(pca)), 2) == 4200
