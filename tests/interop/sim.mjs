// sim.mjs - start espline-sim for an interop test and wait until it is ready.
//
// startSim(args) runs $ESPLINE_BUILD/espline-sim (default build/) with
// --ready-file and --flash-dir in a fresh temporary directory (or the
// flashDir given, to see what an earlier run wrote), waits for the ready
// file, and returns { devices, dir, flashDir, flashFile(k), stop(), stderr() }.
// devices[k] = { index, port, mac, flash, ... } parsed from the device lines.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, "..", "..");

export function simBinary() {
  const build = process.env.ESPLINE_BUILD || path.join(repoRoot, "build");
  return path.join(build, "espline-sim");
}

export function parseDeviceLine(line) {
  const parts = line.trim().split(/\s+/);
  if (parts[0] !== "device" || parts.length < 3) return null;
  const dev = { index: Number(parts[1]), port: parts[2] };
  for (const kv of parts.slice(3)) {
    const eq = kv.indexOf("=");
    if (eq > 0) dev[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return dev;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function startSim(args, { timeoutMs = 10000, flashDir = null } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "espline-interop-"));
  const ready = path.join(dir, "ready");
  flashDir = flashDir ?? path.join(dir, "flash");
  const proc = spawn(simBinary(), ["--ready-file", ready, "--flash-dir", flashDir, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  proc.stderr.on("data", (d) => (stderr += d));
  proc.stdout.on("data", () => {});
  let exited = null;
  const exitPromise = new Promise((resolve) =>
    proc.on("exit", (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    }),
  );
  const deadline = Date.now() + timeoutMs;
  while (!fs.existsSync(ready)) {
    if (exited) throw new Error(`espline-sim exited early (${JSON.stringify(exited)}): ${stderr}`);
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`espline-sim not ready after ${timeoutMs} ms: ${stderr}`);
    }
    await sleep(20);
  }
  const devices = fs
    .readFileSync(ready, "utf8")
    .split("\n")
    .map(parseDeviceLine)
    .filter(Boolean);
  return {
    dir,
    flashDir,
    devices,
    proc,
    flashFile: (k) => path.join(flashDir, `dev${k}.bin`),
    stderr: () => stderr,
    async stop(signal = "SIGTERM") {
      if (!exited) proc.kill(signal);
      return exitPromise;
    },
    cleanup() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
