"""Request and response buffering, and client keep-alive limits, through wsgate and through
Debian's nginx (the reference) with the same http{} text: when the upstream is contacted, when
it is freed, what memory wsgate holds, and when a client connection closes.

- proxy_request_buffering on: the whole body is read before the upstream is contacted (memory
  up to client_body_buffer_size, then a temp file); off: it streams.
- proxy_buffering on: the response is read ahead of a slow client (proxy_buffers, then a temp
  file up to proxy_max_temp_file_size) and the upstream connection is freed at once; off,
  `X-Accel-Buffering: no` and proxy_max_temp_file_size 0: the upstream waits for the client.
- keepalive_requests and keepalive_time close the connection with `Connection: close`."""
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (TEST_UPSTREAM, WsgateCase, exchange, free_port, parse_responses,
                     read_to_close, wait_port)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HAVE_NGINX = os.path.exists(NGINX)
HAVE_TEST_UPSTREAM = os.path.exists(TEST_UPSTREAM)

BIG = 24 * 1024 * 1024
# Beyond what the kernel can hold between the upstream and a client that reads nothing (here
# tcp_rmem allows 32 MiB for wsgate's upstream socket, tcp_wmem 4 MiB for each sender).
HUGE = 64 * 1024 * 1024


def pattern(n):
    block = bytes(range(251)) * 4
    return (block * (n // len(block) + 1))[:n]


class Nginx:
    """Debian's nginx on the same http{} text (PORT replaced), as the behavioural reference."""

    def __init__(self, http_text):
        self.dir = tempfile.TemporaryDirectory(prefix="wsgate-it-nginx-")
        d = self.dir.name
        self.port = free_port()
        self.error_log = os.path.join(d, "error.log")
        self.access_log = os.path.join(d, "access.log")
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"user root;\ndaemon off;\nworker_processes 1;\npid {d}/nginx.pid;\n"
                    f"error_log {self.error_log} info;\nevents {{}}\nhttp {{\n"
                    f" access_log {self.access_log};\n client_body_temp_path {d}/body;\n"
                    f" proxy_temp_path {d}/proxy;\n"
                    f"{http_text.replace('PORT', str(self.port))}\n}}\n")
        self.proc = subprocess.Popen([NGINX, "-p", d, "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        if not wait_port(self.port):
            self.stop()
            raise RuntimeError("nginx did not start: " + self.log())

    def log(self):
        try:
            with open(self.error_log) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def pids(self):
        return [self.proc.pid]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()
        self.dir.cleanup()


class RecordingUpstream:
    """A keep-alive upstream that answers every request with `size` bytes of pattern() (framed
    by Content-Length, or chunked / close-delimited when the path says so) and records, per
    connection, when each request arrived, when its response was fully written (sendall
    returned) and when the peer closed."""

    def __init__(self, size=BIG, extra_headers=b""):
        self.size = size
        self.body = pattern(size)
        self.extra = extra_headers
        self.events = []  # (monotonic time, connection number, what, path)
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.count = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def note(self, conn, what, path=""):
        with self.lock:
            self.events.append((time.monotonic(), conn, what, path))

    def find(self, what, path=None):
        with self.lock:
            return [e for e in self.events if e[2] == what and (path is None or e[3] == path)]

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            self.count += 1
            threading.Thread(target=self._serve, args=(c, self.count), daemon=True).start()

    def _serve(self, c, n):
        self.note(n, "connect")
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        self.note(n, "closed")
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                need = int(m.group(1)) if m else 0
                while len(buf) < need:
                    d = c.recv(65536)
                    if not d:
                        self.note(n, "closed")
                        return
                    buf += d
                buf = buf[need:]  # the body is not looked at
                path = head.split(b" ")[1].decode()
                self.note(n, "request", path)
                if "chunked" in path:
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + self.extra + b"\r\n")
                    for i in range(0, self.size, 1 << 20):
                        piece = self.body[i:i + (1 << 20)]
                        c.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                    c.sendall(b"0\r\n\r\n")
                elif "close" in path:
                    c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n" + self.extra + b"\r\n" + self.body)
                    self.note(n, "sent", path)
                    return
                else:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % self.size + self.extra +
                              b"\r\n" + self.body)
                self.note(n, "sent", path)
        except OSError:
            self.note(n, "closed")
        finally:
            c.close()

    def stop(self):
        self.closed = True
        self.listener.close()


def rss_kib(pid, field="VmHWM"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def slow_get(port, path, stall):
    """Sends a GET with a small receive buffer, reads nothing for `stall` seconds, then reads
    one whole response; returns (time reading started, status, headers, body)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path.encode())
    time.sleep(stall)
    started = time.monotonic()
    s.settimeout(20)
    data = bytearray()
    head_end, length, chunked = -1, None, False
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        data += d
        if head_end < 0:
            head_end = data.find(b"\r\n\r\n")
            if head_end < 0:
                continue
            head = bytes(data[:head_end])
            m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            length = int(m.group(1)) if m else None
            chunked = b"chunked" in head.lower()
        body_len = len(data) - head_end - 4
        if length is not None and body_len >= length:
            break
        if chunked and data.endswith(b"\r\n0\r\n\r\n"):
            break
    s.close()
    status, headers, body = parse_responses(bytes(data))[0]
    return started, status, headers, body


class Proxies(WsgateCase):
    """Runs a check through wsgate and, when it is installed, through nginx."""

    def proxies(self, http_text):
        out = [("wsgate", self.wsgate(http_text))]
        if HAVE_NGINX:
            n = Nginx(http_text)
            self.cleanups.append(n.stop)
            out.append(("nginx", n))
        return out

    def recording(self, **kw):
        u = RecordingUpstream(**kw)
        self.cleanups.append(u.stop)
        return u


class RequestBuffering(Proxies):
    def conf(self, port, extra=""):
        return f"""server {{ listen 127.0.0.1:PORT; client_body_timeout 1s; {extra}
  location /on {{ proxy_pass http://127.0.0.1:{port}; }}
  location /off {{ proxy_pass http://127.0.0.1:{port}; proxy_request_buffering off; }} }}"""

    def test_upstream_is_contacted_once_the_whole_body_is_read(self):
        up = self.recording(size=2)
        for name, p in self.proxies(self.conf(up.port)):
            for path, buffered in (("/on", True), ("/off", False)):
                with self.subTest(proxy=name, path=path):
                    before = len(up.find("connect"))
                    s = socket.create_connection(("127.0.0.1", p.port))
                    s.sendall(b"POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n"
                              b"Connection: close\r\n\r\nabcde" % path.encode())
                    time.sleep(0.6)
                    second_half = time.monotonic()
                    s.sendall(b"fghij")
                    s.settimeout(5)
                    data = read_to_close(s)
                    s.close()
                    self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:60])
                    connect = up.find("connect")[before][0]
                    if buffered:
                        self.assertGreater(connect, second_half)
                    else:
                        self.assertLess(connect, second_half)

    def test_a_stalled_body_never_reaches_the_upstream(self):
        up = self.recording(size=2)
        for name, p in self.proxies(self.conf(up.port)):
            for path, connects in (("/on", 0), ("/off", 1)):
                with self.subTest(proxy=name, path=path):
                    before = len(up.find("connect"))
                    start = time.monotonic()
                    r = exchange(p.port, b"POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabcde"
                                 % path.encode(), timeout=4)
                    took = time.monotonic() - start
                    self.assertEqual(r, b"")  # closed without an answer after client_body_timeout
                    self.assertTrue(0.9 < took < 3, took)
                    time.sleep(0.1)
                    self.assertEqual(len(up.find("connect")) - before, connects)

    @unittest.skipUnless(HAVE_TEST_UPSTREAM, "test-upstream is not built")
    def test_body_beyond_client_body_buffer_size_is_spooled_intact(self):
        up = self.upstream()
        w = self.wsgate(f"""server {{ listen 127.0.0.1:PORT; client_max_body_size 10m;
  client_body_buffer_size 16k; location / {{ proxy_pass http://127.0.0.1:{up.port}; }} }}""")
        body = pattern(300000)
        r = exchange(w.port, b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                     % len(body) + body, timeout=5)
        self.assertTrue(r.startswith(b"HTTP/1.1 200"), r[:80])
        rec = up.records()[-1]
        self.assertEqual((rec["body_length"], rec["body_sha256"]),
                         (len(body), hashlib.sha256(body).hexdigest()))
        self.assertIn("a client request body is buffered to a temporary file", w.log())
        # Under client_body_buffer_size: memory only, no temp file.
        small = pattern(10000)
        exchange(w.port, b"POST /y HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                 % len(small) + small, timeout=5)
        self.assertEqual(up.records()[-1]["body_sha256"], hashlib.sha256(small).hexdigest())
        self.assertEqual(w.log().count("buffered to a temporary file"), 1)


class ResponseBuffering(Proxies):
    def conf(self, port, extra=""):
        return f"""
upstream big {{ server 127.0.0.1:{port}; keepalive 4; }}
server {{ listen 127.0.0.1:PORT; {extra}
  location / {{ proxy_pass http://big; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  location /off/ {{ proxy_pass http://big; proxy_http_version 1.1; proxy_set_header Connection "";
    proxy_buffering off; }}
  location /nofile/ {{ proxy_pass http://big; proxy_http_version 1.1; proxy_set_header Connection "";
    proxy_max_temp_file_size 0; }} }}"""

    def test_slow_client_does_not_hold_the_upstream(self):
        up = self.recording()
        for name, p in self.proxies(self.conf(up.port)):
            for path in ("/a", "/chunked", "/close"):
                with self.subTest(proxy=name, path=path):
                    path = f"/{name}{path}"
                    result = {}
                    t = threading.Thread(target=lambda: result.update(r=slow_get(p.port, path, 2.5)))
                    t.start()
                    deadline = time.monotonic() + 2.0
                    while not up.find("sent", path) and time.monotonic() < deadline:
                        time.sleep(0.05)
                    # The whole response left the upstream while the client read nothing.
                    self.assertTrue(up.find("sent", path), f"{name}: the upstream waited for the client")
                    # sendall() returns once the kernel holds the rest: give the proxy a moment
                    # (well within the stall) to read it.
                    time.sleep(max(0.0, deadline - 1.0 - time.monotonic()))
                    if "close" not in path:
                        # ... and its connection went back to the pool: another client's request
                        # is served on it meanwhile.
                        conn = up.find("sent", path)[0][1]
                        r = exchange(p.port, b"GET /%s/small HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                                     % name.encode(), timeout=5, read_after=lambda d: len(d) > BIG)
                        self.assertTrue(r.startswith(b"HTTP/1.1 200"), r[:60])
                        self.assertEqual(up.find("request", f"/{name}/small")[-1][1], conn)
                    t.join(30)
                    started, status, headers, body = result["r"]
                    self.assertGreater(started, up.find("sent", path)[0][0])
                    self.assertEqual(status, 200)
                    self.assertEqual(hashlib.sha256(body).digest(), hashlib.sha256(up.body).digest())
                    if name == "wsgate":
                        # Memory stays bounded: the response went through a temp file.
                        self.assertLess(rss_kib(p.proc.pid), 16 * 1024)
        self.assertIn("an upstream response is buffered to a temporary file", self.wsgate_log)

    def proxies(self, http_text):
        out = super().proxies(http_text)
        self.wsgate_proc = out[0][1]
        return out

    @property
    def wsgate_log(self):
        return self.wsgate_proc.log()

    def test_upstream_waits_without_buffering(self):
        for name_, extra in (("proxy_buffering off", b""), ("X-Accel-Buffering: no", b"X-Accel-Buffering: no\r\n")):
            up = self.recording(size=HUGE, extra_headers=extra)
            for name, p in self.proxies(self.conf(up.port)):
                paths = ["/nofile/a"] + (["/off/a"] if not extra else ["/a"])
                for path in paths:
                    with self.subTest(case=name_, proxy=name, path=path):
                        result = {}
                        t = threading.Thread(target=lambda: result.update(r=slow_get(p.port, path, 2.0)))
                        t.start()
                        t.join(30)
                        started, status, headers, body = result["r"]
                        self.assertNotIn("x-accel-buffering", headers)
                        self.assertEqual(len(body), HUGE)
                        # The upstream finished only after the client began to read.
                        sent = [e for e in up.find("sent", path) if e[0] > started - 5]
                        self.assertTrue(sent and sent[-1][0] > started, f"{name} {path}")
                        if name == "wsgate":
                            self.assertLess(rss_kib(p.proc.pid), 16 * 1024)

    def test_x_accel_buffering_yes_turns_buffering_on(self):
        up = self.recording(extra_headers=b"X-Accel-Buffering: yes\r\n")
        for name, p in self.proxies(self.conf(up.port)):
            with self.subTest(proxy=name):
                path = "/off/yes"
                result = {}
                t = threading.Thread(target=lambda: result.update(r=slow_get(p.port, path, 2.0)))
                t.start()
                t.join(30)
                started, status, headers, body = result["r"]
                self.assertEqual(len(body), BIG)
                self.assertLess(up.find("sent", path)[-1][0], started)


class ClientKeepalive(Proxies):
    def statuses_until_close(self, port, requests, pause=0.0):
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(3)
        seen = []
        data = b""
        for i in range(requests):
            if i and pause:
                time.sleep(pause)
            try:
                s.sendall(b"GET /r HTTP/1.1\r\nHost: a\r\n\r\n")
            except OSError:
                break
            while True:
                resp = parse_responses(data)
                if len(resp) > len(seen):
                    break
                try:
                    d = s.recv(65536)
                except OSError:
                    d = b""
                if not d:
                    s.close()
                    return seen, True
                data += d
            seen.append(parse_responses(data)[len(seen)][1].get("connection"))
        try:
            closed = s.recv(1) == b""
        except socket.timeout:
            closed = False
        except OSError:
            closed = True
        s.close()
        return seen, closed

    def test_keepalive_requests(self):
        for name, p in self.proxies("""server { listen 127.0.0.1:PORT; keepalive_requests 3;
  location / { return 200 ok; } }"""):
            with self.subTest(proxy=name):
                self.assertEqual(self.statuses_until_close(p.port, 5),
                                 (["keep-alive", "keep-alive", "close"], True))

    def test_keepalive_time(self):
        for name, p in self.proxies("""server { listen 127.0.0.1:PORT; keepalive_time 1s;
  location / { return 200 ok; } }"""):
            with self.subTest(proxy=name):
                self.assertEqual(self.statuses_until_close(p.port, 3, pause=0.6),
                                 (["keep-alive", "keep-alive", "close"], True))


if __name__ == "__main__":
    unittest.main()
