#!/usr/bin/env python3
"""webhook_bench.py - webhook delivery throughput on this machine, on
loopback (a benchmark, not a test: it prints figures and checks only that
every event reached the receiver): events published through
POST /v1/publish in batches of 500 as fast as one HTTP connection goes,
delivered by the server's webhook sender to a local receiver (Python
ThreadingHTTPServer, one endpoint, --webhook-batch 500): events/s and
POSTs. The publish -> WebSocket figures are `holdfast-bench publish`.

    python3 bench/webhook_bench.py BUILD_DIR [--hook-events 20000]
        [--durability sync|none]

The receiver is Python and shares the cores with the server: the figures
are a floor for the server. Standard library only."""
import argparse
import http.client
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests",
                                "py"))
import hf  # noqa: E402


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
    p.add_argument("--hook-events", type=int, default=20000)
    p.add_argument("--durability", default="sync")
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="hf-hookbench.")
    print(f"durability {a.durability}; {os.cpu_count()} cores")
    try:
        ok = webhook_run(a.build, tmp, a)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
