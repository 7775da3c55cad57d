// common.mjs - helpers shared by the interop tests: TAP output, a
// firmware-like image generator, MD5, and a terminal that records what
// esptool-js prints.
import crypto from "node:crypto";

// ---- TAP ------------------------------------------------------------------
let testNo = 0;
let failures = 0;
export function ok(cond, name, diag) {
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
export const note = (s) => console.log(`# ${s}`);

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

export function firmwareImage(size, seed) {
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

export const md5 = (data) => crypto.createHash("md5").update(data).digest("hex");

// ---- esptool-js plumbing --------------------------------------------------
export function terminal() {
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

/* TAP plan line and exit status. */
export function finish() {
  console.log(`1..${testNo}`);
  process.exit(failures ? 1 : 0);
}
