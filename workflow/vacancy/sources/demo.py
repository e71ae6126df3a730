"""Built-in demo corpus: a synthetic Craigslist-style scrape, deterministic from a seed.

Why: the workflow must run end to end without network access or someone else's photos, and
its stages need input whose right answers are known. This module writes, for each location,
``raw/<location>/<filename>`` JPEGs plus ``raw/<location>/manifest.csv`` exactly as the scraper
would, and a separate ground-truth CSV (never read by the pipeline) for tests and benchmarks.

Content of ``n`` files (module constants below; counts are apportioned exactly, so they add to n):

* ~72% **interiors**: empty rooms in one- or two-point perspective (walls, floor of wood planks,
  carpet or tile, ceiling, bright windows, doors, baseboards, light falloff, sensor noise), in
  ``len(INTERIOR_FAMILIES)`` = 16 families. A family is a layout (room shape, camera, windows)
  with a palette whose *brightness* structure differs (light walls on dark floor, or the
  reverse), because the map sorts on blurred 64x64 grayscale features: hue alone would not
  separate families. Members of a family keep its geometry and brightness structure but vary
  what tells two real photos apart under dHash: camera position (vanishing point), window and
  door positions, one window or two, wall and floor colour, light direction and uneven light.
* 5% **hallways** (deep one-point corridors with rows of doors), 6% **exteriors** (facades, sky,
  street, trees): photos as well.
* 4% **floor plans** and 3% **ads** (flat colours, big text): low-entropy graphics.
* 10% **duplicates** of earlier originals: 40% exact byte copies (cross-posts, usually in
  another location), 20% re-encoded at another JPEG quality, 20% resized to 5/6 (500x375 from
  600x450), 20% cropped by 1-1.5% per side. Near duplicates are made only from photos.
* **broken** files: ``max(3, n // 2000)`` once n >= 50 (fewer below): an empty file, a truncated
  JPEG and an HTML error page saved as ``.jpg``, in turn.

Photos are built to land above the triage's "photo" entropy threshold (4.4 nats of the 8-bit
grayscale histogram), graphics below its "graphic" one (3.9).

dHash (64 bits) behaves as on real data: distinct images, even of one family, are more than 8
bits apart (99.9% of pairs of a 600-file corpus; none within 4 in practice), while near copies
stay within 4 bits of their original (~96% of crops, all re-encodes and resizes). The lever is
uneven light and moving edges at the scale of dHash's 9x8 grid (see ``_light``), since flat,
evenly lit walls would give every image of a family the same bits.

Every image is rendered by a pure function of (kind, family, per-image seed, size), so the same
arguments give byte-identical files, and duplicates are derived from the original's file.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import math
import re
import sys
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFont

from vacancy.common import (Progress, atomic_path, image_id, location_name_pattern, setup_logging,
                            write_csv)
from vacancy.sources.inventory import MANIFEST_COLUMNS

log = logging.getLogger("vacancy.sources.demo")

#: Kinds in the ground truth.
KINDS = ("interior", "hallway", "exterior", "floorplan", "ad", "broken")
PHOTO_KINDS = ("interior", "hallway", "exterior")
GRAPHIC_KINDS = ("floorplan", "ad")

#: Share of all files for each role; interiors take what is left after these and the broken files.
SHARES = {"hallway": 0.05, "exterior": 0.06, "floorplan": 0.04, "ad": 0.03, "duplicate": 0.10}
#: How the duplicates split between exact byte copies and the near-duplicate kinds.
DUPLICATE_SPLIT = {"exact": 0.4, "reencode": 0.2, "resize": 0.2, "crop": 0.2}
DUPLICATE_KINDS = tuple(DUPLICATE_SPLIT)
#: Chance that an exact copy is a cross-post to another location (near copies: the reverse).
CROSS_POST_SHARE = 0.75
#: Broken files: at least this many once n >= BROKEN_MIN_N, else one per BROKEN_EVERY files.
BROKEN_MIN, BROKEN_MIN_N, BROKEN_EVERY = 3, 50, 2000
BROKEN_KINDS = ("empty", "truncated", "html")
#: Images per listing, inclusive.
IMAGES_PER_LISTING = (1, 8)
#: JPEG quality of originals (Craigslist re-encodes uploads at roughly this).
JPEG_QUALITY = (72, 90)
#: Near-duplicate resize factor: 600x450 -> 500x375.
RESIZE_FACTOR = 5 / 6
#: Near-duplicate crop per side, as a fraction of the side: narrow enough that ~95% of crops
#: keep their dHash within 4 bits of the original (wider crops shift the 9x8 dHash grid).
CROP_RANGE = (0.01, 0.015)
#: Standard deviation of the sensor noise added to photos, in 8-bit levels.
NOISE_SIGMA = 4.0
#: Uneven light on photos: relative strength of a smooth random light field, and its number of
#: blobs across x down (about the 9x8 cells of a dHash, so each image gets its own bits).
UNEVEN_LIGHT = 0.15
UNEVEN_CELLS = (9, 5)
#: Interiors: sideways camera moves (fraction of the back wall, standard deviation) and the
#: chance that a window is two narrower ones.
INTERIOR_VP_SHIFT = 0.12
WINDOW_SPLIT = 0.35
#: Hallways: the same for the camera in the corridor (the far end is small, so it moves more).
HALLWAY_VP_SHIFT = 0.25
#: Graphics: standard deviation of their faint uneven brightness, in 8-bit levels (ads
#: have two large flat colours, so less, to keep their entropy low), and the
#: floor plans' paper white (below 255 so the unevenness is not clipped away).
GRAPHIC_UNEVEN = 3.0
AD_UNEVEN = 2.5
PAPER_WHITE = 240
#: Light from one side: at most this relative change across the frame; the vignette's centre
#: moves up to this fraction of the width (see ``_light``).
LIGHT_TILT = 0.15
VIGNETTE_SHIFT = 0.25

TRUTH_COLUMNS = (
    "id", "location", "filename", "kind", "family", "duplicate_of", "duplicate_kind", "listing_id",
)

#: Location -> state, as the scraper's config would have it; unknown locations get DEFAULT_STATE.
STATES = {
    "sfbay": "CA", "losangeles": "CA", "sandiego": "CA", "sacramento": "CA", "seattle": "WA",
    "portland": "OR", "newyork": "NY", "boston": "MA", "chicago": "IL", "austin": "TX",
    "houston": "TX", "dallas": "TX", "denver": "CO", "miami": "FL", "atlanta": "GA",
    "philadelphia": "PA", "washingtondc": "DC", "phoenix": "AZ", "minneapolis": "MN",
    "detroit": "MI", "pittsburgh": "PA", "nashville": "TN", "neworleans": "LA", "lasvegas": "NV",
}
DEFAULT_STATE = "CA"

#: Exactly one listing carries this title, so the viewer's escaping gets tested.
HOSTILE_TITLE = "<img src=x onerror=alert(1)>"
#: Titles with quotes, ampersands, '<' and non-ASCII text; each used once if there are listings.
SPECIAL_TITLES = (
    'Bright & airy 2BR - "must see"',
    "Café-adjacent studio near the park — 1 month free",
    "Landlord's \"special\": 3BR & garage",
    "Großes Zimmer, ruhige Lage ☀",
    "Studio w/ 12' ceilings <3 & exposed brick",
)
_TITLE_ADJ = ("Sunny", "Spacious", "Bright", "Cozy", "Renovated", "Charming", "Modern", "Quiet",
              "Top-floor", "Garden-level", "Light-filled", "Updated", "Huge", "Classic")
_TITLE_UNIT = (("Studio", 0), ("Jr 1BR", 1), ("1BR", 1), ("1BR/1BA", 1), ("2BR", 2),
               ("2BR/2BA", 2), ("3BR", 3), ("Loft", 1))
_TITLE_FEATURE = ("with hardwood floors", "near transit", "with bay windows", "in-unit laundry",
                  "with parking", "pet friendly", "with balcony", "close to park",
                  "with new kitchen", "utilities included", "with city views", "quiet street")

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)


# --------------------------------------------------------------------------------------------
# Planning: which file is what, where, in which listing.
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Item:
    """One file of the corpus; ``index`` seeds its rendering."""

    index: int
    kind: str
    family: str
    location: str = ""
    filename: str = ""
    listing: int = -1
    duplicate_of: int = -1
    duplicate_kind: str = ""
    quality: int = 80
    width: int = 0
    height: int = 0
    crop: tuple[int, int, int, int] = (0, 0, 0, 0)
    nbytes: int = 0
    sha256: str = ""


@dataclass(slots=True)
class Listing:
    """A fake Craigslist listing that groups 1-8 images of one location."""

    listing_id: str
    location: str
    title: str = ""
    price: str = ""
    posted: str = ""


def _apportion(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Split ``total`` by ``weights`` with the largest-remainder method, so counts add up."""
    wsum = sum(weights.values()) or 1.0
    raw = {k: total * w / wsum for k, w in weights.items()}
    counts = {k: int(math.floor(v)) for k, v in raw.items()}
    rest = total - sum(counts.values())
    for key in sorted(raw, key=lambda k: (counts[k] - raw[k], list(raw).index(k)))[:rest]:
        counts[key] += 1
    return counts


def plan_counts(n_images: int) -> dict[str, int]:
    """How many files of each role a corpus of ``n_images`` files has (the values add to n)."""
    if n_images < 0:
        raise ValueError(f"n_images must be >= 0, got {n_images}")
    if n_images >= BROKEN_MIN_N:
        broken = max(BROKEN_MIN, n_images // BROKEN_EVERY)
    else:
        broken = min(BROKEN_MIN, n_images // 20)
    counts = {k: int(round(n_images * SHARES[k]))
              for k in ("hallway", "exterior", "floorplan", "ad")}
    dup = int(round(n_images * SHARES["duplicate"]))
    counts["interior"] = n_images - broken - dup - sum(counts.values())
    if counts["interior"] < 1:  # tiny corpora: keep at least one photo to duplicate
        dup, counts["interior"] = 0, n_images - broken - sum(counts.values())
    counts["broken"] = broken
    counts.update(_apportion(dup, DUPLICATE_SPLIT))
    return counts


def _check_locations(locations: list[str]) -> list[str]:
    """Locations become folder and host names, so only plain lower-case names are accepted."""
    if not locations:
        raise ValueError("at least one location is needed")
    safe = location_name_pattern()
    bad = [loc for loc in locations if not safe.match(str(loc))]
    if bad:
        raise ValueError(f"unsafe location names (want [a-z0-9_-]): {bad!r}")
    if len(set(locations)) != len(locations):
        raise ValueError(f"duplicate location names: {locations!r}")
    return list(locations)


def _craigslist_name(rng: np.random.Generator, width: int, height: int) -> str:
    """A file name shaped like Craigslist's, e.g. ``00a0a_3Kx9ZLqvMfe_600x450.jpg``."""
    chars = rng.integers(0, 62, size=13)
    head = f"00{_BASE62[chars[0] % 36]}0{_BASE62[chars[1] % 36]}".lower()
    body = "".join(_BASE62[c] for c in chars[2:])
    return f"{head}_{body}_{width}x{height}.jpg"


def _families(kind: str) -> list[str]:
    """Family names of a kind, in a fixed order."""
    count = {"interior": len(INTERIOR_FAMILIES), "hallway": 3, "exterior": 3,
             "floorplan": 3, "ad": 3}[kind]
    return [f"{kind}-{j:02d}" for j in range(count)]


def plan_corpus(locations: list[str], n_images: int, seed: int, width: int, height: int
                ) -> tuple[list[Item], list[Listing]]:
    """Decide every file's kind, family, location, listing and name, without rendering."""
    rng = np.random.default_rng([seed, 0xC0FFEE])
    counts = plan_counts(n_images)
    originals: list[tuple[str, str]] = []
    for kind in ("interior", "hallway", "exterior", "floorplan", "ad"):
        fams = _families(kind)
        originals += [(kind, fams[j % len(fams)]) for j in range(counts[kind])]
    order = rng.permutation(len(originals))
    items = [Item(i, *originals[j]) for i, j in enumerate(order)]
    for item in items:
        item.location = locations[int(rng.integers(len(locations)))]
        item.quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    items += _plan_duplicates(rng, items, counts, locations)
    for j in range(counts["broken"]):
        kind = BROKEN_KINDS[j % len(BROKEN_KINDS)]
        loc = locations[int(rng.integers(len(locations)))]
        items.append(Item(len(items), "broken", f"broken-{kind}", location=loc, quality=80))
    listings = _plan_listings(rng, items, locations, seed)
    _name_files(rng, items, width, height)
    return items, listings


def _plan_duplicates(rng, originals: list[Item], counts: dict[str, int], locations: list[str]
                     ) -> list[Item]:
    """Pick originals to copy: exact copies of anything, near copies of photos only."""
    photos = [it for it in originals if it.kind in PHOTO_KINDS]
    dups: list[Item] = []
    for dkind in DUPLICATE_KINDS:
        pool = originals if dkind == "exact" else photos
        for _ in range(counts[dkind]):
            if not pool:
                break
            src = pool[int(rng.integers(len(pool)))]
            cross = rng.random() < (CROSS_POST_SHARE if dkind == "exact" else 1 - CROSS_POST_SHARE)
            others = [loc for loc in locations if loc != src.location]
            loc = others[int(rng.integers(len(others)))] if cross and others else src.location
            quality = src.quality
            if dkind == "reencode":  # clearly another quality: much lower, or much higher
                quality = max(30, src.quality - 30) if rng.random() < 0.7 else 95
            dups.append(Item(len(originals) + len(dups), src.kind, src.family, location=loc,
                             duplicate_of=src.index, duplicate_kind=dkind, quality=quality))
    return dups


def _plan_listings(rng, items: list[Item], locations: list[str], seed: int) -> list[Listing]:
    """Group each location's files (in random order) into listings of 1-8 images."""
    listings: list[Listing] = []
    used_ids: set[str] = set()
    by_location: dict[str, list[Item]] = {loc: [] for loc in locations}
    for i in rng.permutation(len(items)):
        by_location[items[i].location].append(items[i])
    for loc in locations:
        mine = by_location[loc]
        pos = 0
        while pos < len(mine):
            size = int(rng.integers(IMAGES_PER_LISTING[0], IMAGES_PER_LISTING[1] + 1))
            listing_id = str(int(rng.integers(7_000_000_000, 7_999_999_999)))
            while listing_id in used_ids:
                listing_id = str(int(rng.integers(7_000_000_000, 7_999_999_999)))
            used_ids.add(listing_id)
            for item in mine[pos:pos + size]:
                item.listing = len(listings)
            listings.append(Listing(listing_id, loc))
            pos += size
    _title_listings(rng, listings, seed)
    return listings


def _title_listings(rng, listings: list[Listing], seed: int) -> None:
    """Give listings titles, prices and posting times; one hostile and a few awkward titles."""
    special = {}
    if listings:
        slots = rng.permutation(len(listings))[: 1 + len(SPECIAL_TITLES)]
        special = dict(zip((int(s) for s in slots), (HOSTILE_TITLE, *SPECIAL_TITLES)))
    base = _EPOCH + timedelta(days=int(seed) % 365)
    for j, listing in enumerate(listings):
        unit, bedrooms = _TITLE_UNIT[int(rng.integers(len(_TITLE_UNIT)))]
        listing.title = special.get(j) or (
            f"{_TITLE_ADJ[int(rng.integers(len(_TITLE_ADJ)))]} {unit} "
            f"{_TITLE_FEATURE[int(rng.integers(len(_TITLE_FEATURE)))]}"
        )
        price = 1100 + 700 * bedrooms + int(rng.integers(-300, 900))
        listing.price = f"${25 * round(price / 25):,}"
        posted = base - timedelta(seconds=int(rng.integers(3600, 21 * 86400)))
        listing.posted = posted.isoformat()


def _name_files(rng, items: list[Item], width: int, height: int) -> None:
    """Craigslist-like file names, unique per location, carrying the image's real size."""
    taken: dict[str, set[str]] = {}
    for item in items:
        item.width, item.height = width, height
        if item.duplicate_kind == "resize":
            item.width, item.height = round(width * RESIZE_FACTOR), round(height * RESIZE_FACTOR)
        elif item.duplicate_kind == "crop":
            left, right, top, bottom = rng.uniform(*CROP_RANGE, 4)
            item.crop = (round(width * left), round(height * top),
                         width - round(width * right), height - round(height * bottom))
            item.width, item.height = item.crop[2] - item.crop[0], item.crop[3] - item.crop[1]
        names = taken.setdefault(item.location, set())
        name = _craigslist_name(rng, item.width, item.height)
        while name in names:
            name = _craigslist_name(rng, item.width, item.height)
        names.add(name)
        item.filename = name


# --------------------------------------------------------------------------------------------
# Rendering helpers: perspective walls, lighting, noise.
# --------------------------------------------------------------------------------------------

_FAR = 60.0  # how far rays are extended past the frame; Pillow clips polygons to the image


@dataclass(frozen=True, slots=True)
class Wall:
    """A wall seen in perspective: a vertical strip between two lines that meet at a vanishing
    point. ``u`` runs in screen x from the near edge (0) to the far edge (1), ``v`` from the top
    line (0) to the bottom line (1); quads built this way converge correctly."""

    x_near: float
    x_far: float
    top: tuple[float, float, float, float]
    bottom: tuple[float, float, float, float]

    @staticmethod
    def _y(line, x: float) -> float:
        x1, y1, x2, y2 = line
        return y1 if x2 == x1 else y1 + (y2 - y1) * (x - x1) / (x2 - x1)

    def at_x(self, x: float, v: float) -> tuple[float, float]:
        top, bot = self._y(self.top, x), self._y(self.bottom, x)
        return (x, top + v * (bot - top))

    def point(self, u: float, v: float) -> tuple[float, float]:
        return self.at_x(self.x_near + u * (self.x_far - self.x_near), v)

    def quad(self, u0: float, u1: float, v0: float, v1: float) -> list[tuple[float, float]]:
        return [self.point(u0, v0), self.point(u1, v0), self.point(u1, v1), self.point(u0, v1)]

    def quad_x(self, xa: float, xb: float, v0: float, v1: float) -> list[tuple[float, float]]:
        return [self.at_x(xa, v0), self.at_x(xb, v0), self.at_x(xb, v1), self.at_x(xa, v1)]


def _ray(vp, p, k: float = _FAR) -> tuple[float, float]:
    """The point ``k`` times farther from the vanishing point than ``p``: far outside the frame."""
    return (vp[0] + (p[0] - vp[0]) * k, vp[1] + (p[1] - vp[1]) * k)


def _rgb(color, gain: float = 1.0) -> tuple[int, int, int]:
    return tuple(int(max(0, min(255, round(c * gain)))) for c in color)


def _jitter_color(rng, color, amount: float = 6.0) -> tuple[int, int, int]:
    return _rgb(np.asarray(color, float) + rng.normal(0, amount, 3))


@lru_cache(maxsize=4)
def _noise_bank(width: int, height: int) -> Image.Image:
    """A fixed field of Gaussian noise around 128, twice the frame size, cropped at random
    offsets: drawing fresh noise per image would cost more than the whole rest of the render."""
    bank = np.random.default_rng(20240101).normal(128, NOISE_SIGMA, (2 * height, 2 * width, 3))
    return Image.fromarray(np.clip(bank, 0, 255).astype(np.uint8), "RGB")


def _add_noise(rng, img: Image.Image) -> Image.Image:
    """Sensor noise: add a random crop of the noise bank (centred on 128) to the image."""
    w, h = img.size
    x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
    noise = _noise_bank(w, h).crop((x, y, x + w, y + h))
    return ImageChops.add(img, noise, scale=1.0, offset=-128)


def _shade_field(rng, shape: tuple[int, int], cells: tuple[int, int], amp: float) -> np.ndarray:
    """A smooth random field of ``shape`` (rows, cols) with about ``amp`` standard deviation,
    varying over ``cells`` (cols, rows) blobs: a random coarse grid, bicubic-upsampled.

    Why: real rooms are never lit evenly (sun patches, shadows, reflections, uneven paint),
    and that unevenness is what makes two photos of similar rooms hash apart under dHash (a
    9x8 grid of "is the right cell brighter?" bits). Without it, flat walls of one family give
    the same bits in every image, and the de-duplication stage sees copies everywhere."""
    coarse = rng.normal(0.0, amp, (cells[1], cells[0])).astype(np.float32)
    field = Image.fromarray(coarse, "F").resize((shape[1], shape[0]), Image.Resampling.BICUBIC)
    return np.asarray(field)


def _light(img: Image.Image, sources, ambient: float, vignette: float,
           rng: np.random.Generator | None = None) -> Image.Image:
    """Multiply the image by a smooth light map: Gaussian pools of light around windows plus a
    lens vignette, computed on a 1/8 grid and scaled up (a full-size float map is too slow).

    With ``rng``, the light is also uneven the way real photos are: it comes from one side
    (a random tilt up to ``LIGHT_TILT``), the vignette is off-centre (the photo was cropped),
    and a smooth random field (``_shade_field``) adds sun patches and shadows. These decide
    the "is the right cell brighter?" bits of flat walls under dHash, so they must differ from
    image to image, or distinct rooms of one family hash as duplicates."""
    w, h = img.size
    gw, gh = max(2, w // 8), max(2, h // 8)
    ys, xs = np.ogrid[0:gh, 0:gw]
    xs = (xs + 0.5) * (w / gw)
    ys = (ys + 0.5) * (h / gh)
    level = np.full((gh, gw), ambient, np.float32)
    for sx, sy, sigma, amp in sources:
        level += amp * np.exp(-((xs - sx) ** 2 + (ys - sy) ** 2) / (2 * sigma * sigma))
    cx, cy = w / 2, h / 2
    if rng is not None:
        tx, ty = rng.uniform(-LIGHT_TILT, LIGHT_TILT, 2)
        level *= 1.0 + tx * (2 * xs / w - 1) + ty / 2 * (2 * ys / h - 1)
        level *= 1.0 + _shade_field(rng, (gh, gw), UNEVEN_CELLS, UNEVEN_LIGHT)
        cx, cy = cx + w * rng.uniform(-VIGNETTE_SHIFT, VIGNETTE_SHIFT), cy
    r2 = ((xs - cx) / (w / 2)) ** 2 + ((ys - cy) / (h / 2)) ** 2
    level *= 1.0 - vignette * r2 / 2
    gray = Image.fromarray(np.clip(level * 255, 0, 255).astype(np.uint8), "L")
    gray = gray.resize((w, h), Image.Resampling.BILINEAR)
    return ImageChops.multiply(img, Image.merge("RGB", (gray, gray, gray)))


def _uneven_paper(rng, img: Image.Image, amp: float) -> Image.Image:
    """Add a faint smooth random brightness field (``amp`` levels): a scanned or
    photographed flyer is never perfectly flat. Flat areas would otherwise give every graphic
    the same all-zero dHash bits, so all floor plans and ads would look like copies of one
    another; a few levels are enough for dHash and keep the histogram (entropy) narrow."""
    w, h = img.size
    field = _shade_field(rng, (max(2, h // 8), max(2, w // 8)), UNEVEN_CELLS, amp)
    gray = Image.fromarray(np.clip(np.rint(field + 128), 0, 255).astype(np.uint8), "L")
    gray = gray.resize((w, h), Image.Resampling.BILINEAR)
    return ImageChops.add(img, Image.merge("RGB", (gray, gray, gray)), scale=1.0, offset=-128)


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled default font at a size (no font files needed on the machine)."""
    return ImageFont.load_default(size=max(6, size))


# --------------------------------------------------------------------------------------------
# Interiors.
# --------------------------------------------------------------------------------------------

#: Room layouts. One-point: back wall box (x0, y0, x1, y1) and vanishing point (fractions of the
#: frame). Two-point: corner x, corner top/bottom y, horizon y, vanishing points' x (far outside).
#: Openings: (wall, u0, u1, v0, v1) with walls "back", "left", "right"; doors reach the floor.
_LAYOUTS = (
    dict(mode="one", box=(0.30, 0.28, 0.70, 0.66), vp=(0.50, 0.45),
         windows=[("back", 0.22, 0.78, 0.18, 0.72)], doors=[]),
    dict(mode="one", box=(0.08, 0.30, 0.46, 0.70), vp=(0.30, 0.48),
         windows=[("right", 0.25, 0.70, 0.22, 0.62)], doors=[("back", 0.55, 0.85)]),
    dict(mode="one", box=(0.55, 0.22, 0.92, 0.62), vp=(0.72, 0.40),
         windows=[("left", 0.20, 0.55, 0.20, 0.65), ("left", 0.65, 0.90, 0.20, 0.65)],
         doors=[("back", 0.15, 0.45)]),
    dict(mode="one", box=(0.40, 0.36, 0.60, 0.56), vp=(0.50, 0.45),
         windows=[("left", 0.30, 0.70, 0.20, 0.65), ("right", 0.30, 0.70, 0.20, 0.65)],
         doors=[("back", 0.30, 0.70)]),
    dict(mode="two", corner=(0.38, 0.20, 0.74), horizon=0.46, vps=(-1.6, 2.6),
         windows=[("left", 0.20, 0.65, 0.22, 0.60)], doors=[("right", 0.55, 0.75)]),
    dict(mode="two", corner=(0.64, 0.24, 0.70), horizon=0.45, vps=(-1.4, 2.4),
         windows=[("right", 0.15, 0.45, 0.18, 0.70), ("right", 0.60, 0.85, 0.18, 0.70)],
         doors=[]),
    dict(mode="one", box=(0.22, 0.10, 0.78, 0.48), vp=(0.50, 0.30),
         windows=[("back", 0.35, 0.65, 0.15, 0.60)], doors=[("right", 0.40, 0.62)]),
    dict(mode="one", box=(0.15, 0.42, 0.85, 0.86), vp=(0.50, 0.60),
         windows=[("left", 0.30, 0.70, 0.20, 0.58)], doors=[("back", 0.70, 0.85)]),
)

#: Palettes with different brightness structure: (walls, ceiling, floor, floor texture, trim,
#: door). Even ones are light walls on a dark floor, odd ones dark walls on a light floor.
_PALETTES = (
    dict(wall=(236, 230, 216), ceiling=(244, 242, 236), floor=(112, 74, 44), texture="wood",
         trim=(250, 250, 248), door=(140, 100, 70)),
    dict(wall=(92, 106, 122), ceiling=(214, 214, 210), floor=(214, 208, 196), texture="tile",
         trim=(230, 230, 226), door=(236, 234, 228)),
    dict(wall=(214, 200, 172), ceiling=(236, 232, 222), floor=(86, 80, 78), texture="carpet",
         trim=(246, 244, 240), door=(120, 84, 56)),
    dict(wall=(120, 90, 84), ceiling=(226, 222, 214), floor=(200, 166, 122), texture="wood",
         trim=(236, 232, 226), door=(226, 222, 214)),
)

#: 16 families: every layout with one light-wall and one dark-wall palette.
INTERIOR_FAMILIES = tuple(
    (layout, 2 * (layout % 2) + variant) for layout in range(len(_LAYOUTS)) for variant in (0, 1)
)


def _room_walls(rng, layout, w: int, h: int, vp_shift: float = 0.0):
    """Walls of a jittered room layout, plus the vanishing point(s) for floor textures.

    ``vp_shift`` moves the camera sideways and up/down within the room (the vanishing point
    moves over the back wall, as a fraction of its size): the room is the same, the wall and
    floor edges cross the frame elsewhere, as in two photos of one room from two spots."""
    jx, jy = rng.normal(0, 0.018, 2)
    sx, sy = rng.normal(0, vp_shift, 2)
    if layout["mode"] == "one":
        scale = 1 + rng.normal(0, 0.035)
        x0, y0, x1, y1 = layout["box"]
        cx, cy = (x0 + x1) / 2 + jx, (y0 + y1) / 2 + jy
        x0, x1 = cx + (x0 - cx + jx) * scale, cx + (x1 - cx + jx) * scale
        y0, y1 = cy + (y0 - cy + jy) * scale, cy + (y1 - cy + jy) * scale
        x0, x1, y0, y1 = x0 * w, x1 * w, y0 * h, y1 * h
        vx = (layout["vp"][0] + jx) * w + sx * (x1 - x0)
        vy = (layout["vp"][1] + jy) * h + sy * (y1 - y0)
        vx, vy = min(max(vx, x0 + 4), x1 - 4), min(max(vy, y0 + 4), y1 - 4)
        walls = {
            "back": Wall(x0, x1, (x0, y0, x1, y0), (x0, y1, x1, y1)),
            "left": Wall(-2, x0, (vx, vy, x0, y0), (vx, vy, x0, y1)),
            "right": Wall(w + 2, x1, (vx, vy, x1, y0), (vx, vy, x1, y1)),
        }
        return walls, ("one", (vx, vy))
    cxf, ct, cb = layout["corner"]
    cx, ct, cb = (cxf + jx) * w, (ct + jy) * h, (cb + jy) * h
    hy = (layout["horizon"] + jy + sy * 0.3) * h
    vl, vr = ((layout["vps"][0] + sx) * w, hy), ((layout["vps"][1] + sx) * w, hy)
    walls = {
        "left": Wall(-2, cx, (vr[0], vr[1], cx, ct), (vr[0], vr[1], cx, cb)),
        "right": Wall(w + 2, cx, (vl[0], vl[1], cx, ct), (vl[0], vl[1], cx, cb)),
    }
    return walls, ("two", (vl, vr))


def _bottom_edge(walls, w: int) -> list[tuple[float, float]]:
    """The floor line across the frame, left to right (walls' bottom edges are x-monotone)."""
    pts = []
    for wall in walls.values():
        pts += [wall.point(0, 1), wall.point(1, 1)]
    return sorted(set(pts))


def _draw_floor_texture(draw, rng, texture: str, floor_rgb, walls, view, w: int, h: int) -> None:
    """Planks or tiles that converge on the vanishing point; carpet stays plain (noise does it)."""
    if texture == "carpet":
        return
    mode, vps = view
    if mode == "one":
        back = walls["back"]
        x0, x1, y1 = back.x_near, back.x_far, back.point(0, 1)[1]
        vp = vps
        n = int(rng.integers(7, 10)) if texture == "wood" else 6
        xs = np.linspace(x0, x1, n + 1)
        starts = [(x, y1) for x in xs]
    else:
        vp = vps[1]  # boards run parallel to the left wall, towards the right vanishing point
        right = walls["right"]
        n = 12
        starts = [right.point(1 - t, 1) for t in np.linspace(-0.2, 1.6, n + 1)]
    for j in range(len(starts) - 1):
        a, b = starts[j], starts[j + 1]
        shade = 1.0 + (0.07 if j % 2 else -0.07) + rng.normal(0, 0.03)
        draw.polygon([a, _ray(vp, a), _ray(vp, b), b], fill=_rgb(floor_rgb, shade))
        draw.line([a, _ray(vp, a)], fill=_rgb(floor_rgb, 0.65), width=1)
    if texture == "tile" and mode == "one":
        y_back = starts[0][1]
        for z in (0.8, 0.62, 0.48, 0.37, 0.28, 0.21, 0.16, 0.12):
            y = vps[1] + (y_back - vps[1]) / z
            if y > h:
                break
            draw.line([(-2, y), (w + 2, y)], fill=_rgb(floor_rgb, 0.7), width=2)


def _window(draw, quad, frame_rgb, rng, mullions: int = 1) -> None:
    """A bright window with frame and mullions, drawn after the light map so it stays bright."""
    sky = _rgb((226, 236, 246), 1 + rng.normal(0, 0.02))
    draw.polygon(quad, fill=frame_rgb)
    inset = _shrink(quad, 0.08)
    draw.polygon(inset, fill=sky)
    # A darker lower band: trees or the building across the street.
    lower = [_lerp(inset[3], inset[0], 0.35), _lerp(inset[2], inset[1], 0.35), inset[2], inset[3]]
    draw.polygon(lower, fill=_rgb((150, 170, 160), 1 + rng.normal(0, 0.05)))
    for k in range(1, mullions + 1):
        t = k / (mullions + 1)
        draw.line([_lerp(inset[0], inset[1], t), _lerp(inset[3], inset[2], t)],
                  fill=frame_rgb, width=3)
    draw.line([_lerp(inset[0], inset[3], 0.5), _lerp(inset[1], inset[2], 0.5)],
              fill=frame_rgb, width=3)


def _lerp(a, b, t: float) -> tuple[float, float]:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def _shrink(quad, t: float) -> list[tuple[float, float]]:
    cx = sum(p[0] for p in quad) / 4
    cy = sum(p[1] for p in quad) / 4
    return [(p[0] + (cx - p[0]) * t * 2, p[1] + (cy - p[1]) * t * 2) for p in quad]


def render_interior(rng: np.random.Generator, family: str, width: int, height: int) -> Image.Image:
    """An empty room of one family, jittered (camera, window size, light)."""
    layout_i, palette_i = INTERIOR_FAMILIES[int(family.rsplit("-", 1)[1]) % len(INTERIOR_FAMILIES)]
    layout, pal = _LAYOUTS[layout_i], _PALETTES[palette_i]
    w, h = width, height
    walls, view = _room_walls(rng, layout, w, h, vp_shift=INTERIOR_VP_SHIFT)
    wall_rgb = _jitter_color(rng, pal["wall"], 10)
    floor_rgb = _jitter_color(rng, pal["floor"], 10)
    ceil_rgb = _jitter_color(rng, pal["ceiling"], 4)
    img = Image.new("RGB", (w, h), ceil_rgb)
    draw = ImageDraw.Draw(img)
    big = 50.0 * h
    bottom = _bottom_edge(walls, w)
    draw.polygon(bottom + [(bottom[-1][0], big), (bottom[0][0], big)], fill=floor_rgb)
    _draw_floor_texture(draw, rng, pal["texture"], floor_rgb, walls, view, w, h)
    window_walls = {o[0] for o in layout["windows"]}
    for name, wall in walls.items():
        gain = 0.80 if name in window_walls else 0.95
        gain *= 1.0 if name == "back" else (0.92 if name == "left" else 0.86)
        draw.polygon(wall.quad(0, 1, 0, 1), fill=_rgb(wall_rgb, gain))
        draw.polygon(wall.quad(0, 1, 0.955, 1), fill=_rgb(pal["trim"], gain))
        draw.line([wall.point(0, 0), wall.point(1, 0)], fill=_rgb(ceil_rgb, 0.9), width=2)
    for name, u0, u1 in layout["doors"]:
        wall, du = walls[name], rng.normal(0, 0.05)
        u0, u1 = max(0.02, u0 + du), min(0.98, u1 + du)
        door = wall.quad(u0, u1, 0.22, 1)
        draw.polygon(door, fill=_rgb(pal["trim"], 0.9))
        draw.polygon(_shrink(door, 0.06), fill=_rgb(pal["door"], 0.95))
    lights = []
    grow = 1 + rng.normal(0, 0.06)
    for name, u0, u1, v0, v1 in layout["windows"]:
        wall = walls[name]
        cu, cv = (u0 + u1) / 2 + rng.normal(0, 0.05), (v0 + v1) / 2
        du, dv = (u1 - u0) / 2 * grow, (v1 - v0) / 2 * grow
        v0, v1 = max(0.05, cv - dv), min(0.93, cv + dv)
        if rng.random() < WINDOW_SPLIT:  # two narrower windows with wall between
            gap = du * 0.2
            lights += [wall.quad(cu - du, cu - gap, v0, v1), wall.quad(cu + gap, cu + du, v0, v1)]
        else:
            lights.append(wall.quad(cu - du, cu + du, v0, v1))
    # Light: pools around the windows, then the windows themselves drawn bright on top.
    strength = 0.55 + rng.normal(0, 0.06)
    sources = []
    for quad in lights:
        cx = sum(p[0] for p in quad) / 4
        cy = sum(p[1] for p in quad) / 4
        sources.append((cx, cy, 0.42 * w, strength / len(lights) ** 0.5))
    img = _light(img, sources, ambient=0.52 + rng.normal(0, 0.03), vignette=0.3, rng=rng)
    draw = ImageDraw.Draw(img)
    for quad in lights:
        _window(draw, quad, _rgb(pal["trim"]), rng, mullions=1)
    return _add_noise(rng, img)


# --------------------------------------------------------------------------------------------
# Hallways and exteriors.
# --------------------------------------------------------------------------------------------

_HALLWAYS = (
    dict(box=(0.44, 0.34, 0.56, 0.52), end="window", doors=("left", "right"),
         wall=(224, 218, 204), floor=(120, 60, 52)),
    dict(box=(0.46, 0.36, 0.54, 0.50), end="door", doors=("left",),
         wall=(200, 206, 210), floor=(70, 74, 86)),
    dict(box=(0.30, 0.30, 0.42, 0.50), end="window", doors=("right",),
         wall=(170, 150, 120), floor=(160, 130, 96)),
)


def render_hallway(rng: np.random.Generator, family: str, width: int, height: int) -> Image.Image:
    """A long corridor in deep one-point perspective with doors along the walls."""
    spec = _HALLWAYS[int(family.rsplit("-", 1)[1]) % len(_HALLWAYS)]
    w, h = width, height
    layout = dict(mode="one", box=spec["box"], vp=((spec["box"][0] + spec["box"][2]) / 2,
                                                   (spec["box"][1] + spec["box"][3]) / 2))
    walls, view = _room_walls(rng, layout, w, h, vp_shift=HALLWAY_VP_SHIFT)
    vx, vy = view[1]
    wall_rgb, floor_rgb = _jitter_color(rng, spec["wall"]), _jitter_color(rng, spec["floor"])
    img = Image.new("RGB", (w, h), _rgb(wall_rgb, 1.05))
    draw = ImageDraw.Draw(img)
    bottom = _bottom_edge(walls, w)
    draw.polygon(bottom + [(bottom[-1][0], 50.0 * h), (bottom[0][0], 50.0 * h)], fill=floor_rgb)
    back = walls["back"]
    x0, x1 = back.x_near, back.x_far
    y0, y1 = back.point(0, 0)[1], back.point(0, 1)[1]
    # A runner down the middle of the floor.
    a, b = (vx - (x1 - x0) * 0.18, y1), (vx + (x1 - x0) * 0.18, y1)
    draw.polygon([a, _ray((vx, vy), a), _ray((vx, vy), b), b], fill=_rgb(floor_rgb, 1.35))
    for name in ("left", "right"):
        wall = walls[name]
        draw.polygon(wall.quad(0, 1, 0, 1), fill=_rgb(wall_rgb, 0.9 if name == "left" else 0.8))
        draw.polygon(wall.quad(0, 1, 0.95, 1), fill=_rgb(wall_rgb, 0.6))
    draw.polygon(back.quad(0, 1, 0, 1), fill=_rgb(wall_rgb, 0.7))
    step = 1.45 + rng.normal(0, 0.05)
    for name in spec["doors"]:
        wall = walls[name]
        edge = x0 if name == "left" else x1
        z = 1.15
        while True:
            xa, xb = vx + (edge - vx) * z, vx + (edge - vx) * z * 1.28
            if min(xa, xb) > w + 2 or max(xa, xb) < -2:
                break
            door = wall.quad_x(xa, xb, 0.25, 1.0)
            draw.polygon(door, fill=_rgb(wall_rgb, 0.45))
            draw.polygon(_shrink(door, 0.07), fill=_rgb((110, 76, 50), 1 + rng.normal(0, 0.05)))
            z *= step
    img = _light(img, [(vx, vy, 0.30 * w, 0.35)], ambient=0.62 + rng.normal(0, 0.03), vignette=0.4,
                 rng=rng)
    draw = ImageDraw.Draw(img)
    # Ceiling lamps at growing depth, bright after lighting.
    for z in (1.2, 1.6, 2.3, 3.4, 5.2):
        yc = vy + (y0 - vy) * z * 0.92
        half = (x1 - x0) * 0.10 * z
        if yc < -10:
            break
        draw.ellipse([vx - half, yc - half * 0.25, vx + half, yc + half * 0.25],
                     fill=(252, 250, 236))
    if spec["end"] == "window":
        _window(draw, back.quad(0.2, 0.8, 0.12, 0.8), (230, 230, 226), rng)
    else:
        draw.polygon(back.quad(0.25, 0.75, 0.2, 1.0), fill=(70, 48, 34))
    return _add_noise(rng, img)


def render_exterior(rng: np.random.Generator, family: str, width: int, height: int) -> Image.Image:
    """A building seen from the street: sky, facade with rows of windows, ground, maybe trees."""
    variant = int(family.rsplit("-", 1)[1]) % 3
    w, h = width, height
    sky = _jitter_color(rng, (150, 190, 230), 8)
    img = Image.new("RGB", (w, h), sky)
    draw = ImageDraw.Draw(img)
    ground_y = h * (0.80 + rng.normal(0, 0.015))
    draw.rectangle([0, ground_y, w, h], fill=_jitter_color(rng, (96, 96, 100)))
    draw.rectangle([0, ground_y, w, ground_y + h * 0.04], fill=_jitter_color(rng, (180, 176, 170)))
    wall = _jitter_color(rng, ((196, 150, 120), (222, 214, 196), (150, 160, 170))[variant])
    glass = _jitter_color(rng, (54, 66, 80))
    if variant == 2:  # a corner building: each face recedes towards its own vanishing point
        cx, ct, cb, hy = w * (0.45 + rng.normal(0, 0.02)), h * 0.10, ground_y, h * 0.72
        vl, vr = (-1.2 * w, hy), (2.2 * w, hy)
        faces = (
            (Wall(cx, -2, (vl[0], vl[1], cx, ct), (vl[0], vl[1], cx, cb)), 1.0),
            (Wall(cx, w + 2, (vr[0], vr[1], cx, ct), (vr[0], vr[1], cx, cb)), 0.72),
        )
        for face, gain in faces:
            draw.polygon(face.quad(0, 1, 0, 1), fill=_rgb(wall, gain))
            for r in range(5):
                for c in range(4):
                    u0, v0 = 0.08 + c * 0.22, 0.06 + r * 0.17
                    pane = _rgb(glass, gain * rng.uniform(0.7, 1.8))  # blinds, curtains, sky
                    draw.polygon(face.quad(u0, u0 + 0.13, v0, v0 + 0.1), fill=pane)
    else:
        top = h * ((0.18, 0.30)[variant] + rng.normal(0, 0.02))
        left, right = w * (0.06 + rng.normal(0, 0.02)), w * (0.94 + rng.normal(0, 0.02))
        draw.rectangle([left, top, right, ground_y], fill=wall)
        if variant == 1:  # a gable roof and siding lines
            draw.polygon([(left - 10, top), ((left + right) / 2, top - h * 0.2), (right + 10, top)],
                         fill=_jitter_color(rng, (90, 60, 50)))
            for y in np.arange(top + 6, ground_y, 7):
                draw.line([(left, y), (right, y)], fill=_rgb(wall, 0.85))
        rows, cols = ((4, 6), (2, 3))[variant]
        cw, rh = (right - left) / cols, (ground_y - top) / rows
        for r in range(rows):
            for c in range(cols):
                bx, by = left + c * cw + cw * 0.22, top + r * rh + rh * 0.18
                draw.rectangle([bx - 3, by - 3, bx + cw * 0.56 + 3, by + rh * 0.6 + 3],
                               fill=_rgb(wall, 1.15))
                pane = _rgb(glass, rng.uniform(0.7, 1.8))  # blinds, curtains, reflections
                draw.rectangle([bx, by, bx + cw * 0.56, by + rh * 0.6], fill=pane)
                draw.rectangle([bx, by, bx + cw * 0.56, by + rh * 0.2], fill=_rgb(pane, 1.6))
    for _ in range(int(rng.integers(0, 3)) if variant != 0 else 0):  # trees
        tx, tr = rng.uniform(0, w), rng.uniform(0.08, 0.14) * h
        ty = ground_y - rng.uniform(0.1, 0.25) * h
        draw.rectangle([tx - tr * 0.12, ty, tx + tr * 0.12, ground_y], fill=(70, 50, 36))
        for _k in range(5):
            ox, oy = rng.normal(0, tr * 0.5, 2)
            draw.ellipse([tx + ox - tr, ty + oy - tr, tx + ox + tr, ty + oy + tr],
                         fill=_jitter_color(rng, (60, 100, 50), 12))
    sun = (w * rng.uniform(0.1, 0.9), 0, 0.5 * w, 0.35)
    img = _light(img, [sun], ambient=0.66 + rng.normal(0, 0.03), vignette=0.5, rng=rng)
    return _add_noise(rng, img)


# --------------------------------------------------------------------------------------------
# Graphics: floor plans and ads (flat, low entropy, no noise).
# --------------------------------------------------------------------------------------------

#: Floor plans as rooms (x0, y0, x1, y1, label) on a unit square.
_PLANS = (
    [(0, 0, 0.68, 1, "STUDIO"), (0.68, 0, 1, 0.45, "BATH"), (0.68, 0.45, 1, 1, "KITCHEN")],
    [(0, 0, 0.55, 0.6, "LIVING"), (0.55, 0, 1, 0.6, "BEDROOM"), (0, 0.6, 0.4, 1, "KITCHEN"),
     (0.4, 0.6, 0.7, 1, "BATH"), (0.7, 0.6, 1, 1, "CLOSET")],
    [(0, 0, 0.34, 0.5, "BEDROOM 1"), (0.34, 0, 0.66, 0.5, "LIVING"), (0.66, 0, 1, 0.5, "BEDROOM 2"),
     (0, 0.5, 0.3, 1, "BATH"), (0.3, 0.5, 0.75, 1, "KITCHEN"), (0.75, 0.5, 1, 1, "DINING")],
)


def _vary_plan(rng, rooms):
    """Another unit of the same plan: mirrored or not, inner walls moved a little (shared walls
    move together). Units of one building differ like this, and so do their dHashes."""
    moves = {}

    def move(t: float) -> float:
        if t in (0, 1):
            return t
        return moves.setdefault(t, t + rng.uniform(-0.05, 0.05))

    mirror = rng.random() < 0.5
    out = []
    for x0, y0, x1, y1, label in rooms:
        x0, x1 = (1 - x1, 1 - x0) if mirror else (x0, x1)
        out.append((move(x0), move(y0), move(x1), move(y1), label))
    return out


def render_floorplan(rng: np.random.Generator, family: str, width: int, height: int) -> Image.Image:
    """A black-on-white floor plan with wall lines, door gaps, room labels and sizes."""
    rooms = _vary_plan(rng, _PLANS[int(family.rsplit("-", 1)[1]) % len(_PLANS)])
    w, h = width, height
    img = Image.new("RGB", (w, h), (PAPER_WHITE,) * 3)
    draw = ImageDraw.Draw(img)
    mx, my = w * (0.08 + rng.uniform(0, 0.04)), h * (0.12 + rng.uniform(0, 0.04))
    pw, ph = w - 2 * mx, h - 1.6 * my
    thick = max(2, round(w / 100))
    font = _font(round(h / 28))
    draw.text((mx, my * 0.25), "FLOOR PLAN - UNIT " + "ABCDEF"[int(rng.integers(6))]
              + str(int(rng.integers(1, 9))), fill=(0, 0, 0), font=_font(round(h / 20)))
    for x0, y0, x1, y1, label in rooms:
        box = [mx + x0 * pw, my + y0 * ph, mx + x1 * pw, my + y1 * ph]
        draw.rectangle(box, outline=(0, 0, 0), width=thick)
        # A door gap with its swing arc on the room's bottom or left wall.
        gap = min(box[2] - box[0], box[3] - box[1]) * 0.25
        gx = box[0] + (box[2] - box[0]) * rng.uniform(0.2, 0.6)
        draw.line([(gx, box[3]), (gx + gap, box[3])], fill=(PAPER_WHITE,) * 3, width=thick + 2)
        draw.arc([gx - gap, box[3] - gap, gx + gap, box[3] + gap], 180, 270, fill=(0, 0, 0))
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        feet_x = int((x1 - x0) * 30 + rng.integers(0, 3))
        feet_y = int((y1 - y0) * 24 + rng.integers(0, 3))
        feet = f"{feet_x}'x{feet_y}'"
        draw.text((cx, cy - h * 0.02), label, fill=(0, 0, 0), font=font, anchor="mm")
        draw.text((cx, cy + h * 0.03), feet, fill=(60, 60, 60), font=font, anchor="mm")
    return _uneven_paper(rng, img, GRAPHIC_UNEVEN)


_ADS = (
    dict(bg=(200, 30, 40), fg=(255, 255, 255), lines=("NOW LEASING", "{phone}", "1 MONTH FREE")),
    dict(bg=(20, 60, 120), fg=(255, 220, 0), lines=("MOVE-IN SPECIAL", "$500 OFF", "{phone}")),
    dict(bg=(245, 240, 225), fg=(20, 20, 20), lines=("APARTMENTS", "FOR RENT", "{phone}")),
)


def render_ad(rng: np.random.Generator, family: str, width: int, height: int) -> Image.Image:
    """A flat-colour leasing flyer with big text and a phone number."""
    spec = _ADS[int(family.rsplit("-", 1)[1]) % len(_ADS)]
    w, h = width, height
    img = Image.new("RGB", (w, h), spec["bg"])
    draw = ImageDraw.Draw(img)
    band = h * rng.uniform(0.62, 0.72)
    draw.rectangle([0, band, w, h], fill=spec["fg"])
    phone = f"({int(rng.integers(200, 999))}) 555-{int(rng.integers(0, 10000)):04d}"
    sizes = (round(h / 7), round(h / 9), round(h / 11))
    y = h * 0.18
    for line, size in zip(spec["lines"][:2], sizes):
        draw.text((w / 2, y), line.format(phone=phone), fill=spec["fg"], font=_font(size),
                  anchor="mm")
        y += h * 0.22
    draw.text((w / 2, (band + h) / 2), spec["lines"][2].format(phone=phone), fill=spec["bg"],
              font=_font(sizes[2]), anchor="mm")
    return _uneven_paper(rng, img, AD_UNEVEN)


RENDERERS = {
    "interior": render_interior, "hallway": render_hallway, "exterior": render_exterior,
    "floorplan": render_floorplan, "ad": render_ad,
}


# --------------------------------------------------------------------------------------------
# Bytes: originals, duplicates, broken files.
# --------------------------------------------------------------------------------------------


def _item_rng(seed: int, index: int) -> np.random.Generator:
    """Each file has its own random stream, so it renders the same whatever else is generated."""
    return np.random.default_rng([int(seed), int(index), 0x5EED])


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(quality))
    return buf.getvalue()


def render_original(kind: str, family: str, seed: int, index: int, width: int, height: int,
                    quality: int) -> bytes:
    """JPEG bytes of one original image: a pure function of its arguments."""
    return _jpeg(RENDERERS[kind](_item_rng(seed, index), family, width, height), quality)


def derive_duplicate(original: bytes, duplicate_kind: str, quality: int,
                     size: tuple[int, int], crop: tuple[int, int, int, int]) -> bytes:
    """Bytes of a copy of ``original``: identical, re-encoded at ``quality``, resized to
    ``size`` or cropped to the box ``crop`` (a few percent per side)."""
    if duplicate_kind == "exact":
        return original
    img = Image.open(io.BytesIO(original))
    img.load()
    if duplicate_kind == "resize":
        img = img.resize(size, Image.Resampling.LANCZOS)
    elif duplicate_kind == "crop":
        img = img.crop(crop)
    elif duplicate_kind != "reencode":
        raise ValueError(f"unknown duplicate kind {duplicate_kind!r}")
    return _jpeg(img, quality)


def broken_bytes(family: str, seed: int, index: int, width: int, height: int) -> bytes:
    """What a failed download leaves: nothing, a cut-off JPEG, or an HTML error page."""
    kind = family.removeprefix("broken-")
    if kind == "empty":
        return b""
    if kind == "truncated":
        data = render_original("interior", "interior-00", seed, index, width, height, 80)
        return data[: len(data) * 2 // 5]
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>blocked</title></head>\n"
        f"<body><p>This IP has been automatically blocked.</p><!-- ref {seed}-{index} -->"
        "</body></html>\n"
    ).encode()


# --------------------------------------------------------------------------------------------
# Writing the corpus.
# --------------------------------------------------------------------------------------------


def _slug(title: str) -> str:
    """Craigslist-style URL slug: ASCII words joined by dashes."""
    ascii_ = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-") or "apartment"


def _write_file(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _render_all(items: list[Item], raw_dir: Path, seed: int, width: int, height: int) -> None:
    """Write originals, then duplicates (read back from their originals), then broken files;
    memory stays flat because nothing but file names and hashes is kept."""
    progress = Progress("demo corpus", len(items), logger=log)
    by_index = {item.index: item for item in items}
    order = sorted(items, key=lambda it: (it.kind == "broken", it.duplicate_of >= 0, it.index))
    for item in order:
        if item.kind == "broken":
            data = broken_bytes(item.family, seed, item.index, width, height)
        elif item.duplicate_of >= 0:
            src = by_index[item.duplicate_of]
            original = (raw_dir / src.location / src.filename).read_bytes()
            data = derive_duplicate(original, item.duplicate_kind, item.quality,
                                    (item.width, item.height), item.crop)
        else:
            data = render_original(item.kind, item.family, seed, item.index, width, height,
                                   item.quality)
        _write_file(raw_dir / item.location / item.filename, data)
        item.nbytes, item.sha256 = len(data), hashlib.sha256(data).hexdigest()
        progress.update()
    progress.finish()


def _manifest_rows(mine: list[Item], listings: list[Listing], location: str, seed: int):
    """Manifest rows of one location in listing order, with plausible fake URLs and times."""
    mine = sorted(mine, key=lambda it: (it.listing, it.index))
    fetched = _EPOCH + timedelta(days=int(seed) % 365, hours=2)
    rng = np.random.default_rng([seed, sum(location.encode()), len(location)])
    for item in mine:
        listing = listings[item.listing]
        fetched += timedelta(seconds=int(rng.integers(1, 4)))
        yield {
            "filename": item.filename,
            "image_url": f"https://images.craigslist.org/{item.filename}",
            "listing_url": f"https://{location}.craigslist.org/apa/d/{_slug(listing.title)}/"
                           f"{listing.listing_id}.html",
            "listing_id": listing.listing_id,
            "title": listing.title,
            "price": listing.price,
            "posted": listing.posted,
            "state": STATES.get(location, DEFAULT_STATE),
            "bytes": item.nbytes,
            "sha256": item.sha256,
            "fetched_at": fetched.isoformat(),
        }


def _truth_rows(items: list[Item], listings: list[Listing], locations: list[str]):
    by_index = {item.index: item for item in items}
    rank = {loc: j for j, loc in enumerate(locations)}
    for item in sorted(items, key=lambda it: (rank[it.location], it.listing, it.index)):
        src = by_index.get(item.duplicate_of)
        yield {
            "id": image_id(item.location, item.filename),
            "location": item.location,
            "filename": item.filename,
            "kind": item.kind,
            "family": item.family,
            "duplicate_of": image_id(src.location, src.filename) if src else "",
            "duplicate_kind": item.duplicate_kind,
            "listing_id": listings[item.listing].listing_id,
        }


def generate_corpus(raw_dir, truth_csv, locations: list[str], n_images: int, seed: int,
                    width: int = 600, height: int = 450) -> dict:
    """Write a synthetic scrape of ``n_images`` files over ``locations`` and its ground truth.

    Returns counts: files per truth ``kind`` (duplicates count under their original's kind;
    these add to n), ``duplicate`` and ``duplicate_<kind>`` for the copies, ``listings`` and
    ``total``. Manifests are written last, so a folder with a manifest is complete.
    """
    locations = _check_locations(list(locations))
    if width < 32 or height < 32:
        raise ValueError(f"image size {width}x{height} is too small to draw rooms in")
    raw_dir = Path(raw_dir)
    items, listings = plan_corpus(locations, int(n_images), int(seed), width, height)
    for loc in locations:
        stale = [p.name for p in (raw_dir / loc).glob("*") if p.name != "manifest.csv"] \
            if (raw_dir / loc).is_dir() else []
        if stale:
            log.warning("%s already holds %d files; files not in the new manifest stay there",
                        raw_dir / loc, len(stale))
    _render_all(items, raw_dir, int(seed), width, height)
    by_location: dict[str, list[Item]] = {loc: [] for loc in locations}
    for item in items:
        by_location[item.location].append(item)
    for loc in locations:
        rows = _manifest_rows(by_location[loc], listings, loc, int(seed))
        write_csv(raw_dir / loc / "manifest.csv", rows, MANIFEST_COLUMNS, prov=None)
    write_csv(truth_csv, _truth_rows(items, listings, locations), TRUTH_COLUMNS, prov=None)
    counts = {kind: 0 for kind in KINDS}
    counts.update({"duplicate": 0, **{f"duplicate_{k}": 0 for k in DUPLICATE_KINDS}})
    for item in items:
        counts[item.kind] += 1
        if item.duplicate_kind:
            counts["duplicate"] += 1
            counts[f"duplicate_{item.duplicate_kind}"] += 1
    counts["listings"], counts["total"] = len(listings), len(items)
    log.info("demo corpus: %s", json.dumps(counts))
    return counts


def main(argv: list[str] | None = None) -> int:
    """``python -m vacancy.sources.demo --raw-dir D --truth F --n N --seed S --locations a b c``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw-dir", required=True, type=Path)
    parser.add_argument("--truth", required=True, type=Path)
    parser.add_argument("--n", required=True, type=int, help="number of files in total")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--locations", nargs="+", default=["sfbay"])
    parser.add_argument("--width", type=int, default=600)
    parser.add_argument("--height", type=int, default=450)
    parser.add_argument("--log", type=Path, default=None, help="also log to this file")
    args = parser.parse_args(argv)
    setup_logging(args.log)
    counts = generate_corpus(args.raw_dir, args.truth, args.locations, args.n, args.seed,
                             args.width, args.height)
    print(json.dumps(counts, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
