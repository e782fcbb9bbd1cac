// A test fixture, not a demo: holdfast-client/react under StrictMode with a
// provider that renews its token through getToken (window.mintToken, given
// by the test), for tests/clients/react_board.test.mjs. Bundled by
// tests/clients/react.sh into BUILD/react-web/hooks-test/.
import { StrictMode, useEffect } from 'react';
import { createRoot } from 'react-dom/client';
import {
  HoldfastProvider, useActorState, useCall, useClient, useConnectionState, useSubscription,
} from 'holdfast-client/react';

const A = 'counter/hooks';

function Probe() {
  const client = useClient();
  const conn = useConnectionState();
  const sub = useSubscription(A);
  const st = useActorState(A, { load: 'get', reduce: (_s, ev) => ev.data });
  const bad = useCall(A, 'incr');
  useEffect(() => {
    window.hf = client;
    window.probe = {
      conn: conn.state, status: sub.status, seqs: sub.events.map((e) => e.seq), value: st.state ? st.state.value : null,
      stStatus: st.status, error: bad.error ? { code: bad.error.code, message: bad.error.message } : null,
    };
  });
  return (
    <div>
      <p id="conn">{conn.state}</p>
      <p id="status">{sub.status} {st.status}</p>
      <p id="value">{st.state ? st.state.value : '…'}</p>
      <button id="bad" onClick={() => bad.run({ by: 'not a number' })}>bad call</button>
      {bad.error && <p id="error">{bad.error.code}: {bad.error.message}</p>}
    </div>
  );
}

createRoot(document.getElementById('root')).render(
  <StrictMode>
    <HoldfastProvider url={location.origin} getToken={(why) => window.mintToken(why.reason)} options={{ backoffMax: 1000, refreshMargin: 1500 }}>
      <Probe />
    </HoldfastProvider>
  </StrictMode>,
);
