/**
 * holdfast-client/react — React bindings of holdfast-client (React 18, 19).
 *
 * One connection per app (<HoldfastProvider>), shared by every hook. Hooks
 * that watch the same actor share one subscription, reference counted: the
 * last one to unmount closes it (a moment later, so StrictMode's
 * unmount-and-mount-again keeps it instead of unsubscribing and
 * subscribing again). Types: react.d.ts.
 *
 * @module holdfast-client/react
 */
import { createContext, createElement, useCallback, useContext, useEffect, useRef, useState } from 'react';
import { connect, HoldfastError } from './holdfast.js';

const Ctx = createContext(null);

/**
 * Holds one client for the app and gives it to the hooks below it. The
 * client is made in an effect and closed on unmount, so StrictMode's double
 * effects open one connection that stays (and close the other).
 * @param {{url?: string, token?: string, getToken?: Function, options?: object, client?: object, children?: any}} props
 */
export function HoldfastProvider(props) {
  const { url, token, getToken, options, client: given, children } = props;
  const [client, setClient] = useState(given || null);
  const getTokenRef = useRef(getToken);
  getTokenRef.current = getToken;
  const tokenRef = useRef(token);
  tokenRef.current = token;

  useEffect(() => {
    if (given) { setClient(given); return undefined; }
    const o = Object.assign({}, options);
    if (tokenRef.current) o.token = tokenRef.current;
    if (getTokenRef.current) o.getToken = (why) => getTokenRef.current(why);
    const c = connect(url, o);
    setClient(c);
    return () => { c.close(); setClient((cur) => (cur === c ? null : cur)); };
    // options are read when the client is made; a new url or client makes a new one
  }, [url, given]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    if (client && !given && token && token !== client._token) {
      const r = client.setToken(token);
      if (r) r.catch((e) => console.warn('holdfast: token refused:', e.message));
    }
  }, [client, token, given]);

  return createElement(Ctx.Provider, { value: client }, children);
}

/** The provider's client (null until it is made, on the first effect). */
export function useClient() {
  return useContext(Ctx);
}

/** The connection's state, re-rendered on every change. */
export function useConnectionState() {
  const client = useClient();
  const [st, setSt] = useState(() => ({ state: client ? client.state : 'connecting', transport: client ? client.transport : null, attempt: 0 }));
  useEffect(() => {
    if (!client) { setSt({ state: 'connecting', transport: null, attempt: 0 }); return undefined; }
    return client.onState((state, info) => setSt(Object.assign({ state }, info)));
  }, [client]);
  return st;
}

/**
 * Calls with state for the UI: `{call, run, pending, error, result, reset}`.
 * `call(...)` returns the promise (it rejects on error); `run(...)` never
 * rejects (the error is in `error`). `useCall(address, method)` binds them:
 * `call(args, opts)`.
 */
export function useCall(address, method) {
  const client = useClient();
  const [st, setSt] = useState({ pending: false, error: null, result: undefined });
  const alive = useRef(true);
  const gen = useRef(0);
  useEffect(() => { alive.current = true; return () => { alive.current = false; }; }, []);
  const bound = address != null && method != null;
  const call = useCallback((...a) => {
    const [addr, m, args, opts] = bound ? [address, method, a[0], a[1]] : a;
    const g = ++gen.current;
    if (!client) {
      const err = new HoldfastError('unavailable', 'no connection yet (outside <HoldfastProvider>, or before its first effect)');
      setSt({ pending: false, error: err, result: undefined });
      return Promise.reject(err);
    }
    setSt((s) => ({ pending: true, error: null, result: s.result }));
    return client.call(addr, m, args, opts).then((result) => {
      if (alive.current && g === gen.current) setSt({ pending: false, error: null, result });
      return result;
    }, (error) => {
      if (alive.current && g === gen.current) setSt({ pending: false, error, result: undefined });
      throw error;
    });
  }, [client, bound, address, method]);
  const run = useCallback((...a) => call(...a).catch(() => undefined), [call]);
  const reset = useCallback(() => { gen.current++; setSt({ pending: false, error: null, result: undefined }); }, []);
  return { call, run, pending: st.pending, error: st.error, result: st.result, reset };
}

// ----------------------------------------------------------------------
// shared subscriptions

const topicsOf = new WeakMap(); // client -> Map(address -> Topic)

/** One client subscription shared by every hook watching `address`. */
class Topic {
  constructor(client, address, opts) {
    this.client = client;
    this.address = address;
    this.listeners = new Set();
    this.presence = opts.presence || null;
    this.since = opts.since;
    this.epoch = opts.epoch;
    this.ready = null; // lastReady while the subscription is live
    this.error = null;
    this.refs = 0;
    this.closeTimer = 0;
    this.sub = null;
    this.unState = client.onState((state) => {
      if (state !== 'open' && this.ready) { this.ready = null; this.emit('status'); }
    });
    this.open();
  }

  open() {
    const o = {
      onReady: (info) => { this.ready = info; this.error = null; this.emit('ready', info); },
      onError: (err) => { this.ready = null; this.error = err; this.emit('error', err); },
      onSignal: (sig) => this.emit('signal', sig),
      onPresence: (p) => this.emit('presence', p),
    };
    if (this.presence) o.presence = this.presence;
    const prev = this.sub;
    if (prev) { o.since = prev.seq ?? undefined; o.epoch = prev.epoch ?? undefined; prev.close(); }
    else { if (this.since != null) o.since = this.since; if (this.epoch) o.epoch = this.epoch; }
    this.ready = null;
    this.sub = this.client.subscribe(this.address, (ev) => this.emit('event', ev), o);
  }

  /** A listener wants presence: the subscription is made again with it (resuming from its seq). */
  wantPresence(p) {
    if (this.presence || !p) return;
    this.presence = p;
    this.open();
  }

  emit(kind, x) {
    for (const l of [...this.listeners]) {
      try { l(kind, x); } catch (e) { console.error(e); }
    }
  }

  get seq() { return this.sub ? this.sub.seq : null; }
}

function acquire(client, address, opts, listener) {
  let m = topicsOf.get(client);
  if (!m) topicsOf.set(client, (m = new Map()));
  let t = m.get(address);
  if (!t) m.set(address, (t = new Topic(client, address, opts)));
  clearTimeout(t.closeTimer);
  t.refs++;
  t.listeners.add(listener);
  if (opts.presence) t.wantPresence(opts.presence);
  return () => {
    t.listeners.delete(listener);
    if (--t.refs > 0) return;
    // a moment later: StrictMode (or a quick remount) takes it back first
    t.closeTimer = setTimeout(() => {
      if (t.refs > 0 || m.get(address) !== t) return;
      m.delete(address);
      t.unState();
      if (t.sub) t.sub.close();
    }, 0);
  };
}

function statusOf(client, t) {
  if (!client) return 'connecting';
  if (client.state === 'closed') return 'closed';
  if (t && t.error && !t.ready) return 'error';
  if (t && t.ready && client.state === 'open') return 'live';
  return client.state === 'reconnecting' ? 'reconnecting' : 'connecting';
}

/** Re-renders when the client's connection state changes. */
function useStateTick(client) {
  const [, setTick] = useState(0);
  useEffect(() => (client ? client.onState(() => setTick((x) => x + 1)) : undefined), [client]);
}

/**
 * The events of an actor since this component subscribed (or since
 * `opts.since`): `{events, seq, epoch, status, error, ready}`. Events come
 * once each, in seq order, across reconnects (resumed with `since`). When
 * a resume cannot be complete (`recovered: false`: history trimmed, or a
 * new log), `events` starts over rather than show a gap.
 * @param {string|null|undefined} address null: nothing
 * @param {{since?: number, epoch?: string, limit?: number, presence?: object,
 *   onEvent?: Function, onReady?: Function, onSignal?: Function}} [opts]
 */
export function useSubscription(address, opts = {}) {
  const client = useClient();
  const optsRef = useRef(opts);
  optsRef.current = opts;
  const [st, setSt] = useState({ events: [], seq: null, epoch: null, ready: null, error: null });
  useStateTick(client);
  const topicRef = useRef(null);

  useEffect(() => {
    setSt({ events: [], seq: null, epoch: null, ready: null, error: null });
    if (!client || !address) return undefined;
    let alive = true;
    const o = optsRef.current;
    const release = acquire(client, address, { since: o.since, epoch: o.epoch, presence: o.presence }, (kind, x) => {
      if (!alive) return;
      const cb = optsRef.current;
      if (kind === 'event') {
        const limit = cb.limit ?? 1000;
        setSt((s) => {
          if (s.seq != null && x.seq <= s.seq) return s; // never twice
          const events = s.events.length >= limit ? s.events.slice(s.events.length - limit + 1) : s.events.slice();
          events.push(x);
          return Object.assign({}, s, { events, seq: x.seq });
        });
        if (cb.onEvent) cb.onEvent(x);
      } else if (kind === 'ready') {
        setSt((s) => {
          const restart = !x.recovered; // a hole: start over instead of showing it
          return Object.assign({}, s, { ready: x, epoch: x.epoch, error: null,
            events: restart ? [] : s.events, seq: restart || s.seq == null ? x.seq : s.seq });
        });
        if (cb.onReady) cb.onReady(x);
      } else if (kind === 'error') {
        setSt((s) => Object.assign({}, s, { error: x }));
        if (cb.onError) cb.onError(x);
      } else if (kind === 'signal') {
        if (cb.onSignal) cb.onSignal(x);
      } else if (kind === 'presence') {
        if (cb.onPresence) cb.onPresence(x);
      } else {
        setSt((s) => Object.assign({}, s)); // status
      }
    });
    const t = topicsOf.get(client).get(address);
    topicRef.current = t;
    if (t.ready) setSt((s) => Object.assign({}, s, { ready: t.ready, epoch: t.ready.epoch, seq: t.seq }));
    return () => { alive = false; topicRef.current = null; release(); };
  }, [client, address]);

  const t = topicRef.current;
  return {
    events: st.events, seq: st.seq, epoch: st.epoch, ready: st.ready, error: st.error,
    status: statusOf(client, t && t.address === address ? t : null),
    signal: useCallback((type, data) => (client && address ? client.signal(address, type, data) : false), [client, address]),
  };
}

/**
 * The core of useActorState and usePresence: a value loaded with a call,
 * kept current by a feed, loaded again whenever the subscription could not
 * resume completely (`recovered: false`: first time, history trimmed, new
 * log). Over WebSocket the load's reply comes in order with the actor's
 * events, so updates received before it are already in it and are skipped;
 * those after it are applied: no update is lost or applied twice.
 */
function runLoad(l, client, address) {
  if (typeof l === 'function') return l(client, address);
  const [method, args] = Array.isArray(l) ? l : [l, {}];
  return client.call(address, method, args);
}

/** `ordered`: `load` is one call of the actor's (a method, maybe wrapped by init);
 * `always`: load on every (re)subscription (presence is not logged, so a
 * resumed subscription does not replay the joins and leaves it missed). */
function useLoaded(address, feed, load, apply, subOpts, ordered, always) {
  const client = useClient();
  const loadRef = useRef(load);
  loadRef.current = load;
  const applyRef = useRef(apply);
  applyRef.current = apply;
  const subRef = useRef(subOpts);
  subRef.current = subOpts;
  const [st, setSt] = useState({ value: undefined, seq: null, loading: false, error: null, loaded: false });
  useStateTick(client);
  const topicRef = useRef(null);
  const refetchRef = useRef(() => {});

  useEffect(() => {
    setSt({ value: undefined, seq: null, loading: false, error: null, loaded: false });
    if (!client || !address) return undefined;
    let alive = true;
    let gen = 0; // the load in flight
    let loading = false;
    let held = []; // updates received during a load that the load may not hold
    let orderedLoad = false;
    let loadedOk = false; // a load succeeded (one lost with its connection is made again)

    const applyOne = (x) => setSt((s) => {
      if (!s.loaded) return s;
      const value = applyRef.current(s.value, x);
      return Object.assign({}, s, { value, seq: x.seq != null ? x.seq : s.seq });
    });

    const doLoad = () => {
      const g = ++gen;
      loading = true;
      held = [];
      const l = loadRef.current;
      orderedLoad = (ordered || typeof l !== 'function') && client.transport === 'ws';
      const p = Promise.resolve().then(() => runLoad(l, client, address));
      setSt((s) => Object.assign({}, s, { loading: true }));
      p.then((value) => {
        if (!alive || g !== gen) return;
        loading = false;
        loadedOk = true;
        const later = held;
        held = [];
        setSt((s) => Object.assign({}, s, { value, loaded: true, loading: false, error: null, seq: topicRef.current ? topicRef.current.seq : s.seq }));
        for (const x of later) applyOne(x);
      }, (error) => {
        if (!alive || g !== gen) return;
        loading = false;
        held = [];
        setSt((s) => Object.assign({}, s, { loading: false, error }));
      });
    };
    refetchRef.current = doLoad;

    const release = acquire(client, address, Object.assign({}, subRef.current), (kind, x) => {
      if (!alive) return;
      if (kind === feed) {
        if (!loading) applyOne(x);
        else if (!orderedLoad) held.push(x); // applied after the load (reduce must allow a repeat)
        // else: in order before the reply: the loaded value already has it
      } else if (kind === 'ready') {
        if (!x.recovered || !loadedOk || always) doLoad();
        else setSt((s) => Object.assign({}, s));
      } else if (kind === 'error') {
        setSt((s) => Object.assign({}, s, { error: x }));
      } else {
        setSt((s) => Object.assign({}, s));
      }
    });
    const t = topicsOf.get(client).get(address);
    topicRef.current = t;
    if (t.ready) doLoad(); // the subscription was already live (shared): load now
    return () => { alive = false; gen++; topicRef.current = null; refetchRef.current = () => {}; release(); };
  }, [client, address, feed]);

  const t = topicRef.current;
  const refetch = useCallback(() => refetchRef.current(), []);
  return { st, status: statusOf(client, t && t.address === address ? t : null), refetch };
}

/**
 * An actor's state, loaded with a method and kept current by its events:
 * `{state, seq, status, loading, error, refetch}`. It loads again by itself
 * whenever the subscription could not resume completely (first time,
 * `recovered: false` after a gap or a new log).
 * @param {string|null|undefined} address
 * @param {{load: string|[string, object]|((client: object, address: string) => Promise<any>),
 *   reduce: (state: any, ev: object) => any, presence?: object}} opts
 *   `load`: a method of the actor (e.g. `'list'`, or `['list', {all: true}]`),
 *   or a function (then events that race it are applied after it, so
 *   `reduce` must allow an event the loaded state already holds);
 *   `reduce(state, event)` returns the next state (do not mutate it);
 *   `init(result)`, when given, makes the state from what `load` returned
 */
export function useActorState(address, opts) {
  const init = opts.init;
  const load = init ? async (client, addr) => init(await runLoad(opts.load, client, addr)) : opts.load;
  const { st, status, refetch } = useLoaded(address, 'event', load, opts.reduce, { presence: opts.presence }, !!init);
  return { state: st.value, seq: st.seq, status, loading: st.loading || (!st.loaded && !st.error && status === 'live'), error: st.error, refetch };
}

function samePerson(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Puts this client in an actor's presence list as `me` and returns the list:
 * `{who, status, error}`: loaded on every (re)subscription, kept current by
 * join/leave notices in between (WebSocket only). `me` is read when the
 * subscription starts.
 * @param {string|null|undefined} address
 * @param {object} me e.g. `{name: 'Kim'}`
 */
export function usePresence(address, me) {
  const { st, status, refetch } = useLoaded(address, 'presence', 'presence', (list, p) => {
    const cur = list || [];
    if (p.action === 'join') return cur.concat([p.who]);
    const i = cur.findIndex((w) => samePerson(w, p.who));
    return i < 0 ? cur : cur.slice(0, i).concat(cur.slice(i + 1));
  }, { presence: me || {} }, true, true);
  return { who: st.value || [], status, error: st.error, refetch };
}
