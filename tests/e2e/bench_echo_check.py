#!/usr/bin/env python3
"""wsgate-echo's protocol behaviour over raw sockets, the same for every socket backend:
HTTP keep-alive with pipelining and Connection: close, the WebSocket upgrade with frames sent in
the same write, pings answered with pongs, frames split byte by byte, the close handshake, and
(given its pid) a peer that sends without reading: the echo must stop reading, not queue it all.
    bench_echo_check.py PORT LABEL [ECHO_PID]
Prints one "ok"/"FAIL" line per check; exits 1 if any failed."""
import base64
import hashlib
import os
import select
import socket
import struct
import sys
import threading

PORT = int(sys.argv[1])
LABEL = sys.argv[2] if len(sys.argv) > 2 else "echo"
PID = int(sys.argv[3]) if len(sys.argv) > 3 else 0
failures = 0


def check(name, cond, detail=""):
    global failures
    print(f"{'ok  ' if cond else 'FAIL'} {LABEL}: {name}" + ("" if cond else f": {detail}"))
    if not cond:
        failures += 1


def connect():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until_eof(s):
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return out, False
        if not chunk:
            return out, True
        out += chunk


def read_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise EOFError(f"EOF after {len(out)} of {n} bytes")
        out += chunk
    return out


def frame(opcode, payload, mask=b"\x11\x22\x33\x44"):
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n <= 0xFFFF:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(s):
    b0, b1 = read_exact(s, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", read_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", read_exact(s, 8))[0]
    if b1 & 0x80:
        raise ValueError("server frame is masked")
    return b0 & 0x0F, bool(b0 & 0x80), read_exact(s, n)


def read_head(s):
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            raise EOFError("EOF in the response head")
        head += chunk
    return head.decode("latin-1")


key = base64.b64encode(os.urandom(16)).decode()
accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
upgrade = (f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()

# HTTP: three pipelined requests in one write get three responses; Connection: close ends it.
s = connect()
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2 + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
data, eof = read_until_eof(s)
check("3 pipelined requests, the last with Connection: close: 3 responses, then EOF",
      data.count(b"HTTP/1.1 200 OK") == 3 and data.endswith(b"hello, world\n") and eof, repr(data[-200:]))
s.close()

# A POST body is skipped, not taken for the next request.
s = connect()
body = b"GET / HTTP/1.1\r\n" * 10
s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
data, eof = read_until_eof(s)
check("POST body skipped: one response", data.count(b"HTTP/1.1 200 OK") == 1 and eof, repr(data[:200]))
s.close()

# WebSocket: upgrade with two frames behind it in the same write.
s = connect()
s.sendall(upgrade + frame(1, b"first") + frame(2, b"\x00\x01second"))
head = read_head(s)
check("upgrade answered 101 with the right accept key",
      head.startswith("HTTP/1.1 101") and f"Sec-WebSocket-Accept: {accept}" in head, head)
got = [read_frame(s), read_frame(s)]
check("frames sent behind the upgrade request are echoed in order, unmasked",
      got == [(1, True, b"first"), (2, True, b"\x00\x01second")], repr(got))

s.sendall(frame(9, b"are you there"))
got = read_frame(s)
check("ping answered with a pong carrying the same payload", got == (10, True, b"are you there"), repr(got))

# A 70,000-byte frame (64-bit length form) written in pieces that split the header too.
payload = bytes(i % 251 for i in range(70000))
f = frame(2, payload)
for piece in (f[:1], f[1:5], f[5:11], f[11:4000], f[4000:]):
    s.sendall(piece)
got = read_frame(s)
check("a 70,000-byte frame split inside its header is echoed whole", got == (2, True, payload),
      f"opcode {got[0]} length {len(got[2])}")

s.sendall(frame(8, struct.pack("!H", 1000) + b"bye"))
got = read_frame(s)
check("close frame echoed", got == (8, True, struct.pack("!H", 1000) + b"bye"), repr(got))
rest, eof = read_until_eof(s)
check("connection closed after the close frame", rest == b"" and eof, repr(rest))
s.close()

# An unmasked client frame breaks RFC 6455 5.1: the connection is dropped.
s = connect()
s.sendall(upgrade)
read_head(s)
s.sendall(b"\x81\x02hi")
rest, eof = read_until_eof(s)
check("unmasked client frame: connection dropped without an echo", rest == b"", repr(rest))
s.close()

# Backpressure: a peer that writes 64 KiB frames and reads nothing. The echo must stop reading
# once its output queue is full (the client's send then blocks) instead of queueing everything,
# and echo every frame once the client reads.
def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


if PID:
    s = connect()
    s.sendall(upgrade)
    read_head(s)
    f = frame(2, bytes(i % 256 for i in range(65536)))
    stream = f * 64  # 4 MiB per pass
    limit = 64 << 20
    before = rss_kb(PID)
    s.setblocking(False)
    sent = 0
    while sent < limit:
        _, w, _ = select.select([], [s], [], 1.0)
        if not w:
            break  # blocked for a second: the echo stopped reading
        try:
            sent += s.send(stream[sent % len(stream):])
        except BlockingIOError:
            pass
    grown = rss_kb(PID) - before
    check("a peer that does not read: its sends block and the echo's memory stays bounded",
          sent < limit and grown < 24 * 1024, f"sent {sent >> 20} MiB, echo RSS grew {grown} kB")
    s.setblocking(True)
    s.settimeout(10)
    frames = -(-sent // len(f))
    rest = frames * len(f) - sent
    tail = threading.Thread(target=lambda: s.sendall(f[len(f) - rest:]) if rest else None)
    tail.start()
    ok = True
    try:
        for _ in range(frames):
            op, fin, payload = read_frame(s)
            ok = ok and op == 2 and fin and len(payload) == 65536
    except (EOFError, OSError, ValueError) as e:
        ok = False
        print(f"     ({e})")
    tail.join()
    check(f"then every one of the {frames} frames is echoed once the peer reads", ok)
    s.close()

sys.exit(1 if failures else 0)
