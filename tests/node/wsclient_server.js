// wsclient_server.js - an independent WebSocket/HTTP server (Node + the
// `ws` package) for tests/wsclient_node_test.sh, to prove client/wsclient
// and the holdfast call/tail commands against a third-party implementation.
//
//   node wsclient_server.js PORTFILE
//
// Listens on 127.0.0.1 on a free port and writes the port to PORTFILE.
//
// /echo        echoes text and binary messages; pings the client on connect;
//              text messages "cmd:..." are commands (see its handler)
// /reject      refuses the upgrade: 401 with a JSON body
// /badaccept   answers 101 with a wrong Sec-WebSocket-Accept
// /badproto    answers 101 choosing a subprotocol that was not offered
// /v1/ws       a miniature holdfast gateway (hello, call, sub, events) in
//              JSON or msgpack; needs ?token=sekrit
// HTTP: /healthz, POST /echo, /chunked, /eof, /raw?hex= (those bytes, then
// EOF), anything else 404.
'use strict';

const http = require('http');
const crypto = require('crypto');
const fs = require('fs');
const { WebSocketServer } = require('ws');
const msgpack = require('@msgpack/msgpack');

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const pattern = (n, seed) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = 0x61 + ((i * 7 + seed) % 26);
  return b;
};
let lastClose = 'none';
let counter = 0;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/healthz') {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    return res.end(req.method === 'HEAD' ? undefined : 'ok\n');
  }
  if (url.pathname === '/echo' && req.method === 'POST') {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => {
      const body = JSON.stringify({
        method: req.method,
        len: Buffer.concat(parts).length,
        body: Buffer.concat(parts).toString(),
        test: req.headers['x-test'] || null,
        ctype: req.headers['content-type'] || null,
      });
      res.writeHead(201, { 'Content-Type': 'application/json',
                           'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    });
    return;
  }
  if (url.pathname === '/chunked') { // 200 KiB in 50 chunks
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    const all = pattern(200 * 1024, 3);
    for (let i = 0; i < 50; i++) res.write(all.subarray(i * 4096, (i + 1) * 4096));
    return res.end();
  }
  if (url.pathname === '/raw') { // exactly these bytes, then EOF
    req.socket.end(Buffer.from(url.searchParams.get('hex') || '', 'hex'));
    return;
  }
  if (url.pathname === '/eof') { // no Content-Length, not chunked: until EOF
    res.useChunkedEncodingByDefault = false;
    res.writeHead(200, { 'Content-Type': 'text/plain', Connection: 'close' });
    res.write('until-');
    return setTimeout(() => res.end('eof'), 50);
  }
  res.writeHead(404, { 'Content-Type': 'application/json' });
  res.end('{"ok":false,"error":{"code":"not_found","message":"no route"}}');
});

function acceptKey(key) {
  return crypto.createHash('sha1').update(key + GUID).digest('base64');
}

const echoWss = new WebSocketServer({
  noServer: true,
  maxPayload: 8 << 20,
  handleProtocols: (protocols) => (protocols.size ? [...protocols][0] : false),
});
const hfWss = new WebSocketServer({
  noServer: true,
  handleProtocols: (protocols) =>
    protocols.has('holdfast.v1.msgpack') ? 'holdfast.v1.msgpack'
      : protocols.has('holdfast.v1.json') ? 'holdfast.v1.json' : false,
});

server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://x');
  const key = req.headers['sec-websocket-key'] || '';
  if (url.pathname === '/reject' ||
      (url.pathname === '/v1/ws' && url.searchParams.get('token') !== 'sekrit')) {
    const body = '{"ok":false,"error":{"code":"unauthorized","message":"bad token"}}';
    socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n' +
               `Content-Length: ${body.length}\r\n\r\n${body}`);
    return;
  }
  if (url.pathname === '/badaccept' || url.pathname === '/badproto') {
    const accept = url.pathname === '/badaccept' ? acceptKey(key + 'x') : acceptKey(key);
    socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n' +
               `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n` +
               (url.pathname === '/badproto' ? 'Sec-WebSocket-Protocol: nope\r\n' : '') +
               '\r\n');
    return;
  }
  const wss = url.pathname === '/v1/ws' ? hfWss : url.pathname === '/echo' ? echoWss : null;
  if (wss === null) {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

// ---- /echo ----------------------------------------------------------------

echoWss.on('connection', (ws, req) => {
  const pongs = [];
  ws.on('pong', (d) => pongs.push(d.toString()));
  ws.on('close', (code) => { lastClose = String(code); });
  ws.on('error', () => {});
  ws.ping('hi');
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? null : data.toString();
    if (text === null || !text.startsWith('cmd:')) {
      ws.send(data, { binary: isBinary });
      return;
    }
    const cmd = text.slice(4);
    if (cmd === 'pongs') ws.send('pongs=' + pongs.join(','));
    else if (cmd === 'lastclose') ws.send(lastClose);
    else if (cmd === 'addr') ws.send(req.socket.remoteAddress);
    else if (cmd === 'proto') ws.send(ws.protocol || '');
    else if (cmd === 'multi') ws.send('a\nb\nc');
    else if (cmd === 'big') ws.send(pattern(100 * 1024, 1), { binary: true });
    else if (cmd === 'frag') { // 100 KiB text in 4 frames, pings between
      const all = pattern(100 * 1024, 2);
      const n = all.length / 4;
      for (let i = 0; i < 4; i++) {
        ws.send(all.subarray(i * n, (i + 1) * n), { binary: false, fin: i === 3 });
        if (i < 3) ws.ping('mid' + i);
      }
    } else if (cmd === 'close') ws.close(4001, 'bye');
    else if (cmd === 'drop') ws._socket.destroy();
    else if (cmd.startsWith('raw:')) ws._socket.write(Buffer.from(cmd.slice(4), 'hex'));
    else ws.send('unknown command ' + cmd);
  });
});

// ---- /v1/ws: a miniature holdfast gateway ---------------------------------

hfWss.on('connection', (ws) => {
  const mp = ws.protocol === 'holdfast.v1.msgpack';
  const timers = [];
  const send = (msgs) => {
    if (ws.readyState !== ws.OPEN) return;
    if (mp) ws.send(Buffer.concat(msgs.map((m) => Buffer.from(msgpack.encode(m)))));
    else ws.send(msgs.map((m) => JSON.stringify(m)).join('\n'));
  };
  const event = (from, seq) => ({ op: 'event', from, seq, type: 'tick', data: { n: seq, r: 0.1 } });
  ws.on('error', () => {});
  ws.on('close', () => timers.forEach(clearInterval));
  send([{ op: 'hello', server: 'holdfast/test', conn: '1', heartbeat: 1 }]);
  ws.on('message', (data, isBinary) => {
    let msgs;
    try {
      msgs = isBinary ? [...msgpack.decodeMulti(data)]
        : data.toString().split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
    } catch (e) {
      send([{ op: 'reply', id: null, ok: false, error: { code: 'bad_request', message: 'bad frame' } }]);
      return;
    }
    for (const m of msgs) {
      if (m.op === 'ping') { send([{ op: 'pong', id: m.id }]); continue; }
      if (m.op === 'call') {
        const reply = { op: 'reply', id: m.id, ok: true };
        if (m.method === 'incr') reply.result = { n: ++counter, pi: 0.1 };
        else if (m.method === 'echo') reply.result = m.args;
        else if (m.method === 'key') reply.result = m.key === undefined ? null : m.key;
        else if (m.method === 'fmt') reply.result = { fmt: isBinary ? 'msgpack' : 'json', to: m.to };
        else if (m.method === 'silent') continue;
        else {
          delete reply.ok;
          reply.ok = false;
          reply.error = { code: 'conflict', message: 'slot 18:00 is held' };
        }
        // Batched with unrelated messages, as a loaded server would.
        send([event('other/x', 1), reply, { op: 'presence', from: m.to, action: 'join', who: {} }]);
        continue;
      }
      if (m.op === 'sub') {
        const since = typeof m.since === 'number' ? m.since : 3;
        const backlog = [];
        for (let s = since + 1; s <= 3; s++) backlog.push(event(m.to, s));
        send([{ op: 'reply', id: m.id, ok: true, result: { seq: 3, epoch: 'e1', recovered: true } },
              ...backlog, event('other/x', 9)]);
        let seq = 3;
        timers.push(setInterval(() => {
          seq++;
          if (m.to !== 'room/forever' && seq > 6) {
            ws.close(1001, 'going away');
            return;
          }
          send([event(m.to, seq)]);
        }, 100));
        continue;
      }
      send([{ op: 'reply', id: m.id, ok: false, error: { code: 'bad_request', message: 'unknown op' } }]);
    }
  });
});

server.listen(0, '127.0.0.1', () => {
  fs.writeFileSync(process.argv[2], String(server.address().port));
});
