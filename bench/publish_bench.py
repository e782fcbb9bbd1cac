#!/usr/bin/env python3
"""publish_bench.py - figures for the integration paths of issue 14, on
this machine, on loopback (a benchmark, not a test: it prints figures and
checks only that nothing was lost or reordered):

  publish   POST /v1/publish batches from HTTP publishers -> WebSocket
            subscribers (`holdfast tail` processes): deliveries/s and the
            p50/p99 from the POST's start to each subscriber's read;
  fanout    `holdfast-bench fanout` (publishes as WebSocket calls) on the
            same server in the same run, the same subscriber count;
  webhook   events published as fast as possible, delivered to a local
            receiver (Python ThreadingHTTPServer): events/s and POSTs.

    python3 bench/publish_bench.py BUILD_DIR [--subs 20] [--channels 10]
        [--batches 200] [--batch 50] [--publishers 4] [--hook-events 20000]
        [--durability sync|none]

The subscribers and the webhook receiver are Python and share the two
cores with the server: the figures are a floor for the server, and say
so. Standard library only."""
import argparse
import http.client
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests",
                                "py"))
import hf  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))] if xs else 0


class Tail:
    def __init__(self, build, port, addr):
        self.got = []  # (seq, t)
        self.proc = subprocess.Popen(
            [os.path.join(build, "bin", "holdfast"), "tail", addr, "--url",
             f"ws://127.0.0.1:{port}"], stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, bufsize=0)
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        f = self.proc.stdout
        for line in iter(f.readline, b""):
            t = time.monotonic()
            m = re.search(rb'"seq":(\d+)', line)
            if m:
                self.got.append((int(m.group(1)), t))

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def publish_run(build, srv, a):
    chans = [f"b{i}" for i in range(a.channels)]
    tails = [Tail(build, srv.port, f"channel/{chans[i % a.channels]}")
             for i in range(a.subs)]
    # Warm up until every tail holds its subscription.
    conn = http.client.HTTPConnection("127.0.0.1", srv.port)
    n = 0
    while not all(t.got for t in tails):
        body = json.dumps([{"channel": c, "type": "warm"} for c in chans])
        conn.request("POST", "/v1/publish", body)
        conn.getresponse().read()
        n += 1
        time.sleep(0.05)
    base = {c: n for c in chans}
    for t in tails:
        t.got.clear()
    sent = {}  # (channel, seq) -> t
    lock = threading.Lock()
    errors = [0]

    def publisher(k):
        c = http.client.HTTPConnection("127.0.0.1", srv.port)
        for b in range(k, a.batches, a.publishers):
            items = [{"channel": chans[(b * a.batch + j) % a.channels],
                      "type": "tick", "data": {"b": b, "j": j}}
                     for j in range(a.batch)]
            t0 = time.monotonic()
            c.request("POST", "/v1/publish", json.dumps(items),
                      {"Content-Type": "application/json"})
            r = json.loads(c.getresponse().read())
            with lock:
                for it, res in zip(items, r["results"]):
                    if res["ok"]:
                        sent[(it["channel"], res["result"]["seq"])] = t0
                    else:
                        errors[0] += 1

    t0 = time.monotonic()
    ths = [threading.Thread(target=publisher, args=(k,))
           for k in range(a.publishers)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    tpub = time.monotonic()
    per = {c: sum(1 for (ch, _) in sent if ch == c) for c in chans}
    want = sum(per[chans[i % a.channels]] for i in range(a.subs))
    deadline = time.monotonic() + 120
    while sum(len(t.got) for t in tails) < want and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    lat, last, bad = [], t0, 0
    for i, t in enumerate(tails):
        c = chans[i % a.channels]
        seqs = [s for s, _ in t.got]
        if seqs != list(range(base[c] + 1, base[c] + per[c] + 1)):
            bad += 1
        for s, tr in t.got:
            if (c, s) in sent:
                lat.append(tr - sent[(c, s)])
            last = max(last, tr)
    for t in tails:
        t.stop()
    got = sum(len(t.got) for t in tails)
    print(f"publish: {len(sent)} events in {a.batches} POSTs of {a.batch} "
          f"from {a.publishers} publishers in {tpub - t0:.2f}s "
          f"({len(sent) / (tpub - t0):.0f} events/s published); "
          f"{got}/{want} deliveries to {a.subs} subscribers on "
          f"{a.channels} channels in {last - t0:.2f}s = "
          f"{got / (last - t0):.0f} deliveries/s; latency p50 "
          f"{pct(lat, 50) * 1e3:.1f} ms, p99 {pct(lat, 99) * 1e3:.1f} ms; "
          f"errors {errors[0]}, subscribers with loss or disorder {bad}")
    return got == want and bad == 0


def fanout_run(build, srv, a):
    ops = a.batches * a.batch
    out = subprocess.run(
        [os.path.join(build, "bin", "holdfast-bench"), "fanout", "--url",
         f"ws://127.0.0.1:{srv.port}", "--subscribers", str(a.subs),
         "--publishers", str(a.publishers), "--actors", str(a.channels),
         "--ops", str(ops), "--threads", "2"],
        capture_output=True, text=True, timeout=600)
    rows = [ln for ln in out.stdout.splitlines()
            if ln.startswith("fanout ") or ln.startswith("scenario")]
    print("fanout (publishes as WebSocket calls, holdfast-bench, same "
          "server):")
    for ln in rows:
        print("   ", ln)
    verdict = [ln for ln in out.stdout.splitlines()
               if ln.startswith("verify:")]
    print("   ", verdict[-1] if verdict else out.stdout[-400:])
    return out.returncode == 0


def webhook_run(build, tmp, a):
    got = [0, 0, None]  # events, posts, time of the last
    lock = threading.Lock()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            n = body.count(b'"seq":')
            with lock:
                got[0] += n
                got[1] += 1
                got[2] = time.monotonic()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *x):
            pass

    rx = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=rx.serve_forever, daemon=True).start()
    srv = hf.Server(build, os.path.join(tmp, "hook"),
                    ["--durability", a.durability, "--webhook",
                     f"http://127.0.0.1:{rx.server_address[1]}/h",
                     "--webhook-secret", "s", "--webhook-batch", "500"])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port)
        t0 = time.monotonic()
        for b in range(0, a.hook_events, 500):
            items = [{"channel": f"h{(b + j) % 50}", "type": "t", "data": j}
                     for j in range(min(500, a.hook_events - b))]
            conn.request("POST", "/v1/publish", json.dumps(items))
            conn.getresponse().read()
        tpub = time.monotonic()
        deadline = time.monotonic() + 300
        while got[0] < a.hook_events and time.monotonic() < deadline:
            time.sleep(0.02)
        dt = (got[2] or tpub) - t0
        print(f"webhook: {a.hook_events} events published in "
              f"{tpub - t0:.2f}s; {got[0]} delivered in {got[1]} POSTs, "
              f"the last {dt:.2f}s after the first publish = "
              f"{got[0] / dt:.0f} events/s to one endpoint")
        return got[0] >= a.hook_events
    finally:
        srv.stop()
        rx.shutdown()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("build")
    p.add_argument("--subs", type=int, default=20)
    p.add_argument("--channels", type=int, default=10)
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--publishers", type=int, default=4)
    p.add_argument("--hook-events", type=int, default=20000)
    p.add_argument("--durability", default="sync")
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="hf-pubbench.")
    ok = True
    srv = hf.Server(a.build, os.path.join(tmp, "data"),
                    ["--durability", a.durability, "--rate", "1000000",
                     "--rate-burst", "1000000"])
    try:
        print(f"durability {a.durability}; {os.cpu_count()} cores")
        ok &= publish_run(a.build, srv, a)
        ok &= fanout_run(a.build, srv, a)
    finally:
        srv.stop()
    ok &= webhook_run(a.build, tmp, a)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
