"""publish_e2e.py - a backend publishing to channels over POST /v1/publish
while WebSocket subscribers (holdfast tail) receive every event in order
and a poller catches up with GET /v1/events ?after=; who may publish; bad
publish inputs.
    python3 tests/py/publish_e2e.py BUILD_DIR"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(__file__))
import hf  # noqa: E402

SECRET = "publish-e2e-secret"
failures = hf.failures
check = hf.check


class Tail:
    """holdfast tail ADDR: every event line it prints, collected."""

    def __init__(self, build, url, addr, token):
        self.events = []
        self.proc = subprocess.Popen(
            [os.path.join(build, "bin", "holdfast"), "tail", addr,
             "--url", url, "--token", token],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.proc.stdout:
            m = json.loads(line)
            if m.get("op", "event") == "event":
                self.events.append(m)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(hf.WAIT_S)


def main():
    build = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="hf-publish.")
    srv = hf.Server(build, os.path.join(tmp, "data"),
                    ["--jwt-secret", SECRET, "--frame-max", "4096"])
    tails = []
    try:
        svc = {"Authorization": "Bearer " + hf.mint(SECRET, "api", "service")}
        user = hf.mint(SECRET, "kim", "user")
        pub = srv.url + "/v1/publish"
        ws = f"ws://127.0.0.1:{srv.port}"
        # Subscribers first: two on "a", one on "b".
        tails = [Tail(build, ws, "channel/a", user),
                 Tail(build, ws, "channel/a", user),
                 Tail(build, ws, "channel/b", user)]
        # Each tail prints nothing until its sub is answered; publish a
        # marker until every tail has seen one, so none misses the rest.
        n = 0
        while not all(t.events for t in tails):
            n += 1
            for ch in ("a", "b"):
                st, r = hf.request("POST", pub, {"channel": ch, "type": "hello",
                                                  "data": n}, svc)
                check(st == 200 and r["ok"], f"marker publish {r}")
            hf.time.sleep(0.1)
            if n > 300:
                raise AssertionError("the tails never subscribed")

        # Single publishes, then batches over both channels; replaying a
        # batch with its Idempotency-Key publishes nothing twice.
        seqs = {"a": n, "b": n}
        for i in range(20):
            st, r = hf.request("POST", pub, {"channel": "a", "type": "single",
                                              "data": {"i": i}}, svc)
            seqs["a"] += 1
            check(st == 200 and r == {"ok": True,
                                      "result": {"seq": seqs["a"]}},
                  f"single publish {st} {r}")
        for k in range(10):
            batch = [{"channel": "a" if j % 3 else "b", "type": "batch",
                      "data": {"k": k, "j": j}} for j in range(12)]
            h = dict(svc, **{"Idempotency-Key": f"batch-{k}"})
            st, r = hf.request("POST", pub, batch, h)
            check(st == 200 and r["ok"] and len(r["results"]) == 12,
                  f"batch {st} {r}")
            want = []
            for it in batch:
                seqs[it["channel"]] += 1
                want.append({"ok": True,
                             "result": {"seq": seqs[it["channel"]]}})
            check(r.get("results") == want, f"batch results {r}")
            st2, r2 = hf.request("POST", pub, batch, h)
            check(st2 == 200 and r2 == r, f"replayed batch answered {r2}")

        # Who may publish.
        st, r = hf.request("POST", pub, {"channel": "a", "type": "x"},
                           {"Authorization": "Bearer " + user})
        check(st == 403 and r["error"]["code"] == "forbidden",
              f"a user publishes: {st} {r}")
        granted = hf.mint(SECRET, "kim", "user", acl=["channel/a"])
        st, r = hf.request("POST", pub, [{"channel": "a", "type": "x"},
                                         {"channel": "b", "type": "x"}],
                           {"Authorization": "Bearer " + granted})
        seqs["a"] += 1
        check(st == 200 and r["results"][0] == {"ok": True, "result":
                                                {"seq": seqs["a"]}}
              and r["results"][1]["error"]["code"] == "forbidden",
              f"acl-granted publish {r}")
        st, r = hf.request("POST", pub, {"channel": "a", "type": "x"})
        check(st == 401, f"no token: {st}")

        # Bad inputs, each refused with a clear error, nothing published.
        bad = [
            ({"channel": "no/slash", "type": "x"}, 400, "bad_request"),
            ({"channel": "", "type": "x"}, 400, "bad_request"),
            ({"type": "x"}, 400, "bad_request"),
            ({"channel": "a"}, 400, "bad_request"),
            ({"channel": "a", "type": ""}, 400, "bad_request"),
            ({"channel": "a", "type": "t" * 65}, 400, "bad_request"),
            ({"channel": "a", "type": 5}, 400, "bad_request"),
            ([], 400, "bad_request"),
            ("not an object", 400, "bad_request"),
            ({"channel": "a", "type": "x", "data": "z" * 5000}, 413,
             "too_large"),
        ]
        for body, status, code in bad:
            st, r = hf.request("POST", pub, body, svc)
            check(st == status and r["error"]["code"] == code,
                  f"bad publish {str(body)[:60]}: {st} {r}")
        st, r = hf.request("POST", pub, b"{nope", svc)
        check(st == 400, f"invalid JSON: {st} {r}")
        st, r = hf.request("POST", pub, [{"channel": "a", "type": "ok"},
                                         {"channel": "a"}, 7], svc)
        seqs["a"] += 1
        check(st == 200 and r["results"][0]["ok"] and
              r["results"][1]["error"]["code"] == "bad_request" and
              r["results"][2]["error"]["code"] == "bad_request",
              f"per-item errors in place: {r}")

        # Subscribers: every event once, in seq order, none missing.
        for t, ch in zip(tails, ("a", "a", "b")):
            hf.wait_for(f"tail of {ch}",
                        lambda: t.events and
                        t.events[-1]["seq"] >= seqs[ch])
            got = [e["seq"] for e in t.events]
            first = got[0]
            check(got == list(range(first, seqs[ch] + 1)),
                  f"tail {ch} saw {got[:5]}...{got[-5:]}, want "
                  f"{first}..{seqs[ch]}")
        # A poller that stopped at seq 10 catches up from there.
        after, polled = 10, []
        while True:
            st, r = hf.request("GET", srv.url +
                               f"/v1/events/channel/a?after={after}&limit=7",
                               headers=svc)
            check(st == 200, f"poll {st} {r}")
            if not r["events"]:
                break
            polled += [e["seq"] for e in r["events"]]
            after = r["events"][-1]["seq"]
        check(polled == list(range(11, seqs["a"] + 1)), f"poller {polled}")
    finally:
        for t in tails:
            t.stop()
        srv.stop()
        if not failures:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"publish_e2e: {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
