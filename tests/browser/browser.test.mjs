// browser.test.mjs — the demo pages and holdfast.js in Debian's chromium
// (driven by playwright-core) against a real holdfast server.
//
// Run by tests/browser/run.sh, which installs what is needed and sets:
//   HF_BIN (holdfast binary), HF_WEB_ROOT, HF_TMP (scratch dir),
//   HF_SHOTS (screenshot dir), HF_PLAYWRIGHT (playwright-core's index.mjs),
//   HF_CHROMIUM (/usr/bin/chromium).
// Every check is a step of a real session: two pages, one acts, the other
// sees it without reloading; the server is SIGKILLed and restarted on the
// same port and data dir mid-session; the WebSocket is refused and the
// pages fall back to polling.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const env = (k) => { if (!process.env[k]) { console.error(`missing ${k}`); process.exit(2); } return process.env[k]; };
const BIN = env('HF_BIN'), WEB = env('HF_WEB_ROOT'), TMP = env('HF_TMP'), SHOTS = env('HF_SHOTS');
const { chromium } = await import(env('HF_PLAYWRIGHT'));
const DATA = path.join(TMP, 'data');
const T0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - T0) / 1000).toFixed(1).padStart(5)}s]`, ...a);

// ---------------------------------------------------------------- server

let server = null; // { proc, port, exited }
let serverRuns = 0;

/** Starts holdfast on `port` (0: any) with the shared data dir (or `data`). */
function startServer(port = 0, extra = [], data = DATA) {
  return new Promise((resolve, reject) => {
    const logFile = path.join(TMP, `server-${++serverRuns}.log`);
    const out = fs.openSync(logFile, 'w');
    const proc = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data', data, '--web-root', WEB, ...extra],
      { stdio: ['ignore', out, out] });
    const s = { proc, port: 0, logFile, exited: new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig }))) };
    const deadline = Date.now() + 10000;
    const poll = () => {
      const text = fs.readFileSync(logFile, 'utf8');
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(text);
      if (m) { s.port = Number(m[1]); return resolve(s); }
      if (proc.exitCode != null || Date.now() > deadline) return reject(new Error(`server did not start:\n${text}`));
      setTimeout(poll, 25);
    };
    poll();
  });
}

async function stopServer(s, signal) {
  s.proc.kill(signal);
  return s.exited;
}

/** POST /v1/call over HTTP, as "another client" (with `token`: signed in). */
async function httpCall(port, address, method, args = {}, key, token) {
  const headers = { 'content-type': 'application/json' };
  if (key) headers['idempotency-key'] = key;
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`http://127.0.0.1:${port}/v1/call/${address}/${method}`, { method: 'POST', headers, body: JSON.stringify(args) });
  const body = await r.json();
  if (!body.ok) { const e = new Error(`${address} ${method}: ${body.error.code}: ${body.error.message}`); e.code = body.error.code; throw e; }
  return body.result;
}

// ---------------------------------------------------------------- browser

const browser = await chromium.launch({
  executablePath: env('HF_CHROMIUM'),
  headless: true,
  // Playwright gives every launch a fresh, empty profile (--user-data-dir).
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const TV = { viewport: { width: 1920, height: 1080 } };
const DESK = { viewport: { width: 1280, height: 860 } };
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
const pageErrors = [];

/** A page in its own context (own localStorage), `name` remembered for
 * askName; on `port` (default: the test server's). `opts.hidden`: the page
 * starts as a background tab (document.visibilityState 'hidden') until
 * `show(page)`. */
async function open(url, opts = {}, name, port = server.port) {
  const { hidden, refuseWs, ...ctxOpts } = opts;
  const ctx = await browser.newContext(Object.assign({ timezoneId: 'Asia/Seoul', locale: 'en-US' }, ctxOpts));
  if (name) await ctx.addInitScript((n) => localStorage.setItem('holdfast.name', n), name);
  if (hidden) {
    await ctx.addInitScript(() => {
      window.__hidden = true;
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (window.__hidden ? 'hidden' : 'visible') });
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => window.__hidden });
    });
  }
  if (refuseWs) await ctx.routeWebSocket(/\/v1\/ws/, (ws) => ws.close({ code: 1011, reason: 'refused by test' }));
  const page = await ctx.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${url}: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource|WebSocket connection/.test(m.text())) pageErrors.push(`${url}: console: ${m.text()}`); });
  await page.goto(`http://127.0.0.1:${port}${url}`);
  await page.evaluate(() => { window.__sameDocument = true; }); // gone if the page ever reloads
  return page;
}

/** Brings a page opened with `hidden` to the foreground. */
const show = (page) => page.evaluate(() => { window.__hidden = false; document.dispatchEvent(new Event('visibilitychange')); });
const until = (page, fn, arg, timeout = 15000) => page.waitForFunction(fn, arg, { timeout, polling: 100 });
const live = (page) => until(page, () => window.hf && window.hf.state === 'open');
async function notReloaded(page) {
  if (!(await page.evaluate(() => window.__sameDocument === true))) throw new Error(`${page.url()} was reloaded`);
}
const shot = async (page, name) => {
  await page.waitForTimeout(300); // let bar transitions settle
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
  log(`screenshot ${name}.png`);
};
function assert(cond, msg) { if (!cond) throw new Error(`assertion failed: ${msg}`); }

/** Kills the server, runs `whileDown(port)` against a second server on the
 * same data dir but another port (so the pages cannot see it), then
 * restarts the server on its old port. */
async function crashAndRestart(pages, whileDown, sideArgs = []) {
  const port = server.port;
  const r = await stopServer(server, 'SIGKILL');
  log(`server killed (${r.sig}); pages must notice`);
  for (const p of pages) await until(p, () => window.hf.state === 'reconnecting', null, 10000);
  const side = await startServer(0, sideArgs);
  await whileDown(side.port);
  const rs = await stopServer(side, 'SIGTERM');
  assert(rs.code === 0, `side server exit ${rs.code}`);
  server = await startServer(port);
  log(`server restarted on the same port ${port}`);
  for (const p of pages) await live(p);
}

// ---------------------------------------------------------------- tests

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
const STORE = 'store/bt-1';

test('index page links every demo', async () => {
  const page = await open('/', DESK);
  await live(page);
  const links = await page.$$eval('a', (as) => as.map((a) => a.getAttribute('href')));
  for (const l of ['/waiting/guest.html', '/waiting/staff.html', '/waiting/board.html', '/devices/', '/devices/admin.html', '/chat/', '/vote/', '/vote/board.html'])
    assert(links.includes(l), `index links ${l}`);
  const mod = await page.evaluate(async () => { const m = await import('/holdfast.js'); return Object.keys(m).sort().join(','); });
  assert(mod === 'Client,HoldfastError,Subscription,VERSION,connect,randomKey', `holdfast.js exports: ${mod}`);
  await shot(page, 'index');
  await page.context().close();
});

test('holdfast.js against a scripted server: batched frames, no duplicates, a hole resubscribes, epoch change, timeouts', async () => {
  const page = await open('/', DESK);
  const subs = []; // what the scripted server was asked
  let conns = 0;
  const reply = (id, result) => JSON.stringify({ op: 'reply', id, ok: true, result });
  const ev = (seq) => JSON.stringify({ op: 'event', from: 'counter/x', seq, type: 't', data: { seq }, at: 1 });
  await page.routeWebSocket(/\/mock\/v1\/ws/, (ws) => {
    const n = ++conns;
    ws.send(JSON.stringify({ op: 'hello', server: 'mock', conn: String(n), heartbeat: 25 }));
    ws.onMessage((text) => {
      for (const line of String(text).split('\n').filter(Boolean)) {
        const m = JSON.parse(line);
        if (m.op === 'sub') {
          subs.push({ conn: n, since: m.since ?? null, epoch: m.epoch ?? null });
          // several messages in one frame, with a duplicate
          if (n === 1 && m.since == null) ws.send([reply(m.id, { seq: 2, epoch: 'e1', recovered: true }), ev(3), ev(4), ev(3)].join('\n'));
          else if (n === 1) ws.send([reply(m.id, { seq: 6, epoch: 'e1', recovered: true }), ev(5), ev(6)].join('\n') + '\n');
          else ws.send(reply(m.id, { seq: 1, epoch: 'e2', recovered: false }) + '\n' + ev(2));
        } else if (m.op === 'call') {
          if (m.method === 'echo') ws.send(reply(m.id, m.args));
          if (m.method === 'hole') ws.send(ev(6)); // 5 is missing
          if (m.method === 'drop') ws.close();
        }
      }
    });
  });
  const r = await page.evaluate(async () => {
    const { connect } = await import('/holdfast.js');
    const c = connect(location.origin + '/mock', { backoffMin: 50 });
    const evs = [], readies = [];
    const wait = async (f) => { for (let i = 0; i < 200 && !f(); i++) await new Promise((res) => setTimeout(res, 25)); };
    c.subscribe('counter/x', (e) => evs.push(e.seq), { onReady: (i) => readies.push(i) });
    const echo = await c.call('counter/x', 'echo', { a: 1 });
    const timeout = await c.call('counter/x', 'never', {}, { timeout: 200 }).catch((e) => e.code);
    await wait(() => evs.length >= 2);
    c.call('counter/x', 'hole', {}, { timeout: 200 }).catch(() => {});
    await wait(() => evs.includes(6));
    const dropped = await c.call('counter/x', 'drop', {}).catch((e) => e.code);
    await wait(() => readies.length >= 3 && evs.length >= 5);
    const out = { evs, readies, echo, timeout, dropped, state: c.state };
    c.close();
    return out;
  });
  log(`scripted server: events ${r.evs}, readies ${JSON.stringify(r.readies.map((x) => [x.recovered, x.reason]))}, subs ${JSON.stringify(subs)}`);
  assert(JSON.stringify(r.evs) === '[3,4,5,6,2]', `events in order, once each: ${r.evs}`);
  assert(r.echo.a === 1 && r.timeout === 'timeout' && r.dropped === 'unavailable', `call results ${JSON.stringify([r.echo, r.timeout, r.dropped])}`);
  assert(JSON.stringify(r.readies.map((x) => [x.recovered, x.reason, x.resumed])) ===
    '[[false,"initial",false],[true,null,true],[false,"epoch",true]]', 'onReady reports');
  assert(JSON.stringify(subs) === JSON.stringify([{ conn: 1, since: null, epoch: null }, { conn: 1, since: 4, epoch: 'e1' }, { conn: 2, since: 6, epoch: 'e1' }]),
    'resubscribed from the last seq seen, with its epoch');
  await page.context().close();
});

let board, guest, staff;
test('waiting room: a guest registers, the board and staff see it live; staff call, the guest is told', async () => {
  board = await open('/waiting/board.html?store=bt-1', TV);
  staff = await open('/waiting/staff.html?store=bt-1', DESK);
  guest = await open('/waiting/guest.html?store=bt-1', PHONE);
  await Promise.all([live(board), live(staff), live(guest)]);
  // a guest fills in the form on their phone
  await guest.fill('#name', 'Kim Min-ji');
  await guest.click('#party button:nth-child(3)');
  await guest.selectOption('#class', 'table');
  await guest.fill('#phone', '010-1234-5678');
  await guest.click('#take');
  await until(guest, () => /in line|next/.test(document.querySelector('#my-status').textContent));
  const mine = await guest.evaluate(() => window.app.mine);
  log(`guest got ticket ${mine.ticket}`);
  // the board and the staff console see it appear, without reloading
  await until(board, (t) => !!document.querySelector(`#waiting tr[data-ticket="${t}"]`), mine.ticket);
  await until(staff, (t) => document.querySelector(`#waiting [data-ticket="${t}"]`)?.textContent.includes('010-1234-5678'), mine.ticket);
  // more guests, from other clients over HTTP
  for (const [name, party, cls] of [['Park', 2, 'bar'], ['Lee', 4, 'table'], ['Choi', 1, 'bar'], ['Jung', 5, 'terrace']])
    await httpCall(server.port, STORE, 'register', { name, party, class: cls });
  await until(board, () => document.querySelectorAll('#waiting tr[data-ticket]').length === 5);
  await until(guest, () => document.querySelector('#my-status').textContent === "You're next!");
  // staff call the next guest: Kim. The board shows it, the guest is told.
  await staff.click('#call-next');
  await until(board, (t) => document.querySelector('#calling .call.latest')?.dataset.ticket === t, mine.ticket);
  await until(guest, () => /your turn/.test(document.querySelector('#my-status').textContent));
  // staff move Choi up, call Park, seat Kim, mark Park as no-show, call Lee
  const tickets = await board.evaluate(() => window.app.q.waiting().map((t) => [t.name, t.ticket]));
  const tk = Object.fromEntries(tickets);
  await staff.click(`#waiting [data-ticket="${tk.Choi}"] button[title="move up one place"]`);
  await until(board, (t) => document.querySelector('#waiting tr[data-ticket]:nth-child(2)')?.dataset.ticket === t, tk.Choi);
  await staff.click(`#waiting [data-ticket="${tk.Park}"] button:text("Call")`);
  await until(staff, (t) => !!document.querySelector(`#called [data-ticket="${t}"]`), tk.Park);
  await staff.click(`#called [data-ticket="${mine.ticket}"] button:text("Seat")`);
  await until(guest, () => /Seated/.test(document.querySelector('#my-status').textContent));
  await staff.click(`#called [data-ticket="${tk.Park}"] button:text("No-show")`);
  await staff.click(`#waiting [data-ticket="${tk.Lee}"] button:text("Call")`);
  await until(board, (t) => document.querySelector('#calling .call.latest')?.dataset.ticket === t, tk.Lee);
  await until(staff, () => document.querySelectorAll('#done li').length === 2);
  for (const p of [board, staff, guest]) await notReloaded(p);
  // the board matches the server's list exactly
  await expectBoardMatches();
});

async function expectBoardMatches() {
  const list = await httpCall(server.port, STORE, 'list');
  const want = { calling: list.tickets.filter((t) => t.status === 'called').map((t) => t.ticket).reverse(),
    waiting: list.tickets.filter((t) => t.status === 'waiting').map((t) => t.ticket) };
  await until(board, (w) => {
    const calling = [...document.querySelectorAll('#calling .call')].map((e) => e.dataset.ticket);
    const waiting = [...document.querySelectorAll('#waiting tr[data-ticket]')].map((e) => e.dataset.ticket);
    return JSON.stringify({ calling, waiting }) === JSON.stringify(w);
  }, want).catch(async (e) => {
    const got = await board.evaluate(() => ({ calling: window.app.q.called, waiting: window.app.q.order }));
    throw new Error(`board differs from list: want ${JSON.stringify(want)} got ${JSON.stringify(got)} (${e.message})`);
  });
}

test('waiting room: server killed and restarted mid-session; the board resumes and catches up on missed events', async () => {
  const before = await board.evaluate(() => ({ ...window.hf.stats }));
  let missed = [];
  await crashAndRestart([board, guest, staff], async (port) => {
    // another client, over HTTP, while the pages cannot reach the server
    for (const name of ['Yoon', 'Kang', 'Han']) missed.push((await httpCall(port, STORE, 'register', { name, party: 2 })).ticket);
    await httpCall(port, STORE, 'call', {}); // calls Choi (moved up)
  });
  await until(board, (ts) => ts.every((t) => document.querySelector(`#waiting tr[data-ticket="${t}"]`)), missed);
  await expectBoardMatches();
  const after = await board.evaluate(() => ({ stats: { ...window.hf.stats }, ready: window.hf.subscription('store/bt-1').lastReady }));
  log(`board after restart: replayed ${after.stats.replayed - before.replayed} events, ready ${JSON.stringify(after.ready)}`);
  assert(after.ready.resumed && after.ready.recovered, 'resumed with recovered:true');
  assert(after.stats.replayed - before.replayed >= 4, 'the 4 missed events were replayed from the log (since)');
  // By itself: over WebSocket again, or (when its attempts failed while the
  // server was still coming up, as on a loaded machine) through the polling
  // fallback, which retries WebSocket later; either way without a reload.
  assert(after.stats.reconnects > before.reconnects || after.stats.fallbacks > before.fallbacks,
    'the client reconnected by itself');
  for (const p of [board, staff, guest]) await notReloaded(p);
  // and it is live again
  const t = (await httpCall(server.port, STORE, 'register', { name: 'Seo', party: 3 })).ticket;
  await until(board, (x) => !!document.querySelector(`#waiting tr[data-ticket="${x}"]`), t);
  await until(staff, (x) => !!document.querySelector(`#waiting [data-ticket="${x}"]`), t);
  await shot(board, 'waiting-board');
  await shot(staff, 'waiting-staff');
  // the guest page: a fresh ticket, waiting, for the screenshot
  await guest.click('#again');
  await guest.fill('#name', 'Oh Se-young');
  await guest.click('#take');
  await until(guest, () => /in line/.test(document.querySelector('#my-status').textContent));
  await shot(guest, 'waiting-guest');
  for (const p of [board, staff, guest]) await p.context().close();
});

test('waiting room: staff set the store to UTC+05:45; the board shows the store\'s day and times, not the browser\'s', async () => {
  // The browsers are in Asia/Seoul (UTC+09:00): a time shown at :45 past
  // another hour than Seoul's can only be the store's.
  const S = 'store/bt-tz';
  const at = (ms, off) => new Date(ms + off * 60000).toISOString().slice(11, 16);
  const dayAt = (ms, off) => Number(new Date(ms + off * 60000).toISOString().slice(0, 10).replace(/-/g, ''));
  const tzBoard = await open('/waiting/board.html?store=bt-tz', TV);
  const tzStaff = await open('/waiting/staff.html?store=bt-tz', DESK);
  await Promise.all([live(tzBoard), live(tzStaff)]);
  const early = await httpCall(server.port, S, 'register', { name: 'Early', party: 2 });
  const list0 = await httpCall(server.port, S, 'list');
  const created = list0.tickets.find((t) => t.ticket === early.ticket).created_at;
  assert(list0.utc_offset_min === 0, `a new store is on UTC (got ${list0.utc_offset_min})`);
  const since = (t) => document.querySelector(`#waiting tr[data-ticket="${t[0]}"] td.since`)?.textContent === t[1];
  await until(tzBoard, since, [early.ticket, at(created, 0)]);
  await until(tzBoard, (d) => document.querySelector('#day').dataset.day === d, String(list0.day));
  // staff pick UTC+05:45 in the console and set it
  const t1 = Date.now();
  await tzStaff.selectOption('#tz-offset', '345');
  await tzStaff.click('#store-time button[type=submit]');
  // the board hears `configured` and redraws in the store's new local time
  await until(tzBoard, () => document.querySelector('#tz').textContent === 'UTC+05:45');
  const list1 = await httpCall(server.port, S, 'list');
  const t2 = Date.now();
  assert(list1.utc_offset_min === 345, `configured (got ${list1.utc_offset_min})`);
  assert([dayAt(t1, 345), dayAt(t2, 345)].includes(list1.day), `the store's day is today at UTC+05:45 (got ${list1.day})`);
  log(`store day ${list0.day} at UTC, ${list1.day} at UTC+05:45; ticket ${early.ticket} joined ${at(created, 0)} UTC = ${at(created, 345)} store time`);
  await until(tzBoard, (d) => document.querySelector('#day').dataset.day === d[0] && document.querySelector('#day').textContent.includes(d[1]),
    [String(list1.day), String(list1.day % 100)]);
  await until(tzBoard, since, [early.ticket, at(created, 345)]);
  const now = Date.now(); // this minute or the next one (it may turn meanwhile)
  await until(tzBoard, (want) => want.includes(document.querySelector('#store-clock').textContent), [at(now, 345), at(now + 60000, 345)]);
  await until(tzStaff, () => document.querySelector('#store-now').textContent.includes('UTC+05:45') && document.querySelector('#tz-offset').value === '345');
  // a ticket taken now is numbered in the store's day
  const late = await httpCall(server.port, S, 'register', { name: 'Late', party: 1 });
  assert(late.ticket.startsWith(`${list1.day}-`), `ticket ${late.ticket} is of the store's day ${list1.day}`);
  await until(tzBoard, (t) => !!document.querySelector(`#waiting tr[data-ticket="${t}"]`), late.ticket);
  for (const p of [tzBoard, tzStaff]) await notReloaded(p);
  await shot(tzBoard, 'waiting-board-local-time');
  for (const p of [tzBoard, tzStaff]) await p.context().close();
});

test('device board: reserve a slot, admin approves, live online/in-use status', async () => {
  const q = '?devices=bt-ps5,bt-switch';
  const kim = await open(`/devices/${q}&day=1`, DESK); // tomorrow: every slot is in the future
  // first visit: the page asks for a name
  await kim.waitForSelector('#name-dialog input');
  await kim.fill('#name-dialog input', 'Kim Min-ji');
  await kim.click('#name-dialog button[type=submit]');
  const admin = await open(`/devices/admin.html${q}`, DESK);
  const wall = await open(`/devices/${q}&tv=1&day=1`, TV);
  await Promise.all([live(kim), live(admin), live(wall)]);
  assert((await kim.evaluate(() => window.app.user)) === 'kim-min-ji', 'user id from the name');
  const slots = await kim.$$eval('[data-device="bt-ps5"] .slot', (b) => b.map((x) => x.dataset.slot));
  const s18 = slots.find((s) => s.includes('T18:00')), s19 = slots.find((s) => s.includes('T19:00'));
  await kim.click(`[data-device="bt-ps5"] .slot[data-slot="${s18}"]`);
  // the admin sees the request appear, and approves it
  await until(admin, (s) => !!document.querySelector(`#pending tr[data-slot="${s}"]`), s18);
  await until(wall, (s) => document.querySelector(`[data-device="bt-ps5"] .slot[data-slot="${s}"]`)?.classList.contains('pending'), s18);
  await admin.click(`#pending tr[data-slot="${s18}"] button:text("Approve")`);
  await until(kim, (s) => document.querySelector(`[data-device="bt-ps5"] .slot[data-slot="${s}"]`)?.classList.contains('confirmed'), s18);
  // Lee is too late for that slot (another client over HTTP), takes 19:00
  const late = await httpCall(server.port, 'device/bt-ps5', 'reserve', { slot: s18, user: 'lee' }).catch((e) => e);
  assert(late.code === 'conflict', `a held slot is a conflict (got ${late.code || 'success'})`);
  await httpCall(server.port, 'device/bt-ps5', 'reserve', { slot: s19, user: 'lee', note: 'FIFA night' });
  await until(kim, (s) => document.querySelector(`[data-device="bt-ps5"] .slot[data-slot="${s}"]`)?.classList.contains('pending'), s19);
  await httpCall(server.port, 'device/bt-switch', 'reserve', { slot: slots.find((s) => s.includes('T12:00')), user: 'park' });
  await httpCall(server.port, 'device/bt-switch', 'approve', { slot: slots.find((s) => s.includes('T12:00')) });
  // the devices come online (simulated from the admin page) and one starts a game
  await admin.click('#sim [data-device="bt-ps5"] button:text("Heartbeat")');
  await until(kim, () => document.querySelector('[data-device="bt-ps5"]').dataset.status === 'online');
  await admin.fill('#sim [data-device="bt-ps5"] input[type=text]', 'FC 26');
  await admin.click('#sim [data-device="bt-ps5"] button:text("In use")');
  await until(kim, () => document.querySelector('[data-device="bt-ps5"]').dataset.status === 'in_use');
  await until(wall, () => document.querySelector('[data-device="bt-ps5"] .meta').textContent.includes('FC 26'));
  await admin.click('#sim [data-device="bt-switch"] button:text("Heartbeat")');
  await until(wall, () => document.querySelector('[data-device="bt-switch"]').dataset.status === 'online');
  for (const p of [kim, admin, wall]) await notReloaded(p);
  await shot(kim, 'devices');
  await shot(admin, 'devices-admin');
  await shot(wall, 'devices-tv');
  for (const p of [kim, admin, wall]) await p.context().close();
});

test('chat: presence, typing indicator, messages and read receipts between two phones', async () => {
  const kim = await open('/chat/?room=bt-lobby', PHONE, 'Kim');
  const lee = await open('/chat/?room=bt-lobby', PHONE, 'Lee');
  await Promise.all([live(kim), live(lee)]);
  await until(kim, () => document.querySelector('#who').textContent.includes('Lee'));
  await until(lee, () => document.querySelector('#who').textContent.includes('Kim'));
  await lee.type('#text', 'anyone up for lunch?', { delay: 15 });
  await until(kim, () => document.querySelector('#typing').textContent === 'Lee is typing…');
  await lee.press('#text', 'Enter');
  await until(kim, () => [...document.querySelectorAll('.msg .bubble')].some((b) => b.textContent === 'anyone up for lunch?'));
  await until(kim, () => document.querySelector('#typing').textContent === '');
  // the sender's name on the message (anonymous: it travels in client_id)
  await until(kim, () => [...document.querySelectorAll('.msg:not(.mine)')].pop()?.querySelector('.by .name')?.textContent === 'Lee');
  // Kim has seen it: Lee's tick reaches "read" (anonymous: a "seen" signal)
  await until(lee, () => { const t = [...document.querySelectorAll('.msg.mine .tick')].pop(); return t?.dataset.tick === 'read' && /Read by Kim/.test(t.textContent); });
  assert((await kim.evaluate(() => window.app.readMode)) === 'signal', 'anonymous receipts use signals');
  await kim.type('#text', 'yes! ramen at 12:30?', { delay: 10 });
  await kim.press('#text', 'Enter');
  await until(lee, () => [...document.querySelectorAll('.msg:not(.mine) .bubble')].some((b) => b.textContent === 'yes! ramen at 12:30?'));
  await until(kim, () => { const t = [...document.querySelectorAll('.msg.mine .tick')].pop(); return t?.dataset.tick === 'read' && /Read by Lee/.test(t.textContent); });
  await lee.type('#text', 'see you there', { delay: 10 });
  await lee.press('#text', 'Enter');
  await kim.type('#text', 'bring', { delay: 10 }); // Lee sees Kim typing in the screenshot
  await until(lee, () => document.querySelector('#typing').textContent === 'Kim is typing…');
  const server_ = await httpCall(server.port, 'room/bt-lobby', 'history', { limit: 10 });
  assert(server_.messages.length === 3, `3 messages stored (got ${server_.messages.length})`);
  assert(server_.messages.every((m) => m.client_id.includes('~')), 'the display name travels in client_id');
  await shot(lee, 'chat');
  for (const p of [kim, lee]) await p.context().close();
});

// Tokens for a server with auth on (HS256, as transport/auth.c checks them).
const SECRET = 'browser-test-secret-0123456789abcdef';
function mint(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = b64({ alg: 'HS256', typ: 'JWT' }), body = b64(claims);
  return `${head}.${body}.${crypto.createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url')}`;
}

test('chat signed in: names from the token and from a profile, a picture, ticks sent → delivered → read', async () => {
  const authed = await startServer(0, ['--jwt-secret', SECRET], `${DATA}-auth`);
  const pages = [];
  try {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const pic = `http://127.0.0.1:${authed.port}/favicon.svg`;
    const kimTok = mint({ sub: 'kim', role: 'user', exp, name: 'Kim Minji', picture: pic });
    const leeTok = mint({ sub: 'lee', role: 'user', exp }); // no display claims: Lee names herself
    // waits until the tick under the page's newest own message is `state` (and its text matches `text`)
    const tickIs = (page, state, text = '') => until(page, ([st, tx]) => {
      const t = [...document.querySelectorAll('.msg.mine .tick')].pop();
      return t?.dataset.tick === st && t.textContent.includes(tx);
    }, [state, text]);
    const kim = await open(`/chat/?room=bt-auth&token=${kimTok}`, PHONE, null, authed.port);
    pages.push(kim);
    await live(kim);
    assert((await kim.evaluate(() => window.app.name)) === 'Kim Minji', 'the name comes from the token, nobody asked');
    // alone in the room: stored (sent), and no other member has it yet
    await kim.type('#text', 'anyone here?', { delay: 10 });
    await kim.press('#text', 'Enter');
    await tickIs(kim, 'sent');
    // Lee's phone opens in the background: her app has the message (delivered), she has not seen it
    const lee = await open(`/chat/?room=bt-auth&token=${leeTok}`, Object.assign({ hidden: true }, PHONE), 'Lee', authed.port);
    pages.push(lee);
    await live(lee);
    await tickIs(kim, 'delivered');
    await until(lee, (p) => { const m = [...document.querySelectorAll('.msg:not(.mine)')].pop();
      return m?.querySelector('.by .name')?.textContent === 'Kim Minji' && m.querySelector('.by img')?.getAttribute('src') === p; }, pic);
    // Lee sets her profile in the room
    await lee.click('#me');
    await lee.fill('#p-name', 'Lee Jiwoo');
    await lee.click('#p-save');
    await until(kim, () => window.app.profiles.get('lee')?.name === 'Lee Jiwoo');
    // she opens the chat: read, and Kim's tick says by whom
    await show(lee);
    await tickIs(kim, 'read', 'Read by Lee Jiwoo');
    // Lee answers: Kim sees the name of her profile; Kim's page is open, so it is read at once
    await lee.type('#text', 'hi Kim!', { delay: 10 });
    await lee.press('#text', 'Enter');
    await until(kim, () => [...document.querySelectorAll('.msg:not(.mine)')].pop()?.querySelector('.by .name')?.textContent === 'Lee Jiwoo');
    await tickIs(lee, 'read', 'Read by Kim Minji');
    // the room stored each author's display name with the message
    const hist = await httpCall(authed.port, 'room/bt-auth', 'history', { limit: 10 }, undefined, kimTok);
    const byId = hist.messages.map((m) => [m.author, m.name, m.picture ?? null, m.body]);
    assert(JSON.stringify(byId) === JSON.stringify([['lee', 'Lee Jiwoo', null, 'hi Kim!'], ['kim', 'Kim Minji', pic, 'anyone here?']]),
      `history carries the names: ${JSON.stringify(byId)}`);
    for (const p of pages) await notReloaded(p);
    await shot(kim, 'chat-signed-in');
  } finally {
    for (const p of pages) await p.context().close();
    const r = await stopServer(authed, 'SIGTERM');
    assert(r.code === 0, `auth server exit ${r.code} ${r.sig || ''}`);
  }
});

let voteBoard;
test('lunch vote: configure, vote from a phone, the board bars move live', async () => {
  const admin = await open('/vote/?poll=bt-lunch', PHONE, 'Admin');
  await live(admin);
  await admin.waitForSelector('#setup:not([hidden])');
  await admin.fill('#options', 'Bibimbap\nRamen\nPho\nTacos');
  await admin.click('#setup button[type=submit]');
  voteBoard = await open('/vote/board.html?poll=bt-lunch', TV);
  const kim = await open('/vote/?poll=bt-lunch', PHONE, 'Kim');
  await Promise.all([live(voteBoard), live(kim)]);
  await kim.waitForSelector('#bars .opt[data-option="Ramen"]');
  // the board announces each new first place, as the poll's vote_update names it
  const news = (want) => until(voteBoard, ([leader, text]) => {
    const n = document.querySelector('#news');
    return !n.hidden && n.dataset.leader === leader && n.textContent.includes(text);
  }, want);
  await kim.click('#bars .opt[data-option="Ramen"]');
  await until(voteBoard, () => document.querySelector('#bars [data-option="Ramen"]').dataset.count === '1');
  await news(['Ramen', 'Ramen takes the lead!']);
  await kim.click('#bars .opt[data-option="Pho"]'); // changes her mind: the vote moves
  await until(voteBoard, () => document.querySelector('#bars [data-option="Pho"]').dataset.count === '1' &&
    document.querySelector('#bars [data-option="Ramen"]').dataset.count === '0');
  await news(['Pho', 'Pho takes the lead!']);
  await httpCall(server.port, 'poll/bt-lunch', 'vote', { option: 'Ramen', voter: 'lee' }); // 1–1: nobody leads
  await news(['', 'A tie for first place!']);
  assert((await voteBoard.$$('#bars .opt.lead')).length === 0, 'no bar is highlighted as leading in a tie');
  for (const [voter, option] of [['park', 'Ramen'], ['choi', 'Bibimbap'], ['jung', 'Ramen'], ['han', 'Tacos']])
    await httpCall(server.port, 'poll/bt-lunch', 'vote', { option, voter });
  await until(voteBoard, () => document.querySelector('#bars [data-option="Ramen"]').dataset.count === '3');
  await news(['Ramen', 'Ramen takes the lead!']);
  await until(voteBoard, () => document.querySelector('#bars .opt.lead')?.dataset.option === 'Ramen');
  await until(kim, () => document.querySelector('#total').textContent.startsWith('6 votes'));
  await notReloaded(voteBoard);
  await shot(kim, 'vote');
  await shot(voteBoard, 'vote-board');
  await admin.context().close();
  await kim.context().close();
});

test('lunch vote: restart with the missed history trimmed; the board gets recovered:false and refetches', async () => {
  // The side server keeps only 2 events per actor, so the 5 votes cast while
  // the board is away push its last seen seq out of the log.
  await crashAndRestart([voteBoard], async (port) => {
    for (const [voter, option] of [['yoon', 'Pho'], ['kang', 'Pho'], ['seo', 'Pho'], ['oh', 'Bibimbap'], ['lim', 'Pho']])
      await httpCall(port, 'poll/bt-lunch', 'vote', { option, voter });
  }, ['--log-retain', '2']);
  const tally = await httpCall(server.port, 'poll/bt-lunch', 'tally');
  await until(voteBoard, (c) => [...document.querySelectorAll('#bars .opt')].map((e) => Number(e.dataset.count)).join() === c.join(), tally.counts);
  const ready = await voteBoard.evaluate(() => window.hf.subscription('poll/bt-lunch').lastReady);
  log(`vote board after restart: ${JSON.stringify(ready)}; counts ${tally.counts}`);
  assert(ready.resumed && ready.recovered === false && ready.reason === 'gap', 'recovered:false reported');
  await notReloaded(voteBoard);
});

test('polling fallback: WebSocket refused, the page polls /v1/events and calls over HTTP', async () => {
  const kim = await open('/vote/?poll=bt-lunch', Object.assign({ refuseWs: true }, PHONE), 'Kim');
  await until(kim, () => window.hf.transport === 'poll' && window.hf.state === 'open');
  const st = await kim.evaluate(() => ({ ...window.hf.stats }));
  log(`WebSocket refused: polling after ${st.fallbacks} fallback(s)`);
  await kim.waitForSelector('#bars .opt[data-option="Tacos"]');
  // a vote from the polling page reaches the WebSocket board…
  await kim.click('#bars .opt[data-option="Tacos"]');
  await until(voteBoard, () => document.querySelector('#bars [data-option="Tacos"]').dataset.count === '2');
  // …and a vote by another client reaches the polling page
  await httpCall(server.port, 'poll/bt-lunch', 'vote', { option: 'Bibimbap', voter: 'ahn' });
  await until(kim, () => document.querySelector('#bars [data-option="Bibimbap"]').dataset.count === '3');
  const st2 = await kim.evaluate(() => ({ stats: { ...window.hf.stats }, transport: window.hf.transport }));
  assert(st2.transport === 'poll' && st2.stats.polls > 0 && st2.stats.httpCalls > 0 && st2.stats.opens === 0, `polled: ${JSON.stringify(st2)}`);
  // a restart while polling: the page keeps up through it
  await crashAndRestart([kim], async (port) => { await httpCall(port, 'poll/bt-lunch', 'vote', { option: 'Tacos', voter: 'baek' }); });
  await until(kim, () => document.querySelector('#bars [data-option="Tacos"]').dataset.count === '3');
  assert((await kim.evaluate(() => window.hf.transport)) === 'poll', 'still polling');
  await shot(kim, 'vote-polling');
  await notReloaded(kim);
  await kim.context().close();
  // the demo store board over polling too (several subscriptions kind of page)
  const b = await open('/waiting/board.html?store=bt-1', Object.assign({ refuseWs: true }, TV));
  await until(b, () => window.hf.transport === 'poll' && document.querySelectorAll('#waiting tr[data-ticket]').length > 0);
  const t = (await httpCall(server.port, STORE, 'register', { name: 'Polly', party: 2 })).ticket;
  await until(b, (x) => !!document.querySelector(`#waiting tr[data-ticket="${x}"]`), t);
  await b.context().close();
});

// ---------------------------------------------------------------- run

let passed = 0, failed = 0;
try {
  fs.rmSync(DATA, { recursive: true, force: true });
  server = await startServer(0);
  log(`holdfast on port ${server.port}, chromium ${browser.version()}`);
  for (const t of tests) {
    const t1 = Date.now();
    try {
      await Promise.race([t.fn(), new Promise((_, rej) => setTimeout(() => rej(new Error('test timed out (90 s)')), 90000))]);
      passed++;
      log(`ok - ${t.name} (${((Date.now() - t1) / 1000).toFixed(1)} s)`);
    } catch (e) {
      failed++;
      log(`not ok - ${t.name}\n    ${String(e.stack || e).split('\n').slice(0, 6).join('\n    ')}`);
    }
  }
  if (pageErrors.length) {
    failed++;
    log(`not ok - pages had script errors:\n    ${pageErrors.join('\n    ')}`);
  }
} finally {
  await browser.close().catch(() => {});
  if (server) {
    const r = await stopServer(server, 'SIGTERM');
    if (r.code !== 0) { failed++; log(`server exited ${r.code} ${r.sig || ''}: see ${server.logFile}`); }
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
