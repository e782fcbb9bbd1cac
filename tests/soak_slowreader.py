#!/usr/bin/env python3
"""soak_slowreader.py - the slow-consumer and churn side of tests/soak.sh.

Speaks protocol v1 in JSON over raw sockets (stdlib only, no `ws`), so each
client controls exactly how much it reads, and when.

  python3 tests/soak_slowreader.py --port PORT --status FILE [flags]

Runs until SIGTERM or SIGINT, then stops its clients, prints a report and
exits 0 when every check passed, 1 when one failed, 2 on bad usage.

Design notes
------------
One actor, counter/soak-busy.<tag> (fresh, so an incr's result is the seq
of the event it emits), is kept busy by a publisher connection calling
incr {emit: true} at --rate calls/s with at most --window in flight. Its
subscribers:

  stall     (--stall N)    subscribe with a small receive buffer and read
                           nothing for --stall-s seconds; then drain what
                           is there. The server must have closed them with
                           1013 (over --outbuf-max queued). They reconnect.
                           Every other one keeps writing meanwhile (see
                           staller()).
  slow      (--slow N)     read --slow-pct percent of the bytes the
                           publisher produces: they fall further behind
                           for ever and must be cut with 1013 (or a
                           reset, see slow()). Reconnect.
  laggard   (--laggards N) keep reading, but only when more than
                           --lag-events behind the publisher: always
                           behind, never far enough to be cut. Every event
                           must arrive once, in seq order; cut anyway, it
                           resubscribes with since and checks the replay.
                           At the end it catches up: its last seq must be
                           the counter's value.

and beside them, connections that come and go (--churn-rate per second),
each ending a different way: a close handshake, a reset (SO_LINGER 0)
after subscribing, a FIN after a call, a handshake cut in the middle.

The server's own view of all this is in /metrics (soak.sh samples it);
this side reports what the clients saw. The checks that fail the run:
any error reply to the publisher or a churn call; a close code other than
1013 (or 1000 answering our close); a gap, duplicate or reorder in a
laggard's stream; a laggard not caught up at the end; no stall or slow
reader ever cut (when the run was long enough for one to be); a client
that could not connect. A laggard that was cut is reported, not failed:
where the bytes wait (kernel buffers or the server's queue) is not ours
to see.

Every second the counters go to --status as key=value lines (written to a
temporary file and renamed), which soak.sh reads for its samples.
"""
import argparse
import base64
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA
EVENT_BYTES = 110  # a counter "changed" event as a JSON line, roughly
CONNECT_TIMEOUT = 10.0
PING_S = 10.0      # a staller's protocol pings, to stay clear of the heartbeat

stop = threading.Event()   # set by SIGTERM/SIGINT: wind down
lock = threading.Lock()    # guards stats
stats = {
    "pub_sent": 0, "pub_acked": 0, "pub_errors": 0,
    "stall_conns": 0, "stall_cuts": 0, "stall_resets": 0, "stall_uncut": 0,
    "slow_conns": 0, "slow_cuts": 0, "slow_resets": 0,
    "laggard_events": 0, "laggard_lag": 0, "laggard_lag_max": 0,
    "laggard_cuts": 0, "laggard_gaps": 0, "laggard_dups": 0,
    "laggard_replayed": 0, "laggard_unrecovered": 0,
    "churn": 0, "churn_clean": 0, "churn_reset": 0, "churn_fin": 0,
    "churn_halfhs": 0,
    "connect_failures": 0, "bad_closes": 0, "errors": 0,
}
problems = []  # first few failure descriptions, for the report


def count(key, n=1):
    with lock:
        stats[key] += n


def problem(key, what):
    with lock:
        stats[key] += 1
        if len(problems) < 20:
            problems.append(what)


class Closed(Exception):
    """The server closed the connection: code is its close code, or None
    for a TCP close without a close frame."""

    def __init__(self, code):
        super().__init__("closed %s" % code)
        self.code = code


class WS:
    """A WebSocket client connection (RFC 6455) to /v1/ws, JSON protocol.

    Owned by one thread. recv_some() reads at most the bytes asked for and
    returns the complete messages they finish; pings are answered at once."""

    def __init__(self, port, rcvbuf=None):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # Before connect, so the window is small from the start (and
            # the kernel does not autotune it up).
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(CONNECT_TIMEOUT)
        self.buf = bytearray()
        self.frag = bytearray()
        self.nread = 0  # bytes the last recv_some read
        try:
            self.s.connect(("127.0.0.1", port))
            key = base64.b64encode(os.urandom(16)).decode()
            self.s.sendall(("GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Key: %s\r\n"
                            "Sec-WebSocket-Version: 13\r\n"
                            "Sec-WebSocket-Protocol: holdfast.v1.json\r\n\r\n"
                            % (port, key)).encode())
            while b"\r\n\r\n" not in self.buf:
                d = self.s.recv(4096)
                if not d:
                    raise ConnectionError("closed during the handshake")
                self.buf += d
        except (OSError, ConnectionError):
            self.s.close()
            raise
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            self.s.close()
            raise ConnectionError("handshake refused: %r"
                                  % head.split(b"\r\n")[0])
        self.buf = bytearray(rest)

    def frame(self, payload, opcode=OP_TEXT):
        """One masked frame carrying payload, as bytes to send."""
        n = len(payload)
        mask = os.urandom(4)
        if n < 126:
            hdr = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        m = (mask * (n // 4 + 1))[:n]
        body = (int.from_bytes(payload, "big") ^
                int.from_bytes(m, "big")).to_bytes(n, "big") if n else b""
        return hdr + mask + body

    def send_json(self, obj):
        self.s.sendall(self.frame(json.dumps(obj).encode()))

    def send_frames(self, frames):
        self.s.sendall(b"".join(frames))

    def close(self, reset=False):
        if reset:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                              struct.pack("ii", 1, 0))
        self.s.close()

    def _frames(self):
        """Complete frames in self.buf, consumed: (opcode, payload)."""
        out = []
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            n, off = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    break
                n, off = struct.unpack_from("!H", self.buf, 2)[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    break
                n, off = struct.unpack_from("!Q", self.buf, 2)[0], 10
            if b1 & 0x80:
                raise ConnectionError("masked frame from the server")
            if len(self.buf) < off + n:
                break
            payload = bytes(self.buf[off:off + n])
            del self.buf[:off + n]
            out.append((b0 & 0x80, b0 & 0x0F, payload))
        return out

    def recv_some(self, nbytes, timeout):
        """Reads at most nbytes (waiting up to timeout for them), and
        returns the messages they completed. A close frame or EOF raises
        Closed, carrying the messages before it in .msgs."""
        self.nread = 0
        r, _, _ = select.select([self.s], [], [], timeout)
        if r:
            d = self.s.recv(nbytes)
            if not d:
                e = Closed(None)
                e.msgs = []
                raise e
            self.nread = len(d)
            self.buf += d
        msgs = []
        for fin, op, payload in self._frames():
            if op == OP_PING:
                self.s.sendall(self.frame(payload, OP_PONG))
            elif op == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] \
                    if len(payload) >= 2 else None
                e = Closed(code)
                e.msgs = msgs
                raise e
            elif op in (OP_TEXT, 0x0, 0x2):
                self.frag += payload
                if fin:
                    for line in bytes(self.frag).split(b"\n"):
                        if line:
                            msgs.append(json.loads(line))
                    self.frag = bytearray()
        return msgs


def wait_reply(ws, rid, timeout=CONNECT_TIMEOUT):
    """Reads until the reply to id rid; returns it (others are dropped)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for m in ws.recv_some(65536, 0.2):
            if m.get("op") == "reply" and m.get("id") == rid:
                return m
    raise TimeoutError("no reply to %r" % rid)


def connect(port, rcvbuf=None):
    """A connection, or None after counting the failure (and backing off)."""
    try:
        return WS(port, rcvbuf)
    except (OSError, ConnectionError) as e:
        problem("connect_failures", "connect: %s" % e)
        stop.wait(1.0)
        return None


def sleep_until(t):
    d = t - time.monotonic()
    if d > 0:
        stop.wait(d)


# ---------------------------------------------------------------- publisher


def publisher(a):
    """incr {emit: true} on the busy actor, --rate per second, paced from
    the start (a backlog of more than a second is forgiven, not burst)."""
    ws = None
    while not stop.is_set() and ws is None:
        ws = connect(a.port)
    if ws is None:
        return
    inflight, nid = 0, 0
    t0, sent = time.monotonic(), 0
    while not stop.is_set():
        due = int((time.monotonic() - t0) * a.rate) - sent
        if due > a.rate:
            t0 += (due - a.rate) / a.rate
            due = a.rate
        n = min(due, a.window - inflight)
        if n > 0:
            frames = []
            for _ in range(n):
                nid += 1
                frames.append(ws.frame(json.dumps(
                    {"op": "call", "id": nid, "to": a.actor,
                     "method": "incr", "args": {"emit": True}}).encode()))
            try:
                ws.send_frames(frames)
            except OSError as e:
                problem("errors", "publisher: send: %s" % e)
                return
            sent += n
            inflight += n
            count("pub_sent", n)
        try:
            msgs = ws.recv_some(65536, 0.005)
        except (Closed, OSError, ValueError) as e:
            problem("errors", "publisher: connection lost: %r" % e)
            return
        for m in msgs:
            if m.get("op") != "reply":
                continue
            inflight -= 1
            if m.get("ok"):
                v = m["result"]["value"]
                with lock:
                    if v > stats["pub_acked"]:
                        stats["pub_acked"] = v
            else:
                problem("pub_errors", "publisher: %s" % json.dumps(m))
    # Stopping: collect the replies still due, so that the counter's final
    # value (read next, by main) counts every incr this side sent.
    end = time.monotonic() + CONNECT_TIMEOUT
    try:
        while inflight > 0 and time.monotonic() < end:
            for m in ws.recv_some(65536, 0.1):
                if m.get("op") == "reply":
                    inflight -= 1
                    if m.get("ok"):
                        with lock:
                            stats["pub_acked"] = max(stats["pub_acked"],
                                                     m["result"]["value"])
    except (Closed, OSError, ValueError) as e:
        problem("errors", "publisher: lost while stopping: %r" % e)
    ws.close()


# ------------------------------------------------------ stall and slow


def subscribe(ws, actor, rid, since=None, epoch=None):
    msg = {"op": "sub", "id": rid, "to": actor}
    if since is not None:
        msg["since"] = since
        if epoch:
            msg["epoch"] = epoch
    ws.send_json(msg)


def drain_for_close(ws, seconds):
    """Reads everything for up to seconds; the close code seen, or False
    when the connection is still open."""
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            ws.recv_some(1 << 20, 0.1)
    except Closed as e:
        return e.code
    except OSError:
        return None
    return False


def staller(a, i):
    """Subscribes and reads nothing for --stall-s; then reads what there
    is, to see how the server ended it, and starts over.

    Even-numbered stallers are silent: the server's limit must have closed
    them with 1013, which they find after the data the kernel still held.
    --stall-s stays under the heartbeat's hang-up (2 x --heartbeat-s + 5 s
    of silence: 55 s by default), which would end them without a code.
    Odd-numbered ones still write (a protocol ping every PING_S), like a
    client whose reading is stuck but whose writing is not. Once the
    server has closed such a connection, its next frame arrives at a
    closed socket and the server's kernel answers with a reset, dropping
    the unsent data and the 1013 with it: for them a reset counts as the
    cut too."""
    talking = i % 2 == 1
    while not stop.is_set():
        ws = connect(a.port, rcvbuf=4096)
        if ws is None:
            continue
        count("stall_conns")
        try:
            subscribe(ws, a.actor, "stall-%d" % i)
        except OSError as e:
            problem("errors", "stall %d: sub: %s" % (i, e))
            ws.close()
            continue
        end, n, reset = time.monotonic() + a.stall_s, 0, False
        while not stop.wait(min(PING_S, max(0, end - time.monotonic()))) \
                and time.monotonic() < end:
            if talking and not reset:
                n += 1
                try:
                    ws.send_json({"op": "ping", "id": n})
                except OSError:
                    reset = True  # cut; the rest of the stall as planned
        if stop.is_set():
            ws.close()
            break
        code = drain_for_close(ws, 3.0)
        ws.close()
        if code == 1013:
            count("stall_cuts")
        elif talking and (reset or code is None):
            count("stall_cuts")
            count("stall_resets")
        elif code is False:
            # Not cut in stall_s: possible with a slow publisher or a
            # large --outbuf-max; fatal only if it never happens (report).
            count("stall_uncut")
        elif not stop.is_set():
            problem("bad_closes", "stall %d (%s): closed with %s, not 1013"
                    % (i, "talking" if talking else "silent", code))


def slow(a, i):
    """Reads --slow-pct percent of the production, 4 KiB at most per read,
    until the server cuts it; then reconnects. It answers the heartbeat
    pings it reads, so (as for a talking staller) a reset after the
    server's close counts as the cut as well."""
    budget_per_s = a.rate * EVENT_BYTES * a.slow_pct / 100.0
    while not stop.is_set():
        ws = connect(a.port, rcvbuf=4096)
        if ws is None:
            continue
        count("slow_conns")
        try:
            subscribe(ws, a.actor, "slow-%d" % i)
            allowance, last = 0.0, time.monotonic()
            while not stop.wait(0.05):
                now = time.monotonic()
                allowance = min(allowance + (now - last) * budget_per_s,
                                budget_per_s)  # at most a second's worth
                last = now
                while allowance >= 1:
                    ws.recv_some(int(min(allowance, 4096)), 0)
                    if ws.nread == 0:
                        break
                    allowance -= ws.nread
        except Closed as e:
            if e.code == 1013:
                count("slow_cuts")
            elif not stop.is_set():
                problem("bad_closes", "slow %d: closed with %s, not 1013"
                        % (i, e.code))
        except (ConnectionResetError, BrokenPipeError):
            count("slow_cuts")
            count("slow_resets")
        except (OSError, ValueError) as e:
            if not stop.is_set():
                problem("errors", "slow %d: %r" % (i, e))
        ws.close()


# ------------------------------------------------------------- laggard


class Stream:
    """The seq check of one laggard: every event once, in order."""

    def __init__(self, i):
        self.i, self.last, self.epoch = i, None, None

    def feed(self, msgs, replay=False):
        for m in msgs:
            op = m.get("op")
            if op == "reply":
                if not m.get("ok"):
                    problem("errors", "laggard %d: sub refused: %s"
                            % (self.i, json.dumps(m)))
                    continue
                res = m["result"]
                self.epoch = res.get("epoch", self.epoch)
                if self.last is None:
                    self.last = res["seq"]
                elif not res.get("recovered", False):
                    problem("laggard_unrecovered",
                            "laggard %d: since %d not recovered: %s"
                            % (self.i, self.last, json.dumps(res)))
                    self.last = res["seq"]
            elif op == "event":
                seq = m["seq"]
                if self.last is None:
                    continue  # before the sub reply: cannot happen
                if seq == self.last + 1:
                    self.last = seq
                    count("laggard_events")
                    if replay:
                        count("laggard_replayed")
                elif seq <= self.last:
                    problem("laggard_dups", "laggard %d: seq %d after %d"
                            % (self.i, seq, self.last))
                else:
                    problem("laggard_gaps", "laggard %d: seq %d after %d "
                            "(%d missing)" % (self.i, seq, self.last,
                                              seq - self.last - 1))
                    self.last = seq


def laggard(a, i):
    """Reads only while more than --lag-events behind the publisher, so it
    always trails by about that much; checks every event (Stream). Cut
    all the same (1013, or a reset: it answers pings), it resubscribes
    with since and the replay must close the gap."""
    st = Stream(i)
    ws = None
    replay = False
    while not stop.is_set():
        if ws is None:
            ws = connect(a.port, rcvbuf=16384)
            if ws is None:
                continue
            try:
                subscribe(ws, a.actor, "lag-%d" % i,
                          since=st.last, epoch=st.epoch)
            except OSError:
                ws.close()
                ws = None
                continue
            replay = st.last is not None
        try:
            stop.wait(0.05)
            while not stop.is_set():
                with lock:
                    acked = stats["pub_acked"]
                lag = acked - (st.last or 0)
                with lock:
                    stats["laggard_lag"] = lag
                    stats["laggard_lag_max"] = max(stats["laggard_lag_max"],
                                                   lag)
                if st.last is not None and lag <= a.lag_events:
                    replay = False
                    break
                msgs = ws.recv_some(4096, 0.05)
                st.feed(msgs, replay)
                if not msgs and not ws.buf:
                    break
        except Closed as e:
            st.feed(getattr(e, "msgs", []), replay)
            if e.code == 1013:
                count("laggard_cuts")
            elif not stop.is_set():
                problem("bad_closes", "laggard %d: closed with %s"
                        % (i, e.code))
            ws.close()
            ws = None
        except (ConnectionResetError, BrokenPipeError):
            count("laggard_cuts")
            ws.close()
            ws = None
        except (OSError, ValueError) as e:
            if not stop.is_set():
                problem("errors", "laggard %d: %r" % (i, e))
            ws.close()
            ws = None
    # The end: the publisher has stopped (see main); read up to the value
    # the counter holds, which every acknowledged incr raised by one.
    final = a.final if a.final_value.wait(30) else None
    if final is None:
        problem("errors", "laggard %d: no final value to catch up to" % i)
        if ws is not None:
            ws.close()
        return
    end = time.monotonic() + 30
    try:
        if ws is None:  # cut at the very end: the replay must still work
            ws = WS(a.port)
            subscribe(ws, a.actor, "lag-%d" % i, since=st.last,
                      epoch=st.epoch)
        while (st.last or 0) < final and time.monotonic() < end:
            st.feed(ws.recv_some(1 << 16, 0.2))
    except (Closed, OSError, ConnectionError, ValueError) as e:
        problem("errors", "laggard %d: lost while catching up: %r" % (i, e))
    if st.last != final:
        problem("errors", "laggard %d: caught up to seq %s, the counter "
                "holds %d" % (i, st.last, final))
    with lock:
        stats["laggard_lag"] = final - (st.last or 0)
    if ws is not None:
        ws.close()


# --------------------------------------------------------------- churn


def churn(a):
    """Short-lived connections at --churn-rate/s, ending four ways."""
    if a.churn_rate <= 0:
        return
    kinds = ["clean", "reset", "fin", "halfhs"]
    n = 0
    t = time.monotonic()
    while not stop.is_set():
        t += 1.0 / a.churn_rate
        sleep_until(t)
        if time.monotonic() - t > 5:
            t = time.monotonic()  # fell behind: do not burst
        kind = kinds[n % len(kinds)]
        n += 1
        try:
            if kind == "halfhs":
                s = socket.create_connection(("127.0.0.1", a.port),
                                             timeout=CONNECT_TIMEOUT)
                s.sendall(b"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Upgrade: websocket\r\n")
                s.close()
            else:
                ws = WS(a.port)
                if kind == "clean":
                    ws.s.sendall(ws.frame(struct.pack("!H", 1000) + b"bye",
                                         OP_CLOSE))
                    code = drain_for_close(ws, CONNECT_TIMEOUT)
                    if code not in (1000, None):
                        problem("bad_closes", "churn: close answered with "
                                "%s" % code)
                    ws.close()
                elif kind == "reset":
                    subscribe(ws, a.actor, "churn")
                    wait_reply(ws, "churn")
                    ws.close(reset=True)
                else:
                    ws.send_json({"op": "call", "id": 1, "to": a.actor,
                                  "method": "get"})
                    r = wait_reply(ws, 1)
                    if not r.get("ok"):
                        problem("errors", "churn: get: %s" % json.dumps(r))
                    ws.close()
            count("churn")
            count("churn_" + kind)
        except (OSError, ConnectionError, TimeoutError, Closed,
                ValueError) as e:
            if not stop.is_set():
                problem("connect_failures", "churn %s: %r" % (kind, e))


# ---------------------------------------------------------------- main


def write_status(path, extra=None):
    with lock:
        s = dict(stats)
    if extra:
        s.update(extra)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for k, v in s.items():
            f.write("%s=%s\n" % (k, v))
    os.replace(tmp, path)


def kernel_room():
    """Bytes of data the server's kernel holds for a reader that stopped:
    the send buffer autotunes up to tcp_wmem's maximum, which counts the
    kernel's bookkeeping too; about half of it is data (1.9 MB queued of
    3.9 MB, measured with ss on loopback)."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2]) // 2
    except (OSError, ValueError, IndexError):
        return 2 << 20


def final_value(a):
    """The busy counter's value, through a fresh connection."""
    ws = WS(a.port)
    ws.send_json({"op": "call", "id": "final", "to": a.actor,
                  "method": "get"})
    r = wait_reply(ws, "final")
    ws.close()
    return r["result"]["value"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--status", required=True, help="key=value file, 1/s")
    p.add_argument("--actor", default="counter/soak-busy.%x"
                   % random.getrandbits(32))
    p.add_argument("--rate", type=int, default=1000, help="publishes/s")
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--stall", type=int, default=3)
    p.add_argument("--stall-s", type=float, default=45.0,
                   help="under the heartbeat's hang-up, 55 s by default")
    p.add_argument("--slow", type=int, default=2)
    p.add_argument("--slow-pct", type=float, default=25.0)
    p.add_argument("--laggards", type=int, default=1)
    p.add_argument("--lag-events", type=int, default=1000)
    p.add_argument("--churn-rate", type=float, default=20.0)
    p.add_argument("--outbuf-max", type=int, default=4194304,
                   help="the server's --outbuf-max, for the timings")
    a = p.parse_args()
    if a.rate < 1 or a.window < 1 or not 0 < a.slow_pct < 100:
        p.error("--rate and --window must be at least 1, --slow-pct 0..100")
    # Before the server's 1013, a reader that stopped has the kernel's
    # send buffer and then the server's --outbuf-max to fill: how long
    # that takes at --rate says whether a stall can end in a cut, and
    # when a slow reader should be cut.
    a.queue_room = kernel_room() + a.outbuf_max
    produce = a.rate * EVENT_BYTES
    if a.stall_s < 1.2 * a.queue_room / produce:
        print("slowreader: note: at %d/s the queues take ~%.0f s to fill, "
              "about --stall-s (%.0f s): raise --rate for stalls that end "
              "in a cut" % (a.rate, a.queue_room / produce, a.stall_s),
              flush=True)
    # A slow reader is cut after queue_room / its deficit, and sees the
    # 1013 once it has read through what the kernel still held.
    a.slow_cut_s = (a.queue_room / (produce * (1 - a.slow_pct / 100)) +
                    kernel_room() / (produce * a.slow_pct / 100))
    a.final, a.final_value = None, threading.Event()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    t_start = time.monotonic()
    pub = threading.Thread(target=publisher, args=(a,), daemon=True)
    pub.start()
    # Subscribers after the publisher has made the actor exist.
    while not stop.is_set() and stats["pub_acked"] == 0 and \
            time.monotonic() - t_start < CONNECT_TIMEOUT:
        stop.wait(0.05)
    readers = []
    for i in range(a.stall):
        readers.append(threading.Thread(target=staller, args=(a, i)))
    for i in range(a.slow):
        readers.append(threading.Thread(target=slow, args=(a, i)))
    for i in range(a.laggards):
        readers.append(threading.Thread(target=laggard, args=(a, i)))
    readers.append(threading.Thread(target=churn, args=(a,)))
    for t in readers:
        t.daemon = True
        t.start()
    print("slowreader: %s at %d/s; %d stall (%.0f s each), %d slow (%.0f%%, "
          "cut expected after ~%.0f s), %d laggard (%d behind), churn %.0f/s"
          % (a.actor, a.rate, a.stall, a.stall_s, a.slow, a.slow_pct,
             a.slow_cut_s, a.laggards, a.lag_events, a.churn_rate),
          flush=True)
    while not stop.is_set():
        write_status(a.status)
        stop.wait(1.0)

    # Winding down: the publisher first, then what it published is final.
    pub.join(5)
    try:
        a.final = final_value(a)
    except (OSError, ConnectionError, TimeoutError, Closed, KeyError) as e:
        problem("errors", "final value: %r" % e)
    a.final_value.set()
    for t in readers:
        t.join(40)
    secs = time.monotonic() - t_start

    # The verdict.
    with lock:
        s = dict(stats)
    fails = []
    for k in ("pub_errors", "errors", "bad_closes", "connect_failures",
              "laggard_gaps", "laggard_dups", "laggard_unrecovered"):
        if s[k]:
            fails.append("%s %d" % (k, s[k]))
    # Never cut, when there was time for it: the limit does not work.
    if a.stall and secs > 2 * a.stall_s and s["stall_cuts"] == 0:
        fails.append("no stalled reader was ever cut (1013)")
    if a.slow and secs > 1.5 * a.slow_cut_s and s["slow_cuts"] == 0:
        fails.append("no slow reader was ever cut (1013)")
    ok = not fails
    write_status(a.status, {"final_value": a.final, "ok": int(ok)})
    print("slowreader: %.0f s; %d publishes acked (%d errors); "
          "stall %d conns, %d cut (%d by reset), %d not cut; "
          "slow %d conns, %d cut (%d by reset); "
          "laggard %d events, max lag %d, %d cut, %d replayed, %d gaps, "
          "%d dups; churn %d (clean %d, reset %d, fin %d, half-handshake %d)"
          % (secs, s["pub_acked"], s["pub_errors"],
             s["stall_conns"], s["stall_cuts"], s["stall_resets"],
             s["stall_uncut"],
             s["slow_conns"], s["slow_cuts"], s["slow_resets"],
             s["laggard_events"], s["laggard_lag_max"], s["laggard_cuts"],
             s["laggard_replayed"], s["laggard_gaps"], s["laggard_dups"],
             s["churn"], s["churn_clean"], s["churn_reset"], s["churn_fin"],
             s["churn_halfhs"]))
    for w in problems:
        print("slowreader:   " + w)
    if s["laggard_cuts"]:
        print("slowreader: note: a laggard was cut %d times (its lag "
              "stayed under --lag-events = %d events)"
              % (s["laggard_cuts"], a.lag_events))
    print("slowreader: %s" % ("OK" if ok else "FAIL (" + "; ".join(fails)
                                              + ")"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
