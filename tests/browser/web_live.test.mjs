// web_live.test.mjs - the web view in a real browser (Debian's headless
// Chromium via puppeteer-core) during a simulated 8-device batch with
// arranged failures (device 5: a 1 MB part the recipe refuses; device 4: a
// flash sector stuck at 1 bits), then the history server on its database.
//
// Checks: tiles change state live; a FAIL tile shows its reason; counts and
// yield match espline's own summary; a browser that connects mid-batch gets
// the state at once; a batch name holding <script> renders as text; the
// MAC search shows the units `espline history` shows, in its order.
// With ESPLINE_SCREENSHOTS=DIR it saves web-live.png (mid-batch) and
// web-history.png (a MAC's history and a batch report).
import fs from "node:fs";
import path from "node:path";
import {
  ok, note, finish, startSim, startEspline, esplineSync, launchBrowser, portArgs, tmpDir, waitFor, sleep,
} from "./lib.mjs";

const work = tmpDir("browser");
const db = path.join(work, "units.sqlite");
const batch = "L7<script>__pwned=1</script><img src=x onerror=__pwned=2>";
const shots = process.env.ESPLINE_SCREENSHOTS || null;

const sim = await startSim([
  "--devices", "8", "--link", "rfc2217", "--time-scale", process.env.TIME_SCALE || "0.6",
  "--exit-after-idle", "120", "--dev", "2:flash=16MB", "--dev", "5:flash=1MB", "--dev", "4:fault=stuck@0x21000",
  // Every module holds the host's first bytes 2.5 s: the page is up before any
  // unit can finish, however slowly a loaded machine starts the browser.
  "--fault", "stall@rx:0:2500",
]);
const { browser, close } = await launchBrowser();
let station = null, server = null;

async function tiles(page) {
  return page.$$eval(".tile", (ts) =>
    ts.map((t) => ({
      port: t.dataset.port,
      status: t.dataset.status,
      reason: t.querySelector(".tile-reason")?.textContent || "",
    })));
}

try {
  station = await startEspline([
    "run", "recipes/nodemcu-4mb.yaml", "--batch", batch, "--count", "8", "--json", "--db", db,
    "--http", "127.0.0.1:0", ...portArgs(sim),
  ]);
  if (!ok(station.url, "espline run --http prints the address of the view", station.stderr()))
    throw new Error("no station");
  const page = await browser.newPage();
  await page.setViewport({ width: 1600, height: 1000 });
  await page.goto(station.url, { waitUntil: "domcontentloaded" });
  // Times from the browser's own clock, from the start of navigation: the
  // first paint, and the tiles drawn from the event stream's snapshot.
  await page.waitForSelector(".tile", { timeout: 10000 }).catch(() => {});
  const livePaint = await page.evaluate(() => ({
    fcp: performance.getEntriesByType("paint").find((e) => e.name === "first-contentful-paint")?.startTime,
    tiles: document.querySelector(".tile") ? performance.now() : undefined,
  }));
  note(`live page on loopback: first contentful paint ${livePaint.fcp?.toFixed(0) ?? "?"} ms, ` +
    `tiles drawn by ${livePaint.tiles?.toFixed(0) ?? "?"} ms`);

  // Watch every tile's word while the batch runs, without reloading.
  const seen = new Map();
  let midBatchChecked = false;
  let finished = false;
  station.exited.then(() => (finished = true));
  while (!finished) {
    for (const t of await tiles(page).catch(() => [])) {
      if (!seen.has(t.port)) seen.set(t.port, []);
      const s = seen.get(t.port);
      if (s[s.length - 1] !== t.status) s.push(t.status);
    }
    if (!midBatchChecked) {
      const passed = Number(await page.$eval("#passed", (e) => e.textContent).catch(() => "0"));
      if (passed >= 1) {
        midBatchChecked = true;
        if (shots) await page.screenshot({ path: path.join(shots, "web-live.png") });
        // A second browser, now: the state must be there before any new event.
        const late = await browser.newPage();
        await late.goto(station.url, { waitUntil: "domcontentloaded" });
        const lateState = await waitFor(async () => {
          const n = await late.$$eval(".tile", (ts) => ts.length).catch(() => 0);
          const p = Number(await late.$eval("#passed", (e) => e.textContent).catch(() => "0"));
          return n === 8 && p >= passed ? { n, p } : null;
        }, 1500, 20);
        ok(lateState, "a browser connecting mid-batch shows all 8 tiles and the units done so far at once",
          JSON.stringify(lateState));
        await late.close();
      }
    }
    await sleep(50);
  }
  const exit = await station.exited;
  ok(exit.code === 1, "the batch ends with exit code 1 (failures were arranged)", JSON.stringify(exit));
  await sleep(300);
  const sequences = [...seen.values()];
  const live = sequences.filter((s) => s.includes("FLASHING") && (s.includes("PASS") || s.includes("FAIL")) &&
    s.indexOf("FLASHING") < Math.max(s.indexOf("PASS"), s.indexOf("FAIL")));
  ok(live.length >= 6, "tiles changed from FLASHING to PASS/FAIL live in the page",
    JSON.stringify([...seen.entries()]));

  const summary = JSON.parse(station.stdout().trim().split("\n").filter((l) => l.includes('"summary"')).pop());
  const shown = await page.evaluate(() => ({
    passed: document.getElementById("passed").textContent,
    failed: document.getElementById("failed").textContent,
    yield: document.getElementById("yield").textContent,
    done: document.getElementById("done").textContent,
    batch: document.getElementById("batch").textContent,
    reasons: [...document.querySelectorAll("#reasons li.reason")].map((li) => [li.dataset.reason,
      li.querySelector(".reason-count").textContent]),
    pwned: window.__pwned || 0,
    scripts: document.scripts.length,
    imgs: document.images.length,
  }));
  ok(shown.passed === String(summary.passed) && shown.failed === String(summary.failed),
    `passed/failed on the page match the summary (${summary.passed}/${summary.failed})`, JSON.stringify(shown));
  ok(shown.yield === (100 * summary.yield).toFixed(1) + " %", "the yield on the page matches the summary",
    `${shown.yield} vs ${summary.yield}`);
  ok(shown.done === `${summary.passed + summary.failed} / 8`, "done counts the 8 units", shown.done);
  const reasons = Object.entries(summary.failed_by_reason).map(([k, n]) => [k, `${n} \u00d7`]).sort();
  ok(JSON.stringify(shown.reasons.sort()) === JSON.stringify(reasons), "failures by reason match the summary",
    JSON.stringify(shown.reasons));

  const final = await tiles(page);
  const fails = final.filter((t) => t.status === "FAIL");
  ok(fails.length === summary.failed && fails.length >= 2, `${fails.length} FAIL tiles, as many as failed units`,
    JSON.stringify(final));
  ok(fails.every((t) => t.reason && summary.failed_by_reason[t.reason]),
    "every FAIL tile shows its reason (an error kind of the summary)", JSON.stringify(fails));

  ok(shown.batch === batch, "the batch name renders as text, <script> and all", shown.batch);
  ok(shown.pwned === 0 && shown.scripts === 1 && shown.imgs === 0,
    "the hostile batch name ran no script and added no element", JSON.stringify(shown));
  await page.close();

  // ---- history: espline serve on the same database ----
  const second = esplineSync(["run", "recipes/nodemcu-4mb.yaml", "--batch", "rework", "--count", "1", "--plain",
    "--db", db, "--port", sim.devices[0].port]);
  note(`second batch on device 0: exit ${second.code}`);
  server = await startEspline(["serve", "--db", db, "--http", "127.0.0.1:0"]);
  ok(server.url, "espline serve prints the address of the history", server.stderr());
  const paint = await browser.newPage();
  await paint.goto(server.url, { waitUntil: "load" });
  await sleep(300);
  const timing = await paint.evaluate(() => ({
    fcp: performance.getEntriesByType("paint").find((e) => e.name === "first-contentful-paint")?.startTime,
    dcl: performance.getEntriesByType("navigation")[0]?.domContentLoadedEventEnd,
  }));
  note(`history page on loopback: first contentful paint ${timing.fcp?.toFixed(0) ?? "?"} ms, ` +
    `DOMContentLoaded ${timing.dcl?.toFixed(0) ?? "?"} ms`);
  await paint.close();
  const hist = await browser.newPage();
  await hist.setViewport({ width: 1400, height: 1200 });
  await hist.setRequestInterception(true);
  hist.on("request", (r) => (r.url().endsWith("/api/info") ? setTimeout(() => r.continue(), 1500) : r.continue()));
  await hist.goto(server.url + "#history", { waitUntil: "domcontentloaded" });
  // The history section is hidden until the page has fetched /api/info, and
  // an empty array is truthy: wait for rows, or a slow start loses the typed
  // MAC below to a hidden input.
  const rows = await waitFor(() => hist.$$eval("#batches tbody tr",
    (rs) => (rs.length ? rs.map((r) => r.textContent) : null)), 5000);
  ok(rows && rows.some((r) => r.includes(batch)), "the batch list shows the hostile batch name as text",
    JSON.stringify(rows));

  const mac = sim.devices[0].mac;
  await hist.type("#mac", mac);
  await hist.click("#search button");
  const units = await waitFor(async () => {
    const u = await hist.$$eval(".unit", (us) => us.map((x) => [x.dataset.unit, x.dataset.result]));
    return u.length ? u : null;
  }, 5000);
  const cli = esplineSync(["history", "--db", db, mac]);
  const cliUnits = [];
  const lines = cli.out.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const head = /^\S+\s+(PASS|FAIL|INTERRUPTED|RUNNING)\s/.exec(lines[i]);
    if (head) cliUnits.push([null, head[1]]);
    const unit = /\sunit ([0-9a-f-]{36})$/.exec(lines[i]);
    if (unit && cliUnits.length) cliUnits[cliUnits.length - 1][0] = unit[1];
  }
  ok(cliUnits.length >= 2, `espline history lists ${cliUnits.length} units for ${mac}`, cli.out);
  ok(JSON.stringify(units) === JSON.stringify(cliUnits),
    "the search by MAC shows the same units, results and order as espline history",
    `page ${JSON.stringify(units)}\ncli  ${JSON.stringify(cliUnits)}`);
  const pageText = await hist.$eval("#units", (e) => e.textContent);
  ok(cliUnits.every(([u]) => pageText.includes(u)) && pageText.includes(batch),
    "the unit blocks name each unit and the batch as text", pageText.slice(0, 400));

  // The report of the hostile batch, with its failures by reason.
  await hist.$$eval("#batches tbody button", (bs, name) => bs.find((b) => b.textContent === name)?.click(), batch);
  const reportTitle = await waitFor(() => hist.$eval("#report-title", (e) => e.textContent).catch(() => ""), 5000);
  const reportText = await hist.$eval("#report-body", (e) => e.textContent);
  ok(reportTitle === "Batch " + batch && Object.keys(summary.failed_by_reason).every((k) => reportText.includes(k)),
    "the batch report lists the failures by reason", reportText.slice(0, 400));
  const csvHref = await hist.$eval("#report-body a[href*='export.csv']", (a) => a.href);
  const csv = await (await fetch(csvHref)).text();
  ok(csv.split("\r\n").filter(Boolean).length === 9, "the CSV export link gives the 8 units and a header",
    csv.slice(0, 200));
  if (shots) await hist.screenshot({ path: path.join(shots, "web-history.png"), fullPage: true });
} catch (e) {
  ok(false, "the browser test ran to its end", e.stack);
} finally {
  if (station && station.proc.exitCode === null) station.proc.kill("SIGKILL");
  if (server) {
    server.proc.kill("SIGTERM");
    const r = await server.exited;
    ok(r.code === 0, "espline serve ends cleanly on SIGTERM", JSON.stringify(r));
  }
  await close();
  await sim.stop();
  sim.cleanup();
  fs.rmSync(work, { recursive: true, force: true });
}
finish();
