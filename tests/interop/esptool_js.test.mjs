// esptool_js.test.mjs - Espressif's own client (esptool-js, unchanged) against
// espline-sim over a pty: connect without reset, detect the ESP8266, read the
// MAC, upload esptool-js's ESP8266 stub, raise the baud rate, write a 1 MB
// firmware-like image compressed with MD5 verification, and compare the
// simulator's flash file with the image byte for byte.  Prints TAP.
//
// Environment: ESPLINE_BUILD (build dir holding espline-sim, default build/),
// SIM_TIME_SCALE (default 0.05: real wire/flash timing, 20x faster).
import fs from "node:fs";
import { ESPLoader, Transport } from "esptool-js";
import { TtySerialPort } from "./serialport_tty.mjs";
import { startSim } from "./sim.mjs";
import { finish, firmwareImage, md5, note, ok, terminal } from "./common.mjs";

async function connect(dev, baudrate) {
  const port = new TtySerialPort(dev.port);
  const transport = new Transport(port, false);
  transport.trace = (m) => process.env.VERBOSE && note(`trace: ${m}`); // its logging only
  const term = terminal();
  const loader = new ESPLoader({ transport, baudrate, romBaudrate: 115200, terminal: term });
  return { port, transport, term, loader };
}

// ---- the test --------------------------------------------------------------
const MAC0 = "5c:cf:7f:12:34:56"; // OUI in eFuse word 3
const MAC1 = "18:fe:34:ab:cd:ef"; // OUI encoded by MAC1 bits 16..23 == 0
const scale = process.env.SIM_TIME_SCALE ?? "0.05";
const started = Date.now();
console.log("TAP version 13");

const sim = await startSim([
  "--devices", "2", "--time-scale", scale, "--flash", "4MB",
  "--dev", `0:mac=${MAC0}`, "--dev", `1:mac=${MAC1},flash=1MB,xtal=40`,
]);
let exitStatus = null;
try {
  ok(sim.devices.length === 2 && sim.devices.every((d) => d.port.startsWith("/dev/")),
    "espline-sim lists two pty devices", JSON.stringify(sim.devices));
  ok(sim.devices[0].mac === MAC0 && sim.devices[1].mac === MAC1, "device lines carry the configured MACs");

  // Device 0: the full job.
  const image = firmwareImage(1024 * 1024, 8266);
  const imageMd5 = md5(image);
  const c = await connect(sim.devices[0], 460800);
  let chip = null;
  try {
    chip = await c.loader.main("no_reset");
  } catch (e) {
    ok(false, "esptool-js connects (no_reset) and runs its main()", `${e}\n${c.term.lines.join("\n")}`);
  }
  if (chip !== null) {
    ok(true, "esptool-js connects (no_reset) and runs its main()");
    ok(c.loader.chip.CHIP_NAME === "ESP8266", `chip detected as ESP8266 (${chip})`, c.loader.chip.CHIP_NAME);
    const mac = c.term.find(/^MAC: (\S+)/);
    ok(mac && mac[1] === MAC0, `MAC read by esptool-js equals the simulator's (${mac && mac[1]})`);
    ok(c.loader.IS_STUB && c.term.has(/^Stub running/), "esptool-js's ESP8266 stub was uploaded and runs");
    ok(c.port.baudRate === 460800 && !c.term.has(/Continuing at/),
      "baud rate raised to 460800 (CHANGE_BAUDRATE, host follows, chip answers)",
      c.term.lines.filter((l) => /baud|Continuing/i.test(l)).join("\n"));
    const flashId = c.term.find(/^Flash ID: (\S+)/);
    ok(flashId && parseInt(flashId[1], 16) === 0x1640ef, `JEDEC id read through SPI registers (${flashId && flashId[1]})`);

    const t0 = Date.now();
    let wrote = false;
    try {
      await c.loader.writeFlash({
        fileArray: [{ data: image, address: 0 }],
        flashMode: "keep",
        flashFreq: "keep",
        flashSize: "keep",
        eraseAll: false,
        compress: true,
        calculateMD5Hash: (img) => md5(img),
      });
      wrote = true;
    } catch (e) {
      note(c.term.lines.slice(-15).join("\n"));
      ok(false, "writeFlash (compressed, MD5-verified) of a 1 MB image", String(e));
    }
    if (wrote) {
      ok(c.term.has(/^Hash of data verified/), `writeFlash of 1 MB compressed, MD5 verified on the chip (${Date.now() - t0} ms)`,
        c.term.lines.slice(-5).join("\n"));
      const comp = c.term.find(/^Wrote (\d+) bytes \((\d+) compressed\)/);
      ok(comp && Number(comp[1]) === image.length && Number(comp[2]) < image.length * 0.9 && Number(comp[2]) > image.length * 0.2,
        `image compresses like firmware (${comp && comp[2]} of ${image.length} bytes)`);
      // Saved after FLASH_DEFL_END, while the simulator still runs.
      const live = fs.readFileSync(sim.flashFile(0));
      ok(live.length === 4 * 1024 * 1024 && md5(live.subarray(0, image.length)) === imageMd5,
        "flash file saved after FLASH_DEFL_END matches the image");
    }
    await c.loader.after("no_reset_stub");
  }
  await c.transport.disconnect();

  // Device 1: other OUI rule, other size, 40 MHz crystal.
  const c1 = await connect(sim.devices[1], 115200);
  try {
    await c1.loader.main("no_reset");
    const mac = c1.term.find(/^MAC: (\S+)/);
    ok(mac && mac[1] === MAC1, `second device: MAC with the 18:fe:34 OUI rule (${mac && mac[1]})`);
    ok(c1.term.has(/^Crystal is 40MHz/), "second device: 40 MHz crystal detected", c1.term.find(/Crystal.*/));
    const flashId = c1.term.find(/^Flash ID: (\S+)/);
    ok(flashId && parseInt(flashId[1], 16) === 0x1440ef, `second device: 1 MB flash id (${flashId && flashId[1]})`);
  } catch (e) {
    ok(false, "second device: esptool-js main()", `${e}\n${c1.term.lines.join("\n")}`);
  }
  await c1.transport.disconnect();
} finally {
  exitStatus = await sim.stop("SIGTERM");
}

ok(exitStatus.code === 0, "espline-sim exits 0 on SIGTERM", JSON.stringify(exitStatus));
if (fs.existsSync(sim.flashFile(0))) {
  const flash = fs.readFileSync(sim.flashFile(0));
  const image = firmwareImage(1024 * 1024, 8266);
  const same = Buffer.compare(flash.subarray(0, image.length), Buffer.from(image)) === 0;
  let firstDiff = -1;
  if (!same) firstDiff = image.findIndex((b, i) => flash[i] !== b);
  ok(same, "simulator's flash file is byte-identical to the image", `first difference at 0x${firstDiff.toString(16)}`);
  ok(flash.subarray(image.length).every((b) => b === 0xff), "flash beyond the image is still erased (0xFF)");
} else {
  ok(false, "simulator's flash file exists", sim.flashFile(0));
}
ok(/dev 0: faults: none/.test(sim.stderr()), "simulator reports no injected faults", sim.stderr().split("\n").slice(-5).join("\n"));

// A second simulator run on the same --flash-dir sees what the first wrote:
// the stub's MD5 over the image region matches.
const sim2 = await startSim(["--time-scale", scale, "--dev", `0:mac=${MAC0}`], { flashDir: sim.flashDir });
try {
  const c2 = await connect(sim2.devices[0], 115200);
  await c2.loader.main("no_reset");
  const flashMd5 = await c2.loader.flashMd5sum(0, 1024 * 1024);
  ok(flashMd5 === md5(firmwareImage(1024 * 1024, 8266)), `second run: on-chip MD5 of the image region matches (${flashMd5})`);
  await c2.transport.disconnect();
} catch (e) {
  ok(false, "second run: on-chip MD5 of the image region", String(e));
} finally {
  await sim2.stop();
  sim2.cleanup();
}
note(`time-scale ${scale}; total ${((Date.now() - started) / 1000).toFixed(1)} s`);
if (process.env.VERBOSE) note(sim.stderr());
sim.cleanup();
finish();
