// interop.mjs - a client that knows nothing of holdfast's code: Node's
// `ws` package speaking protocol v1 in JSON, as a browser app would.
//   node interop.mjs PORT
import WebSocket from 'ws';

const port = process.argv[2];
const fail = (why) => { console.error('FAIL: ' + why); process.exit(1); };
setTimeout(() => fail('timed out'), 15000).unref();

function open(proto) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, proto);
    const queue = [], waiters = [];
    ws.on('message', (data, isBinary) => {
      if (isBinary) fail('binary frame on a JSON connection');
      // A frame may carry several messages, one per line.
      for (const line of data.toString().split('\n')) {
        if (!line) continue;
        const m = JSON.parse(line);
        const w = waiters.findIndex((x) => x.pred(m));
        if (w >= 0) waiters.splice(w, 1)[0].resolve(m); else queue.push(m);
      }
    });
    ws.next = (pred) => new Promise((res) => {
      const i = queue.findIndex(pred);
      if (i >= 0) res(queue.splice(i, 1)[0]); else waiters.push({ pred, resolve: res });
    });
    ws.call = (msg) => { ws.send(JSON.stringify(msg)); return ws.next((m) => m.op === 'reply' && m.id === msg.id); };
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
  });
}

const a = await open('holdfast.v1.json');
if (a.protocol !== 'holdfast.v1.json') fail('subprotocol not accepted: ' + a.protocol);
const hello = await a.next((m) => m.op === 'hello');
if (!hello.server.startsWith('holdfast/')) fail('bad hello');

const b = await open(); // no subprotocol at all: JSON too
await b.next((m) => m.op === 'hello');

let r = await a.call({ op: 'call', id: 1, to: 'counter/interop', method: 'incr', args: { by: 2 } });
if (!r.ok || r.result.value !== 2) fail('call: ' + JSON.stringify(r));

r = await b.call({ op: 'sub', id: 'sub-1', to: 'counter/interop', since: 0 });
if (!r.ok || r.result.seq !== 0 || r.result.recovered !== true) fail('sub: ' + JSON.stringify(r));

r = await a.call({ op: 'call', id: 2, to: 'counter/interop', method: 'incr', args: { emit: true } });
const ev = await b.next((m) => m.op === 'event');
if (ev.from !== 'counter/interop' || ev.seq !== 1 || ev.data.value !== 3) fail('event: ' + JSON.stringify(ev));

a.send('this is not json');
const bad = await a.next((m) => m.op === 'reply' && m.ok === false);
if (bad.error.code !== 'bad_request') fail('bad frame: ' + JSON.stringify(bad));

a.send(JSON.stringify({ op: 'ping', id: 4 }));
await a.next((m) => m.op === 'pong' && m.id === 4);

a.close(1000); b.close(1000);
console.log('interop: ok (call, sub, event, bad frame, ping over Node ws)');
process.exit(0);
