/*
 * vacancy map viewer: a Leaflet tile map of listing photos, one photo per grid cell.
 *
 * Plain script, no build step. It reads map.json (written by vacancy.viewer), shows the tile
 * pyramid in L.CRS.Simple, and on a click works out the grid cell, fetches the metadata shard of
 * that cell's block (once; shards keep the page from loading one big file) and shows the listing.
 *
 * Listing text comes from scraped pages and is untrusted: it is only ever inserted with
 * textContent, and links are only made for http(s) URLs.
 *
 * The pure functions are exported for Node so their arithmetic can be tested without a browser.
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

  /** Zoom levels past the deepest tiles, shown by upscaling them (Leaflet maxNativeZoom). */
  var EXTRA_ZOOM = 2;

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
      ["Cell", where],
    ];
  }

  // ------------------------------------------------------------------------ browser only

  function setStatus(text) {
    document.getElementById("status").textContent = text;
  }

  function fetchJson(url) {
    return fetch(url).then(function (response) {
      if (!response.ok) {
        throw new Error(url + ": HTTP " + response.status);
      }
      return response.json();
    });
  }

  /** Fill the panel with text nodes only: listing text must never be parsed as HTML. */
  function showPanel(cell, record) {
    var panel = document.getElementById("panel");
    var list = document.getElementById("panel-fields");
    list.replaceChildren();
    panelFields(cell, record).forEach(function (pair) {
      var dt = document.createElement("dt");
      var dd = document.createElement("dd");
      dt.textContent = pair[0];
      dd.textContent = String(pair[1]);
      list.appendChild(dt);
      list.appendChild(dd);
    });
    var href = record ? safeHttpUrl(record.listing_url) : null;
    if (href) {
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
    panel.hidden = false;
  }

  function hidePanel() {
    document.getElementById("panel").hidden = true;
  }

  function init(meta) {
    var L = window.L;
    var maxZoom = meta.max_zoom;
    var mapEl = document.getElementById("map");
    mapEl.style.background = meta.background;
    document.body.style.background = meta.background;

    var map = L.map(mapEl, {
      crs: L.CRS.Simple,
      minZoom: meta.min_zoom,
      maxZoom: maxZoom + EXTRA_ZOOM,
      zoomSnap: 1,
      attributionControl: false,
    });
    var toLatLng = function (px, py) {
      var ll = pixelToLatLng(px, py, maxZoom);
      return L.latLng(ll[0], ll[1]);
    };
    var bounds = L.latLngBounds(toLatLng(0, meta.height_px), toLatLng(meta.width_px, 0));
    L.tileLayer(meta.tile_url, {
      tileSize: meta.tile_size,
      minZoom: meta.min_zoom,
      maxZoom: maxZoom + EXTRA_ZOOM,
      minNativeZoom: meta.min_zoom,
      maxNativeZoom: maxZoom,
      bounds: bounds, // only tiles that intersect the grid exist on disk
      noWrap: true,
    }).addTo(map);
    map.setMaxBounds(bounds.pad(0.25));
    map.fitBounds(bounds);

    var shards = new Map();
    var known = new Set(meta.shards || []);
    var highlight = null;
    var clicks = 0;

    function loadShard(shard) {
      if (!known.has(shard.name)) {
        return Promise.resolve({ cells: {} });
      }
      if (!shards.has(shard.name)) {
        var pending = fetchJson(shardUrl(meta, shard)).catch(function (err) {
          shards.delete(shard.name); // let a later click retry
          throw err;
        });
        shards.set(shard.name, pending);
      }
      return shards.get(shard.name);
    }

    map.on("click", function (event) {
      var point = map.project(event.latlng, maxZoom);
      var cell = cellAt(point.x, point.y, meta);
      if (highlight) {
        highlight.remove();
        highlight = null;
      }
      if (!cell) {
        hidePanel();
        return;
      }
      var c = meta.cell_px;
      highlight = L.rectangle(
        [toLatLng(cell.col * c, (cell.row + 1) * c), toLatLng((cell.col + 1) * c, cell.row * c)],
        { color: "#ffd200", weight: 2, fill: false, interactive: false }
      ).addTo(map);
      var token = ++clicks;
      var shard = shardOf(cell, meta);
      loadShard(shard).then(function (data) {
        if (token === clicks) {
          setStatus("");
          showPanel(cell, data.cells[shard.key] || null);
        }
      }).catch(function (err) {
        setStatus("Could not load the listing details: " + err.message);
      });
    });

    document.getElementById("panel-close").addEventListener("click", hidePanel);
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        hidePanel();
      }
    });
    setStatus(meta.count + " photos");
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
    panelFields: panelFields,
    start: start,
  };
});
