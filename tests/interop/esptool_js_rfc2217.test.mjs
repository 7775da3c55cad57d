// esptool_js_rfc2217.test.mjs - esptool-js (unchanged) against espline-sim
// over RFC 2217, so that Espressif's own reset sequence drives the
// simulated NodeMCU auto-reset circuit: the chip powers up running its
// application, esptool-js's ClassicReset (DTR/RTS) puts it in download mode,
// the baud rate is raised in-band, an image is written with MD5
// verification, an RTS pulse boots from flash (the ROM's log), and a second session
// finds the data still there.  Prints TAP.
//
// Environment: ESPLINE_BUILD, SIM_TIME_SCALE (default 0.05).
import fs from "node:fs";
import { ESPLoader, Transport } from "esptool-js";
import { finish, firmwareImage, md5, note, ok, terminal } from "./common.mjs";
import { Rfc2217SerialPort } from "./serialport_rfc2217.mjs";
import { startSim } from "./sim.mjs";

const scale = process.env.SIM_TIME_SCALE ?? "0.05";
const MAC = "a0:20:a6:01:02:03";
const ADDR = 0x10000;
const started = Date.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function connect(dev, baudrate) {
  const port = new Rfc2217SerialPort(dev.port);
  const transport = new Transport(port, false);
  transport.trace = (m) => process.env.VERBOSE && note(`trace: ${m}`); // its logging only
  const term = terminal();
  const loader = new ESPLoader({ transport, baudrate, romBaudrate: 115200, terminal: term });
  return { port, transport, term, loader };
}

console.log("TAP version 13");
const sim = await startSim(["--link", "rfc2217", "--time-scale", scale, "--mac", MAC, "--verbose"]);
const dev = sim.devices[0];
ok(dev && /^rfc2217:\/\/127\.0\.0\.1:\d+$/.test(dev.port) && dev.boot === "app",
  "espline-sim serves an RFC 2217 device that powers up into its application", JSON.stringify(dev));

const image = firmwareImage(256 * 1024, 2217);
try {
  const c = await connect(dev, 921600);
  let chip = null;
  try {
    chip = await c.loader.main("default_reset");
  } catch (e) {
    ok(false, "esptool-js connects with its default (classic DTR/RTS) reset", `${e}\n${c.term.lines.join("\n")}`);
  }
  if (chip !== null) {
    ok(true, `esptool-js connects with its default (classic DTR/RTS) reset: ${chip}`);
    const log = c.port.controlLog;
    // ClassicReset: (DTR off, RTS on), 100 ms, (DTR on, RTS off), 50 ms, (off, off)
    ok(log.slice(0, 6).join(",") === "9,11,8,12,9,12", `reset went over SET-CONTROL (${log.slice(0, 6).join(",")})`);
    ok(/dev 0: boot \(download mode\), rst cause 2/.test(sim.stderr()),
      "the simulated EN/GPIO0 circuit booted the chip into download mode");
    const mac = c.term.find(/^MAC: (\S+)/);
    ok(mac && mac[1] === MAC, `MAC (${mac && mac[1]})`);
    ok(c.loader.IS_STUB && c.port.baudRate === 921600 && !c.term.has(/Continuing at/),
      "stub running at 921600 baud (SET-BAUDRATE in-band)");

    let wrote = false;
    try {
      await c.loader.writeFlash({
        fileArray: [{ data: image, address: ADDR }],
        flashMode: "keep", flashFreq: "keep", flashSize: "keep",
        eraseAll: false, compress: true, calculateMD5Hash: (img) => md5(img),
      });
      wrote = c.term.has(/^Hash of data verified/);
    } catch (e) {
      note(String(e));
    }
    ok(wrote, "writeFlash of 256 KB at 0x10000, compressed, MD5 verified");

    // Hard reset by RTS pulse (esptool-js 0.7.0's own HardReset only
    // releases RTS and never asserts it), listening at 74880, the ROM's
    // rate with the default 26 MHz crystal.  The image went to 0x10000 and
    // 0x0 is still erased, so the ROM boots from flash, finds no image
    // header and stops, as a blank real chip does (docs/boot-model.md).
    await c.transport.changeBaudrate(74880);
    c.transport.flushInput();
    await c.loader.after("custom_reset", false, "R1|W100|R0");
    await sleep(300);
    const text = Buffer.from(c.transport.peek()).toString("latin1");
    ok(/rst cause:2, boot mode:\(3,6\)\r\n\r\nets_main\.c /.test(text),
      "an RTS pulse boots from flash: the ROM's log for an erased 0x0", JSON.stringify(text.slice(-120)));
  }
  await c.transport.disconnect();

  // A second session: reset into download mode again, MD5 of the region.
  const c2 = await connect(dev, 115200);
  try {
    await c2.loader.main("default_reset");
    const flashMd5 = await c2.loader.flashMd5sum(ADDR, image.length);
    ok(flashMd5 === md5(image), `second session: the chip kept the data across resets (${flashMd5})`);
  } catch (e) {
    ok(false, "second session: reset into download mode and MD5", `${e}\n${c2.term.lines.join("\n")}`);
  }
  await c2.transport.disconnect();
} finally {
  const status = await sim.stop();
  ok(status.code === 0, "espline-sim exits 0 on SIGTERM", JSON.stringify(status));
}
const flash = fs.readFileSync(sim.flashFile(0));
ok(md5(flash.subarray(ADDR, ADDR + image.length)) === md5(image), "flash file holds the image at 0x10000");
ok(flash.subarray(0, ADDR).every((b) => b === 0xff), "nothing else was written");
const boots = (sim.stderr().match(/boot \(/g) || []).length;
ok(boots >= 4, `boots seen by the simulator: power-on, reset, app, reset (${boots})`);
note(`time-scale ${scale}; total ${((Date.now() - started) / 1000).toFixed(1)} s`);
if (process.env.VERBOSE) note(sim.stderr());
sim.cleanup();
finish();
