// react_board.test.mjs — the React waiting board (web/react-board, on
// holdfast-client/react, StrictMode on) in Debian's chromium against a real
// server, once with React 19 and once with React 18:
//   - the board and a registering page update each other live;
//   - one subscription per page, whatever StrictMode's double effects and
//     the three hooks watching the same store do (checked on the server);
//   - a failed call shows its error code and message;
//   - the server is kill -9'ed and restarted mid-session: the hooks say
//     `reconnecting`, then catch up — with React 19 by resuming (`since`,
//     the missed events replayed), with React 18 after a gap (the history
//     was trimmed: recovered:false, the hook refetches `list`) — and the
//     board converges to `list` without a reload;
//   - the hooks fixture (tests/clients/hooks_app.jsx) on a server with auth
//     on: the provider renews a 3-second token through getToken while
//     events flow, useSubscription's events stay contiguous (no gap, no
//     duplicate) through the renewals and through a kill -9 and restart
//     (`reconnecting` meanwhile), useActorState follows, one subscription
//     on the server, a failed useCall shows its code and message.
// Run by tests/clients/react.sh (through tests/browser/run.sh), which sets
// HF_BIN, HF_WEB_ROOT (a web root with the bundles), HF_TMP, HF_SHOTS,
// HF_PLAYWRIGHT, HF_CHROMIUM.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const env = (k) => { if (!process.env[k]) { console.error(`missing ${k}`); process.exit(2); } return process.env[k]; };
const BIN = env('HF_BIN'), WEB = env('HF_WEB_ROOT'), TMP = env('HF_TMP'), SHOTS = env('HF_SHOTS');
const { chromium } = await import(env('HF_PLAYWRIGHT'));
const DATA = path.join(TMP, 'react-data');
const T0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - T0) / 1000).toFixed(1).padStart(5)}s]`, ...a);
function assert(cond, msg) { if (!cond) throw new Error(`assertion failed: ${msg}`); }

let server = null;
let runs = 0;
function startServer(port = 0, extra = [], data = DATA) {
  return new Promise((resolve, reject) => {
    const logFile = path.join(TMP, `react-server-${++runs}.log`);
    const out = fs.openSync(logFile, 'w');
    const proc = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data', data, '--web-root', WEB, ...extra], { stdio: ['ignore', out, out] });
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
const stopServer = (s, signal) => { s.proc.kill(signal); return s.exited; };
async function httpCall(port, address, method, args = {}) {
  const r = await fetch(`http://127.0.0.1:${port}/v1/call/${address}/${method}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(args) });
  const body = await r.json();
  if (!body.ok) throw new Error(`${address} ${method}: ${body.error.code}: ${body.error.message}`);
  return body.result;
}

const browser = await chromium.launch({
  executablePath: env('HF_CHROMIUM'), headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const pageErrors = [];
async function open(url, viewport) {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${url}: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource|WebSocket connection/.test(m.text())) pageErrors.push(`${url}: console: ${m.text()}`); });
  await page.goto(`http://127.0.0.1:${server.port}${url}`);
  await page.evaluate(() => { window.__sameDocument = true; });
  return page;
}
const until = (page, fn, arg, timeout = 30000) => page.waitForFunction(fn, arg, { timeout, polling: 100 });
const notReloaded = async (p) => assert(await p.evaluate(() => window.__sameDocument === true), `${p.url()} was reloaded`);

async function expectBoardMatches(board, store) {
  const list = await httpCall(server.port, store, 'list');
  const want = { calling: list.tickets.filter((t) => t.status === 'called').map((t) => t.ticket).reverse().slice(0, 6),
    waiting: list.tickets.filter((t) => t.status === 'waiting').map((t) => t.ticket) };
  await until(board, (w) => {
    const calling = [...document.querySelectorAll('#calling .call')].map((e) => e.dataset.ticket);
    const waiting = [...document.querySelectorAll('#waiting tr[data-ticket]')].map((e) => e.dataset.ticket);
    return JSON.stringify({ calling, waiting }) === JSON.stringify(w);
  }, want).catch(async (e) => {
    const got = await board.evaluate(() => ({ calling: window.app.q?.called, waiting: window.app.q?.order }));
    throw new Error(`board differs from list: want ${JSON.stringify(want)} got ${JSON.stringify(got)} (${e.message})`);
  });
}

async function scenario(react) {
  // transport=ws: the subscriber and presence counts below are WebSocket
  // ones (a page that fell back to polling, as on a loaded machine, would
  // hold none); the fallback has its own tests
  const id = `rb-${react}`, store = `store/${id}`, q = (react === 18 ? '&react=18' : '') + '&transport=ws';
  const board = await open(`/react-board/?store=${id}${q}`, { width: 1600, height: 900 });
  const reg = await open(`/react-board/?store=${id}&view=register${q}`, { width: 420, height: 800 });
  for (const p of [board, reg]) await until(p, () => window.hf && window.hf.state === 'open');
  await until(board, () => document.querySelector('#board')?.dataset.status === 'live');
  await until(reg, (a) => !!window.hf.subscription(a)?.lastReady && window.app.q != null, store); // its subscription too
  const mounts = await board.evaluate(() => window.hfMounts);
  assert(mounts === 2, `StrictMode ran the effects twice (${mounts})`);
  // one subscription per page, on the server
  let info = await httpCall(server.port, store, 'info');
  assert(info.subscribers === 2, `2 subscribers (board, register page), got ${info.subscribers}`);
  assert(await board.evaluate(() => window.hf._subs.size === 1), 'the board holds one client subscription');
  // register on one page: the board shows it; others over HTTP too
  await reg.fill('#name', 'Kim Min-ji');
  await reg.fill('#party', '3');
  await reg.click('#take');
  await until(reg, () => document.querySelector('#mine li')?.dataset.status === 'waiting');
  const kim = await reg.evaluate(() => document.querySelector('#mine li').dataset.ticket);
  await until(board, (t) => !!document.querySelector(`#waiting tr[data-ticket="${t}"]`), kim);
  for (const name of ['Park', 'Lee']) await httpCall(server.port, store, 'register', { name, party: 2 });
  await until(board, () => document.querySelectorAll('#waiting tr[data-ticket]').length === 3);
  await until(board, () => document.querySelector('#watchers').textContent === '1 watching'); // usePresence
  // the board calls the next guest: the registering page sees its ticket called
  await board.click('#call-next');
  await until(board, (t) => document.querySelector('#calling .call.latest')?.dataset.ticket === t, kim);
  await until(reg, () => document.querySelector('#mine li').dataset.status === 'called');
  // a call that fails shows its code and message
  await reg.fill('#name', '');
  await reg.click('#take');
  await until(reg, () => document.querySelector('#error')?.dataset.code === 'bad_request');
  const msg = await reg.evaluate(() => document.querySelector('#error').textContent);
  assert(/^bad_request: .*name/.test(msg), `error shown: ${msg}`);
  await expectBoardMatches(board, store);

  // kill -9 mid-session; another client acts meanwhile through a side server
  const port = server.port;
  await stopServer(server, 'SIGKILL');
  log(`React ${react}: server killed`);
  await until(board, () => document.querySelector('#conn').dataset.state === 'reconnecting');
  await until(board, () => document.querySelector('#board').dataset.status === 'reconnecting');
  const sideArgs = react === 18 ? ['--log-retain', '2'] : [];
  const side = await startServer(0, sideArgs);
  const missed = [];
  for (const name of ['Yoon', 'Kang', 'Han', 'Seo']) missed.push((await httpCall(side.port, store, 'register', { name, party: 2 })).ticket);
  await httpCall(side.port, store, 'call', {});
  const rs = await stopServer(side, 'SIGTERM');
  assert(rs.code === 0, `side server exit ${rs.code}`);
  server = await startServer(port);
  log(`React ${react}: server restarted on ${port}`);
  for (const p of [board, reg]) await until(p, () => window.hf.state === 'open');
  await until(board, () => document.querySelector('#board').dataset.status === 'live');
  await until(board, (ts) => ts.every((t) => document.querySelector(`#waiting tr[data-ticket="${t}"]`) || document.querySelector(`#calling [data-ticket="${t}"]`)), missed);
  await expectBoardMatches(board, store);
  const ready = await board.evaluate((s) => window.hf.subscription(s).lastReady, store);
  log(`React ${react}: after the restart ${JSON.stringify(ready)}, replayed ${await board.evaluate(() => window.hf.stats.replayed)}`);
  assert(ready.resumed, 'resumed');
  if (react === 18) assert(ready.recovered === false && ready.reason === 'gap', 'a gap: refetched');
  else assert(ready.recovered === true && (await board.evaluate(() => window.hf.stats.replayed)) >= 5, 'resumed with since: the 5 missed events replayed');
  // live again, both ways, and still one subscription per page
  const t = (await httpCall(server.port, store, 'register', { name: 'Oh', party: 4 })).ticket;
  await until(board, (x) => !!document.querySelector(`#waiting tr[data-ticket="${x}"]`), t);
  await reg.fill('#name', 'Lim');
  await reg.click('#take');
  await until(reg, () => document.querySelectorAll('#mine li').length === 2);
  const lim = await reg.evaluate(() => document.querySelectorAll('#mine li')[1].dataset.ticket);
  await until(board, (x) => !!document.querySelector(`#waiting tr[data-ticket="${x}"]`), lim);
  await expectBoardMatches(board, store);
  info = await httpCall(server.port, store, 'info');
  assert(info.subscribers === 2, `still 2 subscribers after the restart, got ${info.subscribers}`);
  await until(board, () => document.querySelector('#watchers').textContent === '1 watching'); // presence reloaded, not doubled
  for (const p of [board, reg]) await notReloaded(p);
  await board.screenshot({ path: path.join(SHOTS, `react-board-${react}.png`) });
  await reg.screenshot({ path: path.join(SHOTS, `react-register-${react}.png`) });
  // closing the pages ends their subscriptions
  for (const p of [board, reg]) await p.context().close();
  const deadline = Date.now() + 10000;
  while ((await httpCall(server.port, store, 'info')).subscribers !== 0) {
    assert(Date.now() < deadline, 'subscriptions ended with the pages');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The hooks fixture with auth on: the provider renews a 3-second token
 * through getToken while events flow; none is lost or repeated, the state
 * follows, one subscription on the server; a failed call shows its error. */
const SECRET = 'react-hooks-test-secret-0123456789abcdef';
function mint(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = b64({ alg: 'HS256', typ: 'JWT' }), body = b64(claims);
  return `${head}.${body}.${crypto.createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url')}`;
}
const nowS = () => Math.floor(Date.now() / 1000);
async function hooksScenario(react, authed) {
  const A = 'counter/hooks';
  const svc = mint({ sub: 'svc', role: 'service', exp: nowS() + 600 });
  const call = async (method, args) => {
    const r = await fetch(`http://127.0.0.1:${authed.port}/v1/call/${A}/${method}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${svc}` }, body: JSON.stringify(args) });
    const b = await r.json();
    if (!b.ok) throw new Error(`${method}: ${b.error.code}`);
    return b.result;
  };
  const before = (await call('get', {})).value;
  const ctx = await browser.newContext();
  const minted = [];
  await ctx.exposeFunction('mintToken', (reason) => { minted.push(reason); return mint({ sub: `guest-${react}`, role: 'user', exp: nowS() + 3 }); });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => pageErrors.push(`hooks ${react}: ${e.message}`));
  await page.goto(`http://127.0.0.1:${authed.port}/hooks-test/${react === 18 ? '?react=18' : ''}`);
  await until(page, () => window.probe && window.probe.status === 'live' && window.probe.value != null);
  assert(minted[0] === 'initial', `the provider asked for the first token (${minted})`);
  const t0 = Date.now();
  let n = 0;
  while (Date.now() - t0 < 7000) { // two token lifetimes and more
    await call('incr', { emit: true });
    n++;
    await new Promise((r) => setTimeout(r, 200));
  }
  const want = before + n;
  await until(page, (w) => window.probe.value === w && window.probe.seqs.length > 0 && window.probe.seqs.at(-1) === w, want);
  const p = await page.evaluate(() => window.probe);
  const contiguous = p.seqs.every((s, i) => i === 0 || s === p.seqs[i - 1] + 1);
  assert(contiguous && p.seqs.at(-1) === want && p.seqs.length >= n, `events once each, no gap: ${p.seqs.length} events ending at ${p.seqs.at(-1)}, want ${n} ending at ${want}`);
  assert(minted.length >= 3, `the token was renewed (${minted.join(',')})`);
  const info = await call('info', {});
  assert(info.subscribers === 1, `one subscription for the page under StrictMode, got ${info.subscribers}`);
  // kill -9 and restart: the hooks say reconnecting, then catch up with since: no gap, no duplicate
  const port = authed.port;
  await stopServer(authed, 'SIGKILL');
  await until(page, () => window.probe.status === 'reconnecting' && window.probe.stStatus === 'reconnecting');
  Object.assign(authed, await startServer(port, ['--jwt-secret', SECRET, '--jwt-leeway-s', '0'], DATA + '-auth'));
  for (let i = 0; i < 3; i++) await call('incr', { emit: true });
  await until(page, (w) => window.probe.status === 'live' && window.probe.value === w && window.probe.seqs.at(-1) === w, want + 3);
  const p2 = await page.evaluate(() => window.probe);
  assert(p2.seqs.every((x, i) => i === 0 || x === p2.seqs[i - 1] + 1) && p2.seqs.length === p.seqs.length + 3,
    `after the restart: ${p2.seqs.length} events, contiguous ${p2.seqs.join(',')}`);
  assert((await call('info', {})).subscribers === 1, 'still one subscription');
  await page.click('#bad');
  await until(page, () => window.probe.error && window.probe.error.code === 'bad_request');
  const err = await page.evaluate(() => window.probe.error);
  assert(/by/.test(err.message), `the message says what is wrong: ${err.message}`);
  log(`hooks, React ${react}: ${n} events through ${minted.length} tokens (${minted.join(',')}), state ${p.value}, error shown: ${err.code}: ${err.message}`);
  await ctx.close();
}

let passed = 0, failed = 0;
try {
  fs.rmSync(DATA, { recursive: true, force: true });
  server = await startServer(0);
  log(`holdfast on port ${server.port}, chromium ${browser.version()}`);
  for (const react of [19, 18]) {
    const t1 = Date.now();
    try {
      await Promise.race([scenario(react), new Promise((_, rej) => setTimeout(() => rej(new Error('timed out (120 s)')), 120000))]);
      passed++;
      log(`ok - React ${react}: board and register page live, kill -9 and restart, converges to list (${((Date.now() - t1) / 1000).toFixed(1)} s)`);
    } catch (e) {
      failed++;
      log(`not ok - React ${react}\n    ${String(e.stack || e).split('\n').slice(0, 6).join('\n    ')}`);
    }
  }
  fs.rmSync(DATA + '-auth', { recursive: true, force: true });
  const authed = await startServer(0, ['--jwt-secret', SECRET, '--jwt-leeway-s', '0'], DATA + '-auth');
  try {
    for (const react of [19, 18]) {
      try {
        await Promise.race([hooksScenario(react, authed), new Promise((_, rej) => setTimeout(() => rej(new Error('timed out (60 s)')), 60000))]);
        passed++;
        log(`ok - hooks, React ${react}: token renewed by the provider mid-session, no event lost or repeated, error code shown`);
      } catch (e) {
        failed++;
        log(`not ok - hooks, React ${react}\n    ${String(e.stack || e).split('\n').slice(0, 6).join('\n    ')}`);
      }
    }
  } finally {
    const r = await stopServer(authed, 'SIGTERM');
    if (r.code !== 0) { failed++; log(`auth server exited ${r.code}`); }
  }
  if (pageErrors.length) { failed++; log(`not ok - pages had script errors:\n    ${pageErrors.join('\n    ')}`); }
} finally {
  await browser.close().catch(() => {});
  if (server) {
    const r = await stopServer(server, 'SIGTERM');
    if (r.code !== 0) { failed++; log(`server exited ${r.code} ${r.sig || ''}`); }
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
