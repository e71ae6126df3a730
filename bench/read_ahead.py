"""What reading files ahead saves ``prepare`` where files answer slowly.

    .venv/bin/python bench/read_ahead.py [--images 2000] [--files 500] [--latency-ms 0.5 2 5]
                                         [--passes 2] [--cpu 1] [--depths 1 2 4 8 16]

``prepare_location`` reads each image's bytes on one of READ_AHEAD threads, up to READ_AHEAD
files ahead of the decoding (:func:`vacancy.common.run_ahead`). On a local disk with a warm page
cache a read costs 0.08 ms and this saves little; on storage where every request waits (a
network file system on a cluster, a USB disk's seeks, a cloud drive mounted with rclone) the
loop used to wait for every file in turn. This measures both ways of reading on the same files:

* local, warm: the demo corpus's files read directly, from the page cache;
* local, cold: the same with the page cache dropped before each run (``/proc/sys/vm/
  drop_caches``: as root only, else skipped): this machine's own disk;
* FUSE, L ms: the same files through a read-only FUSE file system run by this script (libfuse 3
  through mfusepy), which waits L ms before answering each open and each read (a listing photo
  is one of each; the kernel asks FUSE again at every open, so no pass is served from cache).

For each, ``prepare_location`` runs on the first ``--files`` images of the demo (one inventory),
with the schema's defaults, in a child process pinned to one core (``--cpu``; the FUSE server
runs unpinned, as a file server would): reading in turn (every file read when its turn comes,
as before read-ahead: ``READ_AHEAD_MAX_BYTES`` set to 0) and reading ahead (the default), in
alternating order, ``--passes`` times. Printed: ms per image (means over passes), images/s,
the ratio, each child's peak RSS, and whether both wrote the same outputs (every CSV row and
every HDF5 value). With ``--depths``, also ms per image on each FUSE mount for other numbers of
files read ahead (``READ_AHEAD``), to see where more stops paying.

Needs FUSE: ``bash tools/install-system-deps.sh bench`` (Debian's fuse3) and
``.venv/bin/pip install -e '.[bench]'`` (mfusepy). Run as root or with /dev/fuse usable.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MAGICK_THREAD_LIMIT", "1")  # as the rule sets it (threads: 1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "bench"))

#: prepare_location's outputs, in the order of its arguments.
OUTPUTS = ("triage.csv", "hashes.csv", "features.h5", "thumbs.h5", "rejects.csv")
MODES = ("in turn", "ahead")


# ---------------------------------------------------------------------------------------------
# The slow file system (run as its own process: ``--serve ROOT MOUNT LATENCY_MS``)


def serve(root: str, mount: str, latency_ms: float) -> None:
    """A read-only passthrough of ``root`` at ``mount`` that waits before each open and read."""
    import errno

    import mfusepy as fuse

    wait = latency_ms / 1000

    class Slow(fuse.Operations):
        use_ns = True

        def _path(self, path: str) -> str:
            return os.path.join(root, path.lstrip("/"))

        def getattr(self, path, fh=None):
            try:
                st = os.lstat(self._path(path))
            except OSError as exc:
                raise fuse.FuseOSError(exc.errno or errno.EIO) from None
            return {"st_mode": st.st_mode, "st_size": st.st_size, "st_nlink": st.st_nlink,
                    "st_uid": st.st_uid, "st_gid": st.st_gid, "st_atime": st.st_atime_ns,
                    "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns}

        def readdir(self, path, fh):
            return [".", "..", *os.listdir(self._path(path))]

        def open(self, path, flags):
            time.sleep(wait)
            return os.open(self._path(path), os.O_RDONLY)

        def read(self, path, size, offset, fh):
            time.sleep(wait)
            return os.pread(fh, size, offset)

        def release(self, path, fh):
            os.close(fh)
            return 0

    fuse.FUSE(Slow(), mount, foreground=True, ro=True, nothreads=False)


def mounted(root: Path, mount: Path, latency_ms: float) -> subprocess.Popen:
    """Start the slow file system and wait until ``mount`` is a mount point."""
    mount.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(root), str(mount),
                               str(latency_ms)], stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.ismount(mount):
            return server
        if server.poll() is not None:
            raise SystemExit(f"the FUSE server exited ({server.returncode}): is fuse3 installed "
                             "and /dev/fuse usable? (see this script's docstring)")
        time.sleep(0.05)
    server.kill()
    raise SystemExit(f"{mount} was not mounted within 10 s")


def unmount(mount: Path, server: subprocess.Popen) -> None:
    subprocess.run(["fusermount3", "-u", str(mount)], check=False)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


# ---------------------------------------------------------------------------------------------
# One timed prepare_location (run as its own process: ``--child INVENTORY OUT MODE CPU``)


def child(inventory: str, out: str, mode: str, cpu: int) -> None:
    """prepare_location on ``inventory`` into ``out``, reading ``mode``; prints JSON."""
    from prepare_floor import rule_params
    from vacancy.images import prepare as prep

    os.sched_setaffinity(0, {cpu})
    if mode == "in turn":
        prep.READ_AHEAD_MAX_BYTES = 0  # every file is then read when its turn comes
    elif mode.startswith("ahead "):
        prep.READ_AHEAD = int(mode.split()[1])  # "ahead 4": another depth than the default
    folder = Path(out)
    start = time.perf_counter()
    counts = prep.prepare_location(inventory, *(folder / name for name in OUTPUTS),
                                   **rule_params())
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "images": counts["images"],
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def timed(inventory: Path, out: Path, mode: str, cpu: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", str(inventory), str(out), mode,
                           str(cpu)], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_outputs(a: Path, b: Path) -> bool:
    """Every CSV row (provenance sidecars aside) and every HDF5 dataset equal."""
    import h5py
    import numpy as np

    for name in OUTPUTS:
        if name.endswith(".csv"):
            if (a / name).read_bytes() != (b / name).read_bytes():
                return False
            continue
        with h5py.File(a / name) as x, h5py.File(b / name) as y:
            if set(x) != set(y) or any(not np.array_equal(x[k][:], y[k][:]) for k in x):
                return False
    return True


# ---------------------------------------------------------------------------------------------


def inventory_under(rows: list[dict], raw: Path, base: Path, path: Path) -> Path:
    """The rows as an inventory CSV whose paths point under ``base`` instead of ``raw``."""
    from vacancy.common import write_csv
    from vacancy.sources.inventory import INVENTORY_COLUMNS

    moved = [{**row, "path": str(base / Path(row["path"]).relative_to(raw))} for row in rows]
    write_csv(path, moved, INVENTORY_COLUMNS)
    return path


def drop_page_cache() -> bool:
    """Write dirty pages and drop the page cache (root only); False where not allowed."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def measure(storage: str, inventory: Path, work: Path, passes: int, cpu: int,
            cold: bool = False) -> dict:
    """Both modes on one inventory, alternating; means, peaks and the outputs' equality."""
    runs = {mode: [] for mode in MODES}
    base = work / "".join(c if c.isalnum() else "_" for c in storage)
    for k in range(passes):
        for mode in (MODES if k % 2 == 0 else MODES[::-1]):
            out = base / mode.replace(" ", "_")
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            if cold:
                drop_page_cache()
            runs[mode].append(timed(inventory, out, mode, cpu))
    images = runs["ahead"][0]["images"]
    row = {"storage": storage, "images": images}
    for mode in MODES:
        row[mode] = 1000 * sum(r["seconds"] for r in runs[mode]) / len(runs[mode]) / images
        row[f"{mode} rss"] = max(r["rss_mb"] for r in runs[mode])
    row["same"] = same_outputs(base / "in_turn", base / "ahead")
    return row


def measure_depths(storage: str, inventory: Path, work: Path, depths: list[int],
                   passes: int, cpu: int) -> dict:
    """ms per image reading ahead by each of ``depths`` files (rotating order, means)."""
    modes = [f"ahead {d}" for d in depths]
    runs = {mode: [] for mode in modes}
    base = work / ("depths_" + "".join(c if c.isalnum() else "_" for c in storage))
    for k in range(passes):
        for mode in (modes if k % 2 == 0 else modes[::-1]):
            out = base / mode.replace(" ", "_")
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            runs[mode].append(timed(inventory, out, mode, cpu))
    return {mode: 1000 * sum(r["seconds"] for r in rs) / sum(r["images"] for r in rs)
            for mode, rs in runs.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="demo corpus size")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--files", type=int, default=500, help="images prepared per run")
    parser.add_argument("--latency-ms", type=float, nargs="*", default=[0.5, 2.0, 5.0])
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--depths", type=int, nargs="*", default=[],
                        help="also time these READ_AHEAD depths on each FUSE mount")
    parser.add_argument("--cpu", type=int, default=1, help="core the prepare runs are pinned to")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], args.serve[1], float(args.serve[2]))
        return 0
    if args.child:
        child(*args.child[:3], int(args.child[3]))
        return 0

    from prepare_floor import demo_files
    from vacancy.images.prepare import READ_AHEAD

    corpus, batches = demo_files(args.images, args.seed)
    rows = sorted((r for _, batch in batches for r in batch), key=lambda r: r["path"])
    rows = rows[:args.files]
    raw = corpus / "raw"
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; {platform.machine()}, "
          f"{os.cpu_count()} cores; READ_AHEAD {READ_AHEAD}\n")
    results, depth_rows = [], {}
    with tempfile.TemporaryDirectory(prefix="read_ahead-") as tmp:
        work = Path(tmp)
        local = inventory_under(rows, raw, raw, work / "local.csv")
        (work / "warm").mkdir()
        timed(local, work / "warm", "ahead", args.cpu)  # the page cache warm for "local"
        results.append(measure("local, warm", local, work, args.passes, args.cpu))
        if drop_page_cache():
            results.append(measure("local, cold", local, work, args.passes, args.cpu, cold=True))
        else:
            print("local, cold: skipped (dropping the page cache needs root)\n")
        for latency in args.latency_ms:
            mount = work / f"mnt-{latency}"
            server = mounted(raw, mount, latency)
            try:
                inventory = inventory_under(rows, raw, mount, work / f"fuse-{latency}.csv")
                results.append(measure(f"FUSE, {latency:g} ms", inventory, work, args.passes,
                                       args.cpu))
                if args.depths:
                    depth_rows[f"FUSE, {latency:g} ms"] = measure_depths(
                        f"FUSE, {latency:g} ms", inventory, work, args.depths, args.passes,
                        args.cpu)
            finally:
                unmount(mount, server)
    print(f"**prepare_location on {results[0]['images']} demo images, one core, "
          f"{args.passes} passes each way (means)**\n")
    print("| storage (wait per open and per read) | in turn: ms/image | ahead: ms/image | "
          "images/s ahead | in turn / ahead | peak RSS MB in turn / ahead | same outputs |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in results:
        print(f"| {r['storage']} | {r['in turn']:.3f} | {r['ahead']:.3f} | "
              f"{1000 / r['ahead']:.0f} | {r['in turn'] / r['ahead']:.2f}x | "
              f"{r['in turn rss']:.0f} / {r['ahead rss']:.0f} | "
              f"{'yes' if r['same'] else 'NO'} |")
    if depth_rows:
        print(f"\n*ms per image by READ_AHEAD (files read ahead), {args.passes} passes, means*\n")
        print("| storage | " + " | ".join(str(d) for d in args.depths) + " |")
        print("|---|" + "---:|" * len(args.depths))
        for storage, row in depth_rows.items():
            print(f"| {storage} | " + " | ".join(f"{v:.3f}" for v in row.values()) + " |")
    return 0 if all(r["same"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
