// app.js - espline's page: the live station view (Server-Sent Events from
// /events) and the history of the database (/api/...).  No framework.  Every
// string that came from the station or the database goes into the page with
// textContent, never as HTML.
'use strict';

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

async function api(path, options) {
  const r = await fetch(path, Object.assign({ credentials: 'same-origin', cache: 'no-store' }, options || {}));
  if (r.status === 401) {
    showLogin();
    throw new Error('a token is needed');
  }
  return r;
}

function pct(x) {
  return (100 * x).toFixed(1) + ' %';
}

// ---------------------------------------------------------------- live view

const live = {
  batch: '', planned: 0, passed: 0, failed: 0, interrupted: 0,
  reasons: new Map(), ports: new Map(), startMs: Date.now(), finished: false,
  labelsQueued: -1, // -1: the station prints no labels
};

function portState(name) {
  let p = live.ports.get(name);
  if (!p) {
    p = { port: name, slot: '', state: 'idle', step: '', mac: '', result: '', note: '', error: '', done: 0, total: 0,
      passed: 0, failed: 0 };
    live.ports.set(name, p);
  }
  return p;
}

function applySnapshot(s) {
  live.batch = s.batch || '';
  live.planned = s.planned || 0;
  live.passed = s.passed || 0;
  live.failed = s.failed || 0;
  live.interrupted = s.interrupted || 0;
  live.labelsQueued = typeof s.labels_queued === 'number' ? s.labels_queued : -1;
  live.reasons = new Map(Object.entries(s.failed_by_reason || {}));
  live.startMs = Date.now() - 1000 * (s.elapsed_s || 0);
  live.ports = new Map();
  for (const row of s.ports || []) {
    const p = portState(row.port);
    Object.assign(p, { slot: row.slot || '', state: row.state || 'idle', step: row.step || '', mac: row.mac || '',
      result: row.result || '', note: row.note || '', error: '', done: row.done || 0, total: row.total || 0,
      passed: row.passed || 0, failed: row.failed || 0 });
  }
  setBanner(s.db_problem ? 'DATABASE: ' + s.db_problem : s.stopping ? 'STOPPING: ' + s.stopping : '');
}

function applyEvent(e) {
  const p = e.port ? portState(e.port) : null;
  if (p && e.slot) p.slot = e.slot;
  switch (e.event) {
    case 'snapshot': applySnapshot(e); break;
    case 'started':
      live.batch = e.batch || ''; live.planned = e.count || 0; live.startMs = Date.now(); break;
    case 'port_added': p.state = 'ready'; break;
    case 'port_removed': p.state = /unplugged/.test(e.message || '') ? 'unplugged' : 'finished'; p.total = 0; break;
    case 'waiting': p.state = 'waiting'; p.step = ''; p.total = 0; p.hold = ''; break;
    case 'identified':
      Object.assign(p, { state: 'programming', mac: e.mac || '', result: '', note: '', error: '', step: '',
        total: 0 });
      break;
    case 'step_start': p.step = e.step_number + '/' + e.steps + ' ' + (e.step || ''); p.total = 0; break;
    case 'progress': p.done = e.done; p.total = e.total; break;
    case 'unit_done':
      if (p.state === 'programming') p.state = 'done';
      p.step = ''; p.total = 0; p.result = e.result || '';
      if (e.mac) p.mac = e.mac;
      p.note = e.result === 'PASS' ? '' : (e.error_kind || '');
      p.error = e.result === 'PASS' ? '' : (e.error || '');
      if (e.result === 'PASS') { live.passed++; p.passed++; }
      else if (e.result === 'FAIL') {
        live.failed++; p.failed++;
        const kind = e.error_kind || 'unknown';
        live.reasons.set(kind, (live.reasons.get(kind) || 0) + 1);
      } else live.interrupted++;
      break;
    case 'unit_recorded':
      if (e.repeat_of) for (const q of live.ports.values()) if (q.mac === e.mac) q.note = 'REPEAT: already passed before';
      break;
    case 'scan_wait': p.state = 'scan code'; p.note = e.message || ''; break;
    case 'scanned': p.state = 'programming'; p.note = 'code ' + (e.code || ''); break;
    case 'labels': live.labelsQueued = e.queued; break;
    case 'remove_wait': p.state = 'remove unit'; break;
    case 'unit_removed': p.state = 'removed'; break;
    case 'slot_paused': p.state = 'paused'; p.hold = e.message || 'paused'; break;
    case 'db_state': setBanner(e.state === 'ok' ? '' : 'DATABASE ' + e.state.toUpperCase() + ': ' + (e.reason || '')); break;
    case 'stopping': setBanner('STOPPING: ' + (e.reason || '')); break;
    case 'finished': live.finished = true; setBanner('FINISHED: ' + (e.message || '')); break;
    default: break;
  }
}

function setBanner(text) {
  const b = $('banner');
  b.textContent = text;
  b.hidden = !text;
}

// The word and colour of a tile: a result stays until the next unit starts.
function tileLook(p) {
  if (p.state === 'programming') return ['busy', 'FLASHING'];
  if (p.state === 'paused') return ['warn', 'PAUSED'];
  if (p.result === 'PASS') return ['pass', 'PASS'];
  if (p.result === 'FAIL') return ['fail', 'FAIL'];
  if (p.result === 'INTERRUPTED') return ['warn', 'INTERRUPTED'];
  if (p.state === 'unplugged') return ['warn', 'UNPLUGGED'];
  return ['idle', p.state.toUpperCase()];
}

function renderTile(p) {
  const [look, word] = tileLook(p);
  const t = el('div', 'tile tile-' + look);
  t.dataset.port = p.port;
  t.dataset.status = word;
  if (p.slot) {
    t.dataset.slot = p.slot;
    t.appendChild(el('div', 'tile-slot', p.slot));
  }
  t.appendChild(el('div', 'tile-port', p.port));
  t.appendChild(el('div', 'tile-status', word));
  if (p.state === 'programming') {
    t.appendChild(el('div', 'tile-step', p.step || 'connecting'));
    if (p.total > 0) {
      const frac = Math.min(1, p.done / p.total);
      const bar = el('div', 'bar');
      const fill = el('div', 'bar-fill');
      fill.style.width = (100 * frac).toFixed(0) + '%';
      bar.appendChild(fill);
      t.appendChild(bar);
      t.appendChild(el('div', 'tile-pct', (100 * frac).toFixed(0) + ' %'));
    }
  } else if (p.state === 'paused') {
    t.appendChild(el('div', 'tile-note', p.hold || 'paused'));
  } else if (look !== 'idle') {
    t.appendChild(el('div', 'tile-step', p.state));
  }
  if (p.result === 'FAIL' || p.result === 'INTERRUPTED') {
    t.appendChild(el('div', 'tile-reason', p.note || 'failed'));
    if (p.error) t.appendChild(el('div', 'tile-error', p.error));
  } else if (p.note) {
    t.appendChild(el('div', 'tile-note', p.note));
  }
  t.appendChild(el('div', 'tile-mac', p.mac || '\u2014'));
  t.appendChild(el('div', 'tile-counts', p.passed + ' passed \u00b7 ' + p.failed + ' failed'));
  if (info && info.control && !['unplugged', 'finished'].includes(p.state)) {
    const bar = el('div', 'tile-control');
    const actions = p.state === 'paused' ? ['resume'] : ['pause', 'stop'];
    for (const a of actions) {
      const b = el('button', 'tile-button', a === 'stop' ? 'stop now' : a);
      b.dataset.action = a;
      bar.appendChild(b);
    }
    t.appendChild(bar);
  }
  return t;
}

function renderLive() {
  const done = live.passed + live.failed;
  $('batch').textContent = live.batch || '\u2014';
  $('done').textContent = live.planned ? done + ' / ' + live.planned : String(done);
  $('passed').textContent = String(live.passed);
  $('failed').textContent = String(live.failed);
  $('yield').textContent = done ? pct(live.passed / done) : '-';
  const hours = (Date.now() - live.startMs) / 3600000;
  $('uph').textContent = hours > 0 && done ? Math.round(done / hours).toString() : '-';
  $('labels-stat').hidden = live.labelsQueued < 0;
  $('labels').textContent = String(Math.max(0, live.labelsQueued));
  const tiles = $('tiles');
  clear(tiles);
  // Tiles in slot order (A1, A2, ..., A10), then the unnamed ports.
  const key = (n) => (live.ports.get(n).slot ? '0 ' + live.ports.get(n).slot : '1 ' + n);
  const names = [...live.ports.keys()].sort((a, b) => key(a).localeCompare(key(b), undefined, { numeric: true }));
  for (const n of names) tiles.appendChild(renderTile(live.ports.get(n)));
  const reasons = $('reasons');
  clear(reasons);
  for (const [kind, count] of [...live.reasons.entries()].sort((a, b) => b[1] - a[1])) {
    const li = el('li', 'reason');
    li.dataset.reason = kind;
    li.appendChild(el('span', 'reason-count', count + ' \u00d7'));
    li.appendChild(el('span', 'reason-kind', kind));
    reasons.appendChild(li);
  }
  if (!live.reasons.size) reasons.appendChild(el('li', 'none', 'none'));
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; renderLive(); });
}

function connectLive() {
  const es = new EventSource('/events');
  es.onopen = () => { $('conn').textContent = 'live'; $('conn').className = 'conn conn-ok'; };
  es.onerror = () => {
    $('conn').textContent = live.finished ? 'station finished' : 'connection lost, retrying';
    $('conn').className = 'conn conn-bad';
  };
  es.onmessage = (m) => {
    let e;
    try { e = JSON.parse(m.data); } catch (_) { return; }
    applyEvent(e);
    scheduleRender();
  };
  setInterval(scheduleRender, 1000);  // units per hour moves with time
}

// Per-slot buttons live in the tiles, which are drawn again on every event:
// one listener on the grid serves them all.
async function slotControl(tile, action) {
  const name = tile.dataset.slot || tile.dataset.port;
  if (action === 'stop' && !window.confirm('Stop ' + name + ' now? Its unit in progress is interrupted.')) return;
  const r = await api('/api/control?action=' + action + '&port=' + encodeURIComponent(name),
    { method: 'POST', headers: { 'X-Espline-Control': '1' } });
  const body = await r.json().catch(() => ({}));
  $('control-result').textContent = r.ok ? name + ': ' + action : (body.error || ('refused: ' + r.status));
}

function setupControl() {
  $('control').hidden = false;
  $('tiles').addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-action]');
    const tile = b && b.closest('.tile');
    if (tile) slotControl(tile, b.dataset.action).catch(() => {});
  });
  $('stop-station').addEventListener('click', async () => {
    if (!window.confirm('Stop the station? Units in progress finish first.')) return;
    const r = await api('/api/control?action=stop', { method: 'POST', headers: { 'X-Espline-Control': '1' } });
    const body = await r.json().catch(() => ({}));
    $('control-result').textContent = r.ok ? 'stopping' : (body.error || ('refused: ' + r.status));
  });
}

// ------------------------------------------------------------------ history

function field(parent, label, value) {
  const row = el('div', 'kv');
  row.appendChild(el('span', 'k', label));
  row.appendChild(el('span', 'v', value));
  parent.appendChild(row);
}

// The same facts as `espline history`, in its order.
function renderUnit(u) {
  const d = el('div', 'unit unit-' + u.result.toLowerCase());
  d.dataset.unit = u.unit_uuid;
  d.dataset.result = u.result;
  const head = el('div', 'unit-head');
  head.appendChild(el('span', 'unit-result', u.result));
  head.appendChild(el('span', 'unit-time', u.started));
  head.appendChild(el('span', 'unit-mac', u.mac));
  d.appendChild(head);
  field(d, 'batch', u.batch);
  field(d, 'station', u.station + '@' + u.host);
  field(d, 'port', (u.slot ? 'slot ' + u.slot + '  ' : '') + (u.port || '-'));
  if (u.barcode) field(d, 'scanned', u.barcode);
  field(d, 'adapter', u.adapter_serial || u.adapter_location || '-');
  field(d, 'recipe', u.recipe + ' (sha256 ' + u.recipe_sha256 + ')');
  if (u.images) field(d, 'images', u.images);
  field(d, 'chip', u.chip_id + '  flash ' + u.flash_id + ' ' + u.manufacturer + ' ' +
    Math.floor(Number(u.flash_size) / 1024) + ' KB  crystal ' + u.crystal_mhz + ' MHz');
  field(d, 'time', (Number(u.duration_ms) / 1000).toFixed(1) + ' s');
  field(d, 'unit', u.unit_uuid);
  if (u.error) field(d, 'error (' + (u.error_kind || '?') + ')', u.error);
  if (u.repeat_of) field(d, 'REPEAT', 'this MAC had already passed (unit ' + u.repeat_of + ')');
  return d;
}

async function searchMac(mac) {
  const out = $('units');
  clear(out);
  const r = await api('/api/history?mac=' + encodeURIComponent(mac));
  const body = await r.json();
  if (!r.ok) { out.appendChild(el('p', 'error', body.error || 'error ' + r.status)); return; }
  out.appendChild(el('h2', null, body.length ? mac + ': programmed ' + body.length + ' time' + (body.length === 1 ? '' : 's') + ', newest first'
    : mac + ' was never programmed'));
  for (const u of body) out.appendChild(renderUnit(u));
}

function table(headers, rows) {
  const t = el('table', 'grid');
  const tr = el('tr');
  for (const h of headers) tr.appendChild(el('th', null, h));
  t.appendChild(el('thead')).appendChild(tr);
  const tb = el('tbody');
  for (const r of rows) {
    const row = el('tr');
    for (const c of r) row.appendChild(el('td', null, c));
    tb.appendChild(row);
  }
  t.appendChild(tb);
  return t;
}

async function showReport(name) {
  const r = await api('/api/report?batch=' + encodeURIComponent(name));
  const rep = await r.json();
  $('report').hidden = false;
  $('report-title').textContent = 'Batch ' + name;
  const body = $('report-body');
  clear(body);
  if (!r.ok) { body.appendChild(el('p', 'error', rep.error || 'error ' + r.status)); return; }
  const s = el('div', 'summary');
  for (const [label, value, cls] of [['Units', rep.units, ''], ['Passed', rep.passed, 'stat-pass'],
    ['Failed', rep.failed, 'stat-fail'], ['Yield', pct(rep.yield), ''],
    ['Median time', (rep.time_per_unit_ms.p50 / 1000).toFixed(1) + ' s', '']]) {
    const st = el('div', 'stat ' + cls);
    st.appendChild(el('span', 'label', label));
    st.appendChild(el('span', 'value', value));
    s.appendChild(st);
  }
  body.appendChild(s);
  body.appendChild(el('h3', null, 'Failures by reason'));
  body.appendChild(table(['Reason', 'Units', 'Example'],
    rep.failures_by_reason.map((g) => [g.key, g.units, g.example || ''])));
  body.appendChild(el('h3', null, 'By port'));
  body.appendChild(table(['Port', 'Units', 'Passed', 'Failed', 'Yield'],
    rep.ports.map((g) => [g.key, g.units, g.passed, g.failed, pct(g.yield)])));
  const links = el('p', 'exports');
  for (const fmt of ['csv', 'json']) {
    const a = el('a', 'button', 'Export ' + fmt.toUpperCase());
    a.href = '/api/export.' + fmt + '?batch=' + encodeURIComponent(name);
    a.setAttribute('download', name.replace(/[^A-Za-z0-9._-]/g, '_') + '.' + fmt);
    links.appendChild(a);
  }
  body.appendChild(links);
}

async function loadBatches() {
  const r = await api('/api/batches');
  const list = await r.json();
  const tb = $('batches').querySelector('tbody');
  clear(tb);
  for (const b of list) {
    const tr = el('tr');
    const name = el('td');
    const btn = el('button', 'link', b.name);
    btn.addEventListener('click', () => showReport(b.name));
    name.appendChild(btn);
    tr.appendChild(name);
    const done = b.passed + b.failed;
    for (const c of [b.station, b.recipe, b.started, b.units, b.passed, b.failed, done ? pct(b.passed / done) : '-'])
      tr.appendChild(el('td', null, c));
    tb.appendChild(tr);
  }
}

// Every station the central database knows (espline serve --central): a
// word and a colour for its state, never colour alone.
async function loadStations() {
  const r = await api('/api/stations');
  const list = await r.json();
  const tb = $('stations').querySelector('tbody');
  clear(tb);
  for (const s of list) {
    const tr = el('tr', s.live ? 'station-live' : 'station-idle');
    tr.dataset.station = s.station + '@' + s.host;
    tr.appendChild(el('td', null, s.station + '@' + s.host));
    tr.appendChild(el('td', 'state', s.live ? (s.open ? 'LIVE' : 'LIVE (batch closed)') : 'IDLE'));
    for (const c of [s.batch, s.recipe, s.units + (s.planned ? ' / ' + s.planned : ''), s.passed, s.failed,
      s.last_unit || '-'])
      tr.appendChild(el('td', null, c));
    tb.appendChild(tr);
  }
}

// ------------------------------------------------------------------- pages

let info = null;

function showLogin() {
  for (const id of ['live', 'history']) $(id).hidden = true;
  $('login').hidden = false;
}

function route() {
  if (!info) return;
  const want = location.hash === '#history' || !info.live ? 'history' : 'live';
  $('live').hidden = want !== 'live';
  $('history').hidden = want !== 'history';
  if (want === 'history') {
    loadBatches().catch(() => {});
    $('stations-section').hidden = !info.stations;
    if (info.stations) loadStations().catch(() => {});
  }
}

async function start() {
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await fetch('/api/login', { method: 'POST', body: $('token').value, credentials: 'same-origin' });
    if (r.ok) location.reload();
    else $('login-error').textContent = 'That token is not right.';
  });
  $('search').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const mac = $('mac').value.trim();
    if (mac) searchMac(mac).catch(() => {});
  });
  try {
    info = await (await api('/api/info')).json();
  } catch (_) {
    return;
  }
  $('nav-live').hidden = !info.live;
  $('nav-history').hidden = !info.history;
  if (info.live) connectLive();
  if (info.control) setupControl();
  window.addEventListener('hashchange', route);
  route();
}

document.addEventListener('DOMContentLoaded', start);
