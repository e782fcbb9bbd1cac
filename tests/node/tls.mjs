// tls.mjs - Node's `ws` over wss:// against holdfast serving TLS with a
// self-signed certificate, trusted as its own CA: subscribe to a channel,
// publish through https:// (fetch is not used: Node's fetch has no `ca`),
// receive the event; and the same certificate untrusted is refused.
//   node tls.mjs PORT CERT.pem
import WebSocket from 'ws';
import https from 'node:https';
import fs from 'node:fs';

const [port, certFile] = process.argv.slice(2);
const ca = fs.readFileSync(certFile);
const fail = (why) => { console.error('FAIL: ' + why); process.exit(1); };
setTimeout(() => fail('timed out'), 20000).unref();

function post(path, body) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path, method: 'POST', ca,
      headers: { 'Content-Type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

// Untrusted: the handshake must fail.
await new Promise((resolve) => {
  const ws = new WebSocket(`wss://127.0.0.1:${port}/v1/ws`);
  ws.on('open', () => fail('connected without trusting the certificate'));
  ws.on('error', () => resolve());
});

const ws = new WebSocket(`wss://127.0.0.1:${port}/v1/ws`, { ca });
const got = [];
let onMsg = null;
ws.on('message', (data) => {
  for (const line of data.toString().split('\n')) {
    if (!line) continue;
    got.push(JSON.parse(line));
    if (onMsg) onMsg();
  }
});
await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
const until = (pred) => new Promise((res) => {
  const check = () => { const m = got.find(pred); if (m) { onMsg = null; res(m); } };
  onMsg = check; check();
});
ws.send(JSON.stringify({ op: 'sub', id: 1, to: 'channel/tls' }));
await until((m) => m.op === 'reply' && m.id === 1);
const r = await post('/v1/publish', { channel: 'tls', type: 'hello', data: { over: 'tls' } });
if (r.status !== 200 || r.body.result.seq !== 1) fail('publish: ' + JSON.stringify(r));
const ev = await until((m) => m.op === 'event');
if (ev.from !== 'channel/tls' || ev.type !== 'hello' || ev.data.over !== 'tls') fail('event: ' + JSON.stringify(ev));
ws.close();
console.log('tls.mjs: ok');
