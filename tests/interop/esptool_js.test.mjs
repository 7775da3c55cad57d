// esptool_js.test.mjs - Espressif's own client (esptool-js, unchanged) against
// espline-sim over a pty: connect without reset, detect the ESP8266, read the
// MAC, upload esptool-js's ESP8266 stub, raise the baud rate, write a 1 MB
// firmware-like image compressed with MD5 verification, and compare the
// simulator's flash file with the image byte for byte.  Prints TAP.
//
// Environment: ESPLINE_BUILD (build dir holding espline-sim, default build/),
// SIM_TIME_SCALE (default 0.05: real wire/flash timing, 20x faster).
import crypto from "node:crypto";
import fs from "node:fs";
import { ESPLoader, Transport } from "esptool-js";
import { TtySerialPort } from "./serialport_tty.mjs";
import { startSim } from "./sim.mjs";

// ---- TAP ------------------------------------------------------------------
let testNo = 0;
let failures = 0;
function ok(cond, name, diag) {
  testNo++;
  if (cond) {
    console.log(`ok ${testNo} - ${name}`);
  } else {
    failures++;
    console.log(`not ok ${testNo} - ${name}`);
    if (diag !== undefined) for (const l of String(diag).split("\n")) console.log(`# ${l}`);
  }
  return cond;
}
const note = (s) => console.log(`# ${s}`);

// ---- a firmware-like image ------------------------------------------------
// An ESP8266 v1 image header and segments, then code-like bytes drawn from a
// small "instruction" alphabet with random operands, strings and a 0xFF gap:
// compresses roughly as real firmware does, and is nowhere near all zeros.
function mulberry32(seed) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function firmwareImage(size, seed) {
  const rnd = mulberry32(seed);
  const img = new Uint8Array(size);
  const view = new DataView(img.buffer);
  img.set([0xe9, 3, 0x02, 0x40]); // magic, 3 segments, DIO, 4MB@40MHz
  view.setUint32(4, 0x40100004, true); // entry
  let off = 8;
  const segs = [
    [0x40100000, 0x6c00],
    [0x3ffe8000, 0x800],
    [0x3ffe8800, 0x400],
  ];
  const opcodes = Array.from({ length: 48 }, () => [Math.floor(rnd() * 256), Math.floor(rnd() * 256)]);
  const words = ["wifi", "station", "connect", "espline", "factory", "esp8266", "flash", "%s:%d\n"];
  function fillCode(from, to) {
    let i = from;
    while (i < to) {
      const r = rnd();
      if (r < 0.03) {
        const s = new TextEncoder().encode(words[Math.floor(rnd() * words.length)] + "\0");
        for (const b of s) if (i < to) img[i++] = b;
      } else {
        const op = opcodes[Math.floor(rnd() * opcodes.length)];
        if (i < to) img[i++] = op[0];
        if (i < to) img[i++] = op[1];
        if (rnd() < 0.5 && i < to) img[i++] = Math.floor(rnd() * 256);
      }
    }
  }
  for (const [addr, len] of segs) {
    view.setUint32(off, addr, true);
    view.setUint32(off + 4, len, true);
    off += 8;
    fillCode(off, off + len);
    off += len;
  }
  const gapStart = 0x60000;
  fillCode(off, gapStart); // "irom" code
  img.fill(0xff, gapStart, gapStart + 0x8000); // an erased gap, as linkers leave
  fillCode(gapStart + 0x8000, size);
  return img;
}

const md5 = (data) => crypto.createHash("md5").update(data).digest("hex");

// ---- esptool-js plumbing --------------------------------------------------
function terminal() {
  const lines = [];
  let partial = "";
  return {
    lines,
    clean() {},
    write(s) {
      partial += s;
    },
    writeLine(s) {
      lines.push(partial + s);
      partial = "";
      if (process.env.VERBOSE) note(`esptool-js: ${partial + s}`);
    },
    has(re) {
      return lines.some((l) => re.test(l));
    },
    find(re) {
      for (const l of lines) {
        const m = l.match(re);
        if (m) return m;
      }
      return null;
    },
  };
}

async function connect(dev, baudrate) {
  const port = new TtySerialPort(dev.port);
  const transport = new Transport(port, false);
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
note(`time-scale ${scale}; total ${((Date.now() - started) / 1000).toFixed(1)} s`);
if (process.env.VERBOSE) note(sim.stderr());
sim.cleanup();
console.log(`1..${testNo}`);
process.exit(failures ? 1 : 0);
