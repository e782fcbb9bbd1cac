// The waiting-room board as a small React app on holdfast-client/react:
// the store's list kept current by its events (useActorState), the
// connection state (useConnectionState), who is watching (usePresence),
// calls with their pending/error state (useCall). Two views:
//   /react-board/?store=ID                  the board (TV), with "Call next"
//   /react-board/?store=ID&view=register    take tickets, see them called
// (&react=18: the React 18 bundle; &transport=ws|poll|auto as in the other demos)
// Bundled with esbuild by build.sh (nothing built is committed).
import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import {
  HoldfastProvider, useActorState, useCall, useClient, useConnectionState, usePresence,
} from 'holdfast-client/react';
import { Queue } from '../waiting/queue.js';

const params = new URLSearchParams(location.search);
const store = params.get('store') || 'gangnam-1';
const address = `store/${store}`;
const view = params.get('view') || 'board';

/** A new Queue that shares nothing mutable with `q` (React state is never mutated). */
function copy(q) {
  const n = new Queue();
  for (const [id, t] of q.tickets) n.tickets.set(id, Object.assign({}, t));
  n.order = q.order.slice();
  n.called = q.called.slice();
  n.done = q.done.slice();
  return n;
}
const queueOpts = {
  load: 'list',
  init: (list) => { const q = new Queue(); q.load(list); return q; },
  reduce: (q, ev) => { const n = copy(q); n.apply(ev); return n; },
};

function Header({ title }) {
  const conn = useConnectionState();
  const client = useClient();
  useEffect(() => { window.hf = client; }, [client]); // for the tests and the console
  useEffect(() => { window.hfMounts = (window.hfMounts || 0) + 1; }, []); // 2 under StrictMode
  return (
    <header className="bar">
      <a className="home" href="/">◆ holdfast</a>
      <h1>{title}</h1>
      <span className="conn" id="conn" data-state={conn.state}>{conn.state}{conn.transport ? ` · ${conn.transport}` : ''}</span>
    </header>
  );
}

function Board() {
  const { state: q, status, error, seq } = useActorState(address, queueOpts);
  const { who } = usePresence(address, { name: 'board', view: 'board' });
  const callNext = useCall(address, 'call');
  useEffect(() => { window.app = { q, status, seq }; }, [q, status, seq]);
  const calling = q ? q.calling().slice().reverse() : [];
  const waiting = q ? q.waiting() : [];
  return (
    <main id="board" data-status={status} data-seq={seq ?? ''}>
      <section>
        <div className="row">
          <h2 className="grow">Now calling</h2>
          <button id="call-next" onClick={() => callNext.run({})} disabled={callNext.pending}>Call next</button>
        </div>
        {callNext.error && <p className="err" id="call-error">{callNext.error.code}: {callNext.error.message}</p>}
        <div id="calling">
          {calling.length ? calling.slice(0, 6).map((t, i) => (
            <div key={t.ticket} className={`call${i === 0 ? ' latest' : ''}`} data-ticket={t.ticket}>
              <span className="num">{t.number}</span><span className="who">{t.name}</span>
            </div>
          )) : <div className="none">Nobody is being called right now.</div>}
        </div>
      </section>
      <section>
        <h2>Waiting <span id="waiting-count">{waiting.length}</span> · {status}{error ? ` · ${error.code}` : ''}</h2>
        <table>
          <thead><tr><th>#</th><th>Ticket</th><th>Name</th><th>Party</th></tr></thead>
          <tbody id="waiting">
            {waiting.length ? waiting.map((t) => (
              <tr key={t.ticket} data-ticket={t.ticket}><td>{t.position}</td><td className="num">{t.number}</td><td>{t.name}</td><td>{t.party}</td></tr>
            )) : <tr><td className="none" colSpan={4}>No one is waiting.</td></tr>}
          </tbody>
        </table>
        <p className="none" id="watchers">{who.length} watching</p>
      </section>
    </main>
  );
}

function Register() {
  const { state: q } = useActorState(address, queueOpts);
  const register = useCall(address, 'register');
  const [name, setName] = useState('');
  const [party, setParty] = useState(2);
  const [mine, setMine] = useState([]);
  useEffect(() => { window.app = { q, mine }; }, [q, mine]);
  const submit = async (e) => {
    e.preventDefault();
    const t = await register.run({ name, party: Number(party) }, { key: true });
    if (t) { setMine((m) => m.concat([t.ticket])); setName(''); }
  };
  return (
    <main className="register">
      <form onSubmit={submit}>
        <input id="name" placeholder="Your name" value={name} onChange={(e) => setName(e.target.value)} />
        <input id="party" type="number" min="1" max="20" value={party} onChange={(e) => setParty(e.target.value)} />
        <button id="take" disabled={register.pending}>Take a ticket</button>
        {register.error && <p className="err" id="error" data-code={register.error.code}>{register.error.code}: {register.error.message}</p>}
      </form>
      <ul className="mine" id="mine">
        {mine.map((id) => {
          const t = q && q.tickets.get(id);
          const pos = q && q.positionOf(id);
          const st = t ? t.status : 'waiting';
          return <li key={id} data-ticket={id} data-status={st}>#{t ? t.number : '…'} {t ? t.name : ''}: {st === 'waiting' && pos ? `waiting, ${pos} in line` : st}</li>;
        })}
      </ul>
    </main>
  );
}

function App() {
  return (
    <HoldfastProvider url={location.origin} token={params.get('token') || undefined}
      options={{ backoffMax: 2000, transport: params.get('transport') || 'auto' }}>
      <Header title={view === 'register' ? `Take a ticket · ${store}` : `Waiting list · ${store}`} />
      {view === 'register' ? <Register /> : <Board />}
    </HoldfastProvider>
  );
}

if (view === 'board') document.body.classList.add('tv'); // the dark TV style of the other boards
createRoot(document.getElementById('root')).render(<StrictMode><App /></StrictMode>);
