// A typed app on holdfast-client, checked by `tsc --strict --noEmit`
// (tests/clients/js.sh). Lines starting "// WRONG: " are misuses: the test
// uncomments them and tsc must refuse each.
import { connect, HoldfastError, type HfEvent, type ReadyInfo, type Subscription } from 'holdfast-client';
import {
  HoldfastProvider, useActorState, useCall, useConnectionState, usePresence, useSubscription,
} from 'holdfast-client/react';

interface Ticket { ticket: string; name: string; party: number; status: 'waiting' | 'called' | 'seated' | 'no_show' | 'cancelled' }
interface List { tickets: Ticket[] }
interface RegisterArgs { name: string; party: number; class?: string }

export async function backend(): Promise<number> {
  const hf = connect('http://127.0.0.1:8080', {
    transport: 'auto',
    getToken: async ({ reason }) => `token-for-${reason}`,
    onState: (state, info) => console.log(state, info.transport, info.reason),
  });
  const t = await hf.call<Ticket, RegisterArgs>('store/gangnam-1', 'register', { name: 'Kim', party: 2 }, { key: true });
  const name: string = t.name;
  const sub: Subscription<Ticket> = hf.subscribe<Ticket>('store/gangnam-1', (ev: HfEvent<Ticket>) => {
    const party: number = ev.data.party;
    console.log(ev.seq, ev.type, party);
  }, {
    since: 10,
    onReady: (info: ReadyInfo) => { if (!info.recovered && info.reason === 'gap') console.log('reload'); },
    onError: (e) => console.log(e.code, e.message),
  });
  const r = await hf.publish('news', 'posted', { id: 1 });
  try {
    await hf.call('store/gangnam-1', 'cancel', { ticket: t.ticket });
  } catch (e) {
    if (e instanceof HoldfastError && (e.code === 'forbidden' || e.code === 'closed')) console.log(e.status);
  }
  const room = hf.subscribe<{ text: string }, { name: string }>('room/lobby', (ev) => console.log(ev.data.text), {
    presence: { name: 'Kim' },
    onSignal: (sig) => console.log(sig.type, sig.by, sig.data),
    onPresence: (p) => console.log(p.action, p.who.name, p.who.sub),
  });
  const typing: boolean = room.signal('typing', { on: true }) && hf.signal('room/lobby', 'typing');
  const many = await hf.publishMany([{ channel: 'news', type: 'posted', data: { id: 2 } }], { key: true });
  for (const m of many) if (m instanceof HoldfastError) console.log(m.code); else console.log(m.seq, typing);
  const info = await hf.info('room/lobby');
  const page = await hf.events<{ text: string }>('room/lobby', { after: info.seq - 10, limit: 10 });
  console.log(page.events.map((e) => e.data.text), hf.stats.reconnects, hf.state, hf.transport);
  const who = await sub.presence();
  // WRONG: room.subscription;
  // WRONG: hf.subscribe<{ text: string }, { name: string }>('room/x', () => {}, { presence: { nick: 'Kim' } });
  sub.close();
  hf.close();
  // WRONG: hf.subscribe('store/x', (ev: HfEvent<Ticket>) => ev.data.nope);
  // WRONG: const bad: number = await hf.call<string>('store/x', 'get');
  // WRONG: hf.call<Ticket, RegisterArgs>('store/x', 'register', { name: 'Kim' });
  // WRONG: connect('http://x', { transport: 'carrier-pigeon' });
  return r.seq + name.length + who.length;
}

function Board() {
  const conn = useConnectionState();
  const { state, status, error, refetch } = useActorState<List, Ticket>('store/gangnam-1', {
    load: 'list',
    reduce: (s, ev) => ({ tickets: s.tickets.filter((x) => x.ticket !== ev.data.ticket).concat([ev.data]) }),
  });
  const { events, seq } = useSubscription<Ticket>('store/gangnam-1', { limit: 50 });
  const { who } = usePresence<{ name: string }>('store/gangnam-1', { name: 'board' });
  const register = useCall<RegisterArgs, Ticket>('store/gangnam-1', 'register');
  const any = useCall();
  // WRONG: register.call({ name: 3, party: 2 });
  // WRONG: const s: 'online' = status;
  return (
    <div data-state={conn.state} data-status={status} data-seq={seq ?? -1}>
      {error && <p>{error.code}: {error.message}</p>}
      {state?.tickets.map((t) => <p key={t.ticket}>{t.name} ({t.party})</p>)}
      <p>{events.length} events; {who.map((w) => w.name).join(', ')}</p>
      <button onClick={() => register.run({ name: 'Lee', party: 3 })} disabled={register.pending}>Register</button>
      <button onClick={() => { void any.call<number>('counter/x', 'incr', { by: 1 }).then((n) => n + 1); refetch(); }}>+1</button>
      {register.error && <p>{register.error.code}</p>}
      {register.result && <p>ticket {register.result.ticket}</p>}
    </div>
  );
}

export function App({ token }: { token: string }) {
  return (
    <HoldfastProvider url="http://127.0.0.1:8080" token={token} getToken={async () => token} options={{ backoffMax: 5000 }}>
      <Board />
    </HoldfastProvider>
  );
}
