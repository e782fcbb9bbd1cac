// Types of holdfast-client/react (react.js). React 18 and 19.
import type { ReactNode } from 'react';
import type {
  CallOptions, Client, ConnState, ConnectOptions, HfEvent, HfSignal, HoldfastError,
  PresenceNotice, PresenceWho, ReadyInfo, StateInfo, TokenRequest,
} from './holdfast.js';

export interface HoldfastProviderProps {
  /** The server (default: the page's origin). A new url makes a new connection. */
  url?: string;
  /** The current token; a new value is sent on the open connection (`auth`). */
  token?: string;
  /** Renews the token before it expires and when the server refuses it. */
  getToken?: (why: TokenRequest) => string | Promise<string>;
  /** The rest of connect()'s options, read when the connection is made. */
  options?: Omit<ConnectOptions, 'token' | 'getToken'>;
  /** Use this client instead of making one (the provider does not close it). */
  client?: Client;
  children?: ReactNode;
}

/** One connection for the app, made on mount and closed on unmount. */
export function HoldfastProvider(props: HoldfastProviderProps): ReactNode;

/** The provider's client; null before its first effect or outside a provider. */
export function useClient(): Client | null;

export type ConnectionState = StateInfo & { state: ConnState };
/** The connection's state, re-rendered on every change. */
export function useConnectionState(): ConnectionState;

export interface CallState<R> {
  pending: boolean;
  /** The last call's error: `error.code` and `error.message`. */
  error: HoldfastError | null;
  result: R | undefined;
  /** Forget the last result or error. */
  reset(): void;
}
export interface UseCall extends CallState<any> {
  /** Rejects with a {@link HoldfastError}. */
  call<R = any, A = Record<string, unknown>>(address: string, method: string, args?: A, opts?: CallOptions): Promise<R>;
  /** Never rejects: resolves undefined on error (see `error`). */
  run<R = any, A = Record<string, unknown>>(address: string, method: string, args?: A, opts?: CallOptions): Promise<R | undefined>;
}
export interface UseBoundCall<A, R> extends CallState<R> {
  call(args?: A, opts?: CallOptions): Promise<R>;
  run(args?: A, opts?: CallOptions): Promise<R | undefined>;
}
/** Calls with pending/error/result state for the UI. */
export function useCall(): UseCall;
/** The same, bound to one method of one actor. */
export function useCall<A = Record<string, unknown>, R = any>(address: string, method: string): UseBoundCall<A, R>;

/**
 * `connecting` (no subscription yet), `live` (subscribed, connection open),
 * `reconnecting` (connection lost: it resumes with `since`), `error` (the
 * server refused it: see `error`), `closed`.
 */
export type SubStatus = 'connecting' | 'live' | 'reconnecting' | 'error' | 'closed';

export interface SubscriptionOptions<D = any, P extends object = Record<string, unknown>> {
  /** Start after this seq (events after it are replayed). */
  since?: number;
  epoch?: string;
  /** Keep at most this many events (1000). */
  limit?: number;
  /** Presence fields for this client. */
  presence?: P;
  onEvent?: (ev: HfEvent<D>) => void;
  onReady?: (info: ReadyInfo) => void;
  onSignal?: (sig: HfSignal) => void;
  onPresence?: (p: PresenceNotice<P>) => void;
  onError?: (err: HoldfastError) => void;
}

export interface SubscriptionState<D = any> {
  /** Events since it subscribed, once each, in seq order; starts over after `recovered: false`. */
  events: Array<HfEvent<D>>;
  seq: number | null;
  epoch: string | null;
  /** The latest (re)subscription's report. */
  ready: ReadyInfo | null;
  error: HoldfastError | null;
  status: SubStatus;
  /** Sends an ephemeral signal to the actor; false when it cannot now. */
  signal(type: string, data?: unknown): boolean;
}
/** An actor's events (null address: nothing). */
export function useSubscription<D = any, P extends object = Record<string, unknown>>(
  address: string | null | undefined, opts?: SubscriptionOptions<D, P>): SubscriptionState<D>;

export interface ActorStateOptions<S, D = any, L = S> {
  /**
   * A method of the actor (`'list'`, `['list', {all: true}]`), or a
   * function (events racing it are then applied after it: `reduce` must
   * allow an event the loaded state already holds).
   */
  load: string | [string, Record<string, unknown>] | ((client: Client, address: string) => Promise<L>);
  /** Makes the state from what `load` gave (default: that result itself). */
  init?: (loaded: L) => S;
  /** The next state after an event (return a new object). */
  reduce: (state: S, ev: HfEvent<D>) => S;
  presence?: Record<string, unknown>;
}
export interface ActorState<S> {
  /** undefined until loaded. */
  state: S | undefined;
  seq: number | null;
  status: SubStatus;
  loading: boolean;
  error: HoldfastError | null;
  /** Load again now. */
  refetch(): void;
}
/** An actor's state: loaded, kept current by events, reloaded after `recovered: false`. */
export function useActorState<S, D = any, L = S>(address: string | null | undefined, opts: ActorStateOptions<S, D, L>): ActorState<S>;

export interface PresenceState<P extends object> {
  who: Array<PresenceWho<P>>;
  status: SubStatus;
  error: HoldfastError | null;
  refetch(): void;
}
/** Joins an actor's presence list as `me` and returns the list. */
export function usePresence<P extends object = Record<string, unknown>>(address: string | null | undefined, me: P): PresenceState<P>;
