// Test helpers: a real holdfast server (started, killed, restarted on the
// same port and data dir), tokens, plain HTTP calls. Environment:
//   HF_BIN  the holdfast binary      HF_TMP  a scratch directory
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const BIN = process.env.HF_BIN;
export const TMP = process.env.HF_TMP;
if (!BIN || !TMP) throw new Error('set HF_BIN and HF_TMP');
let runs = 0;

/** Starts `holdfast serve` on `port` (0: any free one); resolves {port, proc, exited, data}. */
export function startServer({ port = 0, data, args = [] } = {}) {
  data = data || fs.mkdtempSync(path.join(TMP, 'data-'));
  const logFile = path.join(TMP, `server-${process.pid}-${++runs}.log`);
  const out = fs.openSync(logFile, 'w');
  const proc = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data', data, '--workers', '2', '--gateways', '1', ...args],
    { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const s = { proc, port: 0, data, args, logFile, exited: new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig }))) };
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 15000;
    const poll = () => {
      const text = fs.readFileSync(logFile, 'utf8');
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(text);
      if (m) { s.port = Number(m[1]); s.url = `http://127.0.0.1:${s.port}`; return resolve(s); }
      if (proc.exitCode != null || Date.now() > deadline) { proc.kill('SIGKILL'); return reject(new Error(`server did not start:\n${text}`)); }
      setTimeout(poll, 20);
    };
    poll();
  });
}

/** Stops it (SIGTERM: must exit 0; SIGKILL: a crash). */
export async function stopServer(s, signal = 'SIGTERM') {
  if (s.proc.exitCode == null && s.proc.signalCode == null) s.proc.kill(signal);
  const r = await s.exited;
  if (signal === 'SIGTERM' && r.code !== 0) throw new Error(`server exited ${r.code} ${r.sig}: ${fs.readFileSync(s.logFile, 'utf8').slice(-2000)}`);
  return r;
}

/** An HS256 JWT. */
export function mintToken(secret, claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const body = b64(claims);
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/** POST /v1/call as another client would. */
export async function httpCall(s, address, method, args = {}, { token, key } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (key) headers['idempotency-key'] = key;
  const r = await fetch(`${s.url}/v1/call/${address}/${method}`, { method: 'POST', headers, body: JSON.stringify(args) });
  const body = await r.json();
  if (!body.ok) { const e = new Error(`${address} ${method}: ${body.error.code}: ${body.error.message}`); e.code = body.error.code; throw e; }
  return body.result;
}

/** Waits until `fn()` is truthy, checking every 20 ms, for at most `ms`. */
export async function until(fn, what, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
