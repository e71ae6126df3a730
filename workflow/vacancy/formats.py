"""Recognising image content from its bytes, and reading untrusted files: shared by every stage.

Photos come from the internet, so neither their names nor their suffixes are trusted: a file is
read as bytes by Python, and its first bytes must be those of one of the six raster formats
listing photos come in (JPEG, PNG, GIF, WebP, BMP, TIFF) before any decoder, ImageMagick's
(:mod:`vacancy.imaging`) or Pillow's (:mod:`vacancy.images.hashes`), is allowed to see it. Anything
else (an HTML error page, SVG, PostScript, text named ``.jpg``) is refused with a reason that
says what it looks like. This module needs no ImageMagick.
"""

from __future__ import annotations

import os
import re
import stat
import zlib

#: Files bigger than this are refused before reading (a 50-megapixel JPEG is ~10-30 MB).
MAX_FILE_BYTES = 256 * 1024 * 1024

#: The accepted formats by their lower-case name (ImageMagick's coder); Pillow's is the upper case.
FORMATS = ("jpeg", "png", "gif", "webp", "bmp", "tiff")


class Rejected(Exception):
    """An image that cannot be used; ``str(exc)`` is the reason written to the rejects file."""


# ---------------------------------------------------------------------------------------------
# Recognising the content


def sniff_format(head: bytes) -> str | None:
    """The ImageMagick coder for a raster photo format recognised from its magic bytes, or None.

    Only JPEG, PNG, GIF, WebP, BMP and TIFF are accepted: they are the formats listing photos
    come in, and none of their coders runs scripts or fetches other files.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    # "BM" alone is too weak (text can start with it): also require a known DIB header size.
    if head[:2] == b"BM" and len(head) >= 18:
        if int.from_bytes(head[14:18], "little") in (12, 40, 52, 56, 64, 108, 124):
            return "bmp"
    return None


_CONTENT_HINTS = (
    (re.compile(rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*<svg", re.I | re.S), "SVG"),
    (re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body)", re.I), "HTML"),
    (re.compile(rb"^\s*<\?xml", re.I), "XML (e.g. SVG or MSL)"),
    (re.compile(rb"^%PDF-"), "PDF"),
    (re.compile(rb"^%!"), "PostScript"),
    (re.compile(rb"^\s*(push\s+graphic-context|viewbox\s)", re.I), "MVG"),
)


def describe_content(head: bytes) -> str:
    """A short guess at what unaccepted bytes are, so a reject reason says more than 'bad'."""
    for pattern, name in _CONTENT_HINTS:
        if pattern.search(head[:512]):
            return name
    sample = head[:64]
    if sample and all(32 <= b < 127 or b in b"\t\r\n" for b in sample):
        return "text"
    return f"unknown bytes {head[:8].hex(' ')}"


#: JPEG start-of-frame markers (SOF0..SOF15 without DHT C4, JPG C8 and DAC CC): the frame's size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def png_size(blob: bytes) -> tuple[int, int] | None:
    """A PNG's (width, height) from its IHDR chunk, which the format puts first; None when it
    is not there (ImageMagick's ping then judges the header)."""
    if len(blob) >= 24 and blob[12:16] == b"IHDR":
        width, height = int.from_bytes(blob[16:20], "big"), int.from_bytes(blob[20:24], "big")
        return (width, height) if width and height else None
    return None


def jpeg_size(blob: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame segment, or None if not simply found.

    Walks the marker segments after SOI by their lengths, as libjpeg reads the header, and
    stops at the first SOF. Anything unusual before it (bytes between segments, a standalone
    or scan marker, a short or overrunning length, a zero size) gives None, so that the caller
    asks the decoder's own header reader instead: whenever this returns a size, it is the frame
    libjpeg will decode. Costs microseconds, against ~0.3 ms for ImageMagick's ping.
    """
    end = len(blob)
    pos = 2  # after SOI (FF D8), which the caller has sniffed
    while pos < end:
        if blob[pos] != 0xFF:
            return None
        while pos < end and blob[pos] == 0xFF:  # fill bytes before a marker are allowed
            pos += 1
        if pos + 3 > end:
            return None
        marker = blob[pos]
        if marker == 0x00 or marker == 0x01 or 0xD0 <= marker <= 0xDA:
            return None  # stuffing, TEM, RSTn, SOI, EOI or SOS before any frame: not simple
        length = int.from_bytes(blob[pos + 1:pos + 3], "big")
        if length < 2 or pos + 1 + length > end:
            return None
        if marker in _JPEG_SOF:
            if length < 8:
                return None
            height = int.from_bytes(blob[pos + 4:pos + 6], "big")
            width = int.from_bytes(blob[pos + 6:pos + 8], "big")
            return (width, height) if width and height else None
        pos += 1 + length
    return None


#: Most scans a JPEG may have before it is refused undecoded. A baseline JPEG has 1 scan, a
#: progressive one about 10 (libjpeg's standard script; optimisers reach a few dozen). Each scan
#: is a pass over the whole frame, and the standard lets a file of a few bytes a scan hold
#: thousands (libjpeg-turbo's report "Two Issues with the JPEG Standard", LJT-01-003): measured
#: here, 300 scans of 75 bytes on a 7000x7000 frame kept Pillow decoding for 9 s, with no end
#: to how many a hostile server may send. ImageMagick stops at 1024 on its own.
MAX_JPEG_SCANS = 100


def jpeg_scans(blob: bytes, stop_after: int = MAX_JPEG_SCANS) -> int:
    """How many scans (SOS segments) a JPEG holds, counted up to ``stop_after`` + 1.

    Cheap for any file: a scan's marker bytes FF DA cannot occur inside entropy-coded data (an
    FF there is followed by 00 or a restart marker), so a file with few of them anywhere is
    answered by one ``bytes.count``; only a file with many is walked segment by segment (an
    embedded EXIF thumbnail or binary metadata may hold FF DA too, and is skipped by length).
    """
    anywhere = blob.count(b"\xff\xda")
    if anywhere <= stop_after:
        return anywhere
    scans, pos, end = 0, 2, len(blob)
    while pos + 4 <= end and scans <= stop_after:
        if blob[pos] != 0xFF:  # entropy-coded data: on to the next marker
            pos = blob.find(b"\xff", pos)
            if pos < 0:
                break
            continue
        marker = blob[pos + 1]
        if marker == 0xFF or marker == 0x00 or 0xD0 <= marker <= 0xD7:
            pos += 1 if marker == 0xFF else 2  # fill, stuffing, restart: inside a scan
            continue
        if marker == 0xD9:
            break
        scans += marker == 0xDA
        pos += 2 + int.from_bytes(blob[pos + 2:pos + 4], "big")
    return scans


#: What a path that is not a regular file is, for the reject's reason.
_FILE_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def read_blob(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of ``path`` (opened by Python, never by a decoder); Rejected if unusable.

    The file opened is the one checked (``fstat`` of the open file, not a ``stat`` before it), it
    must be a regular file (a pipe or a device named ``x.jpg``, or swapped in after the
    inventory, would block or never end), it is opened non-blocking (a pipe cannot hold the
    open), and at most ``max_bytes`` + 1 bytes are read (a file growing meanwhile is refused).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise Rejected(f"cannot read file: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _FILE_KINDS if test(info.st_mode)), "not a file")
            raise Rejected(f"not a regular file ({kind})")
        if info.st_size == 0:
            raise Rejected("empty file (0 bytes)")
        if info.st_size > max_bytes:
            raise Rejected(f"file too large ({info.st_size} bytes > {max_bytes})")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            # One byte more than fstat said, so one buffer of the file's size (asking for
            # max_bytes + 1 allocated 256 MB per file); a file that grew since is read on.
            blob = handle.read(info.st_size + 1)
            if len(blob) > info.st_size:
                blob += handle.read(max_bytes + 1 - len(blob))
    except OSError as exc:
        raise Rejected(f"cannot read file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(blob) > max_bytes:
        raise Rejected(f"file too large (more than {max_bytes} bytes when read)")
    return blob


#: PNG chunks of text (metadata only: no pixel depends on them). zTXt and iTXt are compressed,
#: and libpng inflates them whole: a 1 MB chunk of zeros costs 1 GB and 15 s, twice (ping and
#: decode). They are dropped before ImageMagick sees the file.
PNG_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")


def png_without_text(blob: bytes) -> bytes:
    """A PNG's bytes without its text chunks (the same pixels); other formats unchanged.

    The chunks are walked by their length fields only; anything past a chunk that does not fit
    (a truncated file) is kept as it was, for the decoder to judge.
    """
    if not blob.startswith(b"\x89PNG\r\n\x1a\n"):
        return blob
    kept, pos, dropped = [blob[:8]], 8, False
    while pos + 12 <= len(blob):
        length = int.from_bytes(blob[pos:pos + 4], "big")
        kind, end = blob[pos + 4:pos + 8], pos + 12 + length
        if end > len(blob):
            break
        if kind in PNG_TEXT_CHUNKS:
            dropped = True
        else:
            kept.append(blob[pos:end])
        pos = end
        if kind == b"IEND":
            break
    if not dropped:
        return blob
    kept.append(blob[pos:])
    return b"".join(kept)


def png_damage(blob: bytes) -> str | None:
    """Where a PNG is damaged, found by walking its chunks and checking each one's CRC, or None
    when every chunk up to IEND is whole.

    libpng stops at such damage, and ImageMagick 6 then reports "no image and no reason"; the
    reject says instead which chunk, at which byte, and whether the file was cut short. Only
    called after a decode failed: it reads the whole file once (a CRC is ~1 GB/s).
    """
    pos = 8
    while pos + 8 <= len(blob):
        length = int.from_bytes(blob[pos:pos + 4], "big")
        name = blob[pos + 4:pos + 8].decode("ascii", "backslashreplace")
        end = pos + 12 + length
        if end > len(blob):
            return (f"chunk {name} at byte {pos} runs past the end of the file: cut short "
                    f"({end - len(blob)} bytes missing)")
        kind, crc = blob[pos + 4:pos + 8], int.from_bytes(blob[end - 4:end], "big")
        # a text chunk is dropped before decoding (png_without_text): its damage is no cause
        if kind not in PNG_TEXT_CHUNKS and zlib.crc32(blob[pos + 4:end - 4]) != crc:
            return f"chunk {name} at byte {pos} does not match its CRC: damaged"
        if name == "IEND":
            return None
        pos = end
    return "no IEND chunk: cut short"


def check_blob(blob: bytes) -> str:
    """The coder for ``blob``, or Rejected when it is empty or not an accepted raster format."""
    if not blob:
        raise Rejected("empty file (0 bytes)")
    fmt = sniff_format(blob[:32])
    if fmt is None:
        raise Rejected(f"not a raster photo format (JPEG/PNG/GIF/WebP/BMP/TIFF): "
                       f"looks like {describe_content(blob[:512])}")
    return fmt
