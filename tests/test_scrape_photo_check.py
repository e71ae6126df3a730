"""A downloaded photo cannot stall or kill the scrape: decoder bombs, crashes and hangs are skips.

check_image decodes every photo a server sends (vacancy.sources.scrape.location). A progressive
JPEG may repeat its scans (each a pass over the whole frame) as often as a server likes; the
file here is real, built with Pillow and by splicing its own scan segments. A decoder crash or
hang is made by replacing the decode with one that really segfaults or sleeps, in the process
check_image forks for it.
"""
from __future__ import annotations

import faulthandler
import io
import os
import signal
import time

import numpy as np
import pytest
from PIL import Image

from vacancy.formats import MAX_JPEG_SCANS, jpeg_scans
from vacancy.images import isolate
from vacancy.sources.scrape import location
from vacancy.sources.scrape.location import Skip, check_image


def progressive_jpeg(side: int = 1200) -> bytes:
    rng = np.random.default_rng(3)
    pixels = (rng.random((side, side)) * 60 + 90).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", progressive=True, quality=30)
    return buffer.getvalue()


def segments(blob: bytes) -> list[tuple[int, bytes]]:
    """(marker, bytes) of each segment after SOI, a scan with its entropy-coded data."""
    found, pos = [], 2
    while blob[pos + 1] != 0xD9:
        marker = blob[pos + 1]
        end = pos + 2 + int.from_bytes(blob[pos + 2:pos + 4], "big")
        if marker == 0xDA:
            while True:
                end = blob.index(b"\xff", end)
                if blob[end + 1] == 0 or 0xD0 <= blob[end + 1] <= 0xD7:
                    end += 2
                    continue
                break
        found.append((marker, blob[pos:end]))
        pos = end
    return found


def scan_bomb(extra_scans: int) -> bytes:
    """The progressive JPEG with its last scan repeated ``extra_scans`` times."""
    parts = segments(progressive_jpeg())
    scans = [data for marker, data in parts if marker == 0xDA]
    header = b"".join(data for marker, data in parts if marker != 0xDA)
    return b"\xff\xd8" + header + b"".join(scans) + scans[-1] * extra_scans + b"\xff\xd9"


def test_scans_are_counted_from_the_segments():
    plain = progressive_jpeg()
    assert 2 < jpeg_scans(plain) < 20
    assert jpeg_scans(scan_bomb(5)) == jpeg_scans(plain) + 5
    assert jpeg_scans(scan_bomb(3000)) == MAX_JPEG_SCANS + 1  # counting stops past the limit
    assert jpeg_scans(scan_bomb(3000), stop_after=10**6) == jpeg_scans(plain) + 3000


def test_a_scan_bomb_is_skipped_without_decoding_and_a_progressive_photo_is_kept(
        tmp_path, monkeypatch):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(progressive_jpeg())
    assert check_image(photo, 50_000_000) == "JPEG"
    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(scan_bomb(3000))
    decodes = tmp_path / "decodes.txt"  # written by the forked process that decodes
    real = location._decoded_format

    def recording(blob, limit):
        with open(decodes, "a") as handle:
            handle.write(f"{len(blob)}\n")
        return real(blob, limit)

    monkeypatch.setattr(location, "_decoded_format", recording)
    with pytest.raises(Skip, match=f"more than {MAX_JPEG_SCANS} scans"):
        check_image(bomb, 50_000_000)
    assert not decodes.exists()  # refused from its segments: Pillow would decode 3,000 scans
    at_limit = tmp_path / "at_limit.jpg"
    at_limit.write_bytes(scan_bomb(MAX_JPEG_SCANS - jpeg_scans(progressive_jpeg())))
    assert check_image(at_limit, 50_000_000) == "JPEG"  # as many scans as allowed: decoded
    assert decodes.read_text().split() == [str(at_limit.stat().st_size)]


@pytest.fixture
def quiet_crashes(monkeypatch):
    monkeypatch.setattr(isolate, "IMAGE_SECONDS", 1)
    was_enabled = faulthandler.is_enabled()
    faulthandler.disable()  # pytest's: it would print the deliberate crash's stack
    yield
    if was_enabled:
        faulthandler.enable()


def test_a_crash_or_hang_in_the_decoder_skips_the_photo(tmp_path, monkeypatch, quiet_crashes):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(progressive_jpeg(200))

    def crashing(blob, max_pixels):
        os.kill(os.getpid(), signal.SIGSEGV)

    def hanging(blob, max_pixels):
        time.sleep(3600)

    monkeypatch.setattr(location, "_decoded_format", crashing)
    with pytest.raises(Skip, match=r"crashed on this file \(SIGSEGV\)"):
        check_image(photo, 50_000_000)
    monkeypatch.setattr(location, "_decoded_format", hanging)
    with pytest.raises(Skip, match="took more than 1 s"):
        check_image(photo, 50_000_000)
    monkeypatch.undo()
    assert check_image(photo, 50_000_000) == "JPEG"  # this process is unharmed
