// Measure the viewer's research tools in headless Chromium (used by bench/viewer.py).
//
//   node tests/browser/filter_bench.cjs URL REPEATS
//
// On one page: the bytes and time to fetch the per-cell field arrays (what the filter runs on),
// against fetching and parsing every shard file (the lazily-loaded-per-block alternative) and
// computing the same price mask from its records; then the time from a filter change to the
// next painted frame, over REPEATS price ranges and REPEATS location sets (mask + repaint of the
// dim layer's live tiles), and the times of "select matching" and of the statistics.
// Prints one JSON object.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

async function run(url, repeats) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "vacancy-bench-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium", headless: true, args: FLAGS,
    viewport: { width: 1280, height: 800 },
  });
  try {
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForFunction(() => window.vacancyState && window.vacancyState.ready &&
      window.vacancyState.tilesIdle, null, { timeout: 60000 });
    const out = await page.evaluate(async (repeats) => {
      const st = window.vacancyState;
      const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      const time = async (fn) => { const t0 = performance.now(); await fn(); await frame(); return performance.now() - t0; };
      const meta = await (await fetch("map.json")).json();
      const price = meta.fields.find((f) => f.name === "price");
      const loc = meta.fields.find((f) => f.name === "location");
      const res = {};
      // the first change fetches the field arrays
      res.first_ms = await time(() => st.setFilter({ price: [price.min, Math.round((price.min + price.max) / 2)] }));
      const changes = [];
      for (let i = 0; i < repeats; i++) {
        const lo = price.min + (price.max - price.min) * (i / (2 * repeats));
        changes.push(await time(() => st.setFilter({ price: [Math.round(lo), Math.round(lo + (price.max - price.min) / 3)] })));
      }
      for (let i = 0; i < repeats; i++) {
        changes.push(await time(() => st.setFilter({ location: loc.names.slice(i % loc.names.length, i % loc.names.length + 3) })));
      }
      changes.sort((a, b) => a - b);
      res.change_median_ms = changes[Math.floor(changes.length / 2)];
      res.change_max_ms = changes[changes.length - 1];
      res.changes = changes.length;
      res.mask_median_ms = st.filterMs;
      res.lit = st.lit;
      // select matching, with the statistics of the selection that follow it
      document.getElementById("cull-toggle").click();
      res.select_matching_ms = await time(async () => {
        document.getElementById("cull-matching").click();
        while (!st.selection) await new Promise((r) => setTimeout(r, 5));
      });
      res.selection = st.selection;
      // the alternative: every shard fetched and parsed, the same price mask from its records
      const t0 = performance.now();
      const shards = await Promise.all(meta.shards.map((name) => {
        const [bx, by] = name.split("-");
        return fetch(meta.shards_url.replace("{bx}", bx).replace("{by}", by)).then((r) => r.json());
      }));
      const t1 = performance.now();
      const mask = new Uint8Array(meta.cols * meta.rows);
      const lo = price.min, hi = Math.round((price.min + price.max) / 2);
      for (const shard of shards) {
        for (const key in shard.cells) {
          const p = parseInt(String(shard.cells[key].price).replace(/[^0-9.]/g, ""), 10);
          const [c, r] = key.split(",").map(Number);
          mask[r * meta.cols + c] = p >= lo && p <= hi ? 1 : 0;
        }
      }
      res.shards_fetch_ms = t1 - t0;
      res.shards_mask_ms = performance.now() - t1;
      res.shards = shards.length;
      // bytes as transferred (the server sends no compression)
      const sum = (re) => performance.getEntriesByType("resource").filter((e) => re.test(e.name))
        .reduce((a, e) => a + e.encodedBodySize, 0);
      res.fields_bytes = sum(/\/fields\//);
      res.shards_bytes = sum(/\/cells\//);
      return res;
    }, repeats);
    out.url = url;
    return out;
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

run(process.argv[2], Number(process.argv[3] || 10)).then((r) => {
  process.stdout.write(JSON.stringify(r) + "\n");
}).catch((err) => { console.error(err); process.exitCode = 1; });
