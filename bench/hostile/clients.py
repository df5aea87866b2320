#!/usr/bin/env python3
"""Hostile clients against busbar, for bench/hostile.sh (standard library only).

    clients.py HOST:PORT SECONDS [--slowloris N] [--garbage R] [--oversize R] [--disconnect R]

slowloris:  N connections that send a request head one byte at a time, slowly, and reconnect
            when busbar cuts them off (header deadline)
garbage:    R connections/s that send random bytes
oversize:   R requests/s that announce and send a body over the limit
disconnect: R streamed requests/s to a slow model, dropped after the first event
Prints one JSON line with what was done and how busbar answered.
"""

import json
import os
import random
import socket
import sys
import threading
import time

addr, seconds = sys.argv[1], float(sys.argv[2])
opts = dict(zip(sys.argv[3::2], sys.argv[4::2]))
host, port = addr.rsplit(":", 1)
port = int(port)
end = time.monotonic() + seconds
lock = threading.Lock()
counts = {}


def count(key, n=1):
    with lock:
        counts[key] = counts.get(key, 0) + n


def conn(timeout=5):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def status_of(s):
    try:
        data = s.recv(4096)
    except OSError:
        return "reset"
    if not data:
        return "closed"
    return data.split(b" ", 2)[1].decode(errors="replace") if data.startswith(b"HTTP/1.1 ") else "other"


SYNC = os.environ.get("HOSTILE_SYNC") == "1"


def slowloris():
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if not SYNC:
        time.sleep(random.uniform(0, 1.0))
    while time.monotonic() < end:
        try:
            s = conn(timeout=30)
            count("slowloris_connections")
            for b in head:
                if time.monotonic() >= end:
                    break
                s.sendall(bytes([b]))
                time.sleep(0.5 if SYNC else random.uniform(0.25, 0.75))
            s.settimeout(10)
            count("slowloris_" + status_of(s))
            s.close()
        except OSError:
            count("slowloris_cut")
            time.sleep(0.05)


def every(rate, f):
    gap = 1.0 / rate
    nxt = time.monotonic()
    while time.monotonic() < end:
        try:
            f()
        except OSError:
            count(f.__name__ + "_error")
        nxt += gap
        time.sleep(max(0.0, nxt - time.monotonic()))


def garbage():
    s = conn()
    s.sendall(os.urandom(random.randint(16, 4096)))
    count("garbage_" + status_of(s))
    s.close()


def oversize():
    s = conn()
    n = 64 * 1024 * 1024
    s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n".encode())
    try:
        s.sendall(b"x" * (256 * 1024))
    except OSError:
        pass
    count("oversize_" + status_of(s))
    s.close()


def disconnect():
    body = json.dumps({"model": "slow", "stream": True, "max_tokens": 64,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    s = conn()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    while b"data: " not in got:
        d = s.recv(4096)
        if not d:
            break
        got += d
    count("disconnect_after_first_event" if b"data: " in got else "disconnect_no_event")
    s.close()


threads = [threading.Thread(target=slowloris, daemon=True) for _ in range(int(opts.get("--slowloris", 0)))]
for key, f in (("--garbage", garbage), ("--oversize", oversize), ("--disconnect", disconnect)):
    rate = float(opts.get(key, 0))
    if rate > 0:
        threads.append(threading.Thread(target=every, args=(rate, f), daemon=True))
for t in threads:
    t.start()
time.sleep(seconds)
print(json.dumps(counts, sort_keys=True))
