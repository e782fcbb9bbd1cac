// holdfast-client in Node (node:test) against a real server: call,
// subscribe with resume across a kill -9, presence, signals, the polling
// fallback, token refresh (ahead of expiry and after the server refused
// it), a keyed call across a dropped WebSocket, publish when the server
// has channels.
//
// Environment (tests/clients/js.sh sets it):
//   HF_BIN, HF_TMP     the server binary, a scratch directory
//   HF_CLIENT_DIR      the installed package (node_modules/holdfast-client)
//   HF_EXPECT_WS       'global': the client must use the global WebSocket;
//                      'ws': there is none, the `ws` package must be used
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { startServer, stopServer, mintToken, httpCall, until } from './server.mjs';

const DIR = process.env.HF_CLIENT_DIR;
if (!DIR) throw new Error('set HF_CLIENT_DIR');
const { connect, HoldfastError, VERSION } = await import(pathToFileURL(path.join(DIR, 'holdfast.js')).href);
const FAST = { backoffMin: 50, backoffMax: 400, timeout: 10000 };

const clients = [];
const servers = [];
function client(url, o = {}) {
  const c = connect(url, Object.assign({}, FAST, o));
  clients.push(c);
  return c;
}
async function server(o) {
  const s = await startServer(o);
  servers.push(s);
  return s;
}
after(async () => {
  for (const c of clients) c.close();
  for (const s of servers) await stopServer(s, 'SIGKILL');
});

/** The server is killed (-9); `whileDown(side)` runs against a second server on the same data dir
 * and another port; then it restarts on its old port. Returns the new server. */
async function crashAndRestart(s, whileDown) {
  await stopServer(s, 'SIGKILL');
  const side = await startServer({ data: s.data, args: s.args });
  try { await whileDown(side); } finally { await stopServer(side); }
  const again = await server({ port: s.port, data: s.data, args: s.args });
  return again;
}

test('which WebSocket: the global one, or the ws package', async () => {
  assert.equal(typeof VERSION, 'string');
  if (process.env.HF_EXPECT_WS === 'global') assert.equal(typeof globalThis.WebSocket, 'function', 'this run needs a global WebSocket');
  if (process.env.HF_EXPECT_WS === 'ws') assert.equal(typeof globalThis.WebSocket, 'undefined', 'this run must have no global WebSocket');
  const s = await server();
  const c = client(s.url);
  assert.deepEqual(await c.call('counter/which', 'incr', {}), { value: 1 });
  assert.equal(c.transport, 'ws', 'calls went over a WebSocket');
  if (process.env.HF_EXPECT_WS === 'ws') assert.equal(c._WS.name, 'WebSocket', 'the ws package');
  if (process.env.HF_EXPECT_WS === 'global') assert.equal(c._WS, globalThis.WebSocket);
});

test('call: results, and errors with their code and message', async () => {
  const s = await server();
  const c = client(s.url);
  assert.deepEqual(await c.call('counter/a', 'incr', { by: 5 }), { value: 5 });
  assert.deepEqual(await c.call('counter/a', 'get'), { value: 5 });
  const e1 = await c.call('counter/a', 'nope').catch((e) => e);
  assert.ok(e1 instanceof HoldfastError);
  assert.equal(e1.code, 'not_found');
  assert.match(e1.message, /nope|method/);
  const e2 = await c.call('counter/a', 'incr', { by: 'x' }).catch((e) => e);
  assert.equal(e2.code, 'bad_request');
  assert.match(e2.message, /by/);
  assert.throws(() => c.call('not an address', 'x'), (e) => e.code === 'bad_request');
  const info = await c.info('counter/a');
  assert.equal(typeof info.epoch, 'string');
  c.close();
  assert.equal((await c.call('counter/a', 'get').catch((e) => e)).code, 'closed');
});

test('subscribe: live events, then a kill -9 and restart: resumes with since, missed events once each, in order', async () => {
  let s = await server();
  const c = client(s.url);
  const seen = [], readies = [], states = [];
  c.onState((st) => states.push(st));
  const sub = c.subscribe('counter/live', (ev) => seen.push(ev.seq), { onReady: (i) => readies.push(i) });
  const first = await sub.ready;
  assert.deepEqual([first.recovered, first.reason, first.resumed], [false, 'initial', false]);
  for (let i = 0; i < 3; i++) await c.call('counter/live', 'incr', { emit: true });
  await until(() => seen.length === 3, '3 live events');
  s = await crashAndRestart(s, async (side) => {
    await until(() => c.state === 'reconnecting', 'reconnecting');
    for (let i = 0; i < 4; i++) await httpCall(side, 'counter/live', 'incr', { emit: true });
  });
  await until(() => seen.length === 7, 'the 4 missed events');
  await httpCall(s, 'counter/live', 'incr', { emit: true });
  await until(() => seen.length === 8, 'live again');
  assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8], 'no duplicate, no gap');
  const last = readies.at(-1);
  assert.deepEqual([last.recovered, last.resumed], [true, true]);
  assert.ok(states.includes('reconnecting'), 'it said reconnecting');
  assert.ok(c.stats.replayed >= 4, 'the missed events were replayed from the log');
  // a subscription that starts from a seq the app kept
  const c2 = client(s.url);
  const later = [];
  const sub2 = c2.subscribe('counter/live', (ev) => later.push(ev.seq), { since: 6, epoch: sub.epoch });
  const r2 = await sub2.ready;
  assert.equal(r2.recovered, true);
  await until(() => later.length === 2, 'the replay after since');
  assert.deepEqual(later, [7, 8]);
});

test('presence: join, list, leave', async () => {
  const s = await server();
  const a = client(s.url), b = client(s.url);
  const notices = [];
  const sa = a.subscribe('room/p1', () => {}, { presence: { name: 'Kim' }, onPresence: (p) => notices.push(`${p.action}:${p.who.name}`) });
  await sa.ready;
  const sb = b.subscribe('room/p1', () => {}, { presence: { name: 'Lee' } });
  await sb.ready;
  await until(() => notices.includes('join:Lee'), 'Kim sees Lee join');
  const list = await a.presence('room/p1');
  assert.deepEqual(list.map((w) => w.name).sort(), ['Kim', 'Lee']);
  assert.ok(list.every((w) => 'sub' in w), 'the server sets sub');
  b.close();
  await until(() => notices.includes('leave:Lee'), 'Kim sees Lee leave');
  assert.deepEqual((await sa.presence()).map((w) => w.name), ['Kim']);
});

test('signals: ephemeral, to every subscriber', async () => {
  const s = await server();
  const a = client(s.url), b = client(s.url);
  const got = [];
  await b.subscribe('room/sig', () => {}, { onSignal: (x) => got.push(x) }).ready;
  const sa = a.subscribe('room/sig', () => {});
  await sa.ready;
  assert.equal(sa.signal('typing', { who: 'Kim' }), true);
  await until(() => got.length === 1, 'the signal');
  assert.deepEqual([got[0].from, got[0].type, got[0].data], ['room/sig', 'typing', { who: 'Kim' }]);
  assert.equal(typeof got[0].by, 'string');
});

test('polling fallback: the WebSocket never opens, HTTP works: calls and events over HTTP', async () => {
  const s = await server();
  class Refused { // a proxy that refuses upgrades
    constructor() { this.readyState = 0; setTimeout(() => { this.readyState = 3; this.onerror?.({}); this.onclose?.({ code: 1006 }); }, 5); }
    send() { throw new Error('not open'); }
    close() {}
  }
  const c = client(s.url, { WebSocket: Refused, pollAfter: 2, pollInterval: 100, wsRetry: 0 });
  const seen = [];
  const sub = c.subscribe('counter/poll', (ev) => seen.push(ev.seq));
  await until(() => c.transport === 'poll' && c.state === 'open', 'polling');
  await sub.ready;
  assert.deepEqual(await c.call('counter/poll', 'incr', { emit: true }, { key: true }), { value: 1 });
  await httpCall(s, 'counter/poll', 'incr', { emit: true });
  await until(() => seen.length === 2, 'events by polling');
  assert.deepEqual(seen, [1, 2]);
  assert.ok(c.stats.polls > 0 && c.stats.httpCalls > 0 && c.stats.opens === 0 && c.stats.fallbacks === 1);
  assert.equal(c.signal('counter/poll', 'x'), false, 'no signals while polling');
});

test('a keyed call whose WebSocket drops after it was sent: re-sent once, answered once, ran once', async () => {
  const s = await server();
  const probe = client(s.url);
  await probe.call('counter/probe', 'get');
  const base = probe._WS; // whichever WebSocket the client found (global, or the ws package)
  let drops = 0;
  const sent = [];
  class Flaky extends base { // the connection dies right after the first 'incr' went out
    send(text) {
      super.send(text);
      const m = JSON.parse(text);
      if (m.op === 'call') sent.push(m.method);
      if (m.op === 'call' && m.method === 'incr' && drops === 0) { drops++; this.close(); this.onclose?.({ code: 1006 }); }
    }
  }
  const c = client(s.url, { WebSocket: Flaky });
  const r = await c.call('counter/once', 'incr', { by: 1 }, { key: 'k-once-1' });
  assert.deepEqual(r, { value: 1 });
  assert.equal(drops, 1);
  assert.deepEqual(sent.filter((x) => x === 'incr'), ['incr', 'incr'], 'sent twice (once again after the drop)');
  assert.deepEqual(await c.call('counter/once', 'get'), { value: 1 }, 'ran once');
  assert.ok(c.stats.reconnects >= 1);
  // without a key the client cannot know whether it ran: unavailable
  drops = 0;
  const e = await c.call('counter/once', 'incr', { by: 1 }).catch((x) => x);
  assert.equal(e.code, 'unavailable');
});

const SECRET = 'test-secret-for-holdfast-client-0123456789';
const now = () => Math.floor(Date.now() / 1000);

test('token refresh: renewed ahead of expiry, the subscription never stops', async () => {
  const s = await server({ args: ['--jwt-secret', SECRET, '--jwt-leeway-s', '0'] });
  const svc = mintToken(SECRET, { sub: 'svc', role: 'service', exp: now() + 600 });
  let asked = 0;
  const tok = () => mintToken(SECRET, { sub: 'kim', role: 'user', exp: now() + 3 });
  const c = client(s.url, { token: tok(), getToken: () => { asked++; return tok(); }, refreshMargin: 1500 });
  const seen = [], errors = [];
  await c.subscribe('counter/tok', (ev) => seen.push(ev.seq), { onError: (e) => errors.push(e.code) }).ready;
  const t0 = Date.now();
  let n = 0;
  while (Date.now() - t0 < 7000) { // outlives two tokens
    await httpCall(s, 'counter/tok', 'incr', { emit: true }, { token: svc });
    n++;
    await new Promise((r) => setTimeout(r, 250));
  }
  await until(() => seen.length === n, `all ${n} events`);
  assert.deepEqual(seen, Array.from({ length: n }, (_, i) => i + 1));
  assert.ok(asked >= 2, `getToken asked ${asked} times`);
  assert.deepEqual(errors, [], 'never unsubscribed');
  assert.deepEqual(await c.call('counter/tok', 'get'), { value: n }, 'calls still work');
});

test('token refresh: expired under the server: unsubscribed, renewed, resumed with since; a refused call is re-sent once', async () => {
  const s = await server({ args: ['--jwt-secret', SECRET, '--jwt-leeway-s', '0'] });
  const svc = mintToken(SECRET, { sub: 'svc', role: 'service', exp: now() + 600 });
  let asked = 0;
  const reasons = [];
  const tok = (life) => mintToken(SECRET, { sub: 'lee', role: 'user', exp: now() + life });
  // refreshMargin < 0: renewal is late on purpose, so the server ends it first
  const c = client(s.url, { token: tok(2), getToken: (w) => { asked++; reasons.push(w.reason); return tok(600); }, refreshMargin: -60000 });
  const seen = [], errors = [], readies = [];
  await c.subscribe('counter/late', (ev) => seen.push(ev.seq), { onError: (e) => errors.push(e.code), onReady: (i) => readies.push(i) }).ready;
  await httpCall(s, 'counter/late', 'incr', { emit: true }, { token: svc });
  await until(() => errors.includes('unauthorized'), 'the server ended the subscription');
  await httpCall(s, 'counter/late', 'incr', { emit: true }, { token: svc });
  await until(() => readies.length === 2, 'resubscribed under the new token');
  await httpCall(s, 'counter/late', 'incr', { emit: true }, { token: svc });
  await until(() => seen.length === 3, 'every event');
  assert.deepEqual(seen, [1, 2, 3], 'no gap, no duplicate');
  assert.equal(readies[1].recovered, true);
  assert.equal(asked, 1);
  assert.deepEqual(reasons, ['unauthorized']);
  // a call made with an expired token: refused, renewed, re-sent, answered
  const c2 = client(s.url, { token: tok(2), getToken: () => tok(600), refreshMargin: -60000 });
  assert.deepEqual(await c2.call('counter/late', 'get'), { value: 3 });
  await new Promise((r) => setTimeout(r, 3200)); // the token is past its exp
  assert.deepEqual(await c2.call('counter/late', 'get'), { value: 3 });
});

test('token refresh while polling: a refused poll or HTTP call renews the token and goes on', async () => {
  const s = await server({ args: ['--jwt-secret', SECRET, '--jwt-leeway-s', '0'] });
  const svc = mintToken(SECRET, { sub: 'svc', role: 'service', exp: now() + 600 });
  const tok = (life) => mintToken(SECRET, { sub: 'poller', role: 'user', exp: now() + life });
  let asked = 0;
  const c = client(s.url, { transport: 'poll', pollInterval: 100, token: tok(2), getToken: () => { asked++; return tok(600); }, refreshMargin: -60000 });
  const seen = [];
  await c.subscribe('counter/pt', (ev) => seen.push(ev.seq)).ready;
  await httpCall(s, 'counter/pt', 'incr', { emit: true }, { token: svc });
  await until(() => seen.length === 1, 'the first event');
  await new Promise((r) => setTimeout(r, 3200)); // the token is past its exp: polls are refused
  await httpCall(s, 'counter/pt', 'incr', { emit: true }, { token: svc });
  await until(() => seen.length === 2, 'an event after the renewal');
  assert.deepEqual(seen, [1, 2]);
  assert.ok(asked >= 1);
  assert.deepEqual(await c.call('counter/pt', 'get'), { value: 2 }, 'an HTTP call with the new token');
  assert.equal(c.transport, 'poll');
});

test('publish: a backend publishes on a channel, a subscriber receives in order', async (t) => {
  const s = await server();
  const c = client(s.url);
  const probe = await c.publish('news', 'probe', {}).catch((e) => e);
  if (probe instanceof HoldfastError && probe.code === 'not_found') {
    t.skip('this server has no channel kind (publish not built yet)');
    return;
  }
  assert.equal(typeof probe.seq, 'number');
  const seen = [];
  const sub = c.subscribe('channel/news', (ev) => seen.push([ev.seq, ev.type, ev.data]));
  await sub.ready;
  const r1 = await c.publish('news', 'posted', { id: 1 });
  const r2 = await c.publish('channel/news', 'posted', { id: 2 }, { key: true });
  assert.equal(r2.seq, r1.seq + 1);
  await until(() => seen.length === 2, 'both');
  assert.deepEqual(seen, [[r1.seq, 'posted', { id: 1 }], [r2.seq, 'posted', { id: 2 }]]);
  // many in one request, one of them refused in place
  const many = await c.publishMany([{ channel: 'news', type: 'posted', data: { id: 3 } }, { channel: 'bad name!', type: 'x' },
    { channel: 'channel/other', type: 'posted', data: { id: 4 } }], { key: 'batch-1' });
  assert.equal(many[0].seq, r2.seq + 1);
  assert.ok(many[1] instanceof HoldfastError && many[1].code === 'bad_request', 'the bad item refused in place');
  assert.equal(typeof many[2].seq, 'number');
  const again = await c.publishMany([{ channel: 'news', type: 'posted', data: { id: 3 } }, { channel: 'bad name!', type: 'x' },
    { channel: 'channel/other', type: 'posted', data: { id: 4 } }], { key: 'batch-1' });
  assert.equal(again[0].seq, many[0].seq, 'the same key publishes nothing twice');
  await until(() => seen.length === 3, 'the batch item');
  assert.deepEqual(seen[2], [many[0].seq, 'posted', { id: 3 }]);
  // with auth on, a user may not publish; a service may
  const s2 = await server({ args: ['--jwt-secret', SECRET, '--jwt-leeway-s', '0'] });
  const user = client(s2.url, { token: mintToken(SECRET, { sub: 'kim', role: 'user', exp: now() + 600 }) });
  assert.equal((await user.publish('news', 'x', {}).catch((e) => e)).code, 'forbidden');
  const svc = client(s2.url, { token: mintToken(SECRET, { sub: 'api', role: 'service', exp: now() + 600 }) });
  assert.equal((await svc.publish('news', 'x', {})).seq, 1);
});
