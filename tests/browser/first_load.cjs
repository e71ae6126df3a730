// Measure a viewer's first load in headless Chromium (used by bench/viewer.py).
//
//   node tests/browser/first_load.cjs URL [URL ...]
//
// For each page URL: the bytes of every response that started before the first tile request
// (HTML, JS, CSS, map.json: what a visitor waits for), the time from navigation start to the
// first tile painted (the page records it), and the total bytes once the first view is loaded.
// Prints one JSON object per URL. Each load uses a fresh profile, so nothing is cached.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const isTile = (url) => /\/tiles\/\d+\/\d+\/\d+\.jpg$|\.pmtiles$/.test(url);

async function measure(url) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "vacancy-bench-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium", headless: true, args: FLAGS,
    viewport: { width: 1280, height: 800 },
  });
  const requests = []; // in the order the page asked for them
  let firstTile = -1;
  context.on("request", (r) => {
    if (firstTile < 0 && isTile(r.url())) {
      firstTile = requests.length;
    }
    requests.push(r);
  });
  try {
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForFunction(() => window.vacancyState && window.vacancyState.tilesIdle &&
      window.vacancyState.tilesLoaded > 0, null, { timeout: 60000 });
    const state = await page.evaluate(() => ({
      firstTileMs: window.vacancyState.firstTileMs, tiles: window.vacancyState.tilesLoaded }));
    const sizes = await Promise.all(requests.map(async (r) => {
      const s = await r.sizes().catch(() => null);
      return s ? s.responseBodySize + s.responseHeadersSize : 0;
    }));
    const before = firstTile < 0 ? sizes : sizes.slice(0, firstTile);
    return {
      url, first_tile_ms: Math.round(state.firstTileMs), tiles: state.tiles,
      requests_before_tiles: before.length,
      bytes_before_tiles: before.reduce((a, b) => a + b, 0),
      bytes_first_view: sizes.reduce((a, b) => a + b, 0),
      files_before_tiles: requests.slice(0, before.length).map((r) => r.url().split("/").slice(-2).join("/")),
    };
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

(async () => {
  for (const url of process.argv.slice(2)) {
    process.stdout.write(JSON.stringify(await measure(url)) + "\n");
  }
})().catch((err) => { console.error(err); process.exitCode = 1; });
