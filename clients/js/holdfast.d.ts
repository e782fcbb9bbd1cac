// Types of holdfast-client (holdfast.js). Checked by `tsc --strict` in the
// tests (tests/clients/). Wire protocol v1: docs/DESIGN.md §5.

/** The package's version. */
export const VERSION: string;

/** The error codes the server answers (docs/DESIGN.md §5.4). */
export type ServerErrorCode =
  | 'bad_request' | 'unauthorized' | 'forbidden' | 'not_found' | 'conflict'
  | 'rate_limited' | 'too_large' | 'overloaded' | 'unavailable'
  | 'storage_full' | 'timeout' | 'internal';

/**
 * Every code a {@link HoldfastError} can carry: the server's, and the
 * client's own `timeout` (no reply in time), `unavailable` (connection lost
 * after an unkeyed call was sent: whether it ran is unknown) and `closed`.
 */
export type ErrorCode = ServerErrorCode | 'closed';

/** A failed call, subscription or request. */
export class HoldfastError extends Error {
  constructor(code: ErrorCode | string, message?: string, status?: number);
  readonly name: 'HoldfastError';
  /** The error code (an {@link ErrorCode}; a newer server may add codes). */
  code: ErrorCode | (string & {});
  /** The HTTP status, when the answer came over HTTP. */
  status?: number;
}

/** A random 16-hex-digit idempotency key (or client id). */
export function randomKey(prefix?: string): string;

/** `connecting` → `open` ⇄ `reconnecting`; `closed` after close(). */
export type ConnState = 'connecting' | 'open' | 'reconnecting' | 'closed';
/** What carries calls and events now. */
export type Transport = 'ws' | 'poll';

export interface StateInfo {
  transport: Transport | null;
  /** Consecutive failed attempts (0 when open). */
  attempt: number;
  /** Ms until the next attempt, when one is scheduled. */
  delay?: number;
  /** Why the state changed. */
  reason?: string;
}

/** What {@link ConnectOptions.getToken} is told. */
export interface TokenRequest {
  /** `initial` (no token given), `expiring` (before `exp`), `expired`, `unauthorized` (the server refused it), `requested`. */
  reason: 'initial' | 'expiring' | 'expired' | 'unauthorized' | 'requested' | (string & {});
  /** The current token's `exp` in ms, or null. */
  expired: number | null;
}

/** A WebSocket constructor: the browser's, Node 22's, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onclose: ((ev: { code: number }) => void) | null;
  onerror: ((ev: any) => void) | null;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface ConnectOptions {
  /** A JWT: `?token=` on the WebSocket, `Authorization: Bearer` over HTTP. */
  token?: string;
  /** Renews the token before it expires and when the server refuses it. */
  getToken?: (why: TokenRequest) => string | Promise<string>;
  /** Renew this many ms before `exp` (at most half the remaining life). Default 30000. */
  refreshMargin?: number;
  /** `auto` (default): WebSocket with the polling fallback; `ws`: never poll; `poll`: HTTP only. */
  transport?: 'auto' | 'ws' | 'poll';
  /** Default call timeout, ms (10000). */
  timeout?: number;
  /** A WebSocket without `hello` by then has failed, ms (8000). */
  connectTimeout?: number;
  /** First reconnect delay, ms (500); doubles per failure, with jitter. */
  backoffMin?: number;
  /** Largest reconnect delay, ms (10000). */
  backoffMax?: number;
  /** WebSocket failures in a row, while HTTP answers, before polling (2). */
  pollAfter?: number;
  /** Polling period per subscription, ms (1000). */
  pollInterval?: number;
  /** Events per poll, 1–1000 (100). */
  pollLimit?: number;
  /** While polling, try a WebSocket again this often, ms (15000; 0: never). */
  wsRetry?: number;
  /** Same as {@link Client.onState}. */
  onState?: (state: ConnState, info: StateInfo) => void;
  /** The WebSocket to use (default: the global one, else the `ws` package). */
  WebSocket?: WebSocketConstructor;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

/** An actor's event: logged, numbered, delivered once and in order. */
export interface HfEvent<D = any, T extends string = string> {
  /** The actor's address, `kind/name`. */
  from: string;
  /** The event's number in the actor's log (gapless). */
  seq: number;
  type: T;
  data: D;
  /** When it was emitted, ms since the epoch. */
  at?: number;
}

/** An ephemeral signal (typing…): not logged. */
export interface HfSignal<D = any> {
  from: string;
  type: string;
  /** The sender's subject (empty when auth is off). */
  by: string;
  data: D;
}

/** One presence entry: the subscriber's presence fields plus `sub`, its subject. */
export type PresenceWho<P extends object = Record<string, unknown>> = P & { sub?: string };

export interface PresenceNotice<P extends object = Record<string, unknown>> {
  from: string;
  action: 'join' | 'leave';
  who: PresenceWho<P>;
}

/** What a (re)subscription reported. */
export interface ReadyInfo {
  /** The actor's last seq when (re)subscribed. */
  seq: number;
  /** The actor's log epoch. */
  epoch: string;
  /**
   * true: every event after what this client had is (or will be)
   * delivered, so state built from them stays valid. false: reload the
   * state (e.g. call `list`); events after `seq` follow.
   */
  recovered: boolean;
  /** Why not recovered: first subscription, history trimmed, or a new log. */
  reason: 'initial' | 'gap' | 'epoch' | null;
  /** true on every subscription after the first. */
  resumed: boolean;
  transport: Transport;
}

export interface SubscribeOptions<D = any, P extends object = Record<string, unknown>> {
  /** The last seq the app already has: events after it are replayed first. */
  since?: number;
  /** The epoch `since` belongs to. */
  epoch?: string;
  /** Presence fields: this client is listed by `presence` and announced (WebSocket only). */
  presence?: P;
  /** After every (re)subscription, before the replayed events. */
  onReady?: (info: ReadyInfo) => void;
  onSignal?: (sig: HfSignal) => void;
  onPresence?: (p: PresenceNotice<P>) => void;
  /** The server refused or ended the subscription (`forbidden`, `unauthorized`…). */
  onError?: (err: HoldfastError) => void;
}

export interface CallOptions {
  /** An idempotency key (`true`: a random one); a keyed call is re-sent after a lost connection. */
  key?: string | true;
  /** Ms (default: the client's `timeout`). */
  timeout?: number;
}

/** Every actor's built-in `info`. */
export interface ActorInfo {
  seq: number;
  epoch: string;
  subscribers: number;
}

/** `GET /v1/events/…` */
export interface EventPage<D = any> {
  seq: number;
  epoch: string;
  recovered: boolean;
  events: Array<{ seq: number; type: string; data: D; at: number }>;
}

export interface ClientStats {
  opens: number;
  reconnects: number;
  events: number;
  replayed: number;
  polls: number;
  fallbacks: number;
  httpCalls: number;
}

/** A live subscription to one actor; made by {@link Client.subscribe}. */
export class Subscription<D = any, P extends object = Record<string, unknown>> {
  private constructor();
  readonly address: string;
  /** The last event seq seen (null: none yet). */
  seq: number | null;
  /** The epoch of the actor's log. */
  epoch: string | null;
  /** What the latest (re)subscription reported. */
  lastReady: ReadyInfo | null;
  /** The first onReady's info (rejects when refused). */
  readonly ready: Promise<ReadyInfo>;
  /** Sends an ephemeral signal to every subscriber; false when it cannot be sent now. */
  signal(type: string, data?: unknown): boolean;
  /** Who is subscribed with presence fields. */
  presence(): Promise<Array<PresenceWho<P>>>;
  /** Stops it. */
  close(): void;
}

/** One connection to one holdfast server; made by {@link connect}. */
export class Client {
  private constructor();
  readonly state: ConnState;
  readonly transport: Transport | null;
  /** The base URL of the HTTP endpoints. */
  readonly httpUrl: string;
  /** The server's `holdfast/<version>`, once connected over WebSocket. */
  server?: string;
  readonly stats: ClientStats;
  /** Listens to state changes (called at once with the current state); returns the unlisten. */
  onState(fn: (state: ConnState, info: StateInfo) => void): () => void;
  /** Calls a method of an actor; rejects with a {@link HoldfastError}. */
  call<R = any, A = Record<string, unknown>>(address: string, method: string, args?: A, opts?: CallOptions): Promise<R>;
  /** Subscribes to an actor's events (one subscription per address per client). */
  subscribe<D = any, P extends object = Record<string, unknown>>(
    address: string,
    onEvent: (ev: HfEvent<D>, sub: Subscription<D, P>) => void,
    opts?: SubscribeOptions<D, P>,
  ): Subscription<D, P>;
  /** The subscription to an actor, if any. */
  subscription<D = any, P extends object = Record<string, unknown>>(address: string): Subscription<D, P> | undefined;
  /** An ephemeral broadcast (WebSocket only); false when it cannot be sent now. */
  signal(address: string, type: string, data?: unknown): boolean;
  /** Publishes `{type, data}` on `channel/{name}` (service or admin role). */
  publish<D = unknown>(channel: string, type: string, data?: D, opts?: CallOptions): Promise<{ seq: number }>;
  /** Many events in one request (`POST /v1/publish`): each item's `{seq}` or error, in order. */
  publishMany(items: Array<{ channel: string; type: string; data?: unknown }>, opts?: { key?: string | true }): Promise<Array<{ seq: number } | HoldfastError>>;
  /** The built-in `presence`. */
  presence<P extends object = Record<string, unknown>>(address: string): Promise<Array<PresenceWho<P>>>;
  /** The built-in `info`. */
  info(address: string): Promise<ActorInfo>;
  /** An actor's event log over HTTP. */
  events<D = any>(address: string, opts?: { after?: number; limit?: number }): Promise<EventPage<D>>;
  /** Uses another token from now on; on an open WebSocket it is sent as `auth`. */
  setToken(token: string): Promise<{ sub: string; exp: number }> | undefined;
  /** Asks `getToken` for a new token now and uses it. */
  refreshToken(reason?: string): Promise<string>;
  /** No more reconnects; pending calls fail with `closed`. */
  close(): void;
}

/** Connects to a holdfast server: `http(s)://host:port` or `ws(s)://host:port/v1/ws`; default the page's origin. */
export function connect(url?: string, options?: ConnectOptions): Client;
