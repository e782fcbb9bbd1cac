// cors.test.mjs — a page on one origin using the HTTP API, the polling
// fallback and the WebSocket of a holdfast server on another origin, in
// Debian's chromium (driven by playwright-core): once with the page's
// origin in --cors-origin (everything works), once without (the browser
// blocks every read, and the server refuses the WebSocket handshake).
//
// Run by tests/browser/run.sh BUILD cors.test.mjs, which sets HF_BIN,
// HF_WEB_ROOT, HF_TMP, HF_SHOTS, HF_PLAYWRIGHT and HF_CHROMIUM.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const env = (k) => { if (!process.env[k]) { console.error(`missing ${k}`); process.exit(2); } return process.env[k]; };
const BIN = env('HF_BIN'), WEB = env('HF_WEB_ROOT'), TMP = env('HF_TMP');
const { chromium } = await import(env('HF_PLAYWRIGHT'));
const SECRET = 'cors-test-secret-0123456789';
const T0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - T0) / 1000).toFixed(1).padStart(5)}s]`, ...a);

/** An HS256 token, made the way any backend makes one. */
function mint(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${crypto.createHmac('sha256', SECRET).update(head).digest('base64url')}`;
}

// The app's own origin: a page and holdfast.js, as a web app bundles it.
const PAGE = `<!doctype html><meta charset="utf-8"><title>another origin</title>
<script type="module">import { connect } from '/holdfast.js'; window.hfConnect = connect; window.ready = true;</script>`;
const app = http.createServer((req, res) => {
  if (req.url === '/holdfast.js') {
    res.writeHead(200, { 'content-type': 'text/javascript' });
    return res.end(fs.readFileSync(path.join(WEB, 'holdfast.js')));
  }
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end(PAGE);
});
await new Promise((r) => app.listen(0, '127.0.0.1', r));
const ORIGIN = `http://localhost:${app.address().port}`; // not the server's

let runs = 0;
/** Starts holdfast with extra flags; resolves { proc, port, logFile, exited }. */
function startServer(extra) {
  return new Promise((resolve, reject) => {
    const logFile = path.join(TMP, `cors-server-${++runs}.log`);
    const out = fs.openSync(logFile, 'w');
    const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', path.join(TMP, `cors-data-${runs}`),
      '--jwt-secret', SECRET, ...extra], { stdio: ['ignore', out, out] });
    const s = { proc, port: 0, logFile, exited: new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig }))) };
    const deadline = Date.now() + 10000;
    const poll = () => {
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(fs.readFileSync(logFile, 'utf8'));
      if (m) { s.port = Number(m[1]); return resolve(s); }
      if (proc.exitCode != null || Date.now() > deadline) return reject(new Error(`server did not start: ${logFile}`));
      setTimeout(poll, 25);
    };
    poll();
  });
}

/** What the page on ORIGIN manages to do with the server at url. */
async function tryFromPage(page, url, token) {
  return page.evaluate(async ({ url, token }) => {
    const out = {};
    try {
      const r = await fetch(`${url}/v1/call/counter/cors/incr`, {
        method: 'POST', body: '{"emit":true}',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': 'k-1' },
      });
      out.call = (await r.json()).ok === true;
    } catch (e) { out.call = `blocked: ${e.message}`; }
    // The polling fallback, through holdfast.js.
    const hf = window.hfConnect(url, { token, transport: 'poll', pollInterval: 200, timeout: 5000 });
    const seen = [];
    const wait = (ms) => new Promise((r) => setTimeout(() => r('timeout'), ms));
    out.ready = await Promise.race([wait(8000), new Promise((res) => hf.subscribe('counter/cors',
      (ev) => seen.push(ev.seq), { onReady: (i) => res(i.seq), onError: (e) => res(`error: ${e.code}`) }))]);
    try { await hf.call('counter/cors', 'incr', { emit: true }); out.pollCall = true; } catch (e) { out.pollCall = `error: ${e.code}`; }
    for (const t0 = Date.now(); seen.length < 1 && Date.now() - t0 < 8000;) await wait(100);
    out.polled = seen.slice();
    hf.close();
    out.ws = await new Promise((res) => {
      const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/ws?token=${token}`, 'holdfast.v1.json');
      const timer = setTimeout(() => res('timeout'), 8000);
      ws.onmessage = (m) => { clearTimeout(timer); res(JSON.parse(m.data).op); ws.close(); };
      ws.onerror = () => { clearTimeout(timer); res('refused'); };
    });
    return out;
  }, { url, token });
}

const browser = await chromium.launch({
  executablePath: env('HF_CHROMIUM'), headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const token = mint({ sub: 'kim', exp: Math.floor(Date.now() / 1000) + 600 });
const check = (cond, what, got) => { if (!cond) throw new Error(`${what}: got ${JSON.stringify(got)}`); };
let failed = 0;
const servers = [];
try {
  for (const [name, flags, allowed] of [
    ['allowed origin', ['--cors-origin', ORIGIN], true],
    ['another origin only', ['--cors-origin', 'https://elsewhere.example'], false],
  ]) {
    const s = await startServer(flags);
    servers.push(s);
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${ORIGIN}/`);
    await page.waitForFunction(() => window.ready === true);
    try {
      const out = await tryFromPage(page, `http://127.0.0.1:${s.port}`, token);
      if (allowed) {
        check(out.call === true, 'fetch of /v1/call', out);
        check(out.pollCall === true, 'call through the polling fallback', out);
        check(out.ready === 1, 'subscribed by polling, after the first call', out);
        check(out.polled.join() === '2', "the second call's event polled from /v1/events", out);
        check(out.ws === 'hello', 'WebSocket from the allowed origin', out);
      } else {
        check(String(out.call).startsWith('blocked'), 'fetch blocked by the browser', out);
        check(out.pollCall !== true && out.polled.length === 0, 'polling blocked', out);
        check(out.ws === 'refused', 'WebSocket refused (403)', out);
      }
      log(`ok - ${name}: ${JSON.stringify(out)}`);
    } catch (e) {
      failed++;
      log(`not ok - ${name}: ${e.message}`);
    }
    await ctx.close();
  }
} finally {
  await browser.close().catch(() => {});
  app.close();
  for (const s of servers) {
    s.proc.kill('SIGTERM');
    const r = await s.exited;
    if (r.code !== 0) { failed++; log(`server exited ${r.code} ${r.sig || ''}: see ${s.logFile}`); }
  }
}
console.log(failed ? `${failed} failed` : 'all passed');
process.exit(failed ? 1 : 0);
