// serialport_rfc2217.mjs - a Web Serial `SerialPort` over RFC 2217 (telnet
// COM-PORT-OPTION), so that esptool-js drives espline-sim's DTR/RTS reset
// circuit and baud rate the way pyserial's rfc2217:// client does.
//
// Like pyserial, every SET-CONTROL / SET-BAUDRATE waits for the server's
// acknowledgement before resolving, and DTR is sent before RTS when both
// change in one setSignals() call.  Independent of the C codec on purpose:
// the simulator's server is checked against a second implementation.
import net from "node:net";

const IAC = 255, SB = 250, SE = 240, WILL = 251, WONT = 252, DO = 253, DONT = 254;
const OPT_BINARY = 0, OPT_SGA = 3, OPT_COM_PORT = 44;
const SET_BAUDRATE = 1, SET_CONTROL = 5;
const DTR_ON = 8, DTR_OFF = 9, RTS_ON = 11, RTS_OFF = 12;
const ACCEPTED = new Set([OPT_BINARY, OPT_SGA, OPT_COM_PORT]);

export class Rfc2217SerialPort {
  constructor(url) {
    const m = /^rfc2217:\/\/([^:/]+):(\d+)/.exec(url);
    if (!m) throw new Error(`not an rfc2217:// URL: ${url}`);
    this.host = m[1];
    this.port = Number(m[2]);
    this.readable = null;
    this.writable = null;
    this.baudRate = 0;
    this.controlLog = [];
  }

  getInfo() {
    return {};
  }

  async open({ baudRate = 115200 } = {}) {
    const sock = net.connect({ host: this.host, port: this.port });
    sock.setNoDelay(true);
    await new Promise((resolve, reject) => {
      sock.once("connect", resolve);
      sock.once("error", reject);
    });
    this.sock = sock;
    this.waiters = [];
    this.state = "data";
    this.sb = [];
    this.ours = new Set(); // options we WILL do (acknowledged)
    this.his = new Set(); // options he DOes
    let controller;
    this.readable = new ReadableStream({
      start: (c) => (controller = c),
      cancel: () => sock.pause(),
    });
    sock.on("data", (buf) => {
      const data = this.#decode(buf);
      if (data.length) {
        try {
          controller.enqueue(data);
        } catch {
          /* cancelled */
        }
      }
    });
    sock.on("close", () => {
      try {
        controller.close();
      } catch {
        /* already closed */
      }
    });
    this.writable = new WritableStream({
      write: (chunk) => this.#send(this.#escape(chunk)),
    });
    this.#send([IAC, WILL, OPT_COM_PORT, IAC, WILL, OPT_BINARY, IAC, DO, OPT_BINARY]);
    await this.setBaudRate(baudRate);
  }

  async setSignals({ dataTerminalReady, requestToSend } = {}) {
    if (dataTerminalReady !== undefined) {
      await this.#control(dataTerminalReady ? DTR_ON : DTR_OFF);
    }
    if (requestToSend !== undefined) {
      await this.#control(requestToSend ? RTS_ON : RTS_OFF);
    }
  }

  async setBaudRate(baudRate) {
    const v = [(baudRate >>> 24) & 255, (baudRate >>> 16) & 255, (baudRate >>> 8) & 255, baudRate & 255];
    await this.#command(SET_BAUDRATE, v);
    this.baudRate = baudRate;
  }

  async close() {
    if (!this.sock) return;
    const sock = this.sock;
    this.sock = null;
    this.readable = null;
    this.writable = null;
    await new Promise((resolve) => {
      sock.once("close", resolve);
      sock.end();
      setTimeout(() => sock.destroy(), 500);
    });
  }

  // --- telnet plumbing -----------------------------------------------------
  #send(bytes) {
    return new Promise((resolve, reject) =>
      this.sock.write(Buffer.from(bytes), (e) => (e ? reject(e) : resolve())),
    );
  }

  #escape(chunk) {
    const out = [];
    for (const b of chunk) {
      out.push(b);
      if (b === IAC) out.push(IAC);
    }
    return out;
  }

  async #control(value) {
    this.controlLog.push(value);
    await this.#command(SET_CONTROL, [value]);
  }

  // Send IAC SB COM-PORT cmd args IAC SE and wait for the server's cmd+100.
  async #command(cmd, args) {
    const reply = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`RFC 2217 command ${cmd}: no reply`)), 3000);
      this.waiters.push({ cmd: cmd + 100, resolve: () => (clearTimeout(timer), resolve()) });
    });
    await this.#send([IAC, SB, OPT_COM_PORT, cmd, ...this.#escape(args), IAC, SE]);
    return reply;
  }

  #negotiate(verb, opt) {
    if (verb === DO) {
      if (ACCEPTED.has(opt) && !this.ours.has(opt)) {
        this.ours.add(opt);
        this.#send([IAC, WILL, opt]);
      } else if (!ACCEPTED.has(opt)) this.#send([IAC, WONT, opt]);
    } else if (verb === WILL) {
      if (ACCEPTED.has(opt) && !this.his.has(opt)) {
        this.his.add(opt);
        this.#send([IAC, DO, opt]);
      } else if (!ACCEPTED.has(opt)) this.#send([IAC, DONT, opt]);
    } else if (verb === WONT) this.his.delete(opt);
    else if (verb === DONT) this.ours.delete(opt);
  }

  #subnegotiation(sb) {
    if (sb[0] !== OPT_COM_PORT || sb.length < 2) return;
    const i = this.waiters.findIndex((w) => w.cmd === sb[1]);
    if (i >= 0) this.waiters.splice(i, 1)[0].resolve();
  }

  #decode(buf) {
    const data = [];
    for (const b of buf) {
      switch (this.state) {
        case "data":
          if (b === IAC) this.state = "iac";
          else data.push(b);
          break;
        case "iac":
          if (b === IAC) {
            data.push(IAC);
            this.state = "data";
          } else if (b === SB) {
            this.sb = [];
            this.state = "sb";
          } else if (b >= WILL && b <= DONT) {
            this.verb = b;
            this.state = "opt";
          } else this.state = "data";
          break;
        case "opt":
          this.#negotiate(this.verb, b);
          this.state = "data";
          break;
        case "sb":
          if (b === IAC) this.state = "sbiac";
          else this.sb.push(b);
          break;
        case "sbiac":
          if (b === SE) {
            this.#subnegotiation(this.sb);
            this.state = "data";
          } else {
            this.sb.push(b); // IAC IAC inside SB
            this.state = "sb";
          }
          break;
      }
    }
    return new Uint8Array(data);
  }
}
