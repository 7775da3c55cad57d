// esptool_js_faults.test.mjs - injected faults as Espressif's client meets
// them (esptool-js unchanged, over ptys): a corrupted byte in the middle of
// the compressed data costs one block retry and the image still verifies;
// a flash sector that keeps bits at 1 is never reported as written; a cable
// pulled mid-write ends in an error promptly instead of a hang.  Each fault
// must also show up in the simulator's log.  Prints TAP.
//
// Environment: ESPLINE_BUILD, SIM_TIME_SCALE (default 0.05).
import { ESPLoader, Transport } from "esptool-js";
import { finish, firmwareImage, md5, note, ok, terminal } from "./common.mjs";
import { TtySerialPort } from "./serialport_tty.mjs";
import { startSim } from "./sim.mjs";

const scale = process.env.SIM_TIME_SCALE ?? "0.05";
const started = Date.now();

async function session(dev, fn) {
  const port = new TtySerialPort(dev.port);
  const transport = new Transport(port, false);
  transport.trace = (m) => process.env.VERBOSE && note(`trace: ${m}`); // its logging only
  const term = terminal();
  const loader = new ESPLoader({ transport, baudrate: 460800, romBaudrate: 115200, terminal: term });
  let error = null;
  const t0 = Date.now();
  try {
    await loader.main("no_reset");
    await fn(loader);
  } catch (e) {
    error = e;
  }
  const ms = Date.now() - t0;
  // esptool-js 0.7.0 never releases its writer when a write fails, and its
  // disconnect() then waits for the unlock forever: give it 2 s, then close
  // the port under it.
  const gone = await Promise.race([
    transport.disconnect().then(() => false, () => true),
    new Promise((r) => setTimeout(() => r(true), 2000)),
  ]);
  if (gone) await port.close().catch(() => {});
  return { term, error, ms };
}

const write = (image) => (loader) =>
  loader.writeFlash({
    fileArray: [{ data: image, address: 0 }],
    flashMode: "keep", flashFreq: "keep", flashSize: "keep",
    eraseAll: false, compress: true, calculateMD5Hash: (img) => md5(img),
  });

console.log("TAP version 13");
// Byte 30000 of what the host sends lies in the compressed data: the stub
// upload before it is about 13 KB.
const sim = await startSim([
  "--devices", "3", "--time-scale", scale,
  "--dev", "0:fault=corrupt@rx:30000",
  "--dev", "1:fault=stuck@0x21000",
  "--dev", "2:fault=unplug@rx:40000:3000",
]);
const image = firmwareImage(256 * 1024, 4711);
try {
  const s0 = await session(sim.devices[0], write(image));
  ok(s0.error === null && s0.term.has(/^Hash of data verified/),
    `corrupted byte mid-write: esptool-js retries the block and the MD5 verifies (${s0.ms} ms)`,
    `${s0.error}\n${s0.term.lines.slice(-6).join("\n")}`);
  ok(/dev 0: fault rx corrupt@30000 fired/.test(sim.stderr()), "the simulator logged the corruption");

  const s1 = await session(sim.devices[1], write(image));
  // Caught either by the stub (deferred write error 0xC4) or by the MD5 check.
  ok(s1.error !== null && /MD5 of file does not match|status 196/.test(String(s1.error)),
    `stuck sector at 0x21000: esptool-js reports the failure (${s1.error})`);

  const s2 = await session(sim.devices[2], write(image));
  ok(s2.error !== null && s2.ms < 30000, `unplugged mid-write: esptool-js fails within ${s2.ms} ms (${s2.error})`);
  ok(/dev 2: fault rx unplug@40000 fired/.test(sim.stderr()) && /dev 2: unplugged for 3000 ms/.test(sim.stderr()),
    "the simulator logged the unplug");
} finally {
  const status = await sim.stop();
  ok(status.code === 0, "espline-sim survives all of it and exits 0", JSON.stringify(status));
}
ok(/dev 0: faults: rx\.corrupt=1;/.test(sim.stderr()) && /dev 2: faults: rx\.unplug=1;/.test(sim.stderr()),
  "fault counts in the exit summary", sim.stderr().split("\n").filter((l) => /faults:/.test(l)).join("\n"));
note(`time-scale ${scale}; total ${((Date.now() - started) / 1000).toFixed(1)} s`);
if (process.env.VERBOSE) note(sim.stderr());
sim.cleanup();
finish();
