// serialport_tty.mjs - a Web Serial `SerialPort` over a Unix tty (a pty
// slave of espline-sim), so that esptool-js runs unchanged under Node.
//
// What esptool-js's Transport uses: open({baudRate}), close(), readable
// (ReadableStream of Uint8Array), writable (WritableStream), setSignals(),
// getInfo() and, when present, setBaudRate() to change the rate in place.
// The tty is put in raw mode with stty (Node's own setRawMode keeps ONLCR
// output translation, which would corrupt a binary protocol). A pty has no
// modem lines: setSignals() is accepted and remembered, nothing more, so
// callers must connect with esptool-js's "no_reset" mode.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import tty from "node:tty";

function stty(path, ...args) {
  execFileSync("stty", ["-F", path, ...args], { stdio: ["ignore", "ignore", "pipe"] });
}

export class TtySerialPort {
  constructor(path) {
    this.path = path;
    this.readable = null;
    this.writable = null;
    this.signals = { dataTerminalReady: false, requestToSend: false, break: false };
    this.signalLog = [];
    this.baudRate = 0;
  }

  getInfo() {
    return {}; // not USB: no vendor/product id
  }

  async open({ baudRate = 115200 } = {}) {
    if (this.readable) throw new Error(`${this.path} is already open`);
    stty(this.path, "raw", "-echo", String(baudRate));
    this.baudRate = baudRate;
    // Separate descriptions for reading and writing: Node makes tty writes
    // blocking, which must not turn the reader blocking too.
    const flags = fs.constants.O_RDWR | fs.constants.O_NOCTTY;
    this.input = new tty.ReadStream(fs.openSync(this.path, flags));
    this.output = new tty.WriteStream(fs.openSync(this.path, flags));
    const input = this.input;
    let closed = false;
    this.readable = new ReadableStream({
      start(controller) {
        input.on("data", (chunk) => {
          if (!closed) controller.enqueue(new Uint8Array(chunk));
        });
        const end = () => {
          if (!closed) {
            closed = true;
            controller.close();
          }
        };
        input.on("end", end);
        input.on("close", end);
        input.on("error", (e) => {
          if (!closed) {
            closed = true;
            controller.error(e);
          }
        });
      },
      cancel() {
        closed = true;
        input.pause();
      },
    });
    const output = this.output;
    // A vanished device (unplugged: EIO) fails the pending write through
    // its callback; the stream's own 'error' event must not kill Node.
    output.on("error", () => {});
    this.writable = new WritableStream({
      write(chunk) {
        return new Promise((resolve, reject) =>
          output.write(Buffer.from(chunk), (e) => (e ? reject(e) : resolve())),
        );
      },
    });
  }

  async setSignals(signals) {
    for (const [k, v] of Object.entries(signals)) if (v !== undefined) this.signals[k] = v;
    this.signalLog.push({ ...this.signals });
  }

  async setBaudRate(baudRate) {
    stty(this.path, String(baudRate));
    this.baudRate = baudRate;
  }

  async close() {
    if (!this.readable) return;
    this.input.destroy();
    const output = this.output;
    await new Promise((resolve) => {
      if (output.destroyed || output.errored) return resolve(); // device gone
      output.end(resolve);
      setTimeout(resolve, 1000);
    });
    output.destroy();
    this.readable = null;
    this.writable = null;
  }
}
