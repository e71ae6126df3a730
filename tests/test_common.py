"""Shared helpers: atomic writes leave nothing behind, even after a writer was killed before it
could clean up; calls run ahead come back in order."""
import threading
import time

from vacancy.common import atomic_dir, atomic_path, run_ahead


def test_a_rerun_removes_what_a_killed_writer_left(tmp_path):
    # What kill -9 leaves: a tile band's half-built folder, a tree moved aside, half-written files.
    stale = [tmp_path / ".0.k3x_9a2b.part", tmp_path / ".0.q1w2e3r4.old",
             tmp_path / ".grid.csv.abcd1234.part", tmp_path / ".pca.h5.zz99yy88.h5"]
    for folder in stale[:2]:
        (folder / "9").mkdir(parents=True)
        (folder / "9" / "0.jpg").write_bytes(b"half")
    for file in stale[2:]:
        file.write_bytes(b"half")
    # Not ours: another output's temporary, a user's file that only looks alike.
    kept = [tmp_path / ".1.k3x_9a2b.part", tmp_path / ".0.k3x_9a2b.part.keep",
            tmp_path / "0.abcd1234.part"]
    for file in kept:
        file.write_text("keep")

    with atomic_dir(tmp_path / "0") as tmp:
        (tmp / "tile.jpg").write_bytes(b"new")
    with atomic_path(tmp_path / "grid.csv") as tmp:
        tmp.write_text("id,col,row\n")
    with atomic_path(tmp_path / "pca.h5", suffix=".h5") as tmp:
        tmp.write_bytes(b"hdf5")

    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["0", "grid.csv", "pca.h5", *(p.name for p in kept)])
    assert (tmp_path / "0" / "tile.jpg").read_bytes() == b"new"


def test_atomic_outputs_get_the_modes_the_umask_gives_new_files(tmp_path):
    """A published site is read by a web server or a colleague: not 0600/0700 temp modes."""
    import os
    import stat

    from vacancy.common import atomic_dir, atomic_path

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "table.csv") as tmp:
            tmp.write_text("id\n")
        with atomic_dir(tmp_path / "site") as tmp:
            (tmp / "index.html").write_text("<p>")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "table.csv").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "site").stat().st_mode) == 0o755


def test_run_ahead_keeps_order_raises_in_place_and_bounds_the_calls_in_flight():
    lock = threading.Lock()
    started, running, most = [], [0], [0]

    def call(k):
        with lock:
            started.append(k)
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.005 * (3 - k % 3))  # later items often finish first
        with lock:
            running[0] -= 1
        if k == 5:
            raise ValueError("five")
        return k * k

    got = []
    with run_ahead(call, range(20), 4) as results:
        for k, future in results:
            try:
                got.append((k, future.result()))
            except ValueError as exc:
                got.append((k, str(exc)))
    assert got == [(k, "five" if k == 5 else k * k) for k in range(20)]
    assert 2 <= most[0] <= 4

    # leaving early: what had not started is cancelled, so at most depth + 1 items past the
    # last one taken ever start
    started.clear()
    with run_ahead(call, range(100), 4) as results:
        for k, future in results:
            if k == 2:
                break
    assert 3 <= len(started) <= 7
