"""hf.py - helpers for the Python end-to-end tests: start a real holdfast
server on a free loopback port, mint HS256 tokens, make HTTP requests.
Standard library only."""
import base64
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

WAIT_S = 60  # every wait is bounded; generous, since machines are shared
failures = []  # what check() found wrong, for the suite's exit status


def check(cond, what):
    """Records a failure (the suite goes on, to report them all)."""
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mint(secret, sub, role, acl=None, ttl=3600):
    """An HS256 token as holdfast's hf_auth_mint makes it."""
    head = b64u(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": sub, "role": role, "exp": int(time.time()) + ttl}
    if acl is not None:
        claims["acl"] = acl
    body = b64u(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(),
                   hashlib.sha256).digest()
    return f"{head}.{body}.{b64u(sig)}"


class Server:
    """holdfast serve on 127.0.0.1:0; the port is read from its log."""

    def __init__(self, build, data, args=(), scheme="http"):
        self.build, self.data, self.args = build, data, list(args)
        self.scheme = scheme
        self.proc = None
        self.port = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.data + ".log"), "ab")
        self.logpos = self.log.tell()
        self.proc = subprocess.Popen(
            [os.path.join(self.build, "bin", "holdfast"), "serve",
             "--listen", "127.0.0.1:0", "--data", self.data] + self.args,
            stdout=self.log, stderr=self.log)
        deadline = time.time() + WAIT_S
        while time.time() < deadline:
            with open(self.data + ".log", "rb") as f:
                f.seek(self.logpos)
                m = re.search(rb"listening on https?://127\.0\.0\.1:(\d+)",
                              f.read())
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("server did not start:\n" + self.logtext())

    def logtext(self):
        with open(self.data + ".log", "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(WAIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise RuntimeError("server did not stop")
            if rc != 0:
                raise RuntimeError(f"server exited {rc}:\n" + self.logtext())


def request(method, url, body=None, headers=None, ctx=None, timeout=WAIT_S):
    """(status, parsed JSON or text) of one HTTP request."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            status, text = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text.decode(errors="replace")


def wait_for(what, pred, timeout=WAIT_S):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)
