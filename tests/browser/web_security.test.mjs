// web_security.test.mjs - the web server's guards, over plain HTTP from Node
// (no browser needed): the token on a non-loopback address (missing, wrong,
// right; header or login cookie; from a file or the environment, never the
// command line), control refused (403) without --http-control, oversize
// requests refused, the event-stream limit, and the security headers.
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import {
  ok, note, finish, startSim, startEspline, esplineSync, portArgs, tmpDir, waitFor, sleep,
} from "./lib.mjs";

const work = tmpDir("websec");
const db = path.join(work, "units.sqlite");
const token = "s3cret-token-0123456789abcdef";
const tokenFile = path.join(work, "token");
fs.writeFileSync(tokenFile, token + "\n", { mode: 0o600 });

// A raw request, for what fetch will not send (huge headers).
function rawRequest(port, text) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    let data = "";
    s.on("data", (d) => (data += d));
    s.on("error", () => resolve(data));
    s.on("close", () => resolve(data));
    s.write(text);
    setTimeout(() => s.destroy(), 3000);
  });
}
const statusOf = (raw) => Number((/^HTTP\/1\.[01] (\d{3})/.exec(raw) || [])[1] || 0);
const portOf = (url) => Number(new URL(url).port);

const sim = await startSim(["--devices", "1", "--link", "rfc2217", "--time-scale", "1", "--exit-after-idle", "120"]);
const started = [];
async function start(args, opts) {
  const p = await startEspline(args, opts);
  started.push(p);
  return p;
}

try {
  // A database with one batch, for espline serve.
  const first = esplineSync(["run", "recipes/nodemcu-4mb.yaml", "--batch", "sec", "--count", "1", "--plain",
    "--db", db, ...portArgs(sim)]);
  ok(first.code === 0, "a one-unit batch fills the database", first.out + first.err);

  // ---- non-loopback needs a token ----
  let p = await start(["serve", "--db", db, "--http", "0.0.0.0:0"], { env: { ESPLINE_HTTP_TOKEN: "" } });
  ok(!p.url && (await p.exited).code === 2 && /token is needed/.test(p.stderr()),
    "serve on 0.0.0.0 without a token refuses to start (exit 2)", p.stderr());
  const onCli = esplineSync(["serve", "--db", db, "--http", "0.0.0.0:0", "--http-token", token]);
  ok(onCli.code === 2 && !onCli.err.includes(token) && /never given on the command line/.test(onCli.err),
    "--http-token (an abbreviation) is refused without echoing the token", onCli.err);
  const eqForm = esplineSync(["serve", "--db", db, "--http", "0.0.0.0:0", "--http-tok=" + token]);
  ok(eqForm.code === 2 && !eqForm.err.includes(token), "so is --http-tok=TOKEN", eqForm.err);
  fs.chmodSync(tokenFile, 0o644);
  p = await start(["serve", "--db", db, "--http", "0.0.0.0:0", "--http-token-file", tokenFile]);
  ok(!p.url && (await p.exited).code === 2 && /readable by others/.test(p.stderr()),
    "a token file others can read is refused", p.stderr());
  fs.chmodSync(tokenFile, 0o600);
  p = await start(["serve", "--db", db, "--http", "0.0.0.0:0"], { env: { ESPLINE_HTTP_TOKEN: "short" } });
  ok(!p.url && (await p.exited).code === 2, "a token shorter than 16 characters is refused", p.stderr());

  p = await start(["serve", "--db", db, "--http", "0.0.0.0:0"], { env: { ESPLINE_HTTP_TOKEN: "a token with spaces" } });
  ok(!p.url && (await p.exited).code === 2 && /may use only/.test(p.stderr()),
    "a token with characters a header or cookie cannot carry is refused", p.stderr());
  p = await start(["serve", "--db", db, "--http", "nonsense"]);
  ok(!p.url && (await p.exited).code === 2 && /expected HOST:PORT/.test(p.stderr()), "a malformed --http: exit 2",
    p.stderr());

  const srv = await start(["serve", "--db", db, "--http", "0.0.0.0:0", "--http-token-file", tokenFile]);
  p = await start(["serve", "--db", db, "--http", "127.0.0.1:" + portOf(srv.url)]);
  ok(!p.url && (await p.exited).code === 5 && /cannot listen there/.test(p.stderr()),
    "a port already in use: exit 5 (a fault of the station's setup)", p.stderr());
  ok(srv.url, "serve on 0.0.0.0 with a token file starts", srv.stderr());
  const base = `http://127.0.0.1:${portOf(srv.url)}`;
  let r = await fetch(base + "/api/batches");
  ok(r.status === 401, "no token: 401", r.status);
  r = await fetch(base + "/api/batches", { headers: { Authorization: "Bearer " + token.replace(/.$/, "x") } });
  ok(r.status === 401, "a wrong token of the right length: 401", r.status);
  r = await fetch(base + "/api/batches", { headers: { Authorization: "Bearer " + token + "x" } });
  ok(r.status === 401, "a longer token: 401", r.status);
  r = await fetch(base + "/api/batches", { headers: { Authorization: "Bearer " + token } });
  const batches = await r.json();
  ok(r.status === 200 && batches.length === 1 && batches[0].name === "sec", "the right token: 200 and the data",
    JSON.stringify(batches));
  r = await fetch(base + "/api/login", { method: "POST", body: "wrong-token-0123456789" });
  ok(r.status === 401 && !r.headers.get("set-cookie"), "login with a wrong token: 401, no cookie", r.status);
  r = await fetch(base + "/api/login", { method: "POST", body: token });
  const cookie = (r.headers.get("set-cookie") || "").split(";")[0];
  ok(r.status === 204 && /HttpOnly/.test(r.headers.get("set-cookie")) && /SameSite=Strict/.test(r.headers.get("set-cookie")),
    "login with the token sets an HttpOnly SameSite=Strict cookie", r.headers.get("set-cookie"));
  r = await fetch(base + "/api/info", { headers: { Cookie: cookie } });
  ok(r.status === 200, "the cookie opens the API", r.status);
  r = await fetch(base + "/");
  ok(r.status === 200, "the page itself (with its login form) needs no token", r.status);
  const csp = r.headers.get("content-security-policy") || "";
  ok(/script-src 'self'/.test(csp) && !/unsafe-inline/.test(csp) && r.headers.get("x-content-type-options") === "nosniff",
    "the page has a CSP without inline script and nosniff", csp);
  r = await fetch(base + "/api/batches", { headers: { Authorization: "Bearer " + token } });
  ok(r.headers.get("cache-control") === "no-store", "data is not cached", r.headers.get("cache-control"));
  r = await fetch(base + "/api/control?action=stop", { method: "POST",
    headers: { Authorization: "Bearer " + token, "X-Espline-Control": "1" } });
  ok(r.status === 403, "serve has no control: 403 even with the token", r.status);

  // ---- oversize requests ----
  const port = portOf(srv.url);
  let raw = await rawRequest(port, `GET /api/info HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(40000)}\r\n\r\n`);
  ok(statusOf(raw) === 431, "a 40 KB header is refused with 431", raw.slice(0, 80));
  raw = await rawRequest(port, `GET /api/info?${"a".repeat(40000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
  ok(statusOf(raw) === 414, "a 40 KB URL is refused with 414", raw.slice(0, 80));
  r = await fetch(base + "/api/login", { method: "POST", body: "a".repeat(5000) });
  ok(r.status === 413, "a 5 KB body is refused with 413", r.status);
  raw = await rawRequest(port, "POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
    ("400\r\n" + "a".repeat(1024) + "\r\n").repeat(3) + "0\r\n\r\n");
  ok(statusOf(raw) === 413, "a 3 KB chunked body (no length given) is refused with 413", raw.slice(0, 80));
  raw = await rawRequest(port, "DELETE /api/batches HTTP/1.1\r\nHost: x\r\n\r\n");
  ok(statusOf(raw) === 405, "other methods: 405", raw.slice(0, 80));
  r = await fetch(base + "/api/info", { headers: { Authorization: "Bearer " + token } });
  ok(r.status === 200, "the server still answers after all that", r.status);

  // ---- a live station: control and event streams ----
  const ctl = esplineSync(["run", "recipes/nodemcu-4mb.yaml", "--station", "--db", db, "--http", "127.0.0.1:0",
    "--http-control", ...portArgs(sim)]);
  ok(ctl.code === 2 && /--http-control needs a token/.test(ctl.err), "--http-control without a token: exit 2",
    ctl.err);
  const ro = await start(["run", "recipes/nodemcu-4mb.yaml", "--station", "--db", db, "--plain",
    "--http", "127.0.0.1:0", ...portArgs(sim)]);
  r = await fetch(ro.url + "api/control?action=stop", { method: "POST", headers: { "X-Espline-Control": "1" } });
  ok(r.status === 403, "control without --http-control: 403", r.status);

  // The stream limit (32): the 33rd is refused while 32 are open.
  const streams = [];
  for (let i = 0; i < 32; i++) {
    const ac = new AbortController();
    const s = await fetch(ro.url + "events", { signal: ac.signal });
    streams.push({ s, ac });
  }
  ok(streams.every(({ s }) => s.status === 200 && /text\/event-stream/.test(s.headers.get("content-type"))),
    "32 event streams open", streams.map(({ s }) => s.status).join(","));
  r = await fetch(ro.url + "events");
  ok(r.status === 503, "the 33rd event stream: 503", r.status);
  for (const { ac } of streams) ac.abort();
  const freed = await waitFor(async () => (await fetch(ro.url + "api/state")).status === 200 &&
    (await (async () => { const ac = new AbortController(); const x = await fetch(ro.url + "events", { signal: ac.signal }); ac.abort(); return x.status === 200; })()), 5000, 200);
  ok(freed, "closed streams free their places", freed);
  ro.proc.kill("SIGINT");
  await ro.exited;

  const rw = await start(["run", "recipes/nodemcu-4mb.yaml", "--station", "--db", db, "--plain",
    "--http", "127.0.0.1:0", "--http-control"], { env: { ESPLINE_HTTP_TOKEN: token } });
  note("(control run started without ports: it waits for adapters it will never find)");
  r = await fetch(rw.url + "api/control?action=stop", { method: "POST", headers: { "X-Espline-Control": "1" } });
  ok(r.status === 401, "control without the token: 401", r.status);
  r = await fetch(rw.url + "api/control?action=stop", { method: "POST", headers: { Authorization: "Bearer " + token } });
  ok(r.status === 403, "control without X-Espline-Control (a cross-site form): 403", r.status);
  r = await fetch(rw.url + "api/control?action=pause&port=x", { method: "POST",
    headers: { Authorization: "Bearer " + token, "X-Espline-Control": "1" } });
  ok(r.status === 404, "pausing a slot that is not there: 404", r.status);
  r = await fetch(rw.url + "api/control?action=stop", { method: "POST",
    headers: { Authorization: "Bearer " + token, "X-Espline-Control": "1" } });
  const stoppedIn = Date.now();
  const end = await Promise.race([rw.exited, sleep(15000).then(() => null)]);
  ok(r.status === 200 && end, `control with the token stops the station (in ${Date.now() - stoppedIn} ms)`,
    `${r.status} ${JSON.stringify(end)} ${rw.stderr()}`);
} catch (e) {
  ok(false, "the security test ran to its end", e.stack);
} finally {
  for (const p of started) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill("SIGKILL");
  await sim.stop();
  sim.cleanup();
  fs.rmSync(work, { recursive: true, force: true });
}
finish();
