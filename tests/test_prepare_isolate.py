"""A file that crashes or hangs the decoder is that image's reject; the location is still made.

prepare_location_guarded (what the rule runs) supervises the job in a forked process
(vacancy.images.isolate). A real crash needs a decoder bug, so here the measuring call of chosen
files ends its process the way a crashing decoder does: a real SIGSEGV, a real abort() (SIGABRT),
or a real hang stopped by the alarm. Every other image must come out exactly as from a plain
run, in one process or in workers.
"""
from __future__ import annotations

import faulthandler
import hashlib
import logging
import os
import signal
import time
from pathlib import Path

import pytest

from test_prepare_reuse import OUTPUTS, PARAMS, assert_same, contents, make_location
from test_triage import read_rows, write_inventory
from vacancy.images import isolate
from vacancy.images import prepare as prepare_module
from vacancy.images.prepare import prepare_location, prepare_location_guarded

#: Files and what measuring them does to the measuring process.
HOSTILE = {"img0002.jpg": "segfault", "img0009.jpg": "abort", "img0013.jpg": "hang"}
REASONS = {"segfault": "the decoder crashed on this file (SIGSEGV)",
           "abort": "the decoder crashed on this file (SIGABRT)",
           "hang": "decoding took more than 1 s and was stopped (a file that hangs the decoder)"}


@pytest.fixture
def hostile_decoder(monkeypatch, tmp_path):
    """measure_image as it is, except on HOSTILE files (known by their bytes, as a decoder would:
    the same call in one process or in a worker). Each call is counted in ``measured.txt`` (the
    calls happen in forked processes)."""
    real = prepare_module.measure_image
    raw = {}

    def measuring(blob, *args, **kwargs):
        with open(tmp_path / "measured.txt", "a") as handle:
            handle.write("1\n")
        action = raw.get(hashlib.sha256(blob).digest())
        if action == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif action == "abort":
            os.abort()
        elif action == "hang":
            time.sleep(3600)
        return real(blob, *args, **kwargs)

    def mark(folder: Path) -> None:
        for name, action in HOSTILE.items():
            raw[hashlib.sha256((folder / name).read_bytes()).digest()] = action

    monkeypatch.setattr(prepare_module, "measure_image", measuring)
    monkeypatch.setattr(isolate, "IMAGE_SECONDS", 1)
    was_enabled = faulthandler.is_enabled()
    faulthandler.disable()  # pytest's: it would print every deliberate crash's stack
    yield mark
    if was_enabled:
        faulthandler.enable()


def run(tmp_path: Path, raw: Path, names, out: str, guarded: bool, **params):
    inventory = write_inventory(tmp_path / f"{out}.inv.csv", [(n, str(raw / n)) for n in names])
    call = prepare_location_guarded if guarded else prepare_location
    counts = call(inventory, *(tmp_path / out / name for name in OUTPUTS),
                  **{**PARAMS, **params})
    return counts, tmp_path / out


def hostile_location(tmp_path: Path, caplog, hostile_decoder, n: int) -> tuple[Path, list]:
    """A location of ``n`` files whose HOSTILE ones crash or hang the decoder, with prepare's
    log captured."""
    caplog.set_level(logging.INFO, logger="vacancy.images.prepare")
    raw = tmp_path / "raw"
    names = make_location(raw, n)
    hostile_decoder(raw)
    return raw, names


def assert_hostile_rejected_and_the_rest_as_plain(tmp_path: Path, raw: Path, names, counts,
                                                   guarded: Path) -> None:
    """A guarded run's outputs: each HOSTILE file a reject with its reason, and every other row
    and value as a plain run of the same location without the hostile files."""
    plain_counts, plain = run(tmp_path, raw, [n for n in names if n not in HOSTILE], "plain",
                              False)
    assert counts["images"] == len(names)
    assert counts["rejected"] == plain_counts["rejected"] + len(HOSTILE)
    assert {k: v for k, v in counts.items() if k not in ("images", "rejected")} == {
        k: v for k, v in plain_counts.items() if k not in ("images", "rejected")}
    rejects = {r["id"]: r["reason"] for r in read_rows(guarded / "rejects.csv")}
    for name, action in HOSTILE.items():
        assert rejects.pop(f"sfbay/{name}") == REASONS[action]
    assert rejects == {r["id"]: r["reason"] for r in read_rows(plain / "rejects.csv")}
    found, expected = contents(guarded), contents(plain)
    found.pop("rejects.csv"), expected.pop("rejects.csv")
    assert_same({**found, "rejects.csv": []}, {**expected, "rejects.csv": []})


@pytest.mark.parametrize("workers", [1, 3])
def test_crashing_and_hanging_files_are_rejects_and_the_rest_is_measured(
        tmp_path, caplog, hostile_decoder, workers):
    raw, names = hostile_location(tmp_path, caplog, hostile_decoder, 40)
    counts, guarded = run(tmp_path, raw, names, "guarded", True, workers=workers,
                          reuse_dir=tmp_path / "cache")
    assert_hostile_rejected_and_the_rest_as_plain(tmp_path, raw, names, counts, guarded)
    assert "a process ended" in caplog.text and "sfbay/img0002.jpg" in caplog.text

    # the next run replays the three rejects from the cache: no file is decoded, nothing dies
    caplog.clear()
    (tmp_path / "measured.txt").unlink()
    again_counts, again = run(tmp_path, raw, names, "again", True, workers=workers,
                              reuse_dir=tmp_path / "cache")
    assert not (tmp_path / "measured.txt").exists() and "a process ended" not in caplog.text
    assert again_counts == counts
    assert_same(contents(again), contents(guarded))


def test_an_error_in_the_supervised_job_is_raised_as_itself(tmp_path):
    raw = tmp_path / "raw"
    names = make_location(raw, 5)
    with pytest.raises(ValueError, match="color"):
        run(tmp_path, raw, names, "bad", True, color="purple")
    assert not (tmp_path / "bad" / "triage.csv").exists()


def test_a_process_killed_from_outside_fails_the_job_without_retrying(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    names = make_location(raw, 5)

    def killed(blob, *args, **kwargs):  # as the OOM killer or `kill -9` would
        os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(prepare_module, "measure_image", killed)
    with pytest.raises(RuntimeError, match="killed by SIGKILL"):
        run(tmp_path, raw, names, "killed", True)
    assert not any((tmp_path / "killed").glob("*.csv"))


def test_the_journal_names_only_the_image_being_measured(tmp_path):
    guard = isolate.Guard(tmp_path)
    assert guard.measure("sfbay/a-rather-long-file-name.jpg", lambda: 7) == 7
    assert isolate.suspects_in(tmp_path) == set()  # done: measuring nothing
    during = guard.measure("sfbay/b.jpg", lambda: isolate.suspects_in(tmp_path))
    assert during == {"sfbay/b.jpg"}  # not the longer id written before it
    with pytest.raises(ZeroDivisionError):
        guard.measure("sfbay/c.jpg", lambda: 1 / 0)
    assert isolate.suspects_in(tmp_path) == set()  # an exception is not a death


def test_after_isolate_all_after_rounds_every_image_is_isolated_and_the_location_is_made(
        tmp_path, caplog, hostile_decoder, monkeypatch):
    """Many crashing files: one round with every image in a process of its own finds the rest."""
    raw, names = hostile_location(tmp_path, caplog, hostile_decoder, 20)
    monkeypatch.setattr(isolate, "ISOLATE_ALL_AFTER", 1)
    counts, guarded = run(tmp_path, raw, names, "many", True)
    assert_hostile_rejected_and_the_rest_as_plain(tmp_path, raw, names, counts, guarded)
    # one round died (on the first crashing file); the second isolated every image
    assert caplog.text.count("a process ended") == 1
    assert "crashing files ended 1 round: measuring every image" in caplog.text


def test_a_round_with_every_image_isolated_that_dies_fails_the_job(tmp_path, monkeypatch):
    """If the job itself dies when no image can be blamed, the job fails, naming no file."""
    raw = tmp_path / "raw"
    names = make_location(raw, 5)
    monkeypatch.setattr(isolate, "ISOLATE_ALL_AFTER", 0)

    def writer_crash(*args, **kwargs):  # the job's own process dies, not a measuring one
        os.kill(os.getpid(), signal.SIGSEGV)

    monkeypatch.setattr(prepare_module, "_write_outcome", writer_crash)
    was_enabled = faulthandler.is_enabled()
    faulthandler.disable()
    try:
        with pytest.raises(RuntimeError, match="while no image was being measured"):
            run(tmp_path, raw, names, "dies", True)
    finally:
        if was_enabled:
            faulthandler.enable()
    assert not any((tmp_path / "dies").glob("*.csv"))
