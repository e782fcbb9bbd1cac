"""holdfast.py - a Python client of holdfast, for backends (FastAPI, Django,
scripts). One file, standard library only for calls and publishing
(urllib); subscribing needs the `websockets` package (Debian:
python3-websockets, 10.x or later).

    from holdfast import Client, HoldfastError

    hf = Client("http://127.0.0.1:8080", token=SERVICE_JWT)
    ticket = hf.call("store/gangnam-1", "register", {"name": "Kim", "party": 2}, key="order-42")
    hf.publish("orders", "paid", {"id": 42})          # channel/orders

    async for ev in hf.subscribe("store/gangnam-1", since=10):
        print(ev["seq"], ev["type"], ev["data"])

Wire protocol: docs/DESIGN.md section 5 (HTTP in 5.6, WebSocket in 5.1-5.3).
"""

import asyncio
import json
import random
import re
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["Client", "HoldfastError", "Subscription", "VERSION"]
VERSION = "1.0.0"

_ADDRESS = re.compile(r"^[a-z][a-z0-9_]{0,31}/[A-Za-z0-9._:@-]{1,128}$")
# Codes worth trying again later (a subscription refused with one is retried).
_RETRYABLE = {"unavailable", "overloaded", "timeout", "internal", "storage_full", "rate_limited"}


class HoldfastError(Exception):
    """An error answered by the server, or made by the client.

    ``code`` is the server's (``bad_request``, ``unauthorized``,
    ``forbidden``, ``not_found``, ``conflict``, ``rate_limited``,
    ``too_large``, ``overloaded``, ``unavailable``, ``storage_full``,
    ``timeout``, ``internal``); ``unavailable`` also when the server could
    not be reached. ``status`` is the HTTP status when there was one.
    """

    def __init__(self, code, message=None, status=None):
        super().__init__(f"{code}: {message or code}")
        self.code = code
        self.message = message or code
        self.status = status


def _check_address(address):
    if not isinstance(address, str) or not _ADDRESS.match(address):
        raise HoldfastError("bad_request", f"not an actor address (kind/name): {address!r}")


def _error(body, status):
    e = (body or {}).get("error") or {}
    return HoldfastError(e.get("code") or "internal", e.get("message") or f"HTTP {status}", status)


class Client:
    """A holdfast server at ``base_url`` (``http(s)://host:port``; a path
    prefix is kept, for a reverse proxy). ``token``: a JWT, sent as
    ``Authorization: Bearer`` (and ``?token=`` on the WebSocket); omit it
    when auth is off. ``timeout``: seconds per HTTP request."""

    def __init__(self, base_url, token=None, timeout=10.0):
        u = urllib.parse.urlsplit(base_url)
        if u.scheme not in ("http", "https", "ws", "wss"):
            raise ValueError(f"base_url must be http(s):// or ws(s)://, not {base_url!r}")
        secure = u.scheme in ("https", "wss")
        path = re.sub(r"/v1/ws$", "", u.path.rstrip("/"))
        self.base_url = ("https://" if secure else "http://") + u.netloc + path
        self.ws_url = ("wss://" if secure else "ws://") + u.netloc + path + "/v1/ws"
        self.token = token
        self.timeout = timeout

    # ------------------------------------------------------------ HTTP

    def _request(self, method, path, body=None, headers=None):
        h = {"accept": "application/json"}
        if body is not None:
            h["content-type"] = "application/json"
        if self.token:
            h["authorization"] = "Bearer " + self.token
        h.update(headers or {})
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, headers=h, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:  # 4xx/5xx still carry the JSON error
            status, raw = e.code, e.read()
        except (urllib.error.URLError, OSError) as e:
            raise HoldfastError("unavailable", f"cannot reach {self.base_url}: {getattr(e, 'reason', e)}") from e
        try:
            out = json.loads(raw)
        except ValueError:
            raise HoldfastError("internal", f"HTTP {status}: not JSON", status) from None
        if status >= 400 or (isinstance(out, dict) and out.get("ok") is False):
            raise _error(out, status)
        return out

    def call(self, address, method, args=None, key=None):
        """Calls ``method`` of the actor ``address`` (``kind/name``) and
        returns its result; raises :class:`HoldfastError`. ``key`` is an
        idempotency key: a repeat (a retry after a timeout) gets the stored
        result instead of running again."""
        _check_address(address)
        kind, name = address.split("/", 1)
        headers = {"idempotency-key": key} if key else None
        out = self._request("POST", f"/v1/call/{kind}/{urllib.parse.quote(name, safe='')}/{urllib.parse.quote(method, safe='')}",
                            args if args is not None else {}, headers)
        return out.get("result")

    def publish(self, channel, type, data=None, key=None):
        """Publishes an event ``{type, data}`` on ``channel/{name}``
        (``channel`` is ``name`` or ``channel/name``): logged and pushed to
        its subscribers like any actor's event. Returns ``{"seq": n}``.
        Needs the ``service`` or ``admin`` role (or an ACL granting it)."""
        address = channel if channel.startswith("channel/") else "channel/" + channel
        return self.call(address, "publish", {"type": type, "data": data}, key=key)

    def publish_many(self, items, key=None):
        """Publishes many events in one request (``POST /v1/publish``):
        ``items`` are dicts ``{"channel", "type", "data"}``. Returns each
        item's outcome in order: ``{"seq": n}``, or a :class:`HoldfastError`
        (returned, not raised: one refused item does not stop the others).
        With ``key``, replaying the same request publishes nothing twice."""
        body = [{"channel": re.sub(r"^channel/", "", it["channel"]), "type": it["type"], "data": it.get("data")} for it in items]
        out = self._request("POST", "/v1/publish", body, {"idempotency-key": key} if key else None)
        return [x.get("result") if x.get("ok") else _error(x, None) for x in out.get("results", [])]

    def info(self, address):
        """The actor's ``{seq, epoch, subscribers}``."""
        return self.call(address, "info")

    def events(self, address, after=0, limit=100):
        """The actor's logged events after ``after`` (``GET /v1/events``):
        ``{seq, epoch, recovered, events: [{seq, type, data, at}]}``."""
        _check_address(address)
        return self._request("GET", f"/v1/events/{address}?after={int(after)}&limit={int(limit)}")

    # ------------------------------------------------------------ WebSocket

    def subscribe(self, address, since=None, epoch=None, presence=None, on_ready=None):
        """An async iterator of the actor's events (dicts with ``from``,
        ``seq``, ``type``, ``data``, ``at``), each once, in seq order. After
        ``since`` (a seq you have), the events after it are replayed first.
        A lost connection is reopened with backoff and resumed from the last
        seq seen, so nothing is missed or repeated; ``on_ready(info)`` (a
        function or coroutine) is told ``{seq, epoch, recovered, resumed}``
        after every (re)subscription: ``recovered`` False means history no
        longer reaches back (or it is the first subscription without
        ``since``) and the caller should reload its state. Needs the
        ``websockets`` package."""
        _check_address(address)
        return Subscription(self, address, since, epoch, presence, on_ready)


class Subscription:
    """What :meth:`Client.subscribe` returns: ``async for ev in sub``.
    ``seq`` and ``epoch`` are the last seen; ``last_ready`` the latest
    (re)subscription's report; ``await sub.close()`` ends it."""

    def __init__(self, client, address, since, epoch, presence, on_ready):
        self.client = client
        self.address = address
        self.seq = None if since is None else int(since)
        self.epoch = epoch
        self.presence = presence
        self.on_ready = on_ready
        self.last_ready = None
        self.reconnects = 0
        self._ws = None
        self._pending = []  # messages of the current frame not yet read
        self._closed = False
        self._attempt = 0
        self._subscribed = 0

    def __aiter__(self):
        return self

    async def __anext__(self):
        while True:
            if self._closed:
                raise StopAsyncIteration
            try:
                if self._ws is None:
                    await self._open()
                m = await self._next_message()
            except HoldfastError:
                await self._drop()
                raise
            except (OSError, asyncio.TimeoutError, EOFError) as e:
                await self._lost(e)
                continue
            except Exception as e:  # websockets' ConnectionClosed, InvalidStatus/InvalidStatusCode…
                if type(e).__module__.startswith("websockets"):
                    await self._lost(e)
                    continue
                raise
            op = m.get("op")
            if op == "event" and m.get("from") == self.address:
                seq = int(m["seq"])
                if self.seq is not None and seq <= self.seq:
                    continue  # already seen
                if self.seq is not None and seq > self.seq + 1:
                    await self._lost(RuntimeError(f"hole after {self.seq}"))  # never expected: resubscribe
                    continue
                self.seq = seq
                return {"from": self.address, "seq": seq, "type": m.get("type"), "data": m.get("data"), "at": m.get("at")}
            if op == "unsubscribed" and m.get("from") == self.address:
                await self._drop()
                raise _error(m, None)

    async def close(self):
        self._closed = True
        await self._drop()

    async def _drop(self):
        ws, self._ws = self._ws, None
        self._pending = []
        if ws is not None:
            try:
                await ws.close()
            except Exception:  # noqa: BLE001 - already gone
                pass

    async def _lost(self, why):
        await self._drop()
        if self._closed:
            return
        self.reconnects += 1
        delay = min(5.0, 0.2 * 2 ** min(self._attempt, 10))
        self._attempt += 1
        await asyncio.sleep(delay / 2 + random.random() * delay / 2)

    def _connect(self, url):
        try:
            from websockets.asyncio.client import connect  # websockets >= 13
        except ImportError:
            try:
                from websockets.client import connect  # 10.x - 12.x (Debian bookworm: 10.4)
            except ImportError:
                raise HoldfastError("unavailable", "subscribe needs the websockets package (Debian: apt install python3-websockets)") from None
        return connect(url, subprotocols=["holdfast.v1.json"], open_timeout=10, max_size=None)

    async def _open(self):
        url = self.client.ws_url
        if self.client.token:
            url += "?token=" + urllib.parse.quote(self.client.token, safe="")
        self._ws = await self._connect(url)
        hello = await self._next_message()
        if hello.get("op") != "hello":
            raise EOFError("no hello")
        msg = {"op": "sub", "id": 1, "to": self.address}
        if self.seq is not None:
            msg["since"] = self.seq
            if self.epoch:
                msg["epoch"] = self.epoch
        if self.presence is not None:
            msg["presence"] = self.presence
        await self._ws.send(json.dumps(msg))
        while True:
            m = await self._next_message()
            if m.get("op") == "reply" and m.get("id") == 1:
                break
        if not m.get("ok"):
            err = _error(m, None)
            if err.code in _RETRYABLE:
                raise EOFError(f"subscription refused for now: {err}")
            raise err
        r = m.get("result") or {}
        had = self.seq is not None
        recovered = had and r.get("recovered") is not False and (not self.epoch or self.epoch == r.get("epoch")) and self.seq <= r.get("seq", 0)
        if not recovered:
            self.seq = r.get("seq")
        self.epoch = r.get("epoch")
        self._attempt = 0
        info = {"seq": r.get("seq"), "epoch": r.get("epoch"), "recovered": bool(recovered), "resumed": self._subscribed > 0}
        self._subscribed += 1
        self.last_ready = info
        if self.on_ready is not None:
            res = self.on_ready(info)
            if asyncio.iscoroutine(res):
                await res

    async def _next_message(self):
        """The next message: a frame may hold several, one JSON per line."""
        while not self._pending:
            frame = await self._ws.recv()
            if isinstance(frame, bytes):
                frame = frame.decode("utf-8", "replace")
            self._pending = [line for line in frame.split("\n") if line.strip()]
        line = self._pending.pop(0)
        try:
            return json.loads(line)
        except ValueError:
            return {}
