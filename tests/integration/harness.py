"""Integration harness: the real wsgate binary on loopback ephemeral ports with an inline config,
test-upstream (tests/support) as the recording peer, and scripted raw upstreams for protocol
corner cases. Every Wsgate fails the test on an [alert] or [emerg] line in its error log."""
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

WSGATE = os.environ.get("WSGATE", "wsgate")
TEST_UPSTREAM = os.environ.get("TEST_UPSTREAM", "test-upstream")
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class Wsgate:
    """wsgate with `http_text` as its http{} block (PORT is replaced by a free port, TMPDIR by
    the run's temporary directory)."""

    def __init__(self, http_text, main_text="", ports=1, args=(), daemon=False):
        self.dir = tempfile.TemporaryDirectory(prefix="wsgate-it-")
        self.ports = [free_port() for _ in range(ports)]
        self.port = self.ports[0]
        self.error_log = os.path.join(self.dir.name, "error.log")
        self.pid_file = os.path.join(self.dir.name, "wsgate.pid")
        self.conf = os.path.join(self.dir.name, "wsgate.conf")
        self.main_text = main_text
        self.daemon = daemon
        self.write_config(http_text)
        self.args = list(args)
        self.proc = None
        self.start()

    def write_config(self, http_text):
        http_text = http_text.replace("TMPDIR", self.dir.name)  # the run's own directory
        for i in reversed(range(len(self.ports))):
            http_text = http_text.replace(f"PORT{i}" if i else "PORT", str(self.ports[i]))
        text = (f"daemon {'on' if self.daemon else 'off'};\npid {self.pid_file};\n"
                f"error_log {self.error_log} info;\n{self.main_text}\nevents {{}}\n"
                f"http {{\n access_log {self.dir.name}/access.log;\n{http_text}\n}}\n")
        with open(self.conf, "w") as f:
            f.write(text)

    def start(self):
        self.proc = subprocess.Popen([WSGATE, "-c", self.conf, *self.args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        if not wait_port(self.port):
            out = self.stop()
            raise RuntimeError(f"wsgate did not start: {out}")

    def pid(self, timeout=5.0):
        # The listen socket opens before the pid file is written: wait for a complete pid.
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(self.pid_file) as f:
                    text = f.read()
                if text.endswith("\n") and text.strip().isdigit():
                    return int(text)
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no complete pid in {self.pid_file} after {timeout} s")
            time.sleep(0.02)

    def send(self, sig):
        os.kill(self.pid(), sig)

    def log(self):
        try:
            with open(self.error_log) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=10):
        out = ""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # A daemon keeps the pipes open: stop it before reading them to EOF.
        if self.daemon:
            try:
                os.kill(self.pid(timeout=1.0), signal.SIGTERM)
            except (OSError, ValueError, RuntimeError):
                pass
        if self.proc:
            out = (self.proc.stdout.read() or "") + (self.proc.stderr.read() or "")
            self.proc.stdout.close()
            self.proc.stderr.close()
        return out

    def alerts(self):
        return [line for line in self.log().splitlines() if "[alert]" in line or "[emerg]" in line]


class TestUpstream:
    """tests/support's test-upstream: records each request (--log, JSON lines), steered by X-Test-*."""

    def __init__(self, name="upstream"):
        self.dir = tempfile.TemporaryDirectory(prefix="wsgate-it-up-")
        self.log_path = os.path.join(self.dir.name, "records.jsonl")
        self.proc = subprocess.Popen([TEST_UPSTREAM, "--listen", "127.0.0.1:0", "--name", name,
                                      "--log", self.log_path], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"listening (\S+):(\d+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"test-upstream did not start: {line!r}")
        self.port = int(m.group(2))

    def records(self):
        try:
            with open(self.log_path) as f:
                return [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.dir.cleanup()


class ScriptedUpstream:
    """A raw TCP upstream: each accepted connection runs `handler(sock, head_bytes)` in a thread
    after the request head arrived (or handler(sock, None) when read_head is False)."""

    def __init__(self, handler, read_head=True):
        self.handler = handler
        self.read_head = read_head
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.heads = []
        self.connections = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            head = None
            if self.read_head:
                head = b""
                while b"\r\n\r\n" not in head:
                    d = c.recv(65536)
                    if not d:
                        return
                    head += d
                self.heads.append(head)
            self.handler(c, head)
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def stop(self):
        self.closed = True
        self.listener.close()


def exchange(port, data, timeout=2.0, until_close=True, read_after=None):
    """Sends raw bytes, returns everything read until the peer closes (or `timeout` of silence)."""
    s = socket.create_connection(("127.0.0.1", port))
    try:
        s.sendall(data)
        s.settimeout(timeout)
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not d:
                break
            out += d
            if read_after and read_after(out):
                break
        return out
    finally:
        s.close()


def get_from(source, port, target):
    """A GET of `target` sent from the local address `source` (any of 127.0.0.0/8), with
    Connection: close; the raw answer."""
    s = socket.socket()
    try:
        s.bind((source, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
        return read_to_close(s)
    finally:
        s.close()


def read_to_close(sock):
    """Everything `sock` receives until the peer closes."""
    data = b""
    while True:
        d = sock.recv(65536)
        if not d:
            return data
        data += d


def parse_responses(data):
    """Splits raw bytes into [(status, headers dict lower-case, body)] (Content-Length and chunked)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for l in lines[1:]:
            n, _, v = l.partition(":")
            headers[n.strip().lower()] = v.strip()
        body = b""
        if "content-length" in headers and status not in (204, 304) and status >= 200:
            n = int(headers["content-length"])
            body, rest = rest[:n], rest[n:]
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    _, _, rest = rest.partition(b"\r\n")
                    break
                body += rest[:size]
                rest = rest[size + 2:]
        elif status >= 200 and status not in (204, 304):
            body, rest = rest, b""
        out.append((status, headers, body))
        data = rest
    return out


def start_nginx(case, http_text):
    """Debian's nginx (one worker, as root) with `http_text` as its http{} block, PORT replaced by
    a free port; stopped by the case's cleanups. Returns the port."""
    d = tempfile.TemporaryDirectory(prefix="wsgate-it-nginx-")
    port = free_port()
    path = os.path.join(d.name, "nginx.conf")
    with open(path, "w") as f:
        f.write(f"user root;\ndaemon off;\npid {d.name}/nginx.pid;\nerror_log {d.name}/error.log;\n"
                f"events {{}}\nhttp {{\naccess_log off;\n{http_text.replace('PORT', str(port))}\n}}\n")
    proc = subprocess.Popen([NGINX, "-p", d.name, "-c", path], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def stop():
        proc.terminate()
        proc.wait(5)
        d.cleanup()
    case.cleanups.append(stop)
    case.assertTrue(wait_port(port), "nginx did not start")
    return port


class WsgateCase(unittest.TestCase):
    """Starts what a test asks for and checks wsgate's error log at the end."""

    def setUp(self):
        self.cleanups = []

    def tearDown(self):
        for c in reversed(self.cleanups):
            c()

    def wsgate(self, http_text, **kw):
        w = Wsgate(http_text, **kw)

        def finish():
            alerts = w.alerts()
            w.stop()
            w.dir.cleanup()
            self.assertEqual(alerts, [], "wsgate logged alerts")
        self.cleanups.append(finish)
        return w

    def upstream(self, name="upstream"):
        u = TestUpstream(name)
        self.cleanups.append(u.stop)
        return u

    def scripted(self, handler, read_head=True):
        u = ScriptedUpstream(handler, read_head)
        self.cleanups.append(u.stop)
        return u
