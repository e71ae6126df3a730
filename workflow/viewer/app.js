/*
 * vacancy map viewer: a Leaflet tile map of listing photos, one photo per grid cell.
 *
 * Plain script, no build step. It reads map.json (written by vacancy.map.viewer), shows the tile
 * pyramid in L.CRS.Simple (from the z/x/y folder, or from one PMTiles archive through the
 * pmtiles reader), and fetches everything per image lazily: the records of a block of cells on
 * a click, the cells of a location on a search, one hash bucket of ids on a jump. Past the
 * pyramid's top the original photos of the cells in view are laid over their cells.
 *
 * Culling: a mode where click / shift-click / drag-a-rectangle select cells, which can be marked
 * excluded (dimmed) and exported as the workflow's exclude file (one id per line, # comments)
 * or as a CSV; an existing exclude file can be loaded to show what is already out.
 *
 * Research: a filter (price and date ranges with histograms, location / state / class / region
 * lists) dims the cells that do not match, from compact per-cell field arrays fetched on first
 * use (fields/*.bin); statistics of the selection or the lit cells; a lasso and "select
 * matching"; export of the selection as CSV; region labels at low zoom; a minimap and legend.
 *
 * Listing text comes from scraped pages and is untrusted: it is only ever inserted with
 * textContent, and links are only made for http(s) URLs.
 *
 * The pure functions are exported for Node so their arithmetic can be tested without a browser.
 * The browser part is one factory per feature (view/URL, inspect, originals, find, cull, export)
 * around one shared state object; init only composes them (see "feature factories" below).
 */
(function (root, factory) {
  "use strict";
  var api = factory();
  if (typeof module === "object" && module.exports) {
    module.exports = api;
  } else {
    root.vacancy = api;
  }
  if (typeof window !== "undefined" && window.L && typeof document !== "undefined") {
    api.start();
  }
})(this, function () {
  "use strict";

  /** Default zoom levels past the deepest tiles when map.json does not say (older sites). */
  var EXTRA_ZOOM = 2;
  /** Original photos are overlaid only when at most this many cells are in view. */
  var MAX_ORIGINALS = 64;
  /** Region labels show only while a cell is at most this many screen pixels wide. */
  var LABEL_MAX_CELL_PX = 32;
  /** The pane of the cell marks and the dimming: above the originals laid over the tiles past
   * the pyramid's top (overlayPane, 400), below the labels (markerPane, 600). */
  var MARKS_PANE = "vacancy-marks";

  // ------------------------------------------------------------------------ pure functions

  /** Map pixel at max zoom -> [lat, lng] in CRS.Simple, where y grows downwards as -lat. */
  function pixelToLatLng(px, py, maxZoom) {
    var scale = Math.pow(2, maxZoom);
    return [-py / scale, px / scale];
  }

  /** The grid cell under map pixel (px, py) at max zoom, or null outside the grid. */
  function cellAt(px, py, meta) {
    var col = Math.floor(px / meta.cell_px);
    var row = Math.floor(py / meta.cell_px);
    if (!(col >= 0 && row >= 0 && col < meta.cols && row < meta.rows)) {
      return null;
    }
    return { col: col, row: row };
  }

  /** Which shard file holds a cell, and the cell's key inside it. */
  function shardOf(cell, meta) {
    var bx = Math.floor(cell.col / meta.shard_cells);
    var by = Math.floor(cell.row / meta.shard_cells);
    return { bx: bx, by: by, name: bx + "-" + by, key: cell.col + "," + cell.row };
  }

  /** URL of a shard, from the template in map.json. */
  function shardUrl(meta, shard) {
    return meta.shards_url.replace("{bx}", String(shard.bx)).replace("{by}", String(shard.by));
  }

  /** URL of a tile, as Leaflet builds it from the same template (used by the tests). */
  function tileUrl(meta, z, x, y) {
    return meta.tile_url.replace("{z}", String(z)).replace("{x}", String(x))
      .replace("{y}", String(y));
  }

  /** The URL if it is absolute http(s), else null: never link javascript:, data: and the like. */
  function safeHttpUrl(value) {
    if (typeof value !== "string" || !/^https?:\/\//i.test(value.trim())) {
      return null;
    }
    try {
      var url = new URL(value.trim());
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  /** 32-bit FNV-1a of the UTF-8 bytes: the same hash vacancy.map.viewer.fnv1a buckets ids by. */
  function fnv1a(text) {
    var bytes = new TextEncoder().encode(String(text));
    var h = 0x811c9dc5;
    for (var i = 0; i < bytes.length; i++) {
      h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0;
    }
    return h >>> 0;
  }

  /** URL of the id bucket that would hold ``key`` (an image id or a listing id). */
  function idsUrl(meta, key) {
    return meta.ids_url.replace("{k}", String(fnv1a(key) % meta.id_buckets));
  }

  /** URL of an original photo: originals_url/<location>/<filename>, each part escaped. */
  function originalUrl(meta, id) {
    var slash = String(id).indexOf("/");
    if (slash < 0) {
      return null;
    }
    return meta.originals_url + "/" + encodeURIComponent(id.slice(0, slash)) + "/" +
      encodeURIComponent(id.slice(slash + 1));
  }

  /** Label/value rows of the info panel for one cell's record (null record = empty cell). */
  function panelFields(cell, record) {
    var where = "column " + cell.col + ", row " + cell.row;
    if (!record) {
      return [["Cell", where + " (empty)"]];
    }
    return [
      ["Title", record.title || "(no title)"],
      ["Price", record.price || "-"],
      ["Posted", record.posted || "-"],
      ["Location", record.location || "-"],
      ["Class", record["class"] || "-"],
      ["Image", record.id || "-"],
      ["Listing id", record.listing_id || "-"],
      ["Cell", where],
    ];
  }

  /** The cell an arrow key moves to from ``cell`` (clamped to the grid), or null if no move. */
  function neighbour(cell, key, meta) {
    var step = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[key];
    if (!step) {
      return null;
    }
    var col = Math.min(meta.cols - 1, Math.max(0, cell.col + step[0]));
    var row = Math.min(meta.rows - 1, Math.max(0, cell.row + step[1]));
    return col === cell.col && row === cell.row ? null : { col: col, row: row };
  }

  /** Every cell touched by the rectangle between two map pixels (max zoom), clipped to the grid. */
  function cellsInRect(x0, y0, x1, y1, meta) {
    var c = meta.cell_px;
    var c0 = Math.max(0, Math.floor(Math.min(x0, x1) / c));
    var c1 = Math.min(meta.cols - 1, Math.floor(Math.max(x0, x1) / c));
    var r0 = Math.max(0, Math.floor(Math.min(y0, y1) / c));
    var r1 = Math.min(meta.rows - 1, Math.floor(Math.max(y0, y1) / c));
    var out = [];
    for (var row = r0; row <= r1; row++) {
      for (var col = c0; col <= c1; col++) {
        out.push({ col: col, row: row });
      }
    }
    return out;
  }

  /** The view part of the URL: "#z=3&x=120.5&y=88&cell=4,7" (x, y: map pixels at max zoom). */
  function formatHash(view) {
    var parts = ["z=" + view.z, "x=" + Math.round(view.x * 10) / 10, "y=" + Math.round(view.y * 10) / 10];
    if (view.cell) {
      parts.push("cell=" + view.cell.col + "," + view.cell.row);
    }
    if (view.filter) {
      parts.push(view.filter); // formatFilter's text
    }
    return "#" + parts.join("&");
  }

  /** Inverse of formatHash; null when the hash does not hold a view. */
  function parseHash(hash) {
    var params = new URLSearchParams(String(hash || "").replace(/^#/, ""));
    var z = Number(params.get("z"));
    var x = Number(params.get("x"));
    var y = Number(params.get("y"));
    if (!params.has("z") || !isFinite(z) || !isFinite(x) || !isFinite(y)) {
      return null;
    }
    var view = { z: z, x: x, y: y, cell: null };
    var cell = /^(\d+),(\d+)$/.exec(params.get("cell") || "");
    if (cell) {
      view.cell = { col: Number(cell[1]), row: Number(cell[2]) };
    }
    return view;
  }

  /**
   * Ids of an exclude file (vacancy.images.select.read_exclude_file's rules: trim, skip blanks
   * and #).
   */
  function parseExcludeFile(text) {
    return String(text).replace(/^\uFEFF/, "").split(/\r\n|\r|\n/).map(function (line) {
      return line.trim();
    }).filter(function (line) {
      return line && line.charAt(0) !== "#";
    });
  }

  /** Whether an id survives the exclude file's format unchanged (no newline, no edge spaces, no #). */
  function writableId(id) {
    return typeof id === "string" && id.length > 0 && id === id.trim() && id.charAt(0) !== "#" &&
      !/[\r\n\u0085\u2028\u2029\u000b\u000c\u001c-\u001e]/.test(id);
  }

  /** The exclude file for a set of ids: a comment header, then one id per line, sorted. */
  function excludeFileText(ids) {
    var sorted = Array.from(new Set(ids)).filter(writableId).sort();
    return "# vacancy exclude file: one id (location/filename) per line; # starts a comment\n" +
      "# " + sorted.length + " ids, exported from the map viewer\n" +
      sorted.map(function (id) { return id + "\n"; }).join("");
  }

  /** One CSV field, quoted when needed (RFC 4180). */
  function csvField(value) {
    var text = value == null ? "" : String(value);
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  /** CSV of the excluded images: id, location, listing_url. */
  function excludeCsvText(rows) {
    var lines = ["id,location,listing_url"];
    rows.slice().sort(function (a, b) { return a.id < b.id ? -1 : a.id > b.id ? 1 : 0; })
      .forEach(function (r) {
        lines.push([r.id, r.location, r.listing_url].map(csvField).join(","));
      });
    return lines.join("\r\n") + "\r\n";
  }


  // ------------------------------------------------------------------------ fields and filter

  var TYPED = { int32: Int32Array, uint16: Uint16Array, uint8: Uint8Array };
  var DAY_MS = 86400000;

  /** A field file's bytes as its typed array (little-endian, as vacancy.map.viewer writes it). */
  function decodeField(desc, buffer) {
    return new TYPED[desc.dtype](buffer);
  }

  /** Days since 1970-01-01 -> "YYYY-MM-DD", and back (NaN for a malformed date). */
  function dayToIso(day) {
    return new Date(day * DAY_MS).toISOString().slice(0, 10);
  }
  function isoToDay(text) {
    return /^\d{4}-\d{2}-\d{2}$/.test(String(text)) ? Date.parse(text + "T00:00:00Z") / DAY_MS : NaN;
  }

  /**
   * Which cells a filter leaves lit: a Uint8Array over the cells (1 lit), and the count lit.
   * ``filter`` maps a field name to [lo, hi] (numbers, dates) or to a list of category names;
   * a field missing from ``filter`` does not filter. A cell with no value fails an active range
   * or list; empty cells (no location) are never lit.
   */
  function matchMask(fields, filter, n) {
    var mask = new Uint8Array(n);
    var tests = [];
    Object.keys(filter || {}).forEach(function (name) {
      var f = fields[name];
      var want = filter[name];
      if (!f || !want) {
        return;
      }
      if (f.desc.kind === "category") {
        var allowed = new Uint8Array(f.desc.names.length);
        want.forEach(function (v) {
          var i = f.desc.names.indexOf(v);
          if (i >= 0) { allowed[i] = 1; }
        });
        tests.push(function (k) { var v = f.values[k]; return v !== f.desc.missing && allowed[v] === 1; });
      } else {
        var lo = want[0];
        var hi = want[1];
        tests.push(function (k) { var v = f.values[k]; return v !== f.desc.missing && v >= lo && v <= hi; });
      }
    });
    var occupied = fields.location ? fields.location : null;
    var lit = 0;
    for (var k = 0; k < n; k++) {
      if (occupied && occupied.values[k] === occupied.desc.missing) {
        continue;
      }
      var ok = 1;
      for (var t = 0; t < tests.length; t++) {
        if (!tests[t](k)) { ok = 0; break; }
      }
      mask[k] = ok;
      lit += ok;
    }
    return { mask: mask, lit: lit };
  }

  /** Counts of a numeric field's values in ``bins`` equal bins over [lo, hi] (missing skipped). */
  function histogram(values, missing, lo, hi, bins) {
    var counts = new Array(bins).fill(0);
    var width = (hi - lo) / bins || 1;
    for (var k = 0; k < values.length; k++) {
      var v = values[k];
      if (v !== missing && v >= lo && v <= hi) {
        counts[Math.min(bins - 1, Math.floor((v - lo) / width))] += 1;
      }
    }
    return counts;
  }

  /** [first quartile, median, third quartile] of sorted numbers (linear interpolation), or null. */
  function quartiles(sorted) {
    if (!sorted.length) {
      return null;
    }
    function q(p) {
      var at = (sorted.length - 1) * p;
      var i = Math.floor(at);
      return i + 1 < sorted.length ? sorted[i] + (sorted[i + 1] - sorted[i]) * (at - i) : sorted[i];
    }
    return [q(0.25), q(0.5), q(0.75)];
  }

  /**
   * Statistics of a set of cells (indexes row * cols + col): the photos among them, price
   * quartiles, first and last posted day, and the ``top`` most frequent locations as [name, count].
   */
  function cellStats(fields, indexes, top) {
    var loc = fields.location;
    var prices = [];
    var first = Infinity;
    var last = -Infinity;
    var perLoc = new Map();
    var count = 0;
    indexes.forEach(function (k) {
      if (loc && loc.values[k] === loc.desc.missing) {
        return;
      }
      count += 1;
      if (loc) {
        var name = loc.desc.names[loc.values[k]];
        perLoc.set(name, (perLoc.get(name) || 0) + 1);
      }
      if (fields.price && fields.price.values[k] !== fields.price.desc.missing) {
        prices.push(fields.price.values[k]);
      }
      if (fields.posted && fields.posted.values[k] !== fields.posted.desc.missing) {
        first = Math.min(first, fields.posted.values[k]);
        last = Math.max(last, fields.posted.values[k]);
      }
    });
    prices.sort(function (a, b) { return a - b; });
    var ranked = Array.from(perLoc.entries()).sort(function (a, b) {
      return b[1] - a[1] || (a[0] < b[0] ? -1 : 1);
    });
    return {
      count: count, priced: prices.length, price: quartiles(prices),
      posted: first <= last ? [dayToIso(first), dayToIso(last)] : null,
      top: ranked.slice(0, top || 5),
    };
  }

  /** The filter part of a permalink: price=lo-hi, posted=from..to, and one key per name. */
  function formatFilter(filter) {
    var params = new URLSearchParams();
    Object.keys(filter || {}).sort().forEach(function (name) {
      var want = filter[name];
      if (!want) {
        return;
      }
      if (name === "posted") {
        params.set("posted", dayToIso(want[0]) + ".." + dayToIso(want[1]));
      } else if (name === "price") {
        params.set("price", want[0] + "-" + want[1]);
      } else {
        want.forEach(function (v) { params.append(name, v); });
      }
    });
    return params.toString();
  }

  /** Inverse of formatFilter for the fields ``names`` the map has; malformed parts are dropped. */
  function parseFilter(hash, names) {
    var params = new URLSearchParams(String(hash || "").replace(/^#/, ""));
    var filter = {};
    names.forEach(function (name) {
      if (!params.has(name)) {
        return;
      }
      var text = params.get(name);
      var m;
      if (name === "price" && (m = /^(\d+)-(\d+)$/.exec(text))) {
        filter.price = [Number(m[1]), Number(m[2])];
      } else if (name === "posted" && (m = /^(.+)\.\.(.+)$/.exec(text)) &&
        isFinite(isoToDay(m[1])) && isFinite(isoToDay(m[2]))) {
        filter.posted = [isoToDay(m[1]), isoToDay(m[2])];
      } else if (name !== "price" && name !== "posted") {
        filter[name] = params.getAll(name);
      }
    });
    return filter;
  }

  /** Whether point (x, y) is inside the polygon [[x, y], ...] (even-odd rule). */
  function pointInPolygon(x, y, poly) {
    var inside = false;
    for (var i = 0, j = poly.length - 1; i < poly.length; j = i++) {
      var xi = poly[i][0], yi = poly[i][1], xj = poly[j][0], yj = poly[j][1];
      if ((yi > y) !== (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) {
        inside = !inside;
      }
    }
    return inside;
  }

  /** The cells whose centre lies inside a polygon drawn in map pixels (max zoom). */
  function cellsInPolygon(poly, meta) {
    if (poly.length < 3) {
      return [];
    }
    var xs = poly.map(function (p) { return p[0]; });
    var ys = poly.map(function (p) { return p[1]; });
    var c = meta.cell_px;
    var out = [];
    cellsInRect(Math.min.apply(null, xs), Math.min.apply(null, ys), Math.max.apply(null, xs),
      Math.max.apply(null, ys), meta).forEach(function (cell) {
      if (pointInPolygon((cell.col + 0.5) * c, (cell.row + 0.5) * c, poly)) {
        out.push(cell);
      }
    });
    return out;
  }

  /**
   * A region's label: "region 12: 1,843 photos, mostly TX, median $1,150" ("mostly" when one
   * state, or else location, holds half of it, "most from" otherwise).
   */
  function regionLabel(region) {
    var parts = ["region " + region.region + ": " + region.count.toLocaleString("en-US") +
      (region.count === 1 ? " photo" : " photos")];
    var top = region.state || region.location;
    if (top) {
      parts.push((top[1] >= 0.5 ? "mostly " : "most from ") + top[0]);
    }
    if (region.median_price != null) {
      parts.push("median $" + Math.round(region.median_price).toLocaleString("en-US"));
    }
    return parts.join(", ");
  }

  /** A CSV field that a spreadsheet shows as text: a leading = + - @ or tab gets a quote. */
  function csvText(value) {
    var text = value == null ? "" : String(value);
    return csvField(/^[=+\-@\t\r]/.test(text) ? "'" + text : text);
  }

  /** Columns of "export selection as CSV": the listing fields, then the cell. */
  var SELECTION_COLUMNS = ["id", "location", "state", "title", "price", "posted", "class",
    "listing_id", "listing_url", "col", "row"];

  /** CSV of selected cells' records ({record, cell}), in reading order. */
  function selectionCsvText(rows) {
    var lines = [SELECTION_COLUMNS.join(",")];
    rows.slice().sort(function (a, b) { return a.cell[1] - b.cell[1] || a.cell[0] - b.cell[0]; })
      .forEach(function (r) {
        var values = Object.assign({}, r.record, { col: r.cell[0], row: r.cell[1] });
        lines.push(SELECTION_COLUMNS.map(function (k) { return csvText(values[k]); }).join(","));
      });
    return lines.join("\r\n") + "\r\n";
  }

  // ------------------------------------------------------------------------ browser only

  function $(id) {
    return document.getElementById(id);
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  function fetchJson(url) {
    return fetch(url).then(function (response) {
      if (!response.ok) {
        throw new Error(url + ": HTTP " + response.status);
      }
      return response.json();
    });
  }

  /** Fetch-once cache: a failed fetch is forgotten so a later call retries. */
  function cached(loader) {
    var cache = new Map();
    return function (key, url) {
      if (!cache.has(key)) {
        cache.set(key, loader(url).catch(function (err) {
          cache.delete(key);
          throw err;
        }));
      }
      return cache.get(key);
    };
  }

  function download(name, text, type) {
    var url = URL.createObjectURL(new Blob([text], { type: type }));
    var link = document.createElement("a");
    link.href = url;
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
  }

  /** Tiles from one PMTiles archive (range requests), drawn as <img> from blob URLs. */
  function pmtilesLayer(L, url, options) {
    var archive = new window.pmtiles.PMTiles(url);
    var Layer = L.GridLayer.extend({
      createTile: function (coords, done) {
        var img = document.createElement("img");
        img.alt = "";
        archive.getZxy(coords.z, coords.x, coords.y).then(function (tile) {
          if (!tile) {
            done(null, img); // outside the pyramid: nothing to draw
            return;
          }
          var blobUrl = URL.createObjectURL(new Blob([tile.data], { type: "image/jpeg" }));
          img.onload = function () { URL.revokeObjectURL(blobUrl); done(null, img); };
          img.onerror = function () { URL.revokeObjectURL(blobUrl); done(new Error("bad tile"), img); };
          img.src = blobUrl;
        }).catch(function (err) { done(err, img); });
        return img;
      },
    });
    return new Layer(options);
  }

  /** A blank canvas of width x height pixels (tiles, histograms, scratch images). */
  function blankCanvas(width, height) {
    var canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    return canvas;
  }

  /** A canvas layer painting per-cell marks (highlight, selection, excluded) from key->cell maps. */
  function cellMarksLayer(L, meta, sets) {
    var Layer = L.GridLayer.extend({
      createTile: function (coords) {
        var size = this.getTileSize();
        var canvas = blankCanvas(size.x, size.y);
        var ctx = canvas.getContext("2d");
        var s = Math.pow(2, coords.z - meta.max_zoom); // screen px per map px at max zoom
        var x0 = coords.x * size.x / s;
        var y0 = coords.y * size.y / s;
        var x1 = x0 + size.x / s;
        var y1 = y0 + size.y / s;
        var c = meta.cell_px;
        sets.forEach(function (set) {
          if (!set.cells.size) {
            return;
          }
          ctx.fillStyle = set.fill;
          ctx.strokeStyle = set.stroke || "transparent";
          ctx.lineWidth = 2;
          set.cells.forEach(function (cell) {
            var px = cell[0] * c;
            var py = cell[1] * c;
            if (px + c <= x0 || px >= x1 || py + c <= y0 || py >= y1) {
              return;
            }
            var sx = (px - x0) * s;
            var sy = (py - y0) * s;
            ctx.fillRect(sx, sy, c * s, c * s);
            if (set.stroke && c * s >= 8) {
              ctx.strokeRect(sx + 1, sy + 1, c * s - 2, c * s - 2);
            }
          });
        });
        return canvas;
      },
    });
    return new Layer({ tileSize: meta.tile_size, pane: MARKS_PANE, noWrap: true });
  }


  /**
   * A canvas layer dimming the cells a filter leaves out, painted from the lit mask: per tile,
   * one pixel per cell into a small image scaled up without smoothing, so a repaint costs the
   * cells in view, not one fillRect each. Repaints its live canvases in place (no fade-in).
   */
  function dimLayer(L, meta, getMask) {
    var live = new Map(); // canvas -> coords
    function paint(canvas, coords) {
      var ctx = canvas.getContext("2d");
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      var lit = getMask();
      if (!lit) {
        return;
      }
      var s = Math.pow(2, coords.z - meta.max_zoom) * meta.cell_px; // screen px per cell
      var c0 = Math.max(0, Math.floor(coords.x * canvas.width / s));
      var r0 = Math.max(0, Math.floor(coords.y * canvas.height / s));
      var c1 = Math.min(meta.cols, Math.ceil((coords.x + 1) * canvas.width / s));
      var r1 = Math.min(meta.rows, Math.ceil((coords.y + 1) * canvas.height / s));
      if (c1 <= c0 || r1 <= r0) {
        return;
      }
      var w = c1 - c0;
      var h = r1 - r0;
      var image = new ImageData(w, h);
      var px = image.data;
      for (var r = 0; r < h; r++) {
        var k = (r0 + r) * meta.cols + c0;
        for (var q = 0; q < w; q++) {
          if (!lit.mask[k + q]) {
            px[(r * w + q) * 4 + 3] = 200; // black at 78%: the photo still shows through
          }
        }
      }
      var small = blankCanvas(w, h);
      small.getContext("2d").putImageData(image, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(small, c0 * s - coords.x * canvas.width, r0 * s - coords.y * canvas.height,
        w * s, h * s);
    }
    var Layer = L.GridLayer.extend({
      createTile: function (coords) {
        var size = this.getTileSize();
        var canvas = blankCanvas(size.x, size.y);
        live.set(canvas, coords);
        paint(canvas, coords);
        return canvas;
      },
    });
    var layer = new Layer({ tileSize: meta.tile_size, pane: MARKS_PANE, noWrap: true });
    layer.on("tileunload", function (e) { live.delete(e.tile); });
    layer.repaint = function () { live.forEach(function (coords, canvas) { paint(canvas, coords); }); };
    return layer;
  }

  // ------------------------------------------------------------------------ feature factories
  //
  // The page is one shared object, `app` (made by createApp), and a factory per feature that
  // reads it and writes only the fields it owns (each factory's comment names them). `app`
  // holds what more than one feature needs: map.json (meta), the Leaflet map and its pixel
  // geometry, the record loaders, the cell marks, the open cell, the culling flag, the excluded
  // ids, and the public page state (window.vacancyState, which the browser tests and the
  // benchmark read). init calls the factories in a fixed order: Leaflet runs a map's handlers
  // in the order they were added.

  /**
   * The shared state and the map: Leaflet in CRS.Simple, and the conversions between map pixels
   * (at max zoom), LatLng and cells that every feature uses. The fields the features own start
   * here at their empty values, so the object's whole shape is in one place.
   */
  function createApp(meta) {
    var L = window.L;
    var maxZoom = meta.max_zoom;
    var extraZoom = meta.extra_zoom == null ? EXTRA_ZOOM : meta.extra_zoom;
    var c = meta.cell_px;
    var state = window.vacancyState = {
      ready: false, tilesLoaded: 0, firstTileMs: null, selected: null, originals: 0,
      excluded: 0, selection: 0, highlighted: 0,
    };
    var mapEl = $("map");
    mapEl.style.background = meta.background;
    document.body.style.background = meta.background;

    var map = L.map(mapEl, {
      crs: L.CRS.Simple,
      minZoom: meta.min_zoom,
      maxZoom: maxZoom + extraZoom,
      zoomSnap: 1,
      attributionControl: false,
    });
    var pane = map.createPane(MARKS_PANE);
    pane.style.zIndex = 450;
    pane.style.pointerEvents = "none";
    var toLatLng = function (px, py) {
      var ll = pixelToLatLng(px, py, maxZoom);
      return L.latLng(ll[0], ll[1]);
    };
    return {
      meta: meta, L: L, state: state, mapEl: mapEl, map: map,
      maxZoom: maxZoom, extraZoom: extraZoom,
      toLatLng: toLatLng,
      toPixel: function (latlng) { return map.project(latlng, maxZoom); },
      cellBounds: function (cell) {
        return L.latLngBounds(toLatLng(cell.col * c, (cell.row + 1) * c),
          toLatLng((cell.col + 1) * c, cell.row * c));
      },
      bounds: L.latLngBounds(toLatLng(0, meta.height_px), toLatLng(meta.width_px, 0)),
      records: null, // createRecords: the per-cell records and the id index, fetched lazily
      marks: null, // addCellMarks: highlight / excluded / selection sets and their layer
      selected: null, // createInspect: the cell whose panel is open
      culling: false, // createCullSelection: clicks select cells instead of opening them
      excludedIds: new Map(), // cull and exclude files: id -> {id, location, listing_url}
      fields: null, // createFields: the per-cell field arrays, fetched on first use
      lit: null, // createFilter: {mask, lit} of the active filter, null when nothing filters
      filterText: "", // createFilter: the filter's part of the permalink
      onChange: [], // features that follow the filter and the selection (stats, legend)
    };
  }

  /**
   * Layer: the photo tiles, from the z/x/y folder or one PMTiles archive. Owns the tile
   * counters of app.state (tilesLoaded, firstTileMs, tilesIdle) that tests and benchmark wait on.
   */
  function addTiles(app) {
    var meta = app.meta;
    var state = app.state;
    var tileOptions = {
      tileSize: meta.tile_size,
      minZoom: meta.min_zoom,
      maxZoom: app.maxZoom + app.extraZoom,
      minNativeZoom: meta.min_zoom,
      maxNativeZoom: app.maxZoom,
      bounds: app.bounds, // only tiles that intersect the grid exist
      noWrap: true,
    };
    var tiles = meta.pmtiles_url && window.pmtiles ?
      pmtilesLayer(app.L, meta.pmtiles_url, tileOptions) : app.L.tileLayer(meta.tile_url, tileOptions);
    tiles.on("tileload", function () {
      state.tilesLoaded += 1;
      if (state.firstTileMs === null) {
        state.firstTileMs = performance.now(); // since navigation start: the benchmark's figure
      }
    });
    tiles.on("load", function () { state.tilesIdle = true; });
    tiles.on("loading", function () { state.tilesIdle = false; });
    tiles.addTo(app.map);
    app.map.setMaxBounds(app.bounds.pad(0.25));
  }

  /**
   * Layer: one canvas of per-cell marks over the tiles, painting three sets in a fixed order.
   * Find writes the highlight, cull the selection and the excluded cells; each redraws the layer.
   */
  function addCellMarks(app) {
    var marks = {
      highlight: { cells: new Map(), fill: "rgba(255, 210, 0, 0.35)", stroke: "#ffd200" },
      excluded: { cells: new Map(), fill: "rgba(0, 0, 0, 0.7)" },
      selection: { cells: new Map(), fill: "rgba(0, 170, 255, 0.3)", stroke: "#00aaff" },
    };
    marks.layer = cellMarksLayer(app.L, app.meta, [marks.highlight, marks.excluded, marks.selection])
      .addTo(app.map);
    return marks;
  }

  /**
   * Data: the only fetches after map.json. A cell's record comes from its shard file, an id or
   * listing id resolves to a cell through its hash bucket; both are fetched once and cached.
   */
  function createRecords(meta) {
    var loadShardJson = cached(fetchJson);
    var known = new Set(meta.shards || []);
    function loadShard(shard) {
      if (!known.has(shard.name)) {
        return Promise.resolve({ cells: {} });
      }
      return loadShardJson(shard.name, shardUrl(meta, shard));
    }
    function recordOf(cell) {
      var shard = shardOf(cell, meta);
      return loadShard(shard).then(function (data) { return data.cells[shard.key] || null; });
    }
    var loadIds = cached(fetchJson);
    function lookup(key) {
      var url = idsUrl(meta, key);
      return loadIds(url, url).then(function (bucket) {
        var hit = Object.prototype.hasOwnProperty.call(bucket.id, key) ? bucket.id[key] :
          Object.prototype.hasOwnProperty.call(bucket.listing, key) ? bucket.listing[key] : null;
        return hit ? { col: hit[0], row: hit[1] } : null;
      });
    }
    return { recordOf: recordOf, lookup: lookup };
  }

  /**
   * View <-> URL: the permalink "#z=&x=&y=&cell=" is rewritten after every move and whenever a
   * photo opens or closes, and read once at start, so a copied address reopens the same view and
   * photo. Owns the address bar; reads app.selected.
   */
  function createPermalink(app) {
    var map = app.map;
    function write() {
      var centre = app.toPixel(map.getCenter());
      var hash = formatHash({ z: map.getZoom(), x: centre.x, y: centre.y, cell: app.selected,
        filter: app.filterText });
      if (hash !== location.hash) {
        history.replaceState(null, "", hash);
      }
    }
    map.on("moveend", write);

    /** Show the view the address holds (else the whole map); open its cell through openCell. */
    function restore(openCell) {
      var view = parseHash(location.hash);
      if (view) {
        map.setView(map.unproject(app.L.point(view.x, view.y), app.maxZoom), view.z, { animate: false });
        if (view.cell && view.cell.col < app.meta.cols && view.cell.row < app.meta.rows) {
          openCell(view.cell, false);
        }
      } else {
        map.fitBounds(app.bounds);
      }
    }
    return { write: write, restore: restore };
  }

  /** The panel's label/value rows; listing text only ever as textContent. */
  function fillPanelFields(list, cell, record) {
    list.replaceChildren();
    panelFields(cell, record).forEach(function (pair) {
      var dt = document.createElement("dt");
      var dd = document.createElement("dd");
      dt.textContent = pair[0];
      dd.textContent = String(pair[1]);
      dd.dataset.field = pair[0];
      list.appendChild(dt);
      list.appendChild(dd);
    });
  }

  /** The "Listing" row: a link only for an http(s) URL, opened without referrer or opener. */
  function appendListingLink(list, record) {
    var href = record ? safeHttpUrl(record.listing_url) : null;
    if (!href) {
      return;
    }
    var dt = document.createElement("dt");
    var dd = document.createElement("dd");
    var link = document.createElement("a");
    dt.textContent = "Listing";
    link.href = href;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.textContent = "Open the listing";
    dd.appendChild(link);
    list.appendChild(dt);
    list.appendChild(dd);
  }

  /** Fill and show the info panel for one cell (null record = empty cell). */
  function showPanel(meta, cell, record) {
    var list = $("panel-fields");
    fillPanelFields(list, cell, record);
    appendListingLink(list, record);
    var img = $("panel-img");
    var src = record ? originalUrl(meta, record.id) : null;
    if (src) {
      img.src = src;
      img.alt = record.title || record.id;
      img.hidden = false;
    } else {
      img.removeAttribute("src");
      img.hidden = true;
    }
    $("panel").hidden = false;
  }

  /**
   * Inspect: a click opens the cell under it (frame, record, panel) or closes the panel outside
   * the grid. Owns app.selected, state.selected and the frame. Only the newest of overlapping
   * record fetches fills the panel.
   */
  function createInspect(app, permalink) {
    var map = app.map;
    var frame = null;
    var clicks = 0;
    function hidePanel() {
      $("panel").hidden = true;
      app.selected = null;
      app.state.selected = null;
      if (frame) {
        frame.remove();
        frame = null;
      }
      permalink.write();
    }

    function openCell(cell, pan) {
      app.selected = cell;
      if (frame) {
        frame.remove();
      }
      frame = app.L.rectangle(app.cellBounds(cell),
        { color: "#ffd200", weight: 2, fill: false, interactive: false }).addTo(map);
      if (pan && !map.getBounds().contains(app.cellBounds(cell))) {
        map.panTo(app.cellBounds(cell).getCenter());
      }
      permalink.write();
      var token = ++clicks;
      return app.records.recordOf(cell).then(function (record) {
        if (token === clicks) {
          setStatus("");
          showPanel(app.meta, cell, record);
          app.state.selected = { col: cell.col, row: cell.row, id: record ? record.id : null };
        }
      }).catch(function (err) {
        setStatus("Could not load the listing details: " + err.message);
      });
    }

    map.on("click", function (event) {
      if (app.culling) {
        return; // culling handles its own mouse events
      }
      var p = app.toPixel(event.latlng);
      var cell = cellAt(p.x, p.y, app.meta);
      if (cell) {
        openCell(cell, false);
      } else {
        hidePanel();
      }
    });
    $("panel-close").addEventListener("click", hidePanel);
    return { openCell: openCell, hidePanel: hidePanel };
  }

  /**
   * Keyboard: Escape closes the panel, Enter or Space on the map opens the centre cell, arrows
   * step between photos while one is open (instead of panning). Owns nothing; reads app.selected.
   */
  function addKeyboard(app, inspect) {
    document.addEventListener("keydown", function (event) {
      var tag = event.target && event.target.tagName;
      if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") {
        return;
      }
      if (event.key === "Escape") {
        inspect.hidePanel();
        return;
      }
      if ((event.key === "Enter" || event.key === " ") && event.target === app.mapEl) {
        var p = app.toPixel(app.map.getCenter());
        var centreCell = cellAt(p.x, p.y, app.meta);
        if (centreCell) {
          event.preventDefault();
          inspect.openCell(centreCell, false);
        }
        return;
      }
      if (app.selected && !event.altKey && !event.ctrlKey && !event.metaKey) {
        var next = neighbour(app.selected, event.key, app.meta);
        if (next || /^Arrow/.test(event.key)) {
          // arrows step between photos while one is open, instead of panning the map
          event.preventDefault();
          event.stopPropagation();
        }
        if (next) {
          inspect.openCell(next, true);
        }
      }
    }, true);
  }

  /**
   * Originals: past the pyramid's top, the original photo of each cell in view is laid over its
   * cell (at most MAX_ORIGINALS of them), and dropped when it leaves the view. Owns its overlays
   * and state.originals / state.originalsInView.
   */
  function createOriginals(app) {
    var map = app.map;
    var originals = new Map(); // key -> overlay (null while its record loads)
    function show(cell, key) {
      originals.set(key, null);
      app.records.recordOf(cell).then(function (record) {
        if (!record || !originals.has(key) || originals.get(key)) {
          return;
        }
        var overlay = app.L.imageOverlay(originalUrl(app.meta, record.id), app.cellBounds(cell),
          { className: "vacancy-original", interactive: false, alt: "" });
        overlay.on("load", function () { app.state.originals += 1; });
        overlay.addTo(map);
        originals.set(key, overlay);
      }).catch(function () { originals.delete(key); });
    }
    function update() {
      var z = map.getZoom();
      var wanted = new Set();
      if (z > app.maxZoom) {
        var pb = map.getPixelBounds();
        var s = Math.pow(2, z - app.maxZoom);
        var cells = cellsInRect(pb.min.x / s, pb.min.y / s, pb.max.x / s - 1e-6, pb.max.y / s - 1e-6, app.meta);
        if (cells.length <= MAX_ORIGINALS) {
          cells.forEach(function (cell) {
            var key = cell.col + "," + cell.row;
            wanted.add(key);
            if (!originals.has(key)) {
              show(cell, key);
            }
          });
        }
      }
      originals.forEach(function (overlay, key) {
        if (!wanted.has(key)) {
          if (overlay) {
            overlay.remove();
          }
          originals.delete(key);
        }
      });
      app.state.originalsInView = wanted.size;
    }
    map.on("moveend zoomend", update);
    return { update: update };
  }

  /**
   * Find, location legend: a button per location highlights all its cells (fetched from its
   * index file); pressing it again clears. Owns the highlight mark set, state.highlighted and
   * the buttons' pressed state.
   */
  function createHighlight(app) {
    var meta = app.meta;
    var highlightSet = app.marks.highlight;
    var legendButtons = [];
    function show(index) {
      var loc = meta.locations[index];
      legendButtons.forEach(function (b, i) { b.setAttribute("aria-pressed", String(i === index)); });
      return fetchJson(meta.location_url.replace("{i}", String(index))).then(function (flat) {
        highlightSet.cells = new Map();
        for (var i = 0; i + 1 < flat.length; i += 2) {
          highlightSet.cells.set(flat[i] + "," + flat[i + 1], [flat[i], flat[i + 1]]);
        }
        app.state.highlighted = highlightSet.cells.size;
        app.marks.layer.redraw();
        app.onChange.forEach(function (f) { f(); });
        setStatus(loc.count + " photos from " + loc.name + " highlighted");
      });
    }
    function clear() {
      highlightSet.cells = new Map();
      app.state.highlighted = 0;
      legendButtons.forEach(function (b) { b.setAttribute("aria-pressed", "false"); });
      app.marks.layer.redraw();
      app.onChange.forEach(function (f) { f(); });
    }
    var legendList = $("legend-list");
    (meta.locations || []).forEach(function (loc, index) {
      var item = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.setAttribute("aria-pressed", "false");
      button.textContent = loc.name + " (" + loc.count + ")";
      button.addEventListener("click", function () {
        if (button.getAttribute("aria-pressed") === "true") {
          clear();
        } else {
          show(index);
        }
      });
      legendButtons.push(button);
      item.appendChild(button);
      legendList.appendChild(item);
    });
    return { show: show, clear: clear };
  }

  /**
   * Find, search box: a location name highlights the location; an image id or listing id flies
   * to its cell and opens it; an empty query clears the highlight. Owns the search form only.
   */
  function addSearch(app, highlight, inspect) {
    $("search").addEventListener("submit", function (event) {
      event.preventDefault();
      var query = $("search-input").value.trim();
      if (!query) {
        highlight.clear();
        return;
      }
      var lower = query.toLowerCase();
      var index = (app.meta.locations || []).findIndex(function (loc) {
        return loc.name.toLowerCase() === lower;
      });
      if (index >= 0) {
        highlight.show(index);
        return;
      }
      app.records.lookup(query).then(function (cell) {
        if (!cell) {
          setStatus("No image, listing or location called \u201c" + query + "\u201d");
          return;
        }
        app.map.setView(app.cellBounds(cell).getCenter(), app.maxZoom);
        inspect.openCell(cell, false);
      }).catch(function (err) { setStatus("Search failed: " + err.message); });
    });
  }

  /**
   * Cull, selection mode: the Cull button turns clicks into cell selection (map dragging and box
   * zoom are off meanwhile). Owns app.culling, the selection mark set, state.selection and
   * state.excluded and the count line; updateStatus is how the other cull features report.
   */
  function createCullSelection(app) {
    var map = app.map;
    var selectionSet = app.marks.selection;
    function updateStatus() {
      app.state.excluded = app.excludedIds.size;
      app.state.selection = selectionSet.cells.size;
      app.state.selectionCells = Array.from(selectionSet.cells.values());
      $("cull-count").textContent = selectionSet.cells.size + " selected, " +
        app.excludedIds.size + " excluded";
      app.marks.layer.redraw();
      app.onChange.forEach(function (f) { f(); });
    }
    function setCulling(on) {
      app.culling = on;
      $("cull-tools").hidden = !on;
      $("cull-toggle").setAttribute("aria-pressed", String(on));
      app.mapEl.classList.toggle("culling", on);
      if (on) {
        map.dragging.disable();
        map.boxZoom.disable();
      } else {
        map.dragging.enable();
        map.boxZoom.enable();
      }
    }
    $("cull-toggle").addEventListener("click", function () { setCulling(!app.culling); });

    /**
     * Select cells: mode "replace" (the default), "add" (shift) or "remove" (alt); a shift-click
     * on one selected cell unselects it.
     */
    function selectCells(cells, mode) {
      if (mode !== "add" && mode !== "remove") {
        selectionSet.cells = new Map();
      }
      cells.forEach(function (cell) {
        var key = cell.col + "," + cell.row;
        if (mode === "remove" || (mode === "add" && cells.length === 1 && selectionSet.cells.has(key))) {
          selectionSet.cells.delete(key);
        } else {
          selectionSet.cells.set(key, [cell.col, cell.row]);
        }
      });
      updateStatus();
    }
    return { updateStatus: updateStatus, selectCells: selectCells };
  }

  /**
   * Cull, mouse: in culling mode a click selects a cell; a drag of more than 4 screen pixels
   * draws a rectangle, or with the lasso tool a free-hand outline, and selects every cell it
   * touches (rectangle) or whose centre it encloses (lasso); shift adds, alt removes. Owns the
   * drag and its outline.
   */
  function addDragSelect(app, cull) {
    var map = app.map;
    var drag = null;
    var style = { color: "#00aaff", weight: 1, dashArray: "4", interactive: false };
    function modeOf(e) {
      return e.shiftKey ? "add" : e.altKey ? "remove" : "replace";
    }
    map.on("mousedown", function (event) {
      if (!app.culling || event.originalEvent.button !== 0) {
        return;
      }
      var p = app.toPixel(event.latlng);
      drag = { start: p, startPoint: event.containerPoint, shape: null, points: [[p.x, p.y]],
        lasso: $("cull-shape").value === "lasso" };
    });
    map.on("mousemove", function (event) {
      if (!drag) {
        return;
      }
      var p = app.toPixel(event.latlng);
      if (!drag.shape && event.containerPoint.distanceTo(drag.startPoint) < 4) {
        return;
      }
      drag.points.push([p.x, p.y]);
      if (drag.lasso) {
        var line = drag.points.map(function (q) { return app.toLatLng(q[0], q[1]); });
        if (drag.shape) {
          drag.shape.setLatLngs(line);
        } else {
          drag.shape = app.L.polygon(line, style).addTo(map);
        }
        return;
      }
      var b = app.L.latLngBounds(app.toLatLng(drag.start.x, drag.start.y), app.toLatLng(p.x, p.y));
      if (drag.shape) {
        drag.shape.setBounds(b);
      } else {
        drag.shape = app.L.rectangle(b, style).addTo(map);
      }
    });
    map.on("mouseup", function (event) {
      if (!drag) {
        return;
      }
      var p = app.toPixel(event.latlng);
      var mode = modeOf(event.originalEvent);
      if (drag.shape) {
        drag.shape.remove();
        drag.points.push([p.x, p.y]);
        var cells = drag.lasso ? cellsInPolygon(drag.points, app.meta) :
          cellsInRect(drag.start.x, drag.start.y, p.x, p.y, app.meta);
        app.state.lastLasso = drag.lasso ? drag.points : null;
        cull.selectCells(cells, mode);
      } else {
        var cell = cellAt(p.x, p.y, app.meta);
        if (cell) {
          cull.selectCells([cell], mode);
        }
      }
      drag = null;
    });
  }

  /**
   * Cull, actions: exclude or restore the selected cells' images, or clear the selection.
   * Writes app.excludedIds and the excluded mark set (shared with the exclude file features).
   */
  function addCullActions(app, cull) {
    var selectionSet = app.marks.selection;
    var excludedSet = app.marks.excluded;
    /** Records of the selected cells (loading their shards); empty cells are skipped. */
    function selectedRecords() {
      var cells = Array.from(selectionSet.cells.values());
      return Promise.all(cells.map(function (cell) {
        return app.records.recordOf({ col: cell[0], row: cell[1] }).then(function (record) {
          return record ? { cell: cell, record: record } : null;
        });
      })).then(function (found) { return found.filter(Boolean); });
    }
    $("cull-exclude").addEventListener("click", function () {
      selectedRecords().then(function (found) {
        found.forEach(function (f) {
          app.excludedIds.set(f.record.id, { id: f.record.id, location: f.record.location,
            listing_url: f.record.listing_url });
          excludedSet.cells.set(f.cell[0] + "," + f.cell[1], f.cell);
        });
        selectionSet.cells = new Map();
        cull.updateStatus();
      });
    });
    $("cull-restore").addEventListener("click", function () {
      selectedRecords().then(function (found) {
        found.forEach(function (f) {
          app.excludedIds.delete(f.record.id);
          excludedSet.cells.delete(f.cell[0] + "," + f.cell[1]);
        });
        selectionSet.cells = new Map();
        cull.updateStatus();
      });
    });
    $("cull-clear").addEventListener("click", function () {
      selectionSet.cells = new Map();
      cull.updateStatus();
    });
  }

  /**
   * Export: the excluded ids as the workflow's exclude file (ids the format cannot carry are
   * left out, and the status says how many) or as a CSV. Reads app.excludedIds; owns nothing.
   */
  function addExports(app) {
    $("cull-export").addEventListener("click", function () {
      var ids = Array.from(app.excludedIds.keys());
      var skipped = ids.filter(function (id) { return !writableId(id); });
      download("exclude.txt", excludeFileText(ids), "text/plain;charset=utf-8");
      setStatus(skipped.length ? skipped.length + " ids cannot be written to an exclude file " +
        "(line breaks, edge spaces or a leading #) and were left out" : "");
    });
    $("cull-export-csv").addEventListener("click", function () {
      download("excluded.csv", excludeCsvText(Array.from(app.excludedIds.values())),
        "text/csv;charset=utf-8");
    });
  }

  /**
   * Load: an existing exclude file marks its ids excluded, dimming those still on this map, so
   * a cull can go on from an earlier one. Writes app.excludedIds, the excluded mark set and
   * state.loadedExclude.
   */
  function addExcludeFileLoad(app, cull) {
    var excludedIds = app.excludedIds;
    $("cull-load").addEventListener("change", function (event) {
      var file = event.target.files && event.target.files[0];
      if (!file) {
        return;
      }
      file.text().then(function (text) {
        var ids = parseExcludeFile(text);
        return Promise.all(ids.map(function (id) {
          return app.records.lookup(id).then(function (cell) { return { id: id, cell: cell }; });
        }));
      }).then(function (found) {
        var onMap = 0;
        found.forEach(function (f) {
          var loc = f.id.split("/")[0];
          excludedIds.set(f.id, excludedIds.get(f.id) || { id: f.id, location: loc, listing_url: "" });
          if (f.cell) {
            onMap += 1;
            app.marks.excluded.cells.set(f.cell.col + "," + f.cell.row, [f.cell.col, f.cell.row]);
            // the listing link for the CSV comes with the cell's record
            app.records.recordOf(f.cell).then(function (record) {
              if (record && record.id === f.id) {
                excludedIds.get(f.id).listing_url = record.listing_url;
              }
            });
          }
        });
        cull.updateStatus();
        app.state.loadedExclude = { ids: found.length, onMap: onMap };
        setStatus("Exclude file: " + found.length + " ids, " + onMap + " on this map (the others " +
          "are already out of it)");
        event.target.value = "";
      }).catch(function (err) { setStatus("Could not read the exclude file: " + err.message); });
    });
  }


  /**
   * Data: the per-cell field arrays (price, posted day, location, state, class), all fetched
   * together the first time a feature needs them (filter, statistics, select matching), so the
   * first load carries no per-image data. Sets app.fields and state.fieldsLoaded.
   */
  function createFields(app) {
    var pending = null;
    function load() {
      if (!pending) {
        var descs = app.meta.fields || [];
        pending = Promise.all(descs.map(function (desc) {
          return fetch(desc.url).then(function (response) {
            if (!response.ok) {
              throw new Error(desc.url + ": HTTP " + response.status);
            }
            return response.arrayBuffer();
          }).then(function (buffer) { return { desc: desc, values: decodeField(desc, buffer) }; });
        })).then(function (list) {
          var fields = {};
          list.forEach(function (f) { fields[f.desc.name] = f; });
          app.fields = fields;
          app.state.fieldsLoaded = true;
          return fields;
        }).catch(function (err) {
          pending = null;
          setStatus("Could not load the listing fields: " + err.message);
          throw err;
        });
      }
      return pending;
    }
    return { load: load };
  }

  /** Text of a numeric field's value: dollars or an ISO date. */
  function formatValue(desc, v) {
    return desc.kind === "date" ? dayToIso(v) : "$" + Math.round(v).toLocaleString("en-US");
  }

  /** Bars of a histogram on a canvas, the bins inside [lo, hi] lit. */
  function drawHistogram(canvas, counts, desc, lo, hi) {
    var ctx = canvas.getContext("2d");
    var top = Math.max.apply(null, counts.concat([1]));
    var w = canvas.width / counts.length;
    var span = (desc.max - desc.min) / counts.length || 1;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    counts.forEach(function (n, i) {
      var from = desc.min + i * span;
      ctx.fillStyle = from + span > lo && from <= hi ? "#ffd200" : "#555";
      var h = Math.round(n / top * (canvas.height - 1));
      ctx.fillRect(i * w, canvas.height - h, Math.max(1, w - 1), h);
    });
  }

  /** One range control (two sliders over the field's range) with its histogram. */
  function rangeControl(desc, onInput) {
    var box = document.createElement("fieldset");
    box.id = "filter-" + desc.name;
    var legend = document.createElement("legend");
    legend.textContent = desc.name === "posted" ? "Posted" : "Price";
    var canvas = blankCanvas(240, 32);
    canvas.className = "histogram";
    var out = document.createElement("output");
    var sliders = ["lo", "hi"].map(function (end) {
      var input = document.createElement("input");
      input.type = "range";
      input.min = String(desc.min);
      input.max = String(desc.max);
      input.step = "1";
      input.value = String(end === "lo" ? desc.min : desc.max);
      input.id = "filter-" + desc.name + "-" + end;
      input.setAttribute("aria-label", legend.textContent + (end === "lo" ? " from" : " to"));
      input.addEventListener("input", onInput);
      return input;
    });
    box.append(legend, sliders[0], sliders[1], canvas, out); // the histogram under the sliders
    var counts = null;
    return {
      el: box,
      /** [lo, hi] when narrower than the field's range, else null (does not filter). */
      get: function () {
        var lo = Math.min(Number(sliders[0].value), Number(sliders[1].value));
        var hi = Math.max(Number(sliders[0].value), Number(sliders[1].value));
        return lo > desc.min || hi < desc.max ? [lo, hi] : null;
      },
      set: function (want) {
        sliders[0].value = String(want ? want[0] : desc.min);
        sliders[1].value = String(want ? want[1] : desc.max);
      },
      show: function (field) {
        var want = this.get() || [desc.min, desc.max];
        out.textContent = formatValue(desc, want[0]) + " \u2013 " + formatValue(desc, want[1]);
        if (field) {
          counts = counts || histogram(field.values, desc.missing, desc.min, desc.max, 40);
          drawHistogram(canvas, counts, desc, want[0], want[1]);
        }
      },
    };
  }

  /** One list control (a multiple select of the field's names, with their counts). */
  function listControl(desc, onInput) {
    var box = document.createElement("fieldset");
    box.id = "filter-" + desc.name;
    var legend = document.createElement("legend");
    legend.textContent = { location: "Location", state: "State", "class": "Class",
      region: "Region", added: "Added in the last update" }[desc.name] || desc.name;
    var select = document.createElement("select");
    select.multiple = true;
    select.id = "filter-" + desc.name + "-list";
    select.size = Math.min(6, desc.names.length);
    select.setAttribute("aria-label", legend.textContent);
    desc.names.forEach(function (name, i) {
      var option = document.createElement("option");
      option.value = name;
      option.textContent = name + " (" + desc.counts[i] + ")";
      select.appendChild(option);
    });
    select.addEventListener("change", onInput);
    box.append(legend, select);
    return {
      el: box,
      get: function () {
        var chosen = Array.from(select.selectedOptions).map(function (o) { return o.value; });
        return chosen.length ? chosen : null;
      },
      set: function (want) {
        Array.from(select.options).forEach(function (o) { o.selected = !!want && want.indexOf(o.value) >= 0; });
      },
      show: function () {},
    };
  }

  /** The filter's controls by field name, added to the page (the box hides when there is none). */
  function filterControls(descs, onInput) {
    var controls = {};
    descs.forEach(function (desc) {
      if (desc.kind === "category" && desc.names.length < 2) {
        return; // one value: nothing to choose
      }
      var control = desc.kind === "category" ? listControl(desc, onInput) : rangeControl(desc, onInput);
      controls[desc.name] = control;
      $("filter-body").insertBefore(control.el, $("filter-reset"));
    });
    $("filter").hidden = !Object.keys(controls).length;
    return controls;
  }

  /**
   * Filter: a range control with its histogram per numeric field, a list per category with two
   * or more names (a field the data lacks has no control). Cells that do not match are dimmed
   * (the layout stays), the count follows every change, and the filter is in the permalink.
   * Owns app.lit, app.filterText, the dim layer, state.lit and state.filterMs.
   */
  function createFilter(app, fields, permalink) {
    var meta = app.meta;
    var n = meta.cols * meta.rows;
    var layer = dimLayer(app.L, meta, function () { return app.lit; }).addTo(app.map);
    var controls = filterControls(meta.fields || [], function () { apply(); });
    var writeTimer = null;

    function current() {
      var filter = {};
      Object.keys(controls).forEach(function (name) {
        var want = controls[name].get();
        if (want) {
          filter[name] = want;
        }
      });
      return filter;
    }
    /** Read the controls, recompute the mask, repaint, and tell the followers. */
    function apply() {
      var filter = current();
      var active = Object.keys(filter).length > 0;
      app.filterText = formatFilter(filter);
      Object.keys(controls).forEach(function (name) { controls[name].show(app.fields && app.fields[name]); });
      // a dragged slider fires many inputs; Chromium ignores history calls past ~200 in 10 s
      clearTimeout(writeTimer);
      writeTimer = setTimeout(permalink.write, 150);
      if (!active) {
        app.lit = null;
        app.state.lit = null;
        layer.repaint();
        $("filter-count").textContent = "";
        app.onChange.forEach(function (f) { f(); });
        return Promise.resolve();
      }
      return fields.load().then(function (loaded) {
        if (app.filterText !== formatFilter(filter)) {
          return; // a newer change is on its way
        }
        var t0 = performance.now();
        app.lit = matchMask(loaded, filter, n);
        layer.repaint();
        app.state.filterMs = performance.now() - t0;
        app.state.lit = app.lit.lit;
        $("filter-count").textContent = app.lit.lit + " of " + meta.count + " lit";
        app.onChange.forEach(function (f) { f(); });
      });
    }
    $("filter").addEventListener("toggle", function () {
      if ($("filter").open) {
        fields.load().then(function () {
          Object.keys(controls).forEach(function (name) { controls[name].show(app.fields[name]); });
          app.onChange.forEach(function (f) { f(); }); // the statistics, now that they can be
        });
      }
    });
    $("filter-reset").addEventListener("click", function () {
      Object.keys(controls).forEach(function (name) { controls[name].set(null); });
      apply();
    });
    /** The filter the address held at start (``hash``), if any: set the controls, apply it. */
    function restore(hash) {
      var filter = parseFilter(hash, Object.keys(controls));
      if (!Object.keys(filter).length) {
        return Promise.resolve();
      }
      Object.keys(filter).forEach(function (name) { controls[name].set(filter[name]); });
      $("filter").open = true;
      return apply();
    }
    return { apply: apply, restore: restore, set: function (filter) {
      Object.keys(controls).forEach(function (name) { controls[name].set(filter[name] || null); });
      return apply();
    } };
  }

  /** Cell indexes (row * cols + col) of the selection, or else of the lit cells, or else all. */
  function statsScope(app) {
    var selection = app.marks.selection.cells;
    if (selection.size) {
      return { what: "selected", indexes: Array.from(selection.values(), function (c) {
        return c[1] * app.meta.cols + c[0];
      }) };
    }
    var all = app.meta.cols * app.meta.rows;
    var out = [];
    for (var k = 0; k < all; k++) {
      if (!app.lit || app.lit.mask[k]) {
        out.push(k);
      }
    }
    return { what: app.lit ? "lit" : "on the map", indexes: out };
  }

  /**
   * Statistics: for the selected cells (else the lit ones, else all), the count, price
   * quartiles, date range and top locations, in the panel under the filter. Follows every
   * filter and selection change once the fields are loaded; owns #stats and state.stats.
   */
  function createStats(app) {
    function row(list, label, value) {
      var dt = document.createElement("dt");
      var dd = document.createElement("dd");
      dt.textContent = label;
      dd.textContent = value;
      dd.dataset.field = label;
      list.append(dt, dd);
    }
    function update() {
      if (!app.fields) {
        return;
      }
      var scope = statsScope(app);
      var stats = cellStats(app.fields, scope.indexes, 5);
      app.state.stats = Object.assign({ what: scope.what }, stats);
      var list = $("stats-fields");
      list.replaceChildren();
      row(list, "Photos", stats.count + " " + scope.what);
      if (app.fields.price) {
        row(list, "Price", stats.price ? stats.price.map(function (v) {
          return formatValue(app.fields.price.desc, v);
        }).join(" / ") + " (quartiles, " + stats.priced + " priced)" : "-");
      }
      if (app.fields.posted) {
        row(list, "Posted", stats.posted ? stats.posted.join(" to ") : "-");
      }
      row(list, "Top locations", stats.top.map(function (t) { return t[0] + " " + t[1]; }).join(", ") || "-");
      $("stats").hidden = false;
    }
    app.onChange.push(update);
    return { update: update };
  }

  /**
   * Cull, research: "Select matching" selects every cell the filter leaves lit (every photo when
   * nothing filters), and "Export selection as CSV" writes the selected cells' listing fields.
   */
  function addSelectionTools(app, fields, cull) {
    $("cull-matching").addEventListener("click", function () {
      fields.load().then(function () {
        var cells = [];
        var loc = app.fields.location;
        for (var k = 0; k < app.meta.cols * app.meta.rows; k++) {
          if (app.lit ? app.lit.mask[k] : loc && loc.values[k] !== loc.desc.missing) {
            cells.push({ col: k % app.meta.cols, row: Math.floor(k / app.meta.cols) });
          }
        }
        cull.selectCells(cells, "replace");
      });
    });
    $("cull-export-selection").addEventListener("click", function () {
      var cells = Array.from(app.marks.selection.cells.values());
      Promise.all(cells.map(function (cell) {
        return app.records.recordOf({ col: cell[0], row: cell[1] }).then(function (record) {
          return record ? { cell: cell, record: record } : null;
        });
      })).then(function (found) {
        download("selection.csv", selectionCsvText(found.filter(Boolean)), "text/csv;charset=utf-8");
      }).catch(function (err) { setStatus("Export failed: " + err.message); });
    });
  }

  /**
   * Overview: a small second map of the whole grid (the pyramid's lowest zoom) with the main
   * view outlined; a click there centres the main map. Owns #minimap and state.minimap.
   */
  function addOverview(app) {
    var L = app.L;
    var box = $("minimap");
    var size = 160;
    var scale = size / Math.max(app.meta.width_px, app.meta.height_px);
    var zoom = app.maxZoom + Math.log2(scale);
    box.style.width = Math.ceil(app.meta.width_px * scale) + "px";
    box.style.height = Math.ceil(app.meta.height_px * scale) + "px";
    var mini = L.map(box, {
      crs: L.CRS.Simple, zoomSnap: 0, zoomControl: false, attributionControl: false,
      dragging: false, scrollWheelZoom: false, doubleClickZoom: false, boxZoom: false,
      keyboard: false, touchZoom: false, minZoom: zoom, maxZoom: zoom,
    });
    var options = { tileSize: app.meta.tile_size, minNativeZoom: app.meta.min_zoom,
      maxNativeZoom: app.meta.min_zoom, minZoom: Math.floor(zoom), maxZoom: Math.ceil(zoom) + 1,
      bounds: app.bounds, noWrap: true };
    (app.meta.pmtiles_url && window.pmtiles ? pmtilesLayer(L, app.meta.pmtiles_url, options) :
      L.tileLayer(app.meta.tile_url, options)).addTo(mini);
    mini.setView(app.bounds.getCenter(), zoom, { animate: false });
    var frame = L.rectangle(app.map.getBounds(), { color: "#ffd200", weight: 2, fill: false,
      interactive: false }).addTo(mini);
    function follow() {
      var b = app.map.getBounds();
      frame.setBounds(b);
      var nw = app.toPixel(b.getNorthWest());
      var se = app.toPixel(b.getSouthEast());
      app.state.minimap = { x0: nw.x, y0: nw.y, x1: se.x, y1: se.y };
    }
    app.map.on("move zoom", follow);
    mini.on("click", function (e) { app.map.panTo(e.latlng); });
    follow();
  }

  /** Legend: what the marks on the map mean, with their counts; follows every change. */
  function addMarksLegend(app) {
    function legend() {
      var items = [
        ["lit", app.lit ? app.lit.lit + " match the filter" : app.meta.count + " photos, no filter"],
        ["dim", app.lit ? (app.meta.count - app.lit.lit) + " dimmed" : null],
        ["selected", app.marks.selection.cells.size ? app.marks.selection.cells.size + " selected" : null],
        ["excluded", app.excludedIds.size ? app.excludedIds.size + " excluded" : null],
        ["highlight", app.state.highlighted ? app.state.highlighted + " highlighted" : null],
      ];
      var list = $("legend-marks");
      list.replaceChildren();
      items.forEach(function (item) {
        if (item[1] === null) {
          return;
        }
        var li = document.createElement("li");
        var swatch = document.createElement("span");
        swatch.className = "swatch swatch-" + item[0];
        li.append(swatch, document.createTextNode(item[1]));
        list.appendChild(li);
      });
    }
    app.onChange.push(legend);
    legend();
  }


  /** A region's label as a marker at its anchor cell; the text only ever as textContent. */
  function regionMarker(app, region, onClick) {
    var c = app.meta.cell_px;
    var el = document.createElement("span");
    el.textContent = regionLabel(region);
    el.dataset.region = String(region.region);
    var marker = app.L.marker(app.toLatLng((region.col + 0.5) * c, (region.row + 0.5) * c), {
      icon: app.L.divIcon({ html: el, className: "region-label", iconSize: null }),
      title: "Fly to region " + region.region + " and select it", riseOnHover: true,
    });
    marker.on("click", onClick);
    return { el: el, marker: marker };
  }

  /** Hide each label that would overlap a larger region's label; return how many show. */
  function declutter(spans) {
    var placed = [];
    spans.slice().sort(function (a, b) { return b.count - a.count; }).forEach(function (s) {
      s.el.style.visibility = "";
      var r = s.el.getBoundingClientRect();
      var clash = placed.some(function (p) {
        return r.left < p.right && p.left < r.right && r.top < p.bottom && p.top < r.bottom;
      });
      s.el.style.visibility = clash ? "hidden" : "";
      s.el.dataset.shown = String(!clash);
      if (!clash) {
        placed.push(r);
      }
    });
    return placed.length;
  }

  /**
   * Named regions: a label per region (from the regions rule) at its anchor cell, shown while
   * cells are at most LABEL_MAX_CELL_PX on screen, so labels never cover photos seen up close.
   * A click flies to the region's cells, selects them (the statistics follow) and opens its
   * representative photo (the member nearest the cluster's centre) in the panel. Owns the
   * labels and state.regionLabels / state.region.
   */
  function addRegions(app, fields, cull, inspect) {
    var regions = app.meta.regions || [];
    if (!regions.length) {
      return;
    }
    var L = app.L;
    var c = app.meta.cell_px;
    var group = L.layerGroup();
    var spans = regions.map(function (region) {
      var label = regionMarker(app, region, function () { flyTo(region); });
      group.addLayer(label.marker);
      return { el: label.el, count: region.count };
    });
    function flyTo(region) {
      var b = region.bbox;
      app.map.flyToBounds(L.latLngBounds(app.toLatLng(b[0] * c, (b[3] + 1) * c),
        app.toLatLng((b[2] + 1) * c, b[1] * c)), { duration: 0.5 });
      return fields.load().then(function (loaded) {
        var f = loaded.region;
        var code = f ? f.desc.names.indexOf(String(region.region)) : -1;
        var cells = [];
        for (var k = 0; code >= 0 && k < f.values.length; k++) {
          if (f.values[k] === code) {
            cells.push({ col: k % app.meta.cols, row: Math.floor(k / app.meta.cols) });
          }
        }
        cull.selectCells(cells, "replace");
        app.state.region = { region: region.region, selection: cells.length };
        // what the region looks like: its representative photo in the panel
        return region.image ? app.records.lookup(region.image) : null;
      }).then(function (cell) {
        if (cell) {
          inspect.openCell(cell, false);
        }
      });
    }
    function update() {
      var cellOnScreen = c * Math.pow(2, app.map.getZoom() - app.maxZoom);
      var show = cellOnScreen <= LABEL_MAX_CELL_PX;
      if (show && !app.map.hasLayer(group)) {
        group.addTo(app.map);
      } else if (!show && app.map.hasLayer(group)) {
        group.remove();
      }
      app.state.regionLabels = show ? declutter(spans) : 0;
    }
    app.map.on("zoomend", update);
    update();
  }

  /** Builds the page: the shared state, then each feature, in the order its map handlers run. */
  function init(meta) {
    var startHash = location.hash; // restoring the view rewrites it
    var app = createApp(meta);
    addTiles(app);
    app.marks = addCellMarks(app);
    app.records = createRecords(meta);
    var permalink = createPermalink(app);
    var inspect = createInspect(app, permalink);
    addKeyboard(app, inspect);
    var originals = createOriginals(app);
    addSearch(app, createHighlight(app), inspect);
    var cull = createCullSelection(app);
    addDragSelect(app, cull);
    addCullActions(app, cull);
    addExports(app);
    addExcludeFileLoad(app, cull);
    var fields = createFields(app);
    var filter = createFilter(app, fields, permalink);
    createStats(app);
    addSelectionTools(app, fields, cull);
    addRegions(app, fields, cull, inspect);

    permalink.restore(inspect.openCell);
    addOverview(app); // outlines the view, so after the view is set
    addMarksLegend(app);
    filter.restore(startHash);
    app.state.setFilter = filter.set; // for the tests and the benchmark
    originals.update();
    setStatus(meta.count + " photos");
    app.state.map = app.map;
    app.state.ready = true;
  }

  function start() {
    fetchJson("map.json").then(init).catch(function (err) {
      setStatus("Could not load the map: " + err.message);
    });
  }

  return {
    EXTRA_ZOOM: EXTRA_ZOOM,
    pixelToLatLng: pixelToLatLng,
    cellAt: cellAt,
    shardOf: shardOf,
    shardUrl: shardUrl,
    tileUrl: tileUrl,
    safeHttpUrl: safeHttpUrl,
    fnv1a: fnv1a,
    idsUrl: idsUrl,
    originalUrl: originalUrl,
    panelFields: panelFields,
    neighbour: neighbour,
    cellsInRect: cellsInRect,
    formatHash: formatHash,
    parseHash: parseHash,
    parseExcludeFile: parseExcludeFile,
    writableId: writableId,
    excludeFileText: excludeFileText,
    excludeCsvText: excludeCsvText,
    decodeField: decodeField,
    dayToIso: dayToIso,
    isoToDay: isoToDay,
    matchMask: matchMask,
    histogram: histogram,
    quartiles: quartiles,
    cellStats: cellStats,
    formatFilter: formatFilter,
    parseFilter: parseFilter,
    pointInPolygon: pointInPolygon,
    cellsInPolygon: cellsInPolygon,
    csvText: csvText,
    regionLabel: regionLabel,
    selectionCsvText: selectionCsvText,
    start: start,
  };
});
