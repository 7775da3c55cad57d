// web_paint.mjs - how fast the pages paint on loopback, in Debian's headless
// Chromium: the live view of a station with 8 simulated modules, and the
// history page of its database (espline serve).  Each page is loaded LOADS
// times in a fresh tab of one warm browser (the first load of each is a
// warm-up, not counted); times come from the browser's own clock, from the
// start of navigation.  Target (issue 18): first paint under 200 ms.
//
//   node bench/web_paint.mjs     (env: ESPLINE_BUILD, LOADS=15)
// Prints a Markdown table on stdout.
import path from "node:path";
import fs from "node:fs";
import {
  startSim, startEspline, launchBrowser, portArgs, tmpDir, waitFor,
} from "../tests/browser/lib.mjs";

const loads = Number(process.env.LOADS || 15);
const work = tmpDir("bench-paint");
const db = path.join(work, "units.sqlite");
const sim = await startSim(["--devices", "8", "--link", "rfc2217", "--time-scale", "0", "--exit-after-idle", "120"]);
const { browser, close } = await launchBrowser();
const started = [];

async function measure(url, ready) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1600, height: 1000 });
  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.waitForSelector(ready, { timeout: 10000 });
  const t = await page.evaluate((sel) => ({
    fcp: performance.getEntriesByType("paint").find((e) => e.name === "first-contentful-paint")?.startTime,
    ready: document.querySelector(sel) ? performance.now() : NaN,
  }), ready);
  await page.close();
  return t;
}

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const med = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return `${med.toFixed(0)} | ${s[0].toFixed(0)} | ${s[s.length - 1].toFixed(0)}`;
}

async function series(name, url, ready, what) {
  await measure(url, ready);  // warm-up
  const fcp = [], done = [];
  for (let i = 0; i < loads; i++) {
    const t = await measure(url, ready);
    fcp.push(t.fcp);
    done.push(t.ready);
  }
  console.log(`| ${name} | first contentful paint | ${stats(fcp)} |`);
  console.log(`| ${name} | ${what} | ${stats(done)} |`);
}

try {
  const station = await startEspline(["run", "recipes/nodemcu-4mb.yaml", "--station", "--db", db, "--plain",
    "--http", "127.0.0.1:0", ...portArgs(sim)]);
  started.push(station);
  // Let every module be programmed, so the tiles and the database hold units.
  await waitFor(() => (station.stdout().match(/: PASS /g) || []).length >= 8, 60000, 200);
  const serve = await startEspline(["serve", "--db", db, "--http", "127.0.0.1:0"]);
  started.push(serve);
  console.log(`Load average at start: ${fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}; ` +
    `${loads} loads per page after one warm-up, each in a new tab of one browser.`);
  console.log();
  console.log("| page | measure | median ms | min ms | max ms |");
  console.log("|:--|:--|--:|--:|--:|");
  await series("live view (8 tiles)", station.url, ".tile", "tiles drawn from the event stream");
  await series("history (batches)", serve.url + "#history", "#batches tbody tr", "batch list drawn");
  console.log();
  console.log(`Load average at the end: ${fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}.`);
} finally {
  for (const p of started) p.proc.kill("SIGINT");
  await Promise.all(started.map((p) => p.exited));
  await close();
  await sim.stop();
  sim.cleanup();
  fs.rmSync(work, { recursive: true, force: true });
}
