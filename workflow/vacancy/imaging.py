"""Safe decoding of untrusted image files with ImageMagick (through Wand), shared by the stages.

Why this module exists: the photos come from the internet and their file names and contents are
chosen by strangers. ImageMagick treats a *file name* as a little language (``jpg:x`` picks a
coder, ``x[0]`` picks a frame, ``|cmd`` once ran a shell, ``@list`` reads a list of files), and
it treats *content* as whatever its magic bytes say (an ``.jpg`` that is really SVG, MVG or
PostScript is rendered by a vector/script coder). So we never give ImageMagick a user file name:
Python reads the bytes, :func:`sniff_format` recognises one of the six raster photo formats from
the first bytes (anything else is refused before any decoder runs), and the blob is decoded with
that coder named explicitly, so ImageMagick never guesses.

Before the full decode the size is read from the header and images above ``max_pixels`` are
refused, so a "decompression bomb" (a tiny PNG claiming 100000 x 100000) costs microseconds, not
gigabytes. For a JPEG the size is taken from its start-of-frame segment by
:func:`vacancy.formats.jpeg_size` (stdlib), falling back to ImageMagick's ping when the header
is anything but a plain run of segments; other formats are pinged.
Only the first frame of multi-frame files (animated GIF/WebP, multi-page TIFF) is decoded.

Damage that the decoder survived (a truncated JPEG: "Premature end of JPEG file") is reported as
a *warning*, which Wand does not raise after a successful read. ImageMagick 7 leaves it on the
wand; ImageMagick 6 stores it on the decoded image, where only MagickCore's ``GetImageException``
(gone in 7) reaches it. :func:`decoder_damage` reads both places; a corruption warning (or any
error) makes the image a reject, because the missing part is filled with grey and would otherwise
be triaged and mapped as if it were real. Wand loads whichever MagickWand the system has (6 or 7).

Everything that can go wrong with one image becomes :class:`Rejected` with a short reason that a
person can act on; callers record it and carry on.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import re
import sys
from typing import Iterator

import numpy as np
from wand.api import libmagick, library
from wand.exceptions import WandException, WandRuntimeError
from wand.image import STORAGE_TYPES, Image
from wand.resource import limits as resource_limits

from .common import config_defaults

# Recognising content and reading files needs no ImageMagick: it lives in vacancy.formats and
# the stages take it from here, with the decoder.
from .formats import (Rejected, check_blob, jpeg_size, png_damage, png_size,  # noqa: F401
                      png_without_text, read_blob, sniff_format)

#: Default limit on width x height, checked from the header before decoding: the config's
#: ``max_pixels`` default, read from the schema (the one place it lives).
DEFAULT_MAX_PIXELS: int = config_defaults()["max_pixels"]

#: ImageMagick exception severities (exception.h; the same numbers in 6 and 7).
_CORRUPT_IMAGE_WARNING = 325
_FIRST_ERROR = 400


# ---------------------------------------------------------------------------------------------
# Decoding


#: What ImageMagick 6 returns for some unreadable files: failure, but no exception to show.
_NO_REASON = "decoder returned no image and no reason (damaged, or beyond ImageMagick's limits)"


def _clean_message(exc: BaseException | None) -> str:
    """ImageMagick's message without the internal buffer name and source location."""
    if exc is None or isinstance(exc, WandRuntimeError):
        return _NO_REASON
    text = str(exc).strip()
    text = re.sub(r"\s*`buffer\.[^']*'", "", text)
    text = re.sub(r"\s*@\s*(error|warning|fatal)/\S+$", "", text)
    return text or type(exc).__name__


def _new_wand(fmt: str, options: dict[str, str] | None = None) -> Image:
    """An empty wand bound to coder ``fmt`` and frame 0, so the blob is never sniffed by IM."""
    img = Image()
    library.MagickSetFormat(img.wand, fmt.encode())
    # The "[0]" frame selector is ours, not the user's: it stops multi-frame decodes.
    library.MagickSetFilename(img.wand, f"buffer.{fmt}[0]".encode())
    for key, value in (options or {}).items():
        img.options[key] = value
    return img


def ping_size(blob: bytes, fmt: str) -> tuple[int, int]:
    """Width and height from the header alone (no pixel decode); Rejected if unreadable."""
    img = _new_wand(fmt)
    try:
        ok = library.MagickPingImageBlob(img.wand, blob, len(blob))
        if not ok:
            raise Rejected(f"unreadable {fmt} header: {_clean_message(img.get_exception())}")
        damage = decoder_damage(img)
        if damage:
            raise Rejected(f"unreadable {fmt} header: {damage}")
        return img.width, img.height
    except WandException as exc:
        raise Rejected(f"unreadable {fmt} header: {_clean_message(exc)}") from None
    finally:
        img.destroy()


def header_size(blob: bytes, fmt: str) -> tuple[int, int]:
    """Width and height before any pixel is decoded: a JPEG's SOF segment when plainly found
    (no ImageMagick call: a ping costs a wand and a header parse, a tenth of ``prepare``'s
    loop), else ImageMagick's ping (:func:`ping_size`, which also rejects unreadable headers)."""
    if fmt == "jpeg":
        size = jpeg_size(blob)
        if size is not None:
            return size
    return ping_size(blob, fmt)


class _ExceptionInfo(ctypes.Structure):
    """The leading fields of MagickCore's ExceptionInfo (the same in ImageMagick 6 and 7)."""

    _fields_ = [
        ("severity", ctypes.c_int),
        ("error_number", ctypes.c_int),
        ("reason", ctypes.c_char_p),
        ("description", ctypes.c_char_p),
    ]


def _core() -> ctypes.CDLL | None:
    """Our own handle on ImageMagick 6's per-image exceptions; None under ImageMagick 7.

    Our own CDLL, so our ctypes signatures never clash with Wand's.
    """
    core = ctypes.CDLL(libmagick._name)
    if not hasattr(core, "GetImageException"):  # ImageMagick 7: warnings stay on the wand
        return None
    core.AcquireExceptionInfo.argtypes = []
    core.AcquireExceptionInfo.restype = ctypes.POINTER(_ExceptionInfo)
    core.DestroyExceptionInfo.argtypes = [ctypes.POINTER(_ExceptionInfo)]
    core.DestroyExceptionInfo.restype = ctypes.c_void_p
    core.GetImageException.argtypes = [ctypes.c_void_p, ctypes.POINTER(_ExceptionInfo)]
    core.GetImageException.restype = None
    core.GetFirstImageInList.argtypes = [ctypes.c_void_p]
    core.GetFirstImageInList.restype = ctypes.c_void_p
    return core


_CORE = _core()


def _is_damage(severity: int) -> bool:
    """A corruption warning or any error: the decoded pixels cannot be trusted."""
    return severity == _CORRUPT_IMAGE_WARNING or severity >= _FIRST_ERROR


def decoder_damage(img: Image) -> str | None:
    """The corruption warning or error the decoder left on the wand (IM7) or the image (IM6)."""
    on_wand = img.get_exception()  # clears it; a plain warning (e.g. an unknown tag) is ignored
    if on_wand is not None and _is_damage(getattr(on_wand, "wand_error_code", _FIRST_ERROR)):
        return _clean_message(on_wand)
    return _image_damage(img) if _CORE is not None else None


def _image_damage(img: Image) -> str | None:
    """ImageMagick 6 only: the warning stored on the first decoded image."""
    first = _CORE.GetFirstImageInList(library.GetImageFromMagickWand(img.wand))
    if not first:
        return None
    info = _CORE.AcquireExceptionInfo()
    try:
        _CORE.GetImageException(first, info)
        severity = info.contents.severity
        if _is_damage(severity):
            reason = (info.contents.reason or b"").decode("utf-8", "replace")
            return _clean_message(Exception(reason)) or f"severity {severity}"
        return None
    finally:
        _CORE.DestroyExceptionInfo(info)


@contextlib.contextmanager
def decode(blob: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
           options: dict[str, str] | None = None) -> Iterator[Image]:
    """Yield the first frame of ``blob`` as a Wand image, or raise Rejected with the reason.

    ImageMagick errors raised inside the ``with`` block also become Rejected, so one image
    that exhausts a resource limit while being processed is a reject, not a crash.
    ``options`` are ImageMagick read options such as ``{"jpeg:size": "128x128"}``.
    """
    with decode_sized(blob, max_pixels, options) as (img, _stored_size):
        yield img


def _check_size(fmt: str, width: int, height: int, max_pixels: int) -> None:
    """Rejected, with the limit by name, for a size no decode should be tried on: none, above
    ``max_pixels``, or wider or taller than ImageMagick's policy allows (Debian's: 16,000 px),
    which ImageMagick itself reports only as "no image and no reason"."""
    if width <= 0 or height <= 0:
        raise Rejected(f"{fmt} header has no size ({width}x{height})")
    if width * height > max_pixels:
        raise Rejected(f"{width}x{height} ({width * height / 1e6:.1f} megapixels) "
                       f"exceeds max_pixels {max_pixels}")
    most_wide, most_tall = _side_limits()
    if width > most_wide or height > most_tall:
        raise Rejected(f"{width}x{height} is wider or taller than ImageMagick's policy allows "
                       f"({most_wide}x{most_tall} px: resource width and height in policy.xml)")


def _where_damaged(reason: str, fmt: str, blob: bytes) -> str:
    """A failed decode's reason, with where a PNG is damaged (:func:`png_damage`) when found:
    ImageMagick 6 often gives none for a PNG whose chunks libpng refused."""
    damage = png_damage(blob) if fmt == "png" else None
    if not damage:
        return reason
    return f"{reason.replace(_NO_REASON, 'decoder returned no image')}; {damage}"


@functools.lru_cache(maxsize=1)
def _side_limits() -> tuple[int, int]:
    """ImageMagick's width and height resource limits (a 0 means none)."""
    def side(name: str) -> int:
        return int(resource_limits[name]) or sys.maxsize
    return side("width"), side("height")


@contextlib.contextmanager
def decode_sized(blob: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                 options: dict[str, str] | None = None) -> Iterator[tuple[Image, tuple[int, int]]]:
    """:func:`decode`, also yielding the stored (width, height) from the header.

    With a ``jpeg:size`` hint the decoded image is smaller than the stored one; dedup must still
    compare stored sizes (it keeps the largest copy), so the header's size comes along.
    """
    fmt, original = check_blob(blob), blob
    if fmt == "png":
        blob = png_without_text(blob)  # metadata whose inflation libpng does not bound
        claimed = png_size(blob)  # checked before the ping, which names no limit when it fails
        if claimed:
            _check_size(fmt, *claimed, max_pixels)
    try:
        width, height = header_size(blob, fmt)
    except Rejected as exc:
        raise Rejected(_where_damaged(str(exc), fmt, original)) from None
    _check_size(fmt, width, height, max_pixels)
    img = _new_wand(fmt, options)
    try:
        try:
            img.read(blob=blob)
        except WandException as exc:
            raise Rejected(_where_damaged(f"undecodable {fmt}: {_clean_message(exc)}", fmt,
                                          original)) from None
        damage = decoder_damage(img)
        if damage:
            raise Rejected(_where_damaged(f"corrupt {fmt}: {damage}", fmt, original))
        try:
            yield img, (width, height)
        except WandException as exc:  # e.g. a resource limit hit while processing this image
            raise Rejected(f"ImageMagick failed on this {fmt}: {_clean_message(exc)}") from None
    finally:
        img.destroy()


# ---------------------------------------------------------------------------------------------
# Pixels out


_NUMPY_STORAGE = {"char": np.uint8, "short": np.uint16, "float": np.float32, "double": np.float64}


def export_pixels(img: Image, channels: str = "R", storage: str = "float",
                  rows: tuple[int, int] | None = None) -> np.ndarray:
    """Pixels as a (height, width, len(channels)) array, straight from ImageMagick's buffer.

    Wand's own ``export_pixels`` builds a Python list (slow) and its numpy interface only does
    8-bit; this fills a numpy array in one call. ``storage``: char, short, float (0..1), double.
    ``rows``: (first row, number of rows) for a band of a large image, else the whole image.
    """
    width = img.width
    top, height = rows if rows is not None else (0, img.height)
    out = np.empty((height, width, len(channels)), dtype=_NUMPY_STORAGE[storage])
    ok = library.MagickExportImagePixels(
        img.wand, 0, top, width, height, channels.encode(), STORAGE_TYPES.index(storage),
        out.ctypes.data_as(ctypes.c_void_p),
    )
    if not ok:
        img.raise_exception()
        raise Rejected("ImageMagick could not export the pixels")
    return out
