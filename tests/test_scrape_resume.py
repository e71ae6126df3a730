"""kill -9 at any moment, rerun, same result; and politeness across parallel scrape processes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from vacancy.common import read_csv
from vacancy.sources.scrape import scrape_location

from fixture_site import current_settings, scrape_settings, serve_fixture_site

RUN = ("import json, sys; from vacancy.sources.scrape import scrape_location; "
       "a = json.loads(sys.argv[1]); scrape_location(a['loc'], a['out'], a['settings'], lock_dir=a['locks'])")


def start(loc: str, out: Path, locks: Path, settings: dict) -> subprocess.Popen:
    args = json.dumps({"loc": loc, "out": str(out), "locks": str(locks), "settings": settings})
    return subprocess.Popen([sys.executable, "-c", RUN, args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_after(proc: subprocess.Popen, site, n_images: int) -> None:
    """SIGKILL the scrape as soon as the server has been asked for ``n_images`` photos."""
    deadline = time.time() + 30
    while len(site.requested("/images/")) < n_images and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def snapshot(folder: Path) -> tuple[dict, list]:
    files = {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith(".")
             and p.suffix == ".jpg"}
    rows = [{k: v for k, v in r.items() if k != "fetched_at"} for r in read_csv(folder / "manifest.csv")]
    return files, rows


def test_kill_and_resume_equals_uninterrupted_run(tmp_path):
    with serve_fixture_site() as site:
        settings = scrape_settings(site.url)
        whole = scrape_location("sfbay", tmp_path / "whole" / "sfbay", settings, lock_dir=tmp_path / "locks-whole")
        assert whole["rows"] == 8 and whole["retryable"] == 1  # the photo always cut short
        out, locks = tmp_path / "resumed" / "sfbay", tmp_path / "locks-resumed"
        for extra in (2, 3):  # killed mid-download, twice, at different points
            asked = len(site.requested("/images/"))
            kill_after(start("sfbay", out, locks, settings), site, asked + extra)
            assert not (out / "manifest.csv").exists()
        killed_images = len(site.requested("/images/"))
        resumed = scrape_location("sfbay", out, settings, lock_dir=locks)
        assert (resumed["complete"], resumed["reason"]) == (whole["complete"], whole["reason"])
        assert resumed["downloaded"] < whole["downloaded"]  # photos finished before the kills were kept
        assert len(site.requested("/images/")) - killed_images < 11
    assert snapshot(out) == snapshot(tmp_path / "whole" / "sfbay")
    assert not list(out.glob("*.part")) and not list(out.glob(".*.part"))


def test_parallel_jobs_share_one_pause_per_host(tmp_path):
    with serve_fixture_site(bulk=4) as site:
        settings = scrape_settings(site.url, delay_s=0.1, jitter=0.0)
        locks = tmp_path / "locks"
        jobs = [start(loc, tmp_path / "raw" / loc, locks, settings) for loc in ("losangeles", "newyork")]
        for job in jobs:
            assert job.wait(timeout=60) == 0
        times = sorted(r.t for r in site.requests)
        hosts_ua = {(r.host, r.user_agent) for r in site.requests}
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(times) > 30 and min(gaps) >= 0.1 - 0.005
    assert len(hosts_ua) == 1
    assert len(read_csv(tmp_path / "raw" / "losangeles" / "manifest.csv")) == 12
    ny = [r["filename"] for r in read_csv(tmp_path / "raw" / "newyork" / "manifest.csv")]
    assert len(ny) == 9 and "00a0a_sf1_600x450.jpg" in ny  # no sfbay here: its own download


def test_api_path_kill_and_resume_equals_uninterrupted_run(tmp_path):
    """The search API path: batches and photos journaled; a rerun asks for no batch again."""
    with serve_fixture_site(portland=12) as site:
        settings = current_settings(site)
        whole = scrape_location("portland", tmp_path / "whole" / "portland", settings,
                                lock_dir=tmp_path / "locks-whole")
        assert whole["complete"] and whole["method"] == "api" and whole["rows"] == 24
        out, locks = tmp_path / "resumed" / "portland", tmp_path / "locks-resumed"
        asked = len(site.requested("/images/"))
        kill_after(start("portland", out, locks, settings), site, asked + 5)
        batches = len(site.requested("/postings/search/"))
        resumed = scrape_location("portland", out, settings, lock_dir=locks)
        assert resumed["complete"] and resumed["method"] == "api"
        assert len(site.requested("/postings/search/")) - batches <= 1  # at most the batch cut by the kill
        assert resumed["downloaded"] < whole["downloaded"]
    assert snapshot(out) == snapshot(tmp_path / "whole" / "portland")
