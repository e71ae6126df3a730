"""A file that crashes or hangs the decoder is one reject, not a lost location.

Why: ImageMagick and the libraries under it (libjpeg, libpng, libtiff, libwebp) are C code, and a
file built to break them (or a plain bug) can kill the process with a signal (a segmentation
fault, an abort on a failed assertion) or keep it decoding for ever. Without this, that one file
ended the location's whole ``prepare`` job with a signal and no word of which file it was, and
every run after it ended the same way, so the map could not be made at all.

How: :func:`supervised` runs the job's work in a forked child. Every process that measures
images (the child itself, or its worker processes) writes the id of the image it is measuring
into a journal file of its own before it starts and clears it after (:class:`Guard`), with an
alarm of IMAGE_SECONDS whose default action ends the process. When the child dies of one of
CRASH_SIGNALS (or reports that a worker did), the ids in the journal are the suspects, and the
child runs again; this time each suspect is measured in a forked process of its own
(:meth:`Guard.measure`), so a crash or a hang there is that image's reject, with the signal as
its reason, and the rest of the location is measured as usual. Nothing is written before the
location is done (outputs are renamed into place at the end), so a round that dies leaves no
half-written output. A reject is kept in the reuse cache like any other, so the next run does
not decode the file again.

Each round finds the files that crashed it and measures the location again up to the next
crash, so a location with many crashing files (a folder of a fuzzer's output, a site serving
broken files on purpose) would cost a pass per file. After ISOLATE_ALL_AFTER rounds, the next
round measures every image in a process of its own: a few milliseconds more per image, but one
round, whatever the number of crashing files.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Callable

log = logging.getLogger("vacancy.images.prepare")

#: Longest a single image may take to decode and measure. A listing photo takes milliseconds
#: and a 50-megapixel PNG a few seconds; past this the decoder is taken to hang.
IMAGE_SECONDS = 120
#: Signals that mean the decoder died on the image it was given, not that the job was stopped
#: (SIGINT, SIGTERM and SIGKILL come from the user, Snakemake, or the OOM killer).
CRASH_SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGFPE, signal.SIGILL,
                 signal.SIGALRM)
#: Exit code of the child when one of its worker processes died (the pool cannot say which).
WORKER_DIED = 75
#: Rounds of :func:`supervised` that died before the next measures every image in a process of
#: its own. A round costs about half a pass of the location (it stops at the next crash); a
#: round with every image forked about 6 passes (measured on 997 demo images: 14-17 ms an image
#: against 2.3-2.7). How many crashing files remain is unknown, so this is the break-even of the
#: two (rent or buy), so it costs at most about twice the best choice made knowing their number.
ISOLATE_ALL_AFTER = 12

_FORK = multiprocessing.get_context("fork")


def death_reason(exitcode: int | None) -> str:
    """Why a forked process ended, in words for the rejects file."""
    if exitcode is not None and exitcode < 0:
        number = -exitcode
        if number == signal.SIGALRM:
            return (f"decoding took more than {IMAGE_SECONDS} s and was stopped (a file that "
                    f"hangs the decoder)")
        return f"the decoder crashed on this file ({signal.Signals(number).name})"
    return f"the decoder's process ended with exit code {exitcode}"


class Guard:
    """Measures images so that a crash or a hang can be traced to the image and isolated.

    ``journal``: the folder of journal files (None: no journal and no alarm, as in a direct
    call of prepare_location); ``suspects``: ids of images that killed a measuring process in an
    earlier round, each measured in a process of its own; ``isolate_all``: every image is.
    Picklable: sent to worker processes.
    """

    def __init__(self, journal: str | os.PathLike | None = None, suspects=frozenset(),
                 isolate_all: bool = False):
        self.journal = None if journal is None else str(journal)
        self.suspects = frozenset(suspects)
        self.isolate_all = isolate_all

    def measure(self, image_id: str, function: Callable, *args):
        """``function(*args)``: its value, or what it raised. A suspect runs in a forked process
        of its own, and its death is a :class:`vacancy.formats.Rejected` with the reason."""
        if self.isolate_all or image_id in self.suspects:
            return in_own_process(function, *args)
        if self.journal is None:
            return function(*args)
        slot = _slot(self.journal)
        os.pwrite(slot, image_id.encode("utf-8", "surrogateescape") + b"\n", 0)
        signal.alarm(IMAGE_SECONDS)
        try:
            return function(*args)
        finally:
            signal.alarm(0)
            # an empty first line: measuring nothing (3 us an image with the id's write and
            # the alarm, where truncating the file took 10)
            os.pwrite(slot, b"\n", 0)


_SLOTS: dict[tuple[int, str], int] = {}


def _slot(journal: str) -> int:
    """This process's journal file (one per process: the main one and each worker)."""
    key = (os.getpid(), journal)
    if key not in _SLOTS:
        # the alarm must end the process (its default), even if a library set a handler
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        _SLOTS[key] = os.open(os.path.join(journal, str(os.getpid())),
                              os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return _SLOTS[key]


def suspects_in(journal: str | os.PathLike) -> set[str]:
    """Ids that journal files name on their first line: images a process was measuring when it
    ended (what follows the first line is left over from longer ids)."""
    found = set()
    for path in Path(journal).iterdir():
        first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8", "surrogateescape")
        if first:
            found.add(first)
    return found


def in_own_process(function: Callable, *args):
    """``function(*args)`` in a forked process under the alarm of IMAGE_SECONDS: its value, or
    what it raised; its death (a crash, or the alarm) a :class:`vacancy.formats.Rejected` whose
    reason says which. For code that decodes untrusted bytes where a fork costs little against
    the rest (a suspect file here, a downloaded photo in the scraper)."""
    from ..formats import Rejected

    message, exitcode = _forked(_isolated_child, function, args)
    if message is None:  # it died before sending anything
        raise Rejected(death_reason(exitcode))
    raised, value = message
    if raised:
        raise value
    return value


def _forked(child_main: Callable, *args) -> tuple[object | None, int | None]:
    """(the one message ``child_main(send, *args)`` sent, or None if it died first; its exit
    code) of a forked process: how both the supervised job and an isolated image are run."""
    receive, send = _FORK.Pipe(duplex=False)
    child = _FORK.Process(target=child_main, args=(send, *args))
    child.start()
    send.close()
    try:
        message = receive.recv()
    except EOFError:
        message = None
    finally:
        receive.close()
    child.join()
    return message, child.exitcode


def _isolated_child(send, function: Callable, args: tuple) -> None:
    _die_with_parent()
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(IMAGE_SECONDS)
    try:
        outcome = (False, function(*args))
    except Exception as exc:  # noqa: BLE001 (sent back and raised there, as if run in place)
        outcome = (True, exc)
    signal.alarm(0)
    send.send(outcome)
    send.close()


def supervised(run: Callable[[Guard], object], label: str):
    """``run(guard)`` in a forked child, run again with the suspects isolated when it dies of a
    crash or a hang (after ISOLATE_ALL_AFTER such rounds, with every image isolated); returns
    its value or raises what it raised.

    ``label`` names the work in messages (the location).
    """
    suspects: set[str] = set()
    journal = tempfile.mkdtemp(prefix="vacancy-journal-")
    try:
        for died in itertools.count():
            isolate_all = died >= ISOLATE_ALL_AFTER
            if isolate_all:
                log.warning("prepare %s: crashing files ended %d round%s: measuring every "
                            "image in a process of its own (a few ms more an image)", label, died,
                            "" if died == 1 else "s")
            ended, value = _round(run, Guard(journal, suspects, isolate_all))
            if ended is None:
                return value
            if ended == "raised":
                raise value
            found = suspects_in(journal) - suspects
            if not found:  # also the end of a round with every image isolated
                raise RuntimeError(f"prepare {label}: its process ended ({value}) while no image "
                                   f"was being measured")
            log.warning("prepare %s: a process ended (%s) while measuring %s: measuring the "
                        "location again, with %s in a process of its own", label, value,
                        ", ".join(sorted(found)), "that file" if len(found) == 1 else "each")
            suspects |= found
            for path in Path(journal).iterdir():
                path.unlink()
    finally:
        shutil.rmtree(journal, ignore_errors=True)


def _round(run: Callable[[Guard], object], guard: Guard) -> tuple[str | None, object]:
    """One run in a forked child: (None, value), ("raised", exception) or ("died", reason)."""
    message, code = _forked(_round_child, run, guard)
    if message is not None:
        return message
    if code == WORKER_DIED:
        return "died", "a worker process died"
    if code is not None and code < 0 and -code in CRASH_SIGNALS:
        return "died", death_reason(code)
    how = (f"was killed by {signal.Signals(-code).name} (out of memory, or stopped from outside)"
           if code is not None and code < 0 else f"ended with exit code {code}")
    raise RuntimeError(f"prepare's process {how}")


def _find_prctl():
    """libc's prctl, found once here rather than in each child (Linux only; else None)."""
    try:
        return ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()


def _die_with_parent() -> None:
    """Linux: this process is killed when its parent dies, so a job stopped by Snakemake or
    SLURM leaves no child behind to finish (and rename outputs) later."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _round_child(send, run: Callable[[Guard], object], guard: Guard) -> None:
    from concurrent.futures.process import BrokenProcessPool

    _die_with_parent()
    try:
        outcome = (None, run(guard))
    except BrokenProcessPool:
        send.close()
        os._exit(WORKER_DIED)
    except BaseException as exc:  # noqa: BLE001 (raised again in the supervisor)
        log.exception("prepare failed")  # the traceback, in the job's log
        outcome = ("raised", exc)
    try:
        send.send(outcome)
    except Exception:  # noqa: BLE001 (an exception that cannot be pickled: its words)
        send.send(("raised", RuntimeError(f"{type(outcome[1]).__name__}: {outcome[1]}")))
    send.close()
