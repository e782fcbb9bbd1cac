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

/** Starts holdfast on `port` (0: any) with the shared data dir. */
function startServer(port = 0, extra = []) {
  return new Promise((resolve, reject) => {
    const logFile = path.join(TMP, `server-${++serverRuns}.log`);
    const out = fs.openSync(logFile, 'w');
    const proc = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data', DATA, '--web-root', WEB, ...extra],
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

/** POST /v1/call over HTTP, as "another client". */
async function httpCall(port, address, method, args = {}, key) {
  const headers = { 'content-type': 'application/json' };
  if (key) headers['idempotency-key'] = key;
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

/** A page in its own context (own localStorage), `name` remembered for askName. */
async function open(url, opts = {}, name) {
  const ctx = await browser.newContext(Object.assign({ timezoneId: 'Asia/Seoul', locale: 'en-US' }, opts));
  if (name) await ctx.addInitScript((n) => localStorage.setItem('holdfast.name', n), name);
  if (opts.refuseWs) await ctx.routeWebSocket(/\/v1\/ws/, (ws) => ws.close({ code: 1011, reason: 'refused by test' }));
  const page = await ctx.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${url}: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource|WebSocket connection/.test(m.text())) pageErrors.push(`${url}: console: ${m.text()}`); });
  await page.goto(`http://127.0.0.1:${server.port}${url}`);
  await page.evaluate(() => { window.__sameDocument = true; }); // gone if the page ever reloads
  return page;
}

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
  // Kim has seen it: Lee's page shows the receipt (anonymous: a "seen" signal)
  await until(lee, () => /Seen by Kim/.test(document.querySelector('.msg.mine .seen')?.textContent || ''));
  assert((await kim.evaluate(() => window.app.readMode)) === 'signal', 'anonymous receipts use signals');
  await kim.type('#text', 'yes! ramen at 12:30?', { delay: 10 });
  await kim.press('#text', 'Enter');
  await until(lee, () => [...document.querySelectorAll('.msg:not(.mine) .bubble')].some((b) => b.textContent === 'yes! ramen at 12:30?'));
  await until(kim, () => /Seen by Lee/.test(document.querySelector('.msg.mine .seen')?.textContent || ''));
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
  await kim.click('#bars .opt[data-option="Ramen"]');
  await until(voteBoard, () => document.querySelector('#bars [data-option="Ramen"]').dataset.count === '1');
  await kim.click('#bars .opt[data-option="Pho"]'); // changes her mind: the vote moves
  await until(voteBoard, () => document.querySelector('#bars [data-option="Pho"]').dataset.count === '1' &&
    document.querySelector('#bars [data-option="Ramen"]').dataset.count === '0');
  for (const [voter, option] of [['lee', 'Ramen'], ['park', 'Ramen'], ['choi', 'Bibimbap'], ['jung', 'Ramen'], ['han', 'Tacos']])
    await httpCall(server.port, 'poll/bt-lunch', 'vote', { option, voter });
  await until(voteBoard, () => document.querySelector('#bars [data-option="Ramen"]').dataset.count === '3');
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
