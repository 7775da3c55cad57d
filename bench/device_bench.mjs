// device_bench.mjs - the esptool-js half of bench/device.sh, plus the image.
//
//   node bench/device_bench.mjs image OUT.bin SIZE SEED
//       write a firmware-like image (v1 header, code-like bytes, strings, an
//       erased gap) and print "bytes compressed ratio" (zlib level 9)
//   node bench/device_bench.mjs esptool-js PORT BAUD IMAGE
//       connect to PORT (a pty of espline-sim, no reset), upload the stub,
//       switch to BAUD, write IMAGE at 0x0 compressed with MD5 verification;
//       print "seconds" for the whole job (connect included)
import crypto from "node:crypto";
import fs from "node:fs";
import zlib from "node:zlib";
import { ESPLoader, Transport } from "../tests/interop/node_modules/esptool-js/lib/index.js";
import { TtySerialPort } from "../tests/interop/serialport_tty.mjs";

function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
}

// Xtensa-ish code: a small alphabet of 2-3 byte "instructions" with random
// operands, sprinkled strings, and a 0xFF gap as a linker leaves.  Tuned to
// compress to roughly two thirds, like a NodeMCU build.
function firmwareImage(size, seed) {
  const r = rng(seed);
  const img = new Uint8Array(size);
  img.set([0xe9, 1, 0x02, 0x40, 0x04, 0x00, 0x10, 0x40]);
  const dv = new DataView(img.buffer);
  dv.setUint32(8, 0x40100000, true);
  dv.setUint32(12, 0x7000, true);
  const ops = Array.from({ length: 80 }, () => [Math.floor(r() * 256), Math.floor(r() * 256)]);
  const words = ["wifi_station_connect", "espline", "factory", "esp8266", "flash", "%s:%d\n", "lua_State", "node.restart"];
  let i = 16;
  const gap = Math.floor(size * 0.4);
  while (i < size) {
    if (i >= gap && i < gap + 0x6000) { img[i++] = 0xff; continue; }
    const t = r();
    if (t < 0.02) {
      for (const b of new TextEncoder().encode(words[Math.floor(r() * words.length)] + "\0")) if (i < size) img[i++] = b;
    } else {
      const op = ops[Math.floor(r() * ops.length)];
      img[i++] = op[0];
      if (i < size) img[i++] = op[1];
      if (t < 0.32 && i < size) img[i++] = Math.floor(r() * 256);
    }
  }
  return img;
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "image") {
  const [out, size, seed] = args;
  const img = firmwareImage(Number(size), Number(seed));
  fs.writeFileSync(out, img);
  const z = zlib.deflateSync(img, { level: 9 });
  console.log(`${img.length} ${z.length} ${(z.length / img.length).toFixed(3)}`);
} else if (mode === "esptool-js") {
  const [port, baud, file] = args;
  const image = new Uint8Array(fs.readFileSync(file));
  const t0 = performance.now();
  const sp = new TtySerialPort(port);
  const transport = new Transport(sp, false);
  const lines = [];
  const terminal = { clean() {}, write() {}, writeLine(s) { lines.push(s); } };
  const loader = new ESPLoader({ transport, baudrate: Number(baud), romBaudrate: 115200, terminal });
  try {
    await loader.main("no_reset");
    await loader.writeFlash({
      fileArray: [{ data: image, address: 0 }],
      flashMode: "keep", flashFreq: "keep", flashSize: "keep", eraseAll: false, compress: true,
      calculateMD5Hash: (d) => crypto.createHash("md5").update(d).digest("hex"),
    });
    if (!lines.some((l) => /Hash of data verified/.test(l))) throw new Error("no MD5 verification");
    console.log(`esptool-js-seconds ${((performance.now() - t0) / 1000).toFixed(2)}`);
    await loader.after("no_reset_stub");
    await transport.disconnect();
    process.exit(0);
  } catch (e) {
    console.error(`esptool-js failed: ${e}\n${lines.slice(-10).join("\n")}`);
    process.exit(1);
  }
} else {
  console.error("usage: device_bench.mjs image OUT SIZE SEED | esptool-js PORT BAUD IMAGE");
  process.exit(2);
}
