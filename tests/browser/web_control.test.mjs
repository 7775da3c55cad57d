// web_control.test.mjs - pausing, stopping and resuming one slot from the
// browser (espline run --station --http-control, token from the environment),
// in Debian's headless Chromium via puppeteer-core.
//
// Checks: the page asks for the token; "stop now" on a flashing slot
// interrupts its unit before its next step (recorded INTERRUPTED in the
// database; the simulator runs at time scale 2 so that the click lands well
// before the last step, even on a loaded machine) and the tile
// says PAUSED with a resume button, while the other slot goes on to PASS;
// resume brings the slot back (it waits for its unit to be taken out); pause
// on a slot waiting for removal turns it PAUSED; an unknown slot is a 404.
import fs from "node:fs";
import path from "node:path";
import {
  ok, note, finish, startSim, startEspline, esplineSync, launchBrowser, portArgs, tmpDir, waitFor,
} from "./lib.mjs";

const work = tmpDir("browser-control");
const db = path.join(work, "units.sqlite");
const token = "c0ntrol-token-0123456789abcdef";

const sim = await startSim([
  "--devices", "2", "--link", "rfc2217", "--time-scale", process.env.TIME_SCALE || "2",
  "--exit-after-idle", "120",
]);
const { browser, close } = await launchBrowser();
let station = null;

const tile = (page, port) =>
  page.$eval(`.tile[data-port="${port}"]`, (t) => ({
    status: t.dataset.status,
    buttons: [...t.querySelectorAll("button[data-action]")].map((b) => b.dataset.action),
    text: t.textContent,
  })).catch(() => null);
// The tiles are drawn again on every event (progress comes ten times a
// second): puppeteer's click, which finds the node, scrolls to it and then
// clicks, can lose the node in between ("detached").  A click in the page's
// own turn cannot.
const press = (page, port, action) =>
  page.$eval(`.tile[data-port="${port}"] button[data-action="${action}"]`, (b) => b.click());
const statusIs = (page, port, want) => async () => {
  const t = await tile(page, port);
  return t && t.status === want ? t : null;
};

try {
  station = await startEspline([
    "run", "recipes/nodemcu-4mb.yaml", "--station", "--batch", "control", "--db", db, "--plain",
    "--http", "127.0.0.1:0", "--http-control", ...portArgs(sim),
  ], { env: { ESPLINE_HTTP_TOKEN: token } });
  if (!ok(station.url, "espline run --http-control prints the address of the view", station.stderr()))
    throw new Error("no station");
  const [p0, p1] = sim.devices.map((d) => d.port);

  const page = await browser.newPage();
  page.on("dialog", (d) => d.accept());
  await page.goto(station.url, { waitUntil: "domcontentloaded" });
  const login = await waitFor(() => page.$eval("#login", (e) => !e.hidden).catch(() => false), 5000);
  ok(login, "the page asks for the token first");
  await page.type("#token", token);
  await Promise.all([page.waitForNavigation({ waitUntil: "domcontentloaded" }), page.click("#login-form button")]);

  const flashing = await waitFor(statusIs(page, p0, "FLASHING"), 20000);
  ok(flashing && flashing.buttons.join() === "pause,stop", "a flashing tile offers pause and stop",
    JSON.stringify(flashing));
  await press(page, p0, "stop");
  const paused = await waitFor(statusIs(page, p0, "PAUSED"), 15000);
  ok(paused && paused.buttons.join() === "resume" && /stopped by the operator/.test(paused.text),
    "stop now: the tile says PAUSED, why, and offers resume", JSON.stringify(paused));
  const other = await waitFor(statusIs(page, p1, "PASS"), 60000);
  ok(other, "the other slot goes on to PASS", JSON.stringify(await tile(page, p1)));

  const mac0 = sim.devices[0].mac;
  const hist = esplineSync(["history", "--db", db, mac0]);
  ok(/INTERRUPTED/.test(hist.out) && !/\sPASS\s/.test(hist.out),
    "the stopped unit is recorded INTERRUPTED, never PASS", hist.out + hist.err);

  await press(page, p0, "resume");
  const resumed = await waitFor(async () => {
    const t = await tile(page, p0);
    return t && t.status !== "PAUSED" ? t : null;
  }, 10000);
  ok(resumed && /remove unit/.test(resumed.text),
    "resume: the slot comes back and waits for its unit to be taken out", JSON.stringify(resumed));

  await press(page, p1, "pause");
  const paused1 = await waitFor(statusIs(page, p1, "PAUSED"), 10000);
  ok(paused1 && /paused by the operator/.test(paused1.text), "pause on a slot waiting for removal: PAUSED",
    JSON.stringify(paused1));

  const r = await fetch(station.url + "api/control?action=pause&port=nowhere", { method: "POST",
    headers: { Authorization: "Bearer " + token, "X-Espline-Control": "1" } });
  ok(r.status === 404, "pausing a slot that does not exist: 404", r.status);
  await page.close();
} catch (e) {
  ok(false, "the control test ran to its end", e.stack);
} finally {
  if (station && station.proc.exitCode === null) {
    station.proc.kill("SIGINT");
    const end = await station.exited;
    note(`station exit ${JSON.stringify(end)}`);
  }
  await close();
  await sim.stop();
  sim.cleanup();
  fs.rmSync(work, { recursive: true, force: true });
}
finish();
