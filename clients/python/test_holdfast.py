"""Tests of holdfast.py against a real server (tests/clients/python.sh runs
them): call and errors, idempotent calls, publish (when the server has the
channel kind), subscribe with resume across a kill -9 and restart.

Environment: HF_BIN (the holdfast binary), HF_TMP (a scratch directory).
"""

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from holdfast import Client, HoldfastError  # noqa: E402

BIN = os.environ["HF_BIN"]
TMP = os.environ["HF_TMP"]


class Server:
    """holdfast serve on loopback: start, kill -9, restart on the same port and data."""

    def __init__(self, port=0, data=None):
        self.data = data or tempfile.mkdtemp(dir=TMP, prefix="data-")
        self.log = tempfile.NamedTemporaryFile(dir=TMP, prefix="server-", suffix=".log", delete=False).name
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data", self.data,
                                          "--workers", "2", "--gateways", "1"], stdout=out, stderr=out)
        deadline = time.time() + 15
        while True:
            with open(self.log) as f:
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                self.url = f"http://127.0.0.1:{self.port}"
                return
            if self.proc.poll() is not None or time.time() > deadline:
                self.proc.kill()
                raise RuntimeError("server did not start:\n" + open(self.log).read())
            time.sleep(0.02)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        self.proc.terminate()
        assert self.proc.wait(timeout=30) == 0, open(self.log).read()[-2000:]


class HoldfastTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()

    @classmethod
    def tearDownClass(cls):
        if cls.server.proc.poll() is None:
            cls.server.stop()

    def test_call_and_errors(self):
        hf = Client(self.server.url)
        self.assertEqual(hf.call("counter/py", "incr", {"by": 2}), {"value": 2})
        self.assertEqual(hf.call("counter/py", "get"), {"value": 2})
        with self.assertRaises(HoldfastError) as e:
            hf.call("counter/py", "nope")
        self.assertEqual(e.exception.code, "not_found")
        self.assertEqual(e.exception.status, 404)
        with self.assertRaises(HoldfastError) as e:
            hf.call("counter/py", "incr", {"by": "x"})
        self.assertEqual(e.exception.code, "bad_request")
        self.assertIn("by", e.exception.message)
        with self.assertRaises(HoldfastError) as e:
            hf.call("no address", "get")
        self.assertEqual(e.exception.code, "bad_request")
        with self.assertRaises(HoldfastError) as e:
            Client("http://127.0.0.1:1").call("counter/py", "get")
        self.assertEqual(e.exception.code, "unavailable")
        self.assertEqual(hf.info("counter/py")["seq"], 0)

    def test_idempotent_call(self):
        hf = Client(self.server.url)
        a = hf.call("counter/idem", "incr", {"by": 1}, key="py-once")
        b = hf.call("counter/idem", "incr", {"by": 1}, key="py-once")
        self.assertEqual(a, b)
        self.assertEqual(hf.call("counter/idem", "get"), {"value": 1})

    def test_store_register(self):
        hf = Client(self.server.url)
        t = hf.call("store/py-1", "register", {"name": "Kim", "party": 2})
        tickets = {x["ticket"]: x for x in hf.call("store/py-1", "list")["tickets"]}
        self.assertEqual(tickets[t["ticket"]]["name"], "Kim")

    def test_publish(self):
        hf = Client(self.server.url)
        try:
            r1 = hf.publish("py-news", "posted", {"id": 1})
        except HoldfastError as e:
            if e.code == "not_found":
                self.skipTest("this server has no channel kind (publish not built yet)")
            raise
        r2 = hf.publish("channel/py-news", "posted", {"id": 2}, key="py-pub-2")
        self.assertEqual(r2["seq"], r1["seq"] + 1)
        many = hf.publish_many([{"channel": "py-news", "type": "posted", "data": {"id": 3}},
                                {"channel": "bad name!", "type": "x"},
                                {"channel": "channel/py-other", "type": "posted"}], key="py-batch")
        self.assertEqual(many[0], {"seq": r2["seq"] + 1})
        self.assertIsInstance(many[1], HoldfastError)
        self.assertEqual(many[1].code, "bad_request")
        self.assertEqual(many[2], {"seq": 1})
        again = hf.publish_many([{"channel": "py-news", "type": "posted", "data": {"id": 3}},
                                 {"channel": "bad name!", "type": "x"},
                                 {"channel": "channel/py-other", "type": "posted"}], key="py-batch")
        self.assertEqual(again[0], many[0], "the same key publishes nothing twice")
        evs = hf.events("channel/py-news")["events"][:2]
        self.assertEqual([(e["type"], e["data"]) for e in evs[-2:]], [("posted", {"id": 1}), ("posted", {"id": 2})])

        async def first_two():
            out = []
            sub = hf.subscribe("channel/py-news", since=r1["seq"] - 1)
            async for ev in sub:
                out.append((ev["seq"], ev["data"]))
                if len(out) == 2:
                    break
            await sub.close()
            return out
        self.assertEqual(asyncio.run(asyncio.wait_for(first_two(), 20)), [(r1["seq"], {"id": 1}), (r2["seq"], {"id": 2})])

    def test_subscribe_resumes_after_kill_and_restart(self):
        hf = Client(self.server.url)
        readies = []

        async def scenario():
            sub = hf.subscribe("counter/py-live", on_ready=readies.append)
            it = sub.__aiter__()
            nxt = asyncio.ensure_future(it.__anext__())
            while not readies:  # subscribed
                await asyncio.sleep(0.02)
            seen = []
            for _ in range(3):
                await asyncio.to_thread(hf.call, "counter/py-live", "incr", {"emit": True})
            seen.append((await asyncio.wait_for(nxt, 10))["seq"])
            while len(seen) < 3:
                seen.append((await asyncio.wait_for(it.__anext__(), 10))["seq"])
            # kill -9; events made meanwhile through another server on the same data
            port, data = self.server.port, self.server.data
            self.server.kill()
            side = Server(data=data)
            for _ in range(4):
                Client(side.url).call("counter/py-live", "incr", {"emit": True})
            side.stop()
            type(self).server = Server(port=port, data=data)
            while len(seen) < 7:
                seen.append((await asyncio.wait_for(it.__anext__(), 30))["seq"])
            await asyncio.to_thread(hf.call, "counter/py-live", "incr", {"emit": True})
            seen.append((await asyncio.wait_for(it.__anext__(), 10))["seq"])
            await sub.close()
            return seen, sub

        seen, sub = asyncio.run(scenario())
        self.assertEqual(seen, list(range(1, 9)), "each event once, in order, none missed")
        self.assertEqual((readies[0]["recovered"], readies[0]["resumed"]), (False, False))
        self.assertEqual((readies[-1]["recovered"], readies[-1]["resumed"]), (True, True))
        self.assertGreaterEqual(sub.reconnects, 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
