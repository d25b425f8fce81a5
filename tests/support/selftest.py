#!/usr/bin/python3
"""Checks test-upstream itself: the record is byte-exact and every steering header does what the
table in test_upstream.cpp says, so tests that rely on it can trust it."""

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

failures = []


def check(what, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f": {detail}"))
    if not ok:
        failures.append(what)


def exchange(port, raw, read_all=True):
    """Sends raw bytes and returns everything received until the server closes (or 3 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(raw)
        data = b""
        started = time.monotonic()
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                if not read_all and b"\r\n\r\n" in data:
                    break
        except socket.timeout:
            pass
        except ConnectionResetError:
            data += b"<RST>"
        return data, time.monotonic() - started


def split(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        n, _, v = line.partition(":")
        headers.setdefault(n.strip().lower(), []).append(v.strip())
    return int(lines[0].split(" ")[1]), headers, body


def main():
    binary = sys.argv[1]
    log = tempfile.NamedTemporaryFile(prefix="test-upstream-", suffix=".log", delete=False).name
    proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--name", "self", "--log", log],
                            stdout=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode().strip()
        check("prints 'listening 127.0.0.1:PORT'", line.startswith("listening 127.0.0.1:"), line)
        port = int(line.rsplit(":", 1)[1])

        raw = (b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nX-Odd:  two  spaces \r\n"
               b"x-lower: v\r\nX-Dup: 1\r\nX-Dup: 2\r\nConnection: close\r\n\r\n")
        resp, _ = exchange(port, raw)
        status, headers, body = split(resp)
        rec = json.loads(body)
        check("default answer is 200 with the record", status == 200 and rec["upstream"] == "self")
        check("request line kept byte for byte", rec["request_line"] == "GET /a%20b?x=1 HTTP/1.1")
        check("header lines kept byte for byte, in order",
              rec["header_lines"] == ["Host: h", "X-Odd:  two  spaces ", "x-lower: v", "X-Dup: 1",
                                      "X-Dup: 2", "Connection: close"], rec["header_lines"])
        check("parsed headers trim only the surrounding spaces",
              ["X-Odd", "two  spaces"] in rec["headers"])
        check("X-Test-Upstream names the upstream", headers.get("x-test-upstream") == ["self"])
        with open(log) as f:
            logged = [json.loads(l) for l in f if l.strip()]
        check("the record is also in --log", logged and logged[-1]["request_line"] == rec["request_line"])

        body = b"hello world"
        raw = (b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        rec = json.loads(split(exchange(port, raw)[0])[2])
        check("chunked body counted and hashed",
              rec["body_length"] == 11 and rec["body_chunked"]
              and rec["body_sha256"] == hashlib.sha256(body).hexdigest(), rec)

        raw = (b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n"
               b"Connection: close\r\n\r\n")
        resp, _ = exchange(port, raw)
        parts = resp.split(b"HTTP/1.1 200 OK")
        recs = [json.loads(p.partition(b"\r\n\r\n")[2]) for p in parts[1:]]
        check("keep-alive: two pipelined requests on one connection",
              len(recs) == 2 and recs[1]["sequence"] == 2
              and recs[0]["connection"] == recs[1]["connection"], recs)

        steer = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
        status, headers, body = split(exchange(port, steer + b"X-Test-Status: 404\r\n\r\n")[0])
        check("X-Test-Status", status == 404)
        status, headers, body = split(exchange(port, steer + b"X-Test-Body-Size: 25\r\n\r\n")[0])
        check("X-Test-Body-Size", body == b"0123456789012345678901234"
              and headers.get("content-length") == ["25"])
        status, headers, body = split(exchange(port, steer + b"X-Test-Body-Size: 20000\r\n"
                                               b"X-Test-Chunked: 1\r\n\r\n")[0])
        check("X-Test-Chunked", headers.get("transfer-encoding") == ["chunked"]
              and body.startswith(b"4000\r\n") and body.endswith(b"0\r\n\r\n"))
        status, headers, body = split(exchange(port, steer + b"X-Test-Body-Size: 10\r\n"
                                               b"X-Test-Close: 1\r\n\r\n")[0])
        check("X-Test-Close", "content-length" not in headers and body == b"0123456789")
        resp, took = exchange(port, steer + b"X-Test-Delay-Ms: 300\r\n\r\n")
        check("X-Test-Delay-Ms", took >= 0.3, f"{took:.3f} s")
        status, headers, _ = split(exchange(port, steer + b"X-Test-Header: X-A: 1\r\n"
                                            b"X-Test-Header: X-B: two words\r\n\r\n")[0])
        check("X-Test-Header, repeatable", headers.get("x-a") == ["1"]
              and headers.get("x-b") == ["two words"])
        resp, _ = exchange(port, steer + b"X-Test-Body-Size: 100\r\nX-Test-Abort-After: 5\r\n\r\n")
        status, headers, body = split(resp)
        check("X-Test-Abort-After", headers.get("content-length") == ["100"]
              and body.startswith(b"01234") and len(body.replace(b"<RST>", b"")) == 5, body)
        resp, _ = exchange(port, b"HEAD / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        status, headers, body = split(resp)
        check("HEAD: length announced, no body", body == b"" and headers.get("content-length"))

        key = base64.b64encode(os.urandom(16))
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(4096)
            status, headers, rest = split(data)
            check("WebSocket: 101 with the right Sec-WebSocket-Accept",
                  status == 101 and headers.get("sec-websocket-accept") == [accept.decode()])
            mask = b"\x01\x02\x03\x04"
            payload = b"echo me"
            s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask
                      + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
            while len(rest) < 2 + len(payload):
                rest += s.recv(4096)
            check("WebSocket: text message echoed", rest[:2] == bytes([0x81, len(payload)])
                  and rest[2:2 + len(payload)] == payload, rest)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        os.unlink(log)
    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
