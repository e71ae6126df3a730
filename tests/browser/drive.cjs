// Drive Debian's Chromium (headless, through playwright-core) through the viewer's scenarios.
//
//   node tests/browser/drive.cjs plan.json
//
// plan.json (written by tests/test_browser.py) names the server's base URL, the sites, the
// screen points of known cells and the output folder. This script only acts and records: it
// saves screenshots, downloads and a results.json; the Python tests do the asserting (pixels
// are compared there, against the thumbnails the pipeline itself makes).
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const plan = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const out = plan.out_dir;
const results = { errors: [] };

async function openMap(context, url, extra) {
  const page = await context.newPage();
  page.on("pageerror", (err) => results.errors.push(String(err)));
  page.on("dialog", (dialog) => { results.dialogs = (results.dialogs || 0) + 1; dialog.dismiss(); });
  await page.goto(url);
  await page.waitForFunction(() => window.vacancyState && window.vacancyState.ready &&
    window.vacancyState.tilesIdle && window.vacancyState.tilesLoaded > 0, null, { timeout: 15000 });
  if (extra) {
    await page.waitForFunction(extra, null, { timeout: 15000 });
  }
  await page.waitForTimeout(450); // let the last tile's 200-ms fade-in finish
  return page;
}

async function panel(page) {
  return page.evaluate(() => {
    const get = (name) => {
      const dd = document.querySelector(`#panel-fields dd[data-field="${name}"]`);
      return dd ? dd.textContent : null;
    };
    const link = document.querySelector("#panel-fields a");
    return {
      visible: !document.getElementById("panel").hidden,
      id: get("Image"), title: get("Title"), price: get("Price"), location: get("Location"),
      posted: get("Posted"), cls: get("Class"),
      link: link ? { href: link.href, rel: link.rel, target: link.target } : null,
      imgsInFields: document.querySelectorAll("#panel-fields img").length,
      pwned: window.__pwned === undefined ? null : window.__pwned,
      selected: window.vacancyState.selected,
    };
  });
}

async function view(page) {
  return page.evaluate(() => {
    const m = window.vacancyState.map;
    return { zoom: m.getZoom(), center: m.getCenter(), hash: location.hash };
  });
}

async function run() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "vacancy-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium", headless: true, args: FLAGS, acceptDownloads: true,
    viewport: plan.viewport, deviceScaleFactor: 1,
  });
  try {
    const site = plan.base + "/site/";
    // 1. the map renders at two zoom levels (folder tiles); and the PMTiles variant
    for (const [name, hash] of Object.entries(plan.views)) {
      const page = await openMap(context, site + hash);
      await page.screenshot({ path: path.join(out, `folder-${name}.png`) });
      await page.close();
    }
    for (const [name, hash] of Object.entries(plan.views)) {
      const pm = await openMap(context, plan.base + "/site-pm/" + hash);
      await pm.screenshot({ path: path.join(out, `pmtiles-${name}.png`) });
      results.pmtilesLoaded = await pm.evaluate(() => window.vacancyState.tilesLoaded);
      await pm.close();
    }
    // range statuses, measured on a fresh page load of the archive variant
    {
      const page = await context.newPage();
      const statuses = [];
      page.on("response", (r) => { if (r.url().includes(".pmtiles")) statuses.push(r.status()); });
      await page.goto(plan.base + "/site-pm/" + plan.views.z1);
      await page.waitForFunction(() => window.vacancyState && window.vacancyState.tilesIdle &&
        window.vacancyState.tilesLoaded > 0, null, { timeout: 15000 });
      results.pmtilesStatuses = statuses;
      await page.close();
    }

    // 2. click a known cell, then arrow keys; 4. the permalink reopens the view
    {
      const page = await openMap(context, site + plan.views.z1);
      const [x, y] = plan.points.click;
      await page.mouse.click(x, y);
      await page.waitForFunction(() => window.vacancyState.selected, null, { timeout: 5000 });
      results.clicked = await panel(page);
      await page.screenshot({ path: path.join(out, "panel.png") });
      await page.keyboard.press("ArrowRight");
      await page.waitForFunction((id) => window.vacancyState.selected &&
        window.vacancyState.selected.id !== id, results.clicked.id, { timeout: 5000 });
      results.right = await panel(page);
      await page.keyboard.press("ArrowDown");
      await page.waitForFunction((id) => window.vacancyState.selected &&
        window.vacancyState.selected.id !== id, results.right.id, { timeout: 5000 });
      results.down = await panel(page);
      // move the view, so the permalink has something to carry
      await page.mouse.move(plan.viewport.width / 2, plan.viewport.height - 20);
      await page.mouse.wheel(0, -300);
      await page.waitForTimeout(700);
      results.before = await view(page);
      results.permalink = page.url();
      await page.screenshot({ path: path.join(out, "permalink-before.png") });
      await page.close();
      const again = await openMap(context, results.permalink,
        () => window.vacancyState.selected);
      results.after = await view(again);
      results.reopened = await panel(again);
      await again.screenshot({ path: path.join(out, "permalink-after.png") });
      await again.close();
    }

    // 3. the hostile title
    {
      const page = await openMap(context, site + plan.views.z1);
      const [x, y] = plan.points.hostile;
      await page.mouse.click(x, y);
      await page.waitForFunction(() => window.vacancyState.selected, null, { timeout: 5000 });
      await page.waitForTimeout(300); // give an injected handler every chance to run
      results.hostile = await panel(page);
      await page.screenshot({ path: path.join(out, "hostile.png") });
      await page.close();
    }

    // past the pyramid's top: the original photo over its cell
    {
      const page = await openMap(context, site + plan.views.deep,
        () => window.vacancyState.originals > 0);
      results.deep = await page.evaluate(() => Array.from(
        document.querySelectorAll("img.vacancy-original")).map((img) => {
        const r = img.getBoundingClientRect();
        return { src: img.getAttribute("src"), naturalWidth: img.naturalWidth,
          naturalHeight: img.naturalHeight, width: r.width, height: r.height };
      }));
      results.deepZoom = await page.evaluate(() => window.vacancyState.map.getZoom());
      await page.screenshot({ path: path.join(out, "deep.png") });
      await page.close();
    }

    // search: a location, an image id, a listing id
    {
      const page = await openMap(context, site + plan.views.z1);
      results.search = {};
      for (const query of plan.searches) {
        await page.fill("#search-input", query);
        await page.press("#search-input", "Enter");
        await page.waitForTimeout(400);
        results.search[query] = await page.evaluate(() => ({
          highlighted: window.vacancyState.highlighted,
          selected: window.vacancyState.selected,
          status: document.getElementById("status").textContent,
        }));
      }
      await page.screenshot({ path: path.join(out, "search.png") });
      await page.close();
    }

    // 5. culling: drag a rectangle, exclude, export both files
    {
      const page = await openMap(context, site + plan.views.z1);
      await page.click("#cull-toggle");
      const [x0, y0] = plan.points.rect_from;
      const [x1, y1] = plan.points.rect_to;
      await page.mouse.move(x0, y0);
      await page.mouse.down();
      await page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, { steps: 4 });
      await page.mouse.move(x1, y1, { steps: 4 });
      await page.mouse.up();
      results.selectedAfterDrag = await page.evaluate(() => window.vacancyState.selection);
      // shift-click one more cell, then plain-click-free: exclude
      const [sx, sy] = plan.points.shift_click;
      await page.keyboard.down("Shift");
      await page.mouse.click(sx, sy);
      await page.keyboard.up("Shift");
      results.selectedAfterShift = await page.evaluate(() => window.vacancyState.selection);
      await page.click("#cull-exclude");
      await page.waitForFunction(() => window.vacancyState.excluded > 0, null, { timeout: 5000 });
      await page.waitForTimeout(300);
      await page.screenshot({ path: path.join(out, "culled.png") });
      const [download] = await Promise.all([page.waitForEvent("download"), page.click("#cull-export")]);
      await download.saveAs(path.join(out, "exclude.txt"));
      const [csv] = await Promise.all([page.waitForEvent("download"), page.click("#cull-export-csv")]);
      await csv.saveAs(path.join(out, "excluded.csv"));
      await page.close();
    }

    // loading an exclude file dims its cells on a fresh page
    {
      const page = await openMap(context, site + plan.views.z1);
      await page.click("#cull-toggle");
      await page.setInputFiles("#cull-load", plan.exclude_to_load);
      await page.waitForFunction(() => window.vacancyState.loadedExclude, null, { timeout: 5000 });
      await page.waitForTimeout(300);
      results.loaded = await page.evaluate(() => ({
        excluded: window.vacancyState.excluded, file: window.vacancyState.loadedExclude,
        status: document.getElementById("status").textContent }));
      await page.screenshot({ path: path.join(out, "loaded.png") });
      await page.close();
    }

    // 6. filter: price and posted ranges and a state; the permalink carries it to a reload
    if (plan.filter) {
      const page = await openMap(context, site + plan.views.z1);
      await page.click("#filter summary");
      await page.waitForFunction(() => window.vacancyState.fieldsLoaded, null, { timeout: 5000 });
      results.filterControls = await page.evaluate(() => Array.from(
        document.querySelectorAll("#filter fieldset")).map((f) => f.id));
      for (const [id, value] of Object.entries(plan.filter.sliders)) {
        await page.evaluate(([sel, v]) => {
          const input = document.getElementById(sel);
          input.value = String(v);
          input.dispatchEvent(new Event("input", { bubbles: true }));
        }, [id, value]);
      }
      await page.selectOption("#filter-state-list", plan.filter.states);
      await page.waitForFunction(() => window.vacancyState.lit !== null &&
        window.vacancyState.lit !== undefined, null, { timeout: 5000 });
      await page.waitForTimeout(300);
      results.filter = await page.evaluate(() => ({
        lit: window.vacancyState.lit, count: document.getElementById("filter-count").textContent,
        stats: window.vacancyState.stats,
        statsText: Array.from(document.querySelectorAll("#stats-fields dd")).map((d) => d.textContent),
        legend: Array.from(document.querySelectorAll("#legend-marks li")).map((d) => d.textContent),
        histograms: document.querySelectorAll("#filter canvas.histogram").length,
        outputs: Array.from(document.querySelectorAll("#filter output")).map((o) => o.textContent),
      }));
      results.filterUrl = page.url();
      await page.screenshot({ path: path.join(out, "filter.png") });
      await page.close();
      const again = await openMap(context, results.filterUrl,
        () => window.vacancyState.lit !== null && window.vacancyState.lit !== undefined);
      results.filterReloaded = await again.evaluate(() => ({
        lit: window.vacancyState.lit,
        sliders: Array.from(document.querySelectorAll("#filter input[type=range]")).map((i) => [i.id, Number(i.value)]),
        states: Array.from(document.getElementById("filter-state-list").selectedOptions).map((o) => o.value),
      }));
      await again.screenshot({ path: path.join(out, "filter-reload.png") });
      // select matching: every lit cell
      await again.click("#cull-toggle");
      await again.click("#cull-matching");
      await again.waitForFunction(() => window.vacancyState.selection > 0, null, { timeout: 5000 });
      results.matching = await again.evaluate(() => ({
        selection: window.vacancyState.selection, stats: window.vacancyState.stats }));
      await again.screenshot({ path: path.join(out, "select-matching.png") });
      await again.close();
    }

    // 6b. an extended map: "added in the last update" from a permalink, as an old link would carry it
    if (plan.added) {
      const page = await openMap(context, plan.base + "/site-added/" + plan.added.view,
        () => window.vacancyState.lit !== null && window.vacancyState.lit !== undefined);
      results.added = await page.evaluate(() => ({
        lit: window.vacancyState.lit,
        legend: document.querySelector("#filter-added legend").textContent,
        options: Array.from(document.getElementById("filter-added-list").options).map((o) => [o.value, o.selected]),
      }));
      await page.screenshot({ path: path.join(out, "added.png") });
      await page.close();
    }

    // 7. lasso: a free-hand outline selects the cells whose centre it encloses; alt removes;
    // the selection's statistics and its CSV export
    if (plan.lasso) {
      const page = await openMap(context, site + plan.views.z1);
      await page.click("#filter summary");
      await page.waitForFunction(() => window.vacancyState.fieldsLoaded, null, { timeout: 5000 });
      await page.click("#cull-toggle");
      await page.selectOption("#cull-shape", "lasso");
      const draw = async (points, modifier) => {
        if (modifier) await page.keyboard.down(modifier);
        await page.mouse.move(points[0][0], points[0][1]);
        await page.mouse.down();
        for (const [x, y] of points.slice(1)) {
          await page.mouse.move(x, y, { steps: 3 });
        }
        await page.mouse.move(points[0][0], points[0][1], { steps: 3 });
        await page.mouse.up();
        if (modifier) await page.keyboard.up(modifier);
      };
      await draw(plan.lasso.add);
      results.lassoAdded = await page.evaluate(() => ({
        selection: window.vacancyState.selection, polygon: window.vacancyState.lastLasso }));
      await page.screenshot({ path: path.join(out, "lasso.png") });
      await draw(plan.lasso.remove, "Alt");
      await page.waitForTimeout(200);
      results.lassoRemoved = await page.evaluate(() => ({
        selection: window.vacancyState.selection, polygon: window.vacancyState.lastLasso,
        stats: window.vacancyState.stats,
        statsText: Array.from(document.querySelectorAll("#stats-fields dd")).map((d) => d.textContent),
      }));
      await page.screenshot({ path: path.join(out, "lasso-removed.png") });
      const [csv] = await Promise.all([page.waitForEvent("download"),
        page.click("#cull-export-selection")]);
      await csv.saveAs(path.join(out, "selection.csv"));
      await page.close();
    }

    // 8. overview: the minimap's outline follows the main view; a click there moves it
    {
      const page = await openMap(context, site + plan.views.z1);
      const read = () => page.evaluate(() => {
        const m = window.vacancyState.map;
        const b = m.getBounds();
        const nw = m.project(b.getNorthWest(), 1);
        const se = m.project(b.getSouthEast(), 1);
        return { minimap: window.vacancyState.minimap, view: { x0: nw.x, y0: nw.y, x1: se.x, y1: se.y },
          center: m.project(m.getCenter(), 1) };
      });
      results.overview = { before: await read() };
      await page.evaluate(() => window.vacancyState.map.setView(
        window.vacancyState.map.unproject([320, 256], 1), 3, { animate: false }));
      await page.waitForTimeout(300);
      results.overview.moved = await read();
      const box = await page.locator("#minimap").boundingBox();
      results.overview.box = box;
      await page.screenshot({ path: path.join(out, "minimap.png") });
      await page.locator("#minimap").screenshot({ path: path.join(out, "minimap-only.png") });
      await page.mouse.click(box.x + box.width * 0.25, box.y + box.height * 0.25);
      await page.waitForTimeout(600);
      results.overview.clicked = await read();
      await page.close();
    }

    // 9. region labels at low zoom; a click flies to the region and selects it
    {
      const regionSite = plan.base + "/site-regions/";
      const z1 = await openMap(context, regionSite + plan.views.z1);
      results.regions = { labelsAtZ1: await z1.evaluate(() => window.vacancyState.regionLabels) };
      await z1.close();
      const page = await openMap(context, regionSite + plan.views.z0);
      results.regions.labels = await page.evaluate(() => Array.from(
        document.querySelectorAll(".region-label span")).map((el) => ({
        region: el.dataset.region, text: el.textContent, children: el.children.length,
        shown: el.dataset.shown === "true", rect: el.getBoundingClientRect().toJSON() })));
      results.regions.hostileOption = await page.evaluate((text) => {
        const option = Array.from(document.querySelectorAll("#filter-state-list option"))
          .find((o) => o.value === text);
        return option ? { text: option.textContent, elements: option.children.length,
          pwned: window.__pwned === undefined ? null : window.__pwned } : null;
      }, plan.hostile_state);
      await page.screenshot({ path: path.join(out, "regions.png") });
      results.regions.clickedRegion = results.regions.labels.find((l) => l.shown).region;
      await page.evaluate(() => {
        window.__flown = false;
        window.vacancyState.map.once("moveend", () => { window.__flown = true; });
      });
      await page.click(`.region-label span[data-region="${results.regions.clickedRegion}"]`);
      await page.waitForFunction(() => window.vacancyState.region, null, { timeout: 5000 });
      // the flight's end, then every tile and every original photo shown past the pyramid's top
      // loaded (a fixed wait was too short on a loaded machine: the screenshot caught a photo
      // still loading). The originals are added only once their records load, so "every image
      // complete" can hold before some are there: also wait until their number stops growing.
      const allLoaded = () => window.__flown && window.vacancyState.tilesIdle &&
        Array.from(document.querySelectorAll(".leaflet-pane img")).every((img) => img.complete);
      const originalsShown = () => page.evaluate(
        () => document.querySelectorAll("img.vacancy-original").length);
      for (let shown = -1, round = 0; round < 20; round += 1) {
        await page.waitForFunction(allLoaded, null, { timeout: 15000 });
        const now = await originalsShown();
        if (now === shown) break;
        shown = now;
        await page.waitForTimeout(300);
      }
      await page.waitForTimeout(450); // the last fade-in, as in openMap
      results.regions.clicked = await page.evaluate(() => {
        const m = window.vacancyState.map;
        const b = m.getBounds();
        const nw = m.project(b.getNorthWest(), 1);
        const se = m.project(b.getSouthEast(), 1);
        return { region: window.vacancyState.region, stats: window.vacancyState.stats,
          opened: window.vacancyState.selected,
          view: { x0: nw.x, y0: nw.y, x1: se.x, y1: se.y }, zoom: m.getZoom(),
          cells: window.vacancyState.selectionCells };
      });
      await page.screenshot({ path: path.join(out, "region-clicked.png") });
      await page.close();
    }
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

run().then(() => {
  fs.writeFileSync(path.join(out, "results.json"), JSON.stringify(results, null, 1));
}).catch((err) => {
  results.fatal = String(err && err.stack || err);
  fs.writeFileSync(path.join(out, "results.json"), JSON.stringify(results, null, 1));
  process.exitCode = 1;
});
