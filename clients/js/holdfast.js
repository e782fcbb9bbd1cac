/**
 * holdfast.js — the JavaScript client of holdfast (wire protocol v1): the
 * npm package `holdfast-client` (clients/js/), and the very file the server
 * serves as `/holdfast.js` (web/holdfast.js is a symlink to it).
 *
 * A dependency-free ES module: in a page,
 * `<script type="module">import { connect } from '/holdfast.js';</script>`;
 * in an app or a Node backend, `import { connect } from 'holdfast-client'`.
 * In Node it uses the global `WebSocket` where there is one (Node 22) and
 * the `ws` package otherwise (Node 18, 20), or the constructor passed as
 * the `WebSocket` option. Types: holdfast.d.ts.
 *
 * One client holds one WebSocket to `/v1/ws` (JSON subprotocol) and
 * multiplexes every call and subscription over it. It reconnects by itself
 * (exponential backoff with jitter), resumes each subscription from the last
 * event it saw (`since` + `epoch`), and tells the app with `recovered:false`
 * when history no longer reaches back so that it reloads its state. When a
 * WebSocket cannot be opened at all while plain HTTP works (a proxy that
 * refuses upgrades, a blocked port), it falls back to polling
 * `GET /v1/events/{kind}/{name}` and calling `POST /v1/call/...`, and keeps
 * trying to get back to a WebSocket in the background.
 *
 * @example
 * import { connect } from '/holdfast.js';
 * const hf = connect(location.origin, { onState: (s) => console.log(s) });
 * const sub = hf.subscribe('store/gangnam-1', (ev) => render(ev), {
 *   onReady: async (info) => { if (!info.recovered) state = await hf.call('store/gangnam-1', 'list'); },
 * });
 * const ticket = await hf.call('store/gangnam-1', 'register', { name: 'Kim', party: 2 }, { key: true });
 *
 * @module holdfast
 */

export const VERSION = '1.0.0';

/** Error codes worth trying again later (a subscription refused with one is retried). */
const RETRYABLE = new Set(['unavailable', 'overloaded', 'timeout', 'internal', 'storage_full']);

/**
 * An error answered by the server (`code` is one of `bad_request`,
 * `unauthorized`, `forbidden`, `not_found`, `conflict`, `rate_limited`,
 * `too_large`, `overloaded`, `unavailable`, `storage_full`, `timeout`,
 * `internal`) or made by the client: `timeout` (no reply in time),
 * `unavailable` (the connection was lost after an unkeyed call was sent, so
 * whether it ran is unknown), `closed` (the client was closed).
 */
export class HoldfastError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {number} [status] HTTP status, when the answer came over HTTP
   */
  constructor(code, message, status) {
    super(message || code);
    this.name = 'HoldfastError';
    /** @type {string} */
    this.code = code;
    /** @type {number|undefined} */
    this.status = status;
  }
}

/**
 * A random idempotency key (or client id): 16 hex digits from crypto.
 * @param {string} [prefix]
 * @returns {string}
 */
export function randomKey(prefix = '') {
  const b = new Uint8Array(8);
  (globalThis.crypto || { getRandomValues: (a) => a.map(() => Math.random() * 256) }).getRandomValues(b);
  return prefix + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * @typedef {'connecting'|'open'|'reconnecting'|'closed'} ConnState
 * `connecting` until the first connection is up; `open` while calls and
 * events flow (over a WebSocket, or by polling); `reconnecting` after it was
 * lost, while retrying; `closed` after {@link Client#close}.
 */

/**
 * @typedef {object} StateInfo
 * @property {'ws'|'poll'|null} transport what carries calls and events now
 * @property {number} attempt consecutive failed attempts (0 when open)
 * @property {number} [delay] ms until the next attempt, when one is scheduled
 * @property {string} [reason] why the state changed
 */

/**
 * @typedef {object} ConnectOptions
 * @property {string} [token] a JWT (sent as `?token=` on the WebSocket and
 *   `Authorization: Bearer` over HTTP); omit when auth is off
 * @property {'auto'|'ws'|'poll'} [transport='auto'] `auto`: WebSocket, with
 *   the polling fallback when it cannot connect; `ws`: never poll; `poll`:
 *   HTTP only
 * @property {number} [timeout=10000] default call timeout, ms
 * @property {number} [connectTimeout=8000] a WebSocket that has not said
 *   `hello` by then counts as failed, ms
 * @property {number} [backoffMin=500] first reconnect delay, ms (doubles
 *   per failed attempt; each delay is drawn between half and all of it)
 * @property {number} [backoffMax=10000] largest reconnect delay, ms
 * @property {number} [pollAfter=2] consecutive WebSocket failures, while
 *   HTTP answers, before polling takes over
 * @property {number} [pollInterval=1000] ms between polls of each
 *   subscription in polling mode
 * @property {number} [pollLimit=100] events fetched per poll (1–1000)
 * @property {number} [wsRetry=15000] in polling mode, ms between attempts
 *   to get back to a WebSocket (0: never)
 * @property {(state: ConnState, info: StateInfo) => void} [onState]
 *   connection-state callback (same as {@link Client#onState})
 * @property {(why: {reason: string, expired: number|null}) => string|Promise<string>} [getToken]
 *   renews the token: called before the current one expires (from its
 *   `exp`), when the server says `unauthorized` (a call is then re-sent
 *   once, lost subscriptions resume with `since`), and first when no
 *   `token` is given
 * @property {number} [refreshMargin=30000] renew this many ms before `exp`
 *   (at most half the token's remaining life)
 * @property {typeof WebSocket} [WebSocket] constructor to use (tests, Node)
 * @property {typeof fetch} [fetch] fetch to use (tests, Node)
 */

/**
 * @typedef {object} HfEvent
 * @property {string} from the actor's address, `kind/name`
 * @property {number} seq the event's sequence number in that actor's log
 * @property {string} type e.g. `new_waiting`, `vote_update`
 * @property {*} data the event's data (see docs/kinds/)
 * @property {number} [at] when it was emitted, ms since the epoch
 */

/**
 * @typedef {object} ReadyInfo
 * @property {number} seq the actor's last event seq when (re)subscribed
 * @property {string} epoch the actor's log epoch
 * @property {boolean} recovered true: every event after what this client
 *   had seen is (or will be) delivered, in order, so its state stays
 *   complete. false: it is not (first subscription without `since`, history
 *   no longer reaches back, or the epoch changed): reload the state (e.g.
 *   call `list`) — events after `seq` follow as usual.
 * @property {'initial'|'gap'|'epoch'|null} reason why not recovered
 * @property {boolean} resumed true on every subscription after the first
 * @property {'ws'|'poll'} transport
 */

/**
 * @typedef {object} SubscribeOptions
 * @property {number} [since] last event seq the app already has: events
 *   after it are replayed first (omit to start from now)
 * @property {string} [epoch] epoch that `since` belongs to
 * @property {object} [presence] presence info (e.g. `{name: 'Kim'}`):
 *   others see this client in the actor's `presence` list and get
 *   join/leave notices (WebSocket only)
 * @property {(info: ReadyInfo) => void} [onReady] called after every
 *   (re)subscription, before the replayed events
 * @property {(sig: {from: string, type: string, by: string, data: *}) => void} [onSignal]
 *   ephemeral signals (typing…) sent to the actor (WebSocket only)
 * @property {(p: {from: string, action: 'join'|'leave', who: object}) => void} [onPresence]
 *   someone subscribed with presence joined or left (WebSocket only)
 * @property {(err: HoldfastError) => void} [onError] the server refused
 *   the subscription (e.g. `forbidden`)
 */

/**
 * Connects to a holdfast server.
 * @param {string} [url] the server: `http(s)://host:port` (a path prefix is
 *   kept, for a reverse proxy), or `ws(s)://host:port/v1/ws`; default: the
 *   page's own origin
 * @param {ConnectOptions} [options]
 * @returns {Client}
 */
export function connect(url, options = {}) {
  return new Client(url, options);
}

/** A live subscription to one actor; made by {@link Client#subscribe}. */
export class Subscription {
  /** @param {Client} client @param {string} address @param {(ev: HfEvent, sub: Subscription) => void} onEvent @param {SubscribeOptions} opts */
  constructor(client, address, onEvent, opts) {
    this._c = client;
    /** @type {string} the actor's address */
    this.address = address;
    this._onEvent = onEvent;
    this._o = opts;
    /** @type {number|null} last event seq seen (null: none yet) */
    this.seq = opts.since != null ? Number(opts.since) : null;
    /** @type {string|null} epoch of the actor's log */
    this.epoch = opts.epoch || null;
    this._active = false; // synced on the current transport
    this._replayTo = 0; // events up to this seq are a replay
    this._subscribed = 0; // times it became ready
    this._closed = false;
    /** @type {ReadyInfo|null} what the latest (re)subscription reported */
    this.lastReady = null;
    /** @type {Promise<ReadyInfo>} settles with the first onReady (or the refusal) */
    this.ready = new Promise((res, rej) => { this._res = res; this._rej = rej; });
    this.ready.catch(() => {});
  }

  /**
   * Sends an ephemeral signal (e.g. `typing`) to every subscriber of this
   * actor. WebSocket only: returns false when it could not be sent now.
   * @param {string} type @param {*} [data] @returns {boolean}
   */
  signal(type, data = {}) { return this._c.signal(this.address, type, data); }

  /** Who is subscribed with presence info. @returns {Promise<Array<object>>} */
  presence() { return this._c.call(this.address, 'presence'); }

  /** Stops the subscription. */
  close() { this._c._unsubscribe(this); }
}

/** A connection to one holdfast server; made by {@link connect}. */
export class Client {
  /** @param {string|undefined} url @param {ConnectOptions} o */
  constructor(url, o) {
    const loc = globalThis.location;
    const base = new URL(url || (loc ? loc.origin : 'http://127.0.0.1:8080'), loc ? loc.href : undefined);
    let path = base.pathname.replace(/\/+$/, '').replace(/\/v1\/ws$/, '');
    const secure = base.protocol === 'https:' || base.protocol === 'wss:';
    this._http = (secure ? 'https://' : 'http://') + base.host + path;
    this._wsUrl = (secure ? 'wss://' : 'ws://') + base.host + path + '/v1/ws';
    this._o = Object.assign({
      transport: 'auto', timeout: 10000, connectTimeout: 8000, backoffMin: 500,
      backoffMax: 10000, pollAfter: 2, pollInterval: 1000, pollLimit: 100, wsRetry: 15000,
      refreshMargin: 30000,
    }, o);
    this._token = o.token || null;
    this._WS = o.WebSocket || globalThis.WebSocket || null; // null: the `ws` package, loaded on first use
    this._fetch = o.fetch || globalThis.fetch.bind(globalThis);
    this._refreshing = null; // the getToken() in flight
    this._refreshTimer = 0;
    /** @type {ConnState} */
    this._state = 'connecting';
    /** @type {'ws'|'poll'|null} */
    this._transport = null;
    this._listeners = new Set();
    if (o.onState) this._listeners.add(o.onState);
    this._subs = new Map(); // address -> Subscription
    this._pending = new Map(); // id -> call entry (sent over the socket)
    this._queue = []; // call entries waiting for a connection
    this._nextId = 1;
    this._ws = null;
    this._attempt = 0; // failed attempts since the last open
    this._wsFailures = 0; // WebSocket failures before hello, in a row
    this._everOpen = false;
    this._timers = new Set();
    this._pollRun = 0; // generation of the polling loop
    /** Counters for dashboards and tests. */
    this.stats = { opens: 0, reconnects: 0, replayed: 0, events: 0, polls: 0, fallbacks: 0, httpCalls: 0 };
    this._onOnline = () => { if (this._state === 'reconnecting' && this._transport !== 'poll') this._reconnectNow(); };
    if (globalThis.addEventListener) globalThis.addEventListener('online', this._onOnline);
    const start = () => {
      if (this._state === 'closed') return;
      if (this._o.transport === 'poll') this._enterPoll('transport: poll');
      else this._openWs(false);
    };
    if (!this._token && this._o.getToken) this._refreshToken('initial').then(start, start);
    else { this._scheduleRefresh(); start(); }
  }

  /** @returns {ConnState} the connection state */
  get state() { return this._state; }

  /** @returns {'ws'|'poll'|null} what carries calls and events now */
  get transport() { return this._transport; }

  /** @returns {string} base URL of the HTTP endpoints */
  get httpUrl() { return this._http; }

  /**
   * Listens to connection-state changes; called at once with the current one.
   * @param {(state: ConnState, info: StateInfo) => void} fn
   * @returns {() => void} removes the listener
   */
  onState(fn) {
    this._listeners.add(fn);
    try { fn(this._state, this._info()); } catch (e) { console.error(e); }
    return () => this._listeners.delete(fn);
  }

  /**
   * Calls a method of an actor. Resolves with its result, rejects with a
   * {@link HoldfastError}. Calls made while (re)connecting wait for the
   * connection (within their timeout).
   * @param {string} address `kind/name`
   * @param {string} method
   * @param {object} [args]
   * @param {{key?: string|true, timeout?: number}} [opts] `key`: an
   *   idempotency key (`true`: a random one), which also makes the client
   *   re-send the call after a lost connection; `timeout` in ms
   * @returns {Promise<*>}
   */
  call(address, method, args = {}, opts = {}) {
    checkAddress(address);
    const key = opts.key === true ? randomKey('k-') : opts.key || null;
    const timeout = opts.timeout ?? this._o.timeout;
    return new Promise((resolve, reject) => {
      if (this._state === 'closed') return reject(new HoldfastError('closed', 'the client is closed'));
      const e = { id: 0, address, method, args: args || {}, key, resolve, reject, timer: 0, done: false };
      e.timer = setTimeout(() => this._finish(e, new HoldfastError('timeout', `no reply to ${method} within ${timeout} ms`)), timeout);
      this._dispatch(e);
    });
  }

  /**
   * Subscribes to an actor's events. Survives reconnects: after one, it
   * resubscribes with `since` = the last seq seen and replays what was
   * missed, in order, with no duplicates; `onReady` says whether that
   * worked (`recovered`). One subscription per address per client.
   * @param {string} address `kind/name`
   * @param {(ev: HfEvent, sub: Subscription) => void} onEvent
   * @param {SubscribeOptions} [opts]
   * @returns {Subscription}
   */
  subscribe(address, onEvent, opts = {}) {
    checkAddress(address);
    if (this._subs.has(address)) throw new Error(`already subscribed to ${address}`);
    const sub = new Subscription(this, address, onEvent, opts);
    this._subs.set(address, sub);
    if (this._transport === 'ws' && this._state === 'open') this._wsSub(sub);
    else if (this._transport === 'poll') this._kickPoll();
    return sub;
  }

  /**
   * Sends an ephemeral signal to every subscriber of an actor (typing
   * indicators); nothing is stored. WebSocket only.
   * @param {string} address @param {string} type @param {*} [data]
   * @returns {boolean} false when it could not be sent now
   */
  signal(address, type, data = {}) {
    checkAddress(address);
    return this._send({ op: 'signal', to: address, type, data });
  }

  /**
   * The subscription to an actor, if this client has one.
   * @param {string} address @returns {Subscription|undefined}
   */
  subscription(address) { return this._subs.get(address); }

  /** Who is subscribed to an actor with presence info. @param {string} address @returns {Promise<Array<object>>} */
  presence(address) { return this.call(address, 'presence'); }

  /** An actor's `{seq, epoch, subscribers}`. @param {string} address @returns {Promise<object>} */
  info(address) { return this.call(address, 'info'); }

  /**
   * Reads an actor's event log over HTTP (`GET /v1/events/...`).
   * @param {string} address
   * @param {{after?: number, limit?: number}} [opts]
   * @returns {Promise<{seq: number, epoch: string, recovered: boolean, events: Array<{seq: number, type: string, data: *, at: number}>}>}
   */
  async events(address, opts = {}) {
    checkAddress(address);
    const q = `after=${opts.after || 0}&limit=${opts.limit || this._o.pollLimit}`;
    const r = await this._fetch(`${this._http}/v1/events/${address}?${q}`, { headers: this._headers(), cache: 'no-store' });
    const body = await r.json();
    if (!r.ok || body.ok === false) throw toError(body.error, r.status);
    return body;
  }

  /**
   * Uses another token from now on (e.g. after a refresh); on an open
   * WebSocket it is sent as an `auth` message.
   * @param {string} token @returns {Promise<*>|undefined}
   */
  setToken(token) {
    this._token = token;
    this._scheduleRefresh();
    if (this._transport === 'ws' && this._state === 'open') {
      return new Promise((resolve0, reject) => {
        const resolve = (r) => {
          // Subscriptions the old token lost come back under the new one.
          for (const s of this._subs.values()) if (!s._active && !s._closed) this._wsSub(s);
          resolve0(r);
        };
        const e = { id: this._nextId++, auth: true, resolve, reject, done: false, timer: 0 };
        e.timer = setTimeout(() => this._finish(e, new HoldfastError('timeout', 'no reply to auth')), this._o.timeout);
        this._pending.set(e.id, e);
        this._send({ op: 'auth', id: e.id, token });
      });
    }
  }

  /**
   * Publishes an event on a channel (`channel/{name}`): `{type, data}` is
   * logged and pushed to its subscribers like any actor's event. Needs the
   * `service` or `admin` role (or a token ACL granting the channel).
   * @param {string} channel `name` or `channel/name`
   * @param {string} type @param {*} [data]
   * @param {{key?: string|true, timeout?: number}} [opts]
   * @returns {Promise<{seq: number}>}
   */
  publish(channel, type, data = null, opts = {}) {
    const address = String(channel).startsWith('channel/') ? channel : 'channel/' + channel;
    return this.call(address, 'publish', { type, data }, opts);
  }

  /**
   * Publishes many events in one request (`POST /v1/publish`), each on its
   * own channel: every item's outcome in order, `{seq}` or a
   * {@link HoldfastError} (one refused item does not stop the others). With
   * `key`, replaying the same request publishes nothing twice.
   * @param {Array<{channel: string, type: string, data?: *}>} items
   * @param {{key?: string|true}} [opts]
   * @returns {Promise<Array<{seq: number}|HoldfastError>>}
   */
  async publishMany(items, opts = {}) {
    const body = items.map((it) => ({ channel: String(it.channel).replace(/^channel\//, ''), type: it.type, data: it.data ?? null }));
    const headers = this._headers({ 'content-type': 'application/json' });
    if (opts.key) headers['idempotency-key'] = opts.key === true ? randomKey('k-') : opts.key;
    const r = await this._fetch(`${this._http}/v1/publish`, { method: 'POST', headers, body: JSON.stringify(body), cache: 'no-store' });
    let out;
    try { out = await r.json(); } catch (_) { throw new HoldfastError('internal', `HTTP ${r.status}`, r.status); }
    if (!r.ok || out.ok === false || !Array.isArray(out.results)) throw toError(out.error, r.status);
    return out.results.map((x) => (x.ok ? x.result : toError(x.error)));
  }

  /**
   * Asks `getToken` for a new token now and uses it (as {@link Client#setToken}).
   * Concurrent requests share one `getToken()` call.
   * @param {string} [reason] passed to getToken
   * @returns {Promise<string>} the new token
   */
  refreshToken(reason = 'requested') { return this._refreshToken(reason); }

  _refreshToken(reason) {
    const get = this._o.getToken;
    if (!get) return Promise.reject(new HoldfastError('unauthorized', 'the token was refused and there is no getToken to renew it'));
    if (this._refreshing) return this._refreshing;
    const p = (async () => {
      for (let attempt = 0; ; attempt++) {
        if (this._state === 'closed') throw new HoldfastError('closed', 'the client is closed');
        try {
          const tok = await get({ reason, expired: tokenExpiry(this._token) });
          if (!tok || typeof tok !== 'string') throw new Error('getToken gave no token');
          this._refreshing = null;
          const r = this.setToken(tok);
          if (r) await r.catch((e) => { console.warn('holdfast: the new token was refused:', e.message); });
          return tok;
        } catch (e) {
          if (this._state === 'closed') throw e;
          console.warn('holdfast: getToken failed:', e && e.message ? e.message : e);
          await sleep(Math.min(this._o.backoffMax, this._o.backoffMin * 2 ** Math.min(attempt, 10)));
        }
      }
    })();
    this._refreshing = p;
    p.catch(() => {}).finally(() => { if (this._refreshing === p) this._refreshing = null; });
    return p;
  }

  /** With `getToken`: renews the token `refreshMargin` ms (at most half its remaining life) before it expires. */
  _scheduleRefresh() {
    clearTimeout(this._refreshTimer);
    this._timers.delete(this._refreshTimer);
    const exp = tokenExpiry(this._token);
    if (!this._o.getToken || exp == null) return;
    const left = exp - Date.now();
    const margin = Math.min(this._o.refreshMargin, Math.max(0, left / 2));
    this._refreshTimer = this._later(() => this._refreshToken('expiring'), Math.max(0, left - margin));
  }

  /** Closes the client: no more reconnects; pending calls fail with `closed`. */
  close() {
    if (this._state === 'closed') return;
    this._clearTimers();
    this._pollRun++;
    if (globalThis.removeEventListener) globalThis.removeEventListener('online', this._onOnline);
    const ws = this._ws;
    this._ws = null;
    if (ws) { detach(ws); try { ws.close(1000); } catch (_) { /* already closed */ } }
    const err = new HoldfastError('closed', 'the client is closed');
    for (const e of [...this._pending.values(), ...this._queue]) if (!e.sub) this._finish(e, err);
    this._pending.clear();
    this._queue = [];
    this._transport = null;
    this._setState('closed', 'close()');
  }

  // ------------------------------------------------------------------
  // internals: state

  _info(extra) { return Object.assign({ transport: this._transport, attempt: this._attempt }, extra); }

  _setState(state, reason, extra) {
    // listeners hear of a new state, a new transport, and each newly scheduled retry
    const changed = state !== this._state || (extra && (extra.transportChanged || extra.delay != null));
    this._state = state;
    if (!changed) return;
    const info = this._info(Object.assign({ reason }, extra));
    delete info.transportChanged;
    for (const fn of this._listeners) {
      try { fn(state, info); } catch (e) { console.error(e); }
    }
  }

  _later(fn, ms) {
    const t = setTimeout(() => { this._timers.delete(t); fn(); }, ms);
    this._timers.add(t);
    return t;
  }

  _clearTimers() {
    for (const t of this._timers) clearTimeout(t);
    this._timers.clear();
    clearInterval(this._hbTimer);
    clearTimeout(this._helloTimer);
  }

  _backoff() {
    const d = Math.min(this._o.backoffMax, this._o.backoffMin * 2 ** Math.min(this._attempt, 20));
    return Math.round(d / 2 + Math.random() * d / 2);
  }

  _headers(extra) {
    const h = Object.assign({}, extra);
    if (this._token) h.authorization = 'Bearer ' + this._token;
    return h;
  }

  // ------------------------------------------------------------------
  // internals: WebSocket

  /** Opens a WebSocket; `upgrade`: we are polling and try to get back. */
  _openWs(upgrade) {
    if (this._state === 'closed') return;
    if (!this._WS) return this._loadWs(upgrade);
    const exp = tokenExpiry(this._token);
    if (this._o.getToken && exp != null && exp <= Date.now() + 1000 && Date.now() - (this._expiredAt || 0) > this._o.backoffMin) {
      // an expired token would only get the upgrade refused: renew it first
      // (at most once per backoffMin, should getToken give expired ones)
      this._expiredAt = Date.now();
      return this._refreshToken('expired').then(() => this._openWs(upgrade), () => this._openWs(upgrade));
    }
    if (!upgrade) this._setState(this._everOpen ? 'reconnecting' : 'connecting', 'connecting');
    let ws;
    try {
      ws = new this._WS(this._wsUrl + (this._token ? '?token=' + encodeURIComponent(this._token) : ''), 'holdfast.v1.json');
    } catch (e) {
      this._wsFailed(null, upgrade, String(e));
      return;
    }
    ws._hf = { hello: false, upgrade, last: Date.now() };
    this._ws = ws;
    clearTimeout(this._helloTimer);
    this._helloTimer = setTimeout(() => {
      if (this._ws === ws && !ws._hf.hello) this._dropWs(ws, 'no hello within connectTimeout');
    }, this._o.connectTimeout);
    ws.onmessage = (m) => { if (this._ws === ws) this._onFrame(ws, m.data); };
    ws.onclose = (ev) => { if (this._ws === ws) this._dropWs(ws, `closed (${ev.code})`); };
    // A close event should follow an error; Node's own WebSocket (undici)
    // may give only the error when the connection is refused.
    ws.onerror = () => { setTimeout(() => { if (this._ws === ws) this._dropWs(ws, 'error'); }, ws._hf.hello ? 1000 : 0); };
  }

  /** No global WebSocket (Node 18, 20): the `ws` package, loaded once. */
  _loadWs(upgrade) {
    if (!this._wsLoad) {
      const spec = 'ws'; // not a literal: bundlers leave it alone, browsers never reach it
      this._wsLoad = import(spec).then((m) => m.WebSocket || m.default, () => null);
    }
    this._wsLoad.then((WS) => {
      if (this._state === 'closed') return;
      if (WS) { this._WS = WS; this._openWs(upgrade); return; }
      if (!this._warnedNoWs) {
        this._warnedNoWs = true;
        console.warn('holdfast: no WebSocket here: install the `ws` package, pass {WebSocket}, or use Node 22; using HTTP only');
      }
      this._wsFailed(null, upgrade, 'no WebSocket implementation');
    });
  }

  /** The socket `ws` is gone (closed, failed, or declared dead). */
  _dropWs(ws, reason) {
    detach(ws);
    try { ws.close(); } catch (_) { /* ignore */ }
    if (this._ws !== ws) return;
    this._ws = null;
    clearInterval(this._hbTimer);
    clearTimeout(this._helloTimer);
    const { hello, upgrade } = ws._hf;
    if (hello) this._lostConnection(reason);
    else this._wsFailed(ws, upgrade, reason);
  }

  /** An open (hello'd) WebSocket was lost: fail or requeue calls, reconnect. */
  _lostConnection(reason) {
    for (const s of this._subs.values()) s._active = false;
    for (const e of [...this._pending.values()]) {
      this._pending.delete(e.id);
      if (e.sub) continue; // resubscribed on the next connection
      if (e.auth) this._finish(e, new HoldfastError('unavailable', 'connection lost'));
      else if (e.key) this._queue.push(e); // idempotent: safe to send again
      else this._finish(e, new HoldfastError('unavailable', `connection lost before the reply to ${e.method} (it may or may not have run)`));
    }
    this._transport = null;
    this._attempt = 0;
    this._scheduleReconnect(reason);
  }

  /** A WebSocket failed before `hello`. */
  _wsFailed(ws, upgrade, reason) {
    if (upgrade) { // still polling: try again later
      if (this._o.wsRetry > 0 && this._transport === 'poll') this._later(() => this._openWs(true), this._o.wsRetry);
      return;
    }
    this._wsFailures++;
    if (this._o.transport === 'auto' && this._wsFailures >= this._o.pollAfter) {
      this._probeHttp().then((ok) => {
        if (this._state === 'closed' || this._ws) return;
        if (ok) this._enterPoll(`WebSocket failed ${this._wsFailures} times (${reason}); HTTP works`);
        else this._scheduleReconnect(reason);
      });
      return;
    }
    this._scheduleReconnect(reason);
  }

  _scheduleReconnect(reason) {
    if (this._state === 'closed') return;
    const delay = this._backoff();
    this._attempt++;
    this._setState(this._everOpen ? 'reconnecting' : 'connecting', reason, { delay });
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = this._later(() => this._openWs(false), delay);
  }

  _reconnectNow() {
    clearTimeout(this._reconnectTimer);
    this._timers.delete(this._reconnectTimer);
    if (!this._ws) { this._attempt = 0; this._openWs(false); }
  }

  async _probeHttp() {
    try {
      const r = await this._fetch(this._http + '/healthz', { cache: 'no-store', signal: timeoutSignal(this._o.connectTimeout) });
      return r.ok;
    } catch (_) {
      return false;
    }
  }

  _send(msg) {
    const ws = this._ws;
    if (!ws || !ws._hf.hello || this._transport !== 'ws' || ws.readyState !== 1) return false;
    try { ws.send(JSON.stringify(msg)); return true; } catch (_) { return false; }
  }

  /** One frame: one or more JSON messages separated by '\n'. */
  _onFrame(ws, data) {
    ws._hf.last = Date.now();
    if (typeof data !== 'string') return; // the JSON subprotocol sends text
    for (const line of data.split('\n')) {
      if (!line.trim()) continue;
      let m;
      try { m = JSON.parse(line); } catch (_) { console.warn('holdfast: unparsable message', line.slice(0, 200)); continue; }
      try { this._onMessage(ws, m); } catch (e) { console.error('holdfast: handler failed', e); }
    }
  }

  _onMessage(ws, m) {
    switch (m.op) {
    case 'hello': return this._onHello(ws, m);
    case 'reply': return this._onReply(m);
    case 'event': return this._onEvent(m, this._subs.get(m.from));
    case 'signal': {
      const s = this._subs.get(m.from);
      if (s && s._o.onSignal) s._o.onSignal({ from: m.from, type: m.type, by: m.by, data: m.data });
      return;
    }
    case 'presence': {
      const s = this._subs.get(m.from);
      if (s && s._o.onPresence) s._o.onPresence({ from: m.from, action: m.action, who: m.who });
      return;
    }
    case 'unsubscribed': {
      // The server ended it: the token expired, or a new one may not see
      // it. It resumes (with since) after the next successful setToken.
      const s = this._subs.get(m.from);
      if (!s || s._closed) return;
      s._active = false;
      const err = toError(m.error);
      if (s._o.onError) s._o.onError(err);
      if (err.code === 'unauthorized' && this._o.getToken) this._refreshToken('unauthorized').catch(() => {});
      return;
    }
    default: return; // pong, and ops of later versions
    }
  }

  _onHello(ws, m) {
    const wasPolling = this._transport === 'poll';
    ws._hf.hello = true;
    clearTimeout(this._helloTimer);
    this._pollRun++; // stops a polling loop
    this._transport = 'ws';
    this._attempt = 0;
    this._wsFailures = 0;
    this.stats.opens++;
    if (this._everOpen) this.stats.reconnects++;
    this._everOpen = true;
    this.server = m.server;
    const hb = Math.max(5, Number(m.heartbeat) || 25) * 1000;
    clearInterval(this._hbTimer);
    this._hbTimer = setInterval(() => this._heartbeat(ws, hb), hb);
    for (const s of this._subs.values()) s._active = false;
    this._setState('open', wasPolling ? 'WebSocket is back' : 'connected', { transportChanged: true });
    for (const s of this._subs.values()) this._wsSub(s);
    const q = this._queue;
    this._queue = [];
    for (const e of q) this._dispatch(e);
  }

  _heartbeat(ws, hb) {
    if (this._ws !== ws) return;
    const idle = Date.now() - ws._hf.last;
    if (idle > 2 * hb + 5000) this._dropWs(ws, 'heartbeat timeout');
    else if (idle >= hb - 1000) this._send({ op: 'ping', id: this._nextId++ });
  }

  _onReply(m) {
    const e = this._pending.get(m.id);
    if (!e) return;
    this._pending.delete(m.id);
    if (e.sub) return this._onSubReply(e.sub, m);
    if (m.ok) return this._finish(e, null, m.result);
    const err = toError(m.error);
    if (err.code === 'unauthorized' && this._o.getToken && !e.auth && !e.renewed) {
      // the token expired under it: renew, then send it once more
      e.renewed = true;
      this._refreshToken('unauthorized').then(() => this._dispatch(e), () => this._finish(e, err));
      return;
    }
    this._finish(e, err);
  }

  _wsSub(sub) {
    const id = this._nextId++;
    const msg = { op: 'sub', id, to: sub.address };
    if (sub.seq != null) msg.since = sub.seq;
    if (sub.seq != null && sub.epoch) msg.epoch = sub.epoch;
    if (sub._o.presence) msg.presence = sub._o.presence;
    this._pending.set(id, { id, sub, done: false });
    if (!this._send(msg)) this._pending.delete(id);
  }

  _onSubReply(sub, m) {
    if (sub._closed || this._subs.get(sub.address) !== sub) return;
    if (!m.ok) {
      const err = toError(m.error);
      if (sub._o.onError) sub._o.onError(err);
      sub._rej(err);
      if (err.code === 'unauthorized' && this._o.getToken) this._refreshToken('unauthorized').catch(() => {});
      else if (RETRYABLE.has(err.code)) this._later(() => { if (!sub._active && this._transport === 'ws') this._wsSub(sub); }, this._backoff());
      return;
    }
    this._ready(sub, m.result, 'ws');
  }

  /** A (re)subscription succeeded with {seq, epoch, recovered} from the server. */
  _ready(sub, r, transport) {
    const had = sub.seq != null;
    let recovered = had && r.recovered !== false && (!sub.epoch || sub.epoch === r.epoch) && sub.seq <= r.seq;
    let reason = null;
    if (!had) reason = 'initial';
    else if (sub.epoch && sub.epoch !== r.epoch) reason = 'epoch';
    else if (!recovered) reason = 'gap';
    if (recovered) sub._replayTo = r.seq;
    else sub.seq = r.seq;
    sub.epoch = r.epoch;
    sub._active = true;
    const info = { seq: r.seq, epoch: r.epoch, recovered, reason, resumed: sub._subscribed > 0, transport };
    sub._subscribed++;
    sub.lastReady = info;
    if (sub._o.onReady) {
      try { sub._o.onReady(info); } catch (e) { console.error(e); }
    }
    sub._res(info);
  }

  _onEvent(m, sub) {
    if (!sub || !sub._active || sub._closed) return;
    const seq = Number(m.seq);
    if (sub.seq != null && seq <= sub.seq) return; // already seen
    if (sub.seq != null && seq > sub.seq + 1) {
      // a hole (should not happen): resubscribe from what we have
      sub._active = false;
      if (this._transport === 'ws') { this._send({ op: 'unsub', id: this._nextId++, to: sub.address }); this._wsSub(sub); }
      return;
    }
    sub.seq = seq;
    this.stats.events++;
    if (seq <= sub._replayTo) this.stats.replayed++;
    const ev = { from: sub.address, seq, type: m.type, data: m.data, at: m.at };
    try { sub._onEvent(ev, sub); } catch (e) { console.error(e); }
  }

  _unsubscribe(sub) {
    if (sub._closed) return;
    sub._closed = true;
    if (this._subs.get(sub.address) === sub) this._subs.delete(sub.address);
    if (this._transport === 'ws') this._send({ op: 'unsub', id: this._nextId++, to: sub.address });
  }

  // ------------------------------------------------------------------
  // internals: calls

  _dispatch(e) {
    if (e.done) return;
    if (this._transport === 'poll') return this._httpCall(e);
    if (this._transport === 'ws' && this._state === 'open') {
      e.id = this._nextId++;
      const msg = { op: 'call', id: e.id, to: e.address, method: e.method, args: e.args };
      if (e.key) msg.key = e.key;
      this._pending.set(e.id, e);
      if (this._send(msg)) return;
      this._pending.delete(e.id);
    }
    this._queue.push(e);
  }

  _finish(e, err, result) {
    if (e.done) return;
    e.done = true;
    clearTimeout(e.timer);
    if (e.id) this._pending.delete(e.id);
    if (err) e.reject(err);
    else e.resolve(result);
  }

  async _httpCall(e) {
    const [kind, name] = splitAddress(e.address);
    const headers = this._headers({ 'content-type': 'application/json' });
    if (e.key) headers['idempotency-key'] = e.key;
    let attempt = 0;
    while (!e.done) {
      let r;
      try {
        this.stats.httpCalls++;
        r = await this._fetch(`${this._http}/v1/call/${kind}/${name}/${e.method}`, {
          method: 'POST', headers, body: JSON.stringify(e.args), cache: 'no-store',
        });
      } catch (err) {
        if (!e.key) return this._finish(e, new HoldfastError('unavailable', `no answer to ${e.method}: ${err.message || err}`));
        await sleep(Math.min(this._o.backoffMax, this._o.backoffMin * 2 ** attempt++)); // keyed: retry
        continue;
      }
      let body;
      try { body = await r.json(); } catch (_) { body = { ok: false, error: { code: 'internal', message: `HTTP ${r.status}` } }; }
      if (body.ok) return this._finish(e, null, body.result);
      const err = toError(body.error, r.status);
      if (err.code === 'unauthorized' && this._o.getToken && !e.renewed) { // renew, then once more
        e.renewed = true;
        try { await this._refreshToken('unauthorized'); } catch (_) { return this._finish(e, err); }
        Object.assign(headers, this._headers());
        continue;
      }
      return this._finish(e, err);
    }
  }

  // ------------------------------------------------------------------
  // internals: polling fallback

  _enterPoll(reason) {
    if (this._state === 'closed') return;
    this.stats.fallbacks++;
    this._transport = 'poll';
    this._everOpen = true;
    this._attempt = 0;
    for (const s of this._subs.values()) s._active = false;
    this._setState('open', reason, { transportChanged: true });
    const q = this._queue;
    this._queue = [];
    for (const e of q) this._dispatch(e);
    this._startPolling();
    if (this._o.transport === 'auto' && this._o.wsRetry > 0) this._later(() => this._openWs(true), this._o.wsRetry);
  }

  _kickPoll() {
    if (this._transport === 'poll') this._startPolling();
  }

  /** (Re)starts the polling loop; a new generation stops the old one. */
  _startPolling() {
    const run = ++this._pollRun;
    const loop = async () => {
      if (run !== this._pollRun || this._transport !== 'poll') return;
      let delay = this._o.pollInterval;
      try {
        for (const s of [...this._subs.values()]) await this._pollSub(s, run);
        if (run !== this._pollRun) return;
        if (this._attempt > 0 || this._state !== 'open') { this._attempt = 0; this._setState('open', 'polling works again'); }
      } catch (err) {
        if (run !== this._pollRun) return;
        delay = this._backoff();
        this._attempt++;
        this._setState('reconnecting', `polling failed: ${err.message || err}`, { delay });
      }
      if (run === this._pollRun && this._transport === 'poll') this._later(loop, delay);
    };
    loop();
  }

  async _pollSub(sub, run) {
    if (sub._closed || sub._failed) return;
    const cur = () => run === this._pollRun && this._transport === 'poll' && !sub._closed && this._subs.get(sub.address) === sub;
    if (sub.seq == null) { // nothing to resume from: start at the actor's current seq
      const info = await this._pollFetchInfo(sub.address);
      if (!cur()) return;
      this._ready(sub, { seq: info.seq, epoch: info.epoch, recovered: false }, 'poll');
      return;
    }
    for (let pages = 0; pages < 20; pages++) {
      this.stats.polls++;
      const limit = Math.max(1, Math.min(1000, this._o.pollLimit));
      const r = await this._fetch(`${this._http}/v1/events/${sub.address}?after=${sub.seq}&limit=${limit}`,
        { headers: this._headers(), cache: 'no-store', signal: timeoutSignal(this._o.connectTimeout) });
      const body = await r.json();
      if (!r.ok || body.ok === false) {
        const err = toError(body.error, r.status);
        if (err.code === 'unauthorized' && this._o.getToken) { // renew; the loop tries again
          this._refreshToken('unauthorized').catch(() => {});
          throw err;
        }
        if (!RETRYABLE.has(err.code) && r.status !== 429) {
          sub._failed = true; // refused (e.g. forbidden): stop polling it
          if (sub._o.onError) sub._o.onError(err);
          sub._rej(err);
          return;
        }
        throw err;
      }
      if (!cur()) return;
      if (!sub._active) {
        const sameEpoch = !sub.epoch || sub.epoch === body.epoch;
        const reaches = body.events.length ? body.events[0].seq === sub.seq + 1 : sub.seq === body.seq;
        const recovered = sameEpoch && body.recovered !== false && sub.seq <= body.seq && reaches;
        this._ready(sub, { seq: body.seq, epoch: body.epoch, recovered }, 'poll');
        if (!recovered) return; // the app reloads; we continue from body.seq
      } else if (sub.epoch && body.epoch !== sub.epoch) { // the log was replaced under us
        sub._active = false;
        sub.seq = null;
        return this._pollSub(sub, run);
      }
      for (const ev of body.events) this._onEvent(Object.assign({ from: sub.address }, ev), sub);
      if (body.events.length < limit) return;
    }
  }

  async _pollFetchInfo(address) {
    const [kind, name] = splitAddress(address);
    const r = await this._fetch(`${this._http}/v1/call/${kind}/${name}/info`, {
      method: 'POST', headers: this._headers({ 'content-type': 'application/json' }), body: '{}', cache: 'no-store',
      signal: timeoutSignal(this._o.connectTimeout),
    });
    const body = await r.json();
    if (!body.ok) throw toError(body.error, r.status);
    return body.result;
  }
}

// --------------------------------------------------------------------
// helpers

const ADDRESS = /^[a-z][a-z0-9_]{0,31}\/[A-Za-z0-9._:@-]{1,128}$/;

function checkAddress(a) {
  if (typeof a !== 'string' || !ADDRESS.test(a)) throw new HoldfastError('bad_request', `not an actor address (kind/name): ${a}`);
}

function splitAddress(a) {
  const i = a.indexOf('/');
  return [a.slice(0, i), a.slice(i + 1)];
}

function toError(e, status) {
  e = e || {};
  return new HoldfastError(e.code || 'internal', e.message || e.code || `HTTP ${status}`, status);
}

function detach(ws) {
  ws.onmessage = ws.onclose = ws.onerror = ws.onopen = null;
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

/** A JWT's `exp` in ms, or null (no token, not a JWT, no exp). */
function tokenExpiry(token) {
  if (!token || typeof token !== 'string') return null;
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    const json = JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((part.length + 3) % 4)));
    return typeof json.exp === 'number' ? json.exp * 1000 : null;
  } catch (_) {
    return null;
  }
}

function timeoutSignal(ms) {
  return typeof AbortSignal !== 'undefined' && AbortSignal.timeout ? AbortSignal.timeout(ms) : undefined;
}
