"""TLS to the upstream (`proxy_pass https://...`): the same http{} text through Debian's nginx and
through wsgate, clients speaking plain HTTP to the proxy, the proxy speaking TLS to a small
threaded TLS server written here (Python's ssl module) that records what each connection carried:
the SNI, the negotiated protocol and every request. Covered: GET and a 50 KB POST with
$proxy_host as Host and no SNI by default, proxy_ssl_server_name/proxy_ssl_name choosing the SNI,
proxy_ssl_verify against the right CA, another CA and a wrong name, keep-alive TLS connections
to the upstream reused across client connections, a WebSocket tunnel to a TLS backend,
proxy_ssl_protocols refusing a TLSv1.2-only backend, a client certificate (proxy_ssl_certificate)
for a backend that requires one, how the proxy ends its TLS connections (close_notify), and `-t`
on a missing trusted CA file and a client certificate without its key or with another's.

Each behaviour is checked on nginx first, then on wsgate (one subTest per proxy, each with fresh
upstreams), then the two observations are compared: a wsgate failure never hides whether the
nginx expectation holds."""
import hashlib
import os
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import unittest

from harness import NGINX, WSGATE, WsgateCase, exchange, free_port, parse_responses, wait_port
from tls_certs import TestPki
from ws_client import accept_key, frame, next_frame, recv_to_close, ws_frame, ws_handshake

HAVE_NGINX = os.path.exists(NGINX)
PROXIES = ("nginx", "wsgate")
TIMEOUT = 5.0

PKI = None  # the CA the proxies are told to trust
OTHER_PKI = None  # a CA nobody trusts: its certificates fail verification
CERTS = {}


def setUpModule():
    global PKI, OTHER_PKI
    PKI = TestPki()
    OTHER_PKI = TestPki()
    CERTS["good"] = PKI.leaf("backend.test")
    CERTS["other-ca"] = OTHER_PKI.leaf("backend.test")
    CERTS["client"] = PKI.leaf("proxy-client", usage="clientAuth")


def tearDownModule():
    for pki in (PKI, OTHER_PKI):
        if pki:
            pki.cleanup()


# ---- the TLS upstream ---------------------------------------------------------------------------

class TlsUpstream:
    """A threaded TLS server on 127.0.0.1:0 presenting CERTS[cert]. Records per connection (in
    accept order, numbered from 1): the SNI the client sent (None without), the protocol version,
    the handshake error if any, and each request as {line, headers (name lower-case, value),
    body_length, body_sha256}. Answers HTTP/1.1 with Content-Length and keeps the connection
    unless the request says otherwise; the body names the connection and request numbers so a
    test sees which requests shared a connection. `Upgrade: websocket` gets a 101 and then an
    echo of every frame (unmasked), Close answered with Close."""

    def __init__(self, cert="good", maximum=None, client_cert=False):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(*CERTS[cert])
        if client_cert:  # a client must present a certificate of PKI's CA
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(PKI.ca)
        # No resumption: OpenSSL reports a resumed session's original SNI, not the one sent, and
        # each connection should show what the proxy asked for itself.
        self.ctx.num_tickets = 0
        self.ctx.options |= ssl.OP_NO_TICKET
        # Debian's Python sets this by default, and a TCP end without close_notify then reads as
        # a proper end: cleared, so that the two differ.
        self.ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
        if maximum is not None:
            self.ctx.maximum_version = maximum
        self._tls = threading.local()  # the SNI callback runs in the handshaking thread
        self.ctx.sni_callback = self._sni
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.connections = []
        self.lock = threading.Lock()
        self.socks = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _sni(self, sslsock, server_name, ctx):
        self._tls.sni = server_name
        return None

    def _accept(self):
        while not self.closed:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                record = {"n": len(self.connections) + 1, "sni": None, "version": None,
                          "resumed": None, "error": None, "requests": [], "end": None,
                          "client": None}
                self.connections.append(record)
                self.socks.append(raw)
            threading.Thread(target=self._serve, args=(raw, record), daemon=True).start()

    def _serve(self, raw, record):
        raw.settimeout(15)  # bounded: an idle keep-alive connection ends on its own
        self._tls.sni = None
        s = raw  # wrap_socket detaches `raw`: the TLS socket is the one to close
        try:
            try:
                # A TCP end without close_notify raises (recorded as "truncated").
                s = self.ctx.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False)
            except (ssl.SSLError, OSError) as e:
                record["sni"] = self._tls.sni
                record["error"] = str(e)
                return
            record["sni"] = self._tls.sni
            record["version"] = s.version()
            peer = s.getpeercert()
            record["client"] = dict(x[0] for x in peer["subject"])["commonName"] if peer else None
            record["resumed"] = s.session_reused
            with self.lock:
                self.socks.append(s)
            buf = b""
            while True:
                head, buf = self._read_head(s, buf)
                if head is None:
                    return
                lines = head.decode("latin1").split("\r\n")
                headers = []
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers.append((name.strip().lower(), value.strip()))
                h = dict(headers)
                body, buf = self._read_body(s, buf, h)
                record["requests"].append({"line": lines[0], "headers": headers,
                                           "body_length": len(body),
                                           "body_sha256": hashlib.sha256(body).hexdigest()})
                if h.get("upgrade", "").lower() == "websocket":
                    self._websocket(s, h, buf)
                    return
                method, target, version = lines[0].split(" ")
                text = (f"conn={record['n']} req={len(record['requests'])} {method} {target} "
                        f"body={len(body)}\n").encode()
                close = (version == "HTTP/1.0" and "keep-alive" not in h.get("connection", "").lower()
                         ) or "close" in h.get("connection", "").lower()
                s.sendall((f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                           f"Content-Length: {len(text)}\r\n"
                           f"{'Connection: close' if close else 'Connection: keep-alive'}\r\n\r\n"
                           ).encode() + text)
                if close:
                    return
        except (ssl.SSLError, OSError, ValueError) as e:
            record["error"] = record["error"] or str(e)
        finally:
            record["end"] = getattr(s, "how_it_ended", "closed here")
            try:
                s.close()
            except OSError:
                pass

    @staticmethod
    def _recv(s):
        """Bytes, or b"" at the end; how the proxy ended the connection goes on `s`:
        "close_notify" or "truncated" (TCP ended without it)."""
        try:
            d = s.recv(65536)
            if not d:
                s.how_it_ended = "close_notify"
            return d
        except ssl.SSLEOFError:
            s.how_it_ended = "truncated"
            return b""
        except ssl.SSLError as e:
            if "UNEXPECTED_EOF" not in str(e):
                raise
            s.how_it_ended = "truncated"  # (as OpenSSL 3 words it)
            return b""
        except ssl.SSLZeroReturnError:  # close_notify, as Python reports it now and then
            s.how_it_ended = "close_notify"
            return b""
        except ConnectionResetError:
            s.how_it_ended = "reset"
            return b""
        except socket.timeout:
            return b""

    def _read_head(self, s, buf):
        while b"\r\n\r\n" not in buf:
            d = self._recv(s)
            if not d:
                return None, b""
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        return head, rest

    def _read_body(self, s, buf, h):
        if "content-length" in h:
            n = int(h["content-length"])
            while len(buf) < n:
                d = self._recv(s)
                if not d:
                    raise ValueError("closed inside a request body")
                buf += d
            return buf[:n], buf[n:]
        if h.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                while b"\r\n" not in buf:
                    d = self._recv(s)
                    if not d:
                        raise ValueError("closed inside a chunked body")
                    buf += d
                size_line, _, buf = buf.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(buf) < size + 2:
                    d = self._recv(s)
                    if not d:
                        raise ValueError("closed inside a chunk")
                    buf += d
                if size == 0:
                    return body, buf[2:]
                body += buf[:size]
                buf = buf[size + 2:]
        return b"", buf

    def _websocket(self, s, h, buf):
        accept = accept_key(h["sec-websocket-key"]).encode()
        s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        while True:
            fin, opcode, _, payload, buf = next_frame(lambda: self._recv(s), buf)
            s.sendall(frame(opcode, payload, fin=fin, mask=False))  # the same FIN and opcode
            if opcode == 8:
                return

    def stop(self):
        self.closed = True
        self.listener.close()
        with self.lock:
            for s in self.socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass


# ---- client side (plain HTTP / ws to the proxy) ------------------------------------------------

def get(target="/", host="a.test"):
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


def one_response(port, data):
    answers = parse_responses(exchange(port, data, timeout=TIMEOUT))
    if len(answers) != 1:
        raise AssertionError(f"expected one response, got {len(answers)}: {answers!r}")
    return answers[0]


# ---- the two proxies ---------------------------------------------------------------------------

class Nginx:
    """Debian's nginx (one worker, as root) with `http_text` as its http{} block; keeps its error
    log readable until stopped (harness.start_nginx does not expose it)."""

    def __init__(self, case, http_text):
        self.dir = tempfile.TemporaryDirectory(prefix="wsgate-it-nginx-")
        self.port = free_port()
        self.error_log = os.path.join(self.dir.name, "error.log")
        path = os.path.join(self.dir.name, "nginx.conf")
        with open(path, "w") as f:
            f.write(f"user root;\ndaemon off;\npid {self.dir.name}/nginx.pid;\n"
                    f"error_log {self.error_log};\nevents {{}}\nhttp {{\naccess_log off;\n"
                    f"{http_text.replace('PORT', str(self.port))}\n}}\n")
        self.proc = subprocess.Popen([NGINX, "-p", self.dir.name, "-c", path],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        case.cleanups.append(self.stop)
        case.assertTrue(wait_port(self.port), f"nginx did not start: {self.log()}")

    def log(self):
        try:
            with open(self.error_log) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.dir.cleanup()


def wait_log(proxy, needle, timeout=TIMEOUT):
    """The proxy's error log once it holds `needle` (or at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        text = proxy.log()
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def fill(conf, **values):
    """CA_PEM and the given NAME=value tokens replaced in `conf`, longest token first."""
    tokens = {"CA_PEM": PKI.ca}
    tokens.update({k: str(v) for k, v in values.items()})
    for k in sorted(tokens, key=len, reverse=True):
        conf = conf.replace(k, tokens[k])
    return conf


@unittest.skipUnless(HAVE_NGINX, "Debian's nginx is not installed")
class TlsUpstreamCase(WsgateCase):
    def tls_upstream(self, cert="good", maximum=None, client_cert=False):
        u = TlsUpstream(cert, maximum, client_cert)
        self.cleanups.append(u.stop)
        return u

    def each_proxy(self, conf, observe, **upstreams):
        """For nginx, then wsgate (each in its own subTest): fresh upstreams made from
        `upstreams` (TOKEN: dict(cert=..., maximum=...)), `conf` with each TOKEN replaced by its
        port, then observe(proxy_name, proxy, ups) where ups maps TOKEN to its TlsUpstream.
        Returns {proxy: observation} for the proxies whose observe finished."""
        seen = {}
        for name in PROXIES:
            with self.subTest(proxy=name):
                ups = {token: self.tls_upstream(**kw) for token, kw in upstreams.items()}
                text = fill(conf, **{token: u.port for token, u in ups.items()})
                proxy = Nginx(self, text) if name == "nginx" else self.wsgate(text)
                seen[name] = observe(name, proxy, ups)
        return seen

    def assert_same(self, seen):
        if "nginx" in seen and "wsgate" in seen:
            self.assertEqual(seen["wsgate"], seen["nginx"], "wsgate differs from nginx")


def header(request, name):
    """The last value of header `name` in a recorded request, or None."""
    values = [v for n, v in request["headers"] if n == name]
    return values[-1] if values else None


# ---- 1. basic -----------------------------------------------------------------------------------

class Basic(TlsUpstreamCase):
    CONF = """
server { listen 127.0.0.1:PORT; server_name a.test;
  location / { proxy_pass https://127.0.0.1:UP; } }
"""

    def test_get_and_post_over_tls(self):
        payload = os.urandom(50 * 1024)

        def observe(name, proxy, ups):
            up = ups["UP"]
            st1, _, body1 = one_response(proxy.port, get("/one?x=1"))
            self.assertEqual((st1, body1), (200, b"conn=1 req=1 GET /one?x=1 body=0\n"))
            post = (f"POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Type: application/octet-stream\r\n"
                    f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode() + payload
            st2, _, body2 = one_response(proxy.port, post)
            self.assertEqual(st2, 200)
            self.assertRegex(body2, rb"^conn=\d+ req=1 POST /upload body=51200\n$")
            conns = [c for c in up.connections if c["requests"]]
            self.assertEqual(len(conns), 2, up.connections)
            get_req, post_req = conns[0]["requests"][0], conns[1]["requests"][0]
            # nginx's default: HTTP/1.0 upstream requests, Host = $proxy_host, no SNI.
            self.assertEqual(get_req["line"], "GET /one?x=1 HTTP/1.0")
            self.assertEqual(header(get_req, "host"), f"127.0.0.1:{up.port}")
            self.assertEqual(post_req["line"], "POST /upload HTTP/1.0")
            self.assertEqual(header(post_req, "host"), f"127.0.0.1:{up.port}")
            self.assertEqual((post_req["body_length"], post_req["body_sha256"]),
                             (len(payload), hashlib.sha256(payload).hexdigest()))
            self.assertEqual([c["sni"] for c in conns], [None, None])
            self.assertTrue(all(c["version"] for c in conns), conns)
            return (st1, body1, st2, [r["line"] for c in conns for r in c["requests"]],
                    post_req["body_length"], [c["sni"] for c in conns],
                    header(get_req, "host").split(":")[0])

        self.assert_same(self.each_proxy(self.CONF, observe, UP={}))


# ---- 2. SNI -------------------------------------------------------------------------------------

class Sni(TlsUpstreamCase):
    # No session reuse: a resumed session reports the first connection's SNI, not the one sent.
    # (nginx 1.22 speaks TLSv1.2 to upstreams by default, and now and then resumed by session
    # ID here: this upstream turns tickets off, not its session-ID cache, which Python's ssl
    # module cannot.)
    CONF = """
upstream backend { server 127.0.0.1:UP; }
server { listen 127.0.0.1:PORT; server_name a.test; proxy_ssl_session_reuse off;
  location /on { proxy_pass https://backend; proxy_ssl_server_name on; }
  location /named { proxy_pass https://backend; proxy_ssl_server_name on;
    proxy_ssl_name backend.test; }
  location /off { proxy_pass https://backend; proxy_ssl_server_name off; }
  location /default { proxy_pass https://backend; } }
"""
    EXPECTED = {"/on": "backend", "/named": "backend.test", "/off": None, "/default": None}

    def test_sni_follows_proxy_ssl_server_name_and_name(self):
        def observe(name, proxy, ups):
            up = ups["UP"]
            out = {}
            for target in self.EXPECTED:
                before = len(up.connections)
                st, _, body = one_response(proxy.port, get(target))
                self.assertEqual(st, 200, (target, body))
                conns = [c for c in up.connections[before:] if c["requests"]]
                self.assertEqual(len(conns), 1, (target, up.connections[before:]))
                # The Host header stays $proxy_host whatever the SNI.
                self.assertEqual(header(conns[0]["requests"][0], "host"), "backend")
                self.assertFalse(conns[0]["resumed"], "a resumed session hides the SNI sent")
                out[target] = conns[0]["sni"]
            self.assertEqual(out, self.EXPECTED)
            return out

        self.assert_same(self.each_proxy(self.CONF, observe, UP={}))


# ---- 3. verification ----------------------------------------------------------------------------

class Verify(TlsUpstreamCase):
    CONF = """
server { listen 127.0.0.1:PORT; server_name a.test;
  location /verify-good { proxy_pass https://127.0.0.1:UP;
    proxy_ssl_verify on; proxy_ssl_trusted_certificate CA_PEM;
    proxy_ssl_name backend.test; proxy_ssl_server_name on; }
  location /verify-other { proxy_pass https://127.0.0.1:OTHER;
    proxy_ssl_verify on; proxy_ssl_trusted_certificate CA_PEM;
    proxy_ssl_name backend.test; proxy_ssl_server_name on; }
  location /verify-wrong-name { proxy_pass https://127.0.0.1:UP;
    proxy_ssl_verify on; proxy_ssl_trusted_certificate CA_PEM;
    proxy_ssl_name wrong.test; proxy_ssl_server_name on; }
  location /noverify-other { proxy_pass https://127.0.0.1:OTHER; } }
"""

    UPSTREAMS = {"UP": {}, "OTHER": {"cert": "other-ca"}}

    def test_trusted_ca_and_matching_name(self):
        def observe(name, proxy, ups):
            st, _, body = one_response(proxy.port, get("/verify-good"))
            self.assertEqual((st, body), (200, b"conn=1 req=1 GET /verify-good body=0\n"))
            self.assertEqual(ups["UP"].connections[0]["sni"], "backend.test")
            return st, body, ups["UP"].connections[0]["sni"]

        self.assert_same(self.each_proxy(self.CONF, observe, **self.UPSTREAMS))

    def test_certificate_from_another_ca(self):
        def observe(name, proxy, ups):
            other = ups["OTHER"]
            st, _, _ = one_response(proxy.port, get("/verify-other"))
            self.assertEqual(st, 502)
            # The proxy did reach the backend: the handshake, not the connect, failed.
            self.assertGreaterEqual(len(other.connections), 1)
            self.assertEqual([c["requests"] for c in other.connections],
                             [[] for _ in other.connections])
            # nginx: "upstream SSL certificate verify error: (21:unable to verify the first
            # certificate) while SSL handshaking to upstream, client: ..."
            log = wait_log(proxy, "upstream SSL certificate verify error")
            self.assertRegex(log, r"\[error\] .*upstream SSL certificate verify error: \(\d+:.*\) "
                                  r"while SSL handshaking to upstream")
            return st

        self.assert_same(self.each_proxy(self.CONF, observe, **self.UPSTREAMS))

    def test_name_not_in_certificate(self):
        def observe(name, proxy, ups):
            st, _, _ = one_response(proxy.port, get("/verify-wrong-name"))
            self.assertEqual(st, 502)
            self.assertGreaterEqual(len(ups["UP"].connections), 1)
            self.assertEqual(sum(len(c["requests"]) for c in ups["UP"].connections), 0)
            log = wait_log(proxy, "upstream SSL certificate does not match")
            self.assertRegex(log, r'\[error\] .*upstream SSL certificate does not match "wrong\.test" '
                                  r"while SSL handshaking to upstream")
            return st

        self.assert_same(self.each_proxy(self.CONF, observe, **self.UPSTREAMS))

    def test_no_verification_by_default(self):
        def observe(name, proxy, ups):
            # proxy_ssl_verify is off by default: a certificate from any CA will do.
            st, _, body = one_response(proxy.port, get("/noverify-other"))
            self.assertEqual((st, body), (200, b"conn=1 req=1 GET /noverify-other body=0\n"))
            self.assertEqual(len(ups["OTHER"].connections), 1)
            return st, body

        self.assert_same(self.each_proxy(self.CONF, observe, **self.UPSTREAMS))


# ---- 4. keep-alive ------------------------------------------------------------------------------

class Keepalive(TlsUpstreamCase):
    CONF = """
upstream backend { server 127.0.0.1:UP; keepalive 4; }
server { listen 127.0.0.1:PORT; server_name a.test;
  location / { proxy_pass https://backend; proxy_http_version 1.1;
    proxy_set_header Connection ""; } }
"""

    def test_one_tls_connection_serves_sequential_requests(self):
        def observe(name, proxy, ups):
            up = ups["UP"]
            # Three client connections one after the other; the upstream's TLS connection
            # outlives each of them in the keepalive cache.
            bodies = []
            for i in range(1, 4):
                st, _, body = one_response(proxy.port, get(f"/k{i}"))
                self.assertEqual(st, 200)
                bodies.append(body)
            self.assertEqual(bodies, [f"conn=1 req={i} GET /k{i} body=0\n".encode()
                                      for i in range(1, 4)])
            self.assertEqual(len(up.connections), 1, up.connections)
            reqs = up.connections[0]["requests"]
            self.assertEqual([r["line"] for r in reqs], [f"GET /k{i} HTTP/1.1" for i in range(1, 4)])
            self.assertEqual([header(r, "connection") for r in reqs], [None] * 3)
            return bodies, [r["line"] for r in reqs], len(up.connections)

        self.assert_same(self.each_proxy(self.CONF, observe, UP={}))


class CloseNotify(TlsUpstreamCase):
    """How the proxy ends a TLS connection to the upstream: with close_notify after a response
    when the connection is not kept (no keepalive in an upstream{}); a keep-alive connection
    leaving the cache (here at QUIT) is just closed, as nginx does."""
    CONF = """
upstream backend { server 127.0.0.1:UP2; keepalive 4; }
server { listen 127.0.0.1:PORT; server_name a.test;
  location /direct { proxy_pass https://127.0.0.1:UP; proxy_http_version 1.1;
    proxy_set_header Connection ""; }
  location /kept { proxy_pass https://backend; proxy_http_version 1.1;
    proxy_set_header Connection ""; } }
"""

    @staticmethod
    def ends(up, timeout=TIMEOUT):
        """How each upstream connection ended, once all have."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(c["end"] is None for c in up.connections):
            time.sleep(0.02)
        return [c["end"] for c in up.connections]

    def test_closed_connections_end_with_close_notify(self):
        def observe(name, proxy, ups):
            st, _, body = one_response(proxy.port, get("/direct"))
            self.assertEqual((st, body), (200, b"conn=1 req=1 GET /direct body=0\n"))
            direct = self.ends(ups["UP"])
            st, _, body = one_response(proxy.port, get("/kept"))
            self.assertEqual((st, body), (200, b"conn=1 req=1 GET /kept body=0\n"))
            # QUIT: the proxy closes its idle keep-alive connection and exits.
            proxy.proc.send_signal(signal.SIGQUIT)
            proxy.proc.wait(timeout=TIMEOUT)
            kept = self.ends(ups["UP2"])
            # A connection leaving the cache just closes (nginx's keepalive close: no alert).
            self.assertEqual((direct, kept), (["close_notify"], ["truncated"]))
            return direct, kept

        self.assert_same(self.each_proxy(self.CONF, observe, UP={}, UP2={}))


class ClientCertificate(TlsUpstreamCase):
    """proxy_ssl_certificate/proxy_ssl_certificate_key: an upstream that requires a client
    certificate gets the configured one (inherited from the server level); a server without
    one is refused by it (502)."""
    CONF = """
server { listen 127.0.0.1:PORT; server_name a.test;
  proxy_ssl_certificate CLIENT_CERT; proxy_ssl_certificate_key CLIENT_KEY;
  location / { proxy_pass https://127.0.0.1:UP; } }
server { listen 127.0.0.1:PORT; server_name b.test;
  location / { proxy_pass https://127.0.0.1:UP; } }
"""

    def test_upstream_requiring_a_client_certificate(self):
        conf = self.CONF.replace("CLIENT_CERT", CERTS["client"][0]).replace(
            "CLIENT_KEY", CERTS["client"][1])

        def observe(name, proxy, ups):
            up = ups["UP"]
            st1, _, body1 = one_response(proxy.port, get("/with"))
            st2, _, _ = one_response(proxy.port, get("/without", host="b.test"))
            clients = [c["client"] for c in up.connections if c["requests"]]
            self.assertEqual((st1, body1, clients), (200, b"conn=1 req=1 GET /with body=0\n",
                                                      ["proxy-client"]))
            self.assertEqual(st2, 502)
            # With TLSv1.3 the proxy can have its 502 before the upstream's thread has recorded
            # why it refused the handshake.
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline and not any(
                    c["error"] for c in up.connections if not c["requests"]):
                time.sleep(0.02)
            refused = [c for c in up.connections if not c["requests"]]
            self.assertTrue(refused and refused[-1]["error"], up.connections)
            return st1, clients, st2

        self.assert_same(self.each_proxy(conf, observe, UP={"client_cert": True}))


# ---- 5. WebSocket to a TLS backend --------------------------------------------------------------

class WebSocket(TlsUpstreamCase):
    CONF = """
server { listen 127.0.0.1:PORT; server_name a.test;
  location /ws { proxy_pass https://127.0.0.1:UP; proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade"; } }
"""

    def test_websocket_echo_through_a_tls_upstream(self):
        texts = ["hello", "é über TLS", "x" * 200]
        blob = bytes((i * 31 + 7) & 0xFF for i in range(70000))

        def observe(name, proxy, ups):
            up = ups["UP"]
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT) as s:
                reader = ws_handshake(s)
                for t in texts:
                    s.sendall(ws_frame(1, t.encode()))
                s.sendall(ws_frame(2, blob))
                echoes = [reader.frame() for _ in range(len(texts) + 1)]
                self.assertEqual(echoes, [(True, 1, t.encode()) for t in texts] + [(True, 2, blob)])
                s.sendall(ws_frame(8, struct.pack("!H", 1000) + b"bye"))
                fin, opcode, payload = reader.frame()
                self.assertEqual((fin, opcode, payload), (True, 8, struct.pack("!H", 1000) + b"bye"))
                # The backend closed after its Close: the proxy ends the client connection.
                self.assertEqual(recv_to_close(s), b"")
            self.assertEqual(len(up.connections), 1, up.connections)
            req = up.connections[0]["requests"][0]
            self.assertEqual(req["line"], "GET /ws HTTP/1.1")
            self.assertEqual(header(req, "upgrade"), "websocket")
            self.assertEqual(header(req, "connection"), "upgrade")
            return ([(o, hashlib.sha256(p).hexdigest()) for _, o, p in echoes], opcode,
                    req["line"], header(req, "upgrade"), header(req, "connection"))

        self.assert_same(self.each_proxy(self.CONF, observe, UP={}))


# ---- 6. proxy_ssl_protocols ---------------------------------------------------------------------

class Protocols(TlsUpstreamCase):
    CONF = """
server { listen 127.0.0.1:PORT; server_name a.test;
  location /to12 { proxy_pass https://127.0.0.1:UP12; proxy_ssl_protocols TLSv1.3; }
  location /todefault { proxy_pass https://127.0.0.1:UP; proxy_ssl_protocols TLSv1.3; }
  location /both12 { proxy_pass https://127.0.0.1:UP12; proxy_ssl_protocols TLSv1.2; } }
"""

    def test_tls13_only_refuses_a_tls12_backend(self):
        def observe(name, proxy, ups):
            out = {}
            st, _, _ = one_response(proxy.port, get("/to12"))
            self.assertEqual(st, 502)
            self.assertGreaterEqual(len(ups["UP12"].connections), 1)
            self.assertEqual(sum(len(c["requests"]) for c in ups["UP12"].connections), 0)
            log = wait_log(proxy, "while SSL handshaking to upstream")
            self.assertIn("while SSL handshaking to upstream", log)
            out["1.3 proxy, 1.2 backend"] = st
            st, _, body = one_response(proxy.port, get("/todefault"))
            self.assertEqual((st, body), (200, b"conn=1 req=1 GET /todefault body=0\n"))
            self.assertEqual(ups["UP"].connections[0]["version"], "TLSv1.3")
            out["1.3 proxy, default backend"] = (st, ups["UP"].connections[0]["version"])
            st, _, body = one_response(proxy.port, get("/both12"))
            self.assertEqual(st, 200)
            self.assertEqual(ups["UP12"].connections[-1]["version"], "TLSv1.2")
            out["1.2 proxy, 1.2 backend"] = (st, ups["UP12"].connections[-1]["version"])
            return out

        self.assert_same(self.each_proxy(self.CONF, observe, UP={},
                                         UP12={"maximum": ssl.TLSVersion.TLSv1_2}))


# ---- 7. -t --------------------------------------------------------------------------------------

@unittest.skipUnless(HAVE_NGINX, "Debian's nginx is not installed")
class ConfigTest(unittest.TestCase):
    """`wsgate -t` on proxy_ssl_* configs, next to `nginx -t` on the same text for the wording."""

    def check(self, location):
        """(nginx -t, wsgate -t) as (exit code, output) for a server holding `location`."""
        with tempfile.TemporaryDirectory(prefix="wsgate-it-tlsup-t-") as d:
            conf = os.path.join(d, "tlsup.conf")
            with open(conf, "w") as f:
                f.write(f"pid {d}/run.pid;\nerror_log {d}/error.log;\nevents {{}}\n"
                        f"http {{\naccess_log off;\nserver {{ listen 127.0.0.1:{free_port()};\n"
                        f"{location}\n}}\n}}\n")
            n = subprocess.run([NGINX, "-t", "-p", d, "-c", conf], capture_output=True, text=True,
                               timeout=30)
            w = subprocess.run([WSGATE, "-t", "-c", conf], capture_output=True, text=True, timeout=30)
            return (n.returncode, n.stdout + n.stderr), (w.returncode, w.stdout + w.stderr)

    def both_fail(self, location, nginx_says, wsgate_says):
        """nginx -t and wsgate -t both refuse `location`, saying what each is expected to."""
        (nrc, nout), (wrc, wout) = self.check(location)
        self.assertNotEqual(nrc, 0, nout)
        self.assertIn(nginx_says, nout)
        with self.subTest(proxy="wsgate"):
            self.assertNotEqual(wrc, 0, wout)
            self.assertIn(wsgate_says, wout)

    def test_missing_trusted_certificate_file(self):
        missing = os.path.join(PKI.dir, "no-such-ca.pem")
        self.both_fail(f"location / {{ proxy_pass https://127.0.0.1:9; proxy_ssl_verify on;\n"
                       f"  proxy_ssl_trusted_certificate {missing}; }}",
                       f'SSL_CTX_load_verify_locations("{missing}") failed', missing)

    def test_verify_without_trusted_certificate(self):
        self.both_fail("location / { proxy_pass https://127.0.0.1:9; proxy_ssl_verify on; }",
                       "no proxy_ssl_trusted_certificate for proxy_ssl_verify",
                       "proxy_ssl_trusted_certificate")

    def test_client_certificate_without_key(self):
        cert = CERTS["client"][0]
        says = f'no "proxy_ssl_certificate_key" is defined for certificate "{cert}"'
        self.both_fail(
            f"location / {{ proxy_pass https://127.0.0.1:9; proxy_ssl_certificate {cert}; }}",
            says, says)

    def test_client_key_not_matching(self):
        cert, key = CERTS["client"][0], CERTS["good"][1]
        says = f'SSL_CTX_use_PrivateKey("{key}") failed'
        self.both_fail(f"location / {{ proxy_pass https://127.0.0.1:9; proxy_ssl_certificate {cert};\n"
                       f"  proxy_ssl_certificate_key {key}; }}", says, says)

    def test_valid_trusted_certificate_passes(self):
        (nrc, nout), (wrc, wout) = self.check(
            f"location / {{ proxy_pass https://127.0.0.1:9; proxy_ssl_verify on;\n"
            f"  proxy_ssl_trusted_certificate {PKI.ca}; proxy_ssl_name backend.test; }}")
        self.assertEqual(nrc, 0, nout)
        with self.subTest(proxy="wsgate"):
            self.assertEqual(wrc, 0, wout)
            self.assertIn("test is successful", wout)


if __name__ == "__main__":
    unittest.main()
