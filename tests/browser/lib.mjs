// lib.mjs - helpers for the browser tests: start espline (run --http or
// serve) and wait for the address it prints, launch Debian's Chromium
// through puppeteer-core, and poll the page.
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import puppeteer from "puppeteer-core";
import { repoRoot } from "../interop/sim.mjs";

export { ok, note, finish } from "../interop/common.mjs";
export { startSim, repoRoot } from "../interop/sim.mjs";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function esplineBinary() {
  const build = process.env.ESPLINE_BUILD || path.join(repoRoot, "build");
  return path.join(build, "espline");
}

export function tmpDir(tag) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `espline-${tag}-`));
}

// Start espline with args; resolve once it printed "web view at URL" on
// stderr.  Returns { url, proc, stdout(), stderr(), exited }.
export async function startEspline(args, { env = {}, timeoutMs = 15000 } = {}) {
  const proc = spawn(esplineBinary(), args, {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "", err = "";
  proc.stdout.on("data", (d) => (out += d));
  proc.stderr.on("data", (d) => (err += d));
  const exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  let done = null;
  exited.then((x) => (done = x));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = /web view at (http:\/\/\S+)/.exec(err);
    if (m) return { url: m[1], proc, stdout: () => out, stderr: () => err, exited };
    if (done) return { url: null, proc, stdout: () => out, stderr: () => err, exited, code: done.code };
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`espline printed no address in ${timeoutMs} ms: ${err}`);
    }
    await sleep(20);
  }
}

// Run espline to the end (for `espline history` and friends).
export function esplineSync(args) {
  try {
    return { code: 0, out: execFileSync(esplineBinary(), args, {
      cwd: repoRoot, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }) };
  } catch (e) {
    return { code: e.status, out: String(e.stdout || ""), err: String(e.stderr || "") };
  }
}

// Chromium as root in a container: no sandbox, no network beyond the page.
export async function launchBrowser() {
  const profile = tmpDir("chromium");
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      `--user-data-dir=${profile}`,
    ],
  });
  const close = async () => {
    await browser.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { browser, close };
}

// The sim's ports as --port arguments.
export function portArgs(sim) {
  return sim.devices.flatMap((d) => ["--port", d.port]);
}

export async function waitFor(fn, timeoutMs, stepMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) return v;
    await sleep(stepMs);
  }
}
