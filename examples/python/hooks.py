#!/usr/bin/env python3
"""busbar example hook server (Python standard library only).

    python3 hooks.py [--port 9000] [--mode ok|slow|garbage|error|close] [--audit-log FILE]

Endpoints (busbar POSTs JSON; see examples/README.md for the schema):
  POST /route   routing policy: cheapest first among members with headroom; `x-prefer` names a
                member to put first; `x-team: blocked` is refused with 403
  POST /redact  before_forward: masks e-mail addresses and Luhn-valid card numbers
  POST /audit   after_response: counts events (and appends them to --audit-log as JSON lines)
  GET  /count   requests received per endpoint: {"route": n, "redact": n, "audit": n}

--mode makes /route and /redact misbehave, to exercise busbar's fallbacks: slow (answers after
200 ms), garbage (200 with a body that is not JSON), error (500), close (drops the connection).
Port 0 picks a free port; the first line on stdout is `listening on 127.0.0.1:PORT`.
"""
import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# 13 to 19 digits, optionally split by single spaces or dashes.
CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")

counts = {"route": 0, "redact": 0, "audit": 0}
lock = threading.Lock()


def luhn(digits):
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def redact(text):
    text = EMAIL.sub("[email]", text)

    def card(m):
        digits = re.sub(r"[ -]", "", m.group(0))
        return "[card]" if 13 <= len(digits) <= 19 and luhn(digits) else m.group(0)

    return CARD.sub(card, text)


def route(ask):
    headers = ask["request"].get("headers") or {}
    if headers.get("x-team") == "blocked":
        return {"reject": {"status": 403, "message": "team blocked by the routing hook"}}
    cands = ask["candidates"]
    # Members nearly out of rate limit go last; the rest by this request's estimated cost.
    def key(c):
        room = min(c.get("requests_left") or 1.0, c.get("tokens_left") or 1.0)
        return (room < 0.05, c["estimated_cost"], c.get("latency_ms") or 0.0)

    order = [c["name"] for c in sorted(cands, key=key)]
    prefer = headers.get("x-prefer")
    if prefer in order:
        order.remove(prefer)
        order.insert(0, prefer)
    return {"order": order}


def before_forward(ask):
    changed = []
    for t in ask.get("texts", []):
        new = redact(t["text"])
        if new != t["text"]:
            changed.append({"path": t["path"], "text": new})
    return {"texts": changed} if changed else {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mode = "ok"
    audit_log = None

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/count":
            with lock:
                self.reply(200, dict(counts))
        else:
            self.reply(404, {"error": "no such path"})

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        name = self.path.strip("/").split("?")[0]
        if name not in counts:
            return self.reply(404, {"error": "no such path"})
        with lock:
            counts[name] += 1
        if name == "audit":
            if self.audit_log:
                with lock, open(self.audit_log, "ab") as f:
                    f.write(raw.rstrip(b"\n") + b"\n")
            return self.reply(200, {})
        if self.mode == "slow":
            time.sleep(0.2)
        elif self.mode == "garbage":
            return self.reply(200, b"not json{")
        elif self.mode == "error":
            return self.reply(500, {"error": "boom"})
        elif self.mode == "close":
            self.close_connection = True
            return
        try:
            ask = json.loads(raw)
        except ValueError:
            return self.reply(400, {"error": "the body is not JSON"})
        self.reply(200, route(ask) if name == "route" else before_forward(ask))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--mode", choices=["ok", "slow", "garbage", "error", "close"], default="ok")
    p.add_argument("--audit-log")
    a = p.parse_args()
    Handler.mode = a.mode
    Handler.audit_log = a.audit_log
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.daemon_threads = True
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
