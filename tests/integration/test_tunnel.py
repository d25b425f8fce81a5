"""The upgrade tunnel with real WebSocket peers on both sides: test-upstream's Beast echo, Node's
`ws` (tests/integration/ws_peer.js) as client and as server, and Python's websockets as client and
server. Text and binary, 0 B to 16 MiB, fragmented messages, data pipelined right after the
handshake on both sides, close handshakes both ways, a peer vanishing with a reset, the idle
timeout, and the upgrades that must never become a tunnel."""
import asyncio
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
import unittest

from harness import WsgateCase, exchange, parse_responses
from ws_client import accept_key, frame, read_frame

HERE = os.path.dirname(os.path.abspath(__file__))
NODE = shutil.which("node")
NODE_PATH = os.environ.get("NODE_PATH", "/usr/share/nodejs")
HAVE_NODE_WS = bool(NODE) and os.path.isdir(os.path.join(NODE_PATH, "ws"))
HAVE_TEST_UPSTREAM = os.path.exists(os.environ.get("TEST_UPSTREAM", ""))
# The Boost.Beast client (tools/probe), next to wsgate in the same build tree.
PROBE = os.environ.get("WSGATE_PROBE") or os.path.join(
    os.path.dirname(os.path.abspath(os.environ.get("WSGATE", "wsgate"))), "..", "..", "tools", "probe",
    "wsgate-probe")
try:
    import websockets
    import websockets.exceptions
except ImportError:  # run with /usr/bin/python3 (Debian python3-websockets)
    websockets = None

SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20]


def proxy_conf(port, extra=""):
    return f"""
map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
server {{ listen 127.0.0.1:PORT;
  location / {{ proxy_pass http://127.0.0.1:{port}; proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;
    {extra} }} }}"""


def handshake(path="/echo", key="dGhlIHNhbXBsZSBub25jZQ=="):
    return (f"GET {path} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError(f"closed during the head: {data!r}")
        data += d
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def pattern(n, binary):
    if binary:
        return bytes((i * 7 + 3) & 0xFF for i in range(256)) * (n // 256) + bytes((i * 7 + 3) & 0xFF for i in range(n % 256))
    return ("abcdefghijklmnopqrstuvwxyz" * (n // 26 + 1))[:n]


class PyEchoServer:
    """Python websockets echo server on its own event loop thread. Text "close-me" closes with
    4002; every connection's end is recorded as (close code, seconds since the last message)."""

    def __init__(self):
        self.ended = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def handler(ws, path=None):
            last = time.monotonic()
            try:
                async for msg in ws:
                    last = time.monotonic()
                    if msg == "close-me":
                        await ws.close(4002, "py-bye")
                        break
                    await ws.send(msg)
            except websockets.exceptions.ConnectionClosed:
                pass
            self.ended.append((ws.close_code, time.monotonic() - last))

        async def main():
            self.server = await websockets.serve(handler, "127.0.0.1", 0, max_size=None,
                                                 ping_interval=None)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(main(), self.loop)
        if not ready.wait(10):
            raise RuntimeError("the Python WebSocket server did not start")

    def wait_ended(self, count=1, timeout=5):
        deadline = time.monotonic() + timeout
        while len(self.ended) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.ended

    def stop(self):
        async def close():
            self.server.close()
            await self.server.wait_closed()
        try:
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class NodeServer:
    """ws_peer.js server: greets with "hello", echoes in 3 fragments, prints client closes."""

    def __init__(self):
        env = dict(os.environ, NODE_PATH=NODE_PATH)
        self.proc = subprocess.Popen([NODE, os.path.join(HERE, "ws_peer.js"), "server"],
                                     stdout=subprocess.PIPE, text=True, env=env)
        m = re.match(r"listening (\d+)", self.proc.stdout.readline())
        if not m:
            self.stop()
            raise RuntimeError("ws_peer.js server did not start")
        self.port = int(m.group(1))
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def wait_line(self, prefix, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for l in self.lines:
                if l.startswith(prefix):
                    return l
            time.sleep(0.02)
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc.stdout.close()


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@unittest.skipUnless(websockets, "python3-websockets is missing (use /usr/bin/python3)")
class TunnelPeers(WsgateCase):
    def py_server(self):
        s = PyEchoServer()
        self.cleanups.append(s.stop)
        return s

    def node_server(self):
        if not HAVE_NODE_WS:
            self.skipTest("node or node-ws (/usr/share/nodejs/ws) is missing")
        s = NodeServer()
        self.cleanups.append(s.stop)
        return s

    def node_client(self, url):
        if not HAVE_NODE_WS:
            self.skipTest("node or node-ws (/usr/share/nodejs/ws) is missing")
        r = subprocess.run([NODE, os.path.join(HERE, "ws_peer.js"), "client", url], capture_output=True,
                           text=True, timeout=120, env=dict(os.environ, NODE_PATH=NODE_PATH))
        self.assertTrue(r.stdout.strip(), f"node client printed nothing: {r.stderr}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    def check_node_client(self, res, greeted):
        self.assertNotIn("error", res, res)
        self.assertEqual(res["first"], "hello" if greeted else None)
        # Every size, both types, then two fragmented messages: all echoed intact, in order.
        self.assertEqual(len(res["echoed"]), 2 * len(SIZES) + 2, res)
        bad = [e for e in res["echoed"] if not e["ok"]]
        self.assertEqual(bad, [])
        self.assertEqual(res["close"], 1000)

    async def echo_all(self, url, fragmented=True):
        async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
            got = []
            for n in SIZES:
                for binary in (False, True):
                    msg = pattern(n, binary)
                    await ws.send(msg)
                    got.append((n, binary, await ws.recv() == msg))
            if fragmented:
                parts = ["frag-", "ment", "ed" * 40000]
                await ws.send(parts)
                got.append(("fragmented text", None, await ws.recv() == "".join(parts)))
                bparts = [b"\x00", b"\x01" * 70000, b""]
                await ws.send(bparts)
                got.append(("fragmented binary", None, await ws.recv() == b"".join(bparts)))
            return got

    @unittest.skipUnless(HAVE_TEST_UPSTREAM, "test-upstream is not built")
    def test_python_client_to_test_upstream_echo(self):
        up = self.upstream()
        w = self.wsgate(proxy_conf(up.port))
        got = run(self.echo_all(f"ws://127.0.0.1:{w.port}/echo"))
        self.assertEqual([g for g in got if not g[2]], [])
        self.assertEqual(len(got), 2 * len(SIZES) + 2)

    def test_python_client_to_node_server(self):
        node = self.node_server()
        w = self.wsgate(proxy_conf(node.port))

        async def go():
            async with websockets.connect(f"ws://127.0.0.1:{w.port}/", max_size=None,
                                          ping_interval=None) as ws:
                first = await ws.recv()  # sent by the server right after its 101
                got = []
                for n in SIZES:
                    for binary in (False, True):
                        msg = pattern(n, binary)
                        await ws.send(msg)
                        got.append(await ws.recv() == msg)  # arrives in 3 fragments
                return first, got
        first, got = run(go())
        self.assertEqual(first, "hello")
        self.assertEqual(got, [True] * (2 * len(SIZES)))
        # The client's close reached the server with its code and reason.
        self.assertEqual(node.wait_line("closed"), "closed 1000")

    def test_node_client_to_python_server(self):
        py = self.py_server()
        w = self.wsgate(proxy_conf(py.port))
        self.check_node_client(self.node_client(f"ws://127.0.0.1:{w.port}/"), greeted=False)
        self.assertEqual(py.wait_ended()[0][0], 1000)

    def test_node_client_to_node_server(self):
        node = self.node_server()
        w = self.wsgate(proxy_conf(node.port))
        self.check_node_client(self.node_client(f"ws://127.0.0.1:{w.port}/"), greeted=True)
        self.assertEqual(node.wait_line("closed"), "closed 1000 done")

    @unittest.skipUnless(HAVE_TEST_UPSTREAM, "test-upstream is not built")
    def test_node_client_to_test_upstream_echo(self):
        up = self.upstream()
        w = self.wsgate(proxy_conf(up.port))
        self.check_node_client(self.node_client(f"ws://127.0.0.1:{w.port}/echo"), greeted=False)

    @unittest.skipUnless(HAVE_TEST_UPSTREAM, "test-upstream is not built")
    def test_beast_client_to_test_upstream_and_node_server(self):
        if not os.path.exists(PROBE):
            self.skipTest(f"wsgate-probe (Boost.Beast client) is not built: {PROBE}")
        up = self.upstream()
        w = self.wsgate(proxy_conf(up.port))
        msgs = ["", "hello", "x" * 70000]
        r = subprocess.run([PROBE, "--json", "--timeout", "10", *[f"--send={m}" for m in msgs],
                            f"ws://127.0.0.1:{w.port}/echo"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        if HAVE_NODE_WS:
            node = self.node_server()
            w2 = self.wsgate(proxy_conf(node.port))
            r = subprocess.run([PROBE, "--json", "--send", "beast", f"ws://127.0.0.1:{w2.port}/"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("beast", r.stdout)

    @unittest.skipUnless(HAVE_TEST_UPSTREAM, "test-upstream is not built")
    def test_client_frames_pipelined_with_the_handshake(self):
        up = self.upstream()
        w = self.wsgate(proxy_conf(up.port))
        s = socket.create_connection(("127.0.0.1", w.port))
        s.settimeout(5)
        # Handshake and two frames in one write: the echo must see the frames after its 101.
        s.sendall(handshake() + frame(0x1, b"early one") + frame(0x2, b"\x00early two"))
        head, rest = read_head(s)
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        self.assertIn(f"Sec-WebSocket-Accept: {accept_key('dGhlIHNhbXBsZSBub25jZQ==')}".encode(), head)
        op, payload, rest = read_frame(s, rest)
        self.assertEqual((op, payload), (0x1, b"early one"))
        op, payload, rest = read_frame(s, rest)
        self.assertEqual((op, payload), (0x2, b"\x00early two"))
        s.sendall(frame(0x8, struct.pack("!H", 1000)))
        op, payload, rest = read_frame(s, rest)
        self.assertEqual((op, payload[:2]), (0x8, struct.pack("!H", 1000)))
        s.close()

    def test_upstream_frames_pipelined_with_the_101(self):
        def upstream(c, head):
            key = re.search(rb"Sec-WebSocket-Key: (\S+)", head, re.I).group(1).decode()
            c.sendall(f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n".encode()
                      + frame(0x1, b"first", mask=False) + frame(0x2, b"second", mask=False))
            c.settimeout(5)
            op, payload, _ = read_frame(c)
            c.sendall(frame(0x8, payload[:2], mask=False))
        up = self.scripted(upstream)
        w = self.wsgate(proxy_conf(up.port))

        async def go():
            async with websockets.connect(f"ws://127.0.0.1:{w.port}/", ping_interval=None) as ws:
                return [await ws.recv(), await ws.recv()]
        self.assertEqual(run(go(), 10), ["first", b"second"])

    def test_close_initiated_by_either_side(self):
        py = self.py_server()
        node = self.node_server()

        async def server_closes(port):
            async with websockets.connect(f"ws://127.0.0.1:{port}/", ping_interval=None) as ws:
                await ws.send("close-me")
                try:
                    while True:
                        await ws.recv()
                except websockets.exceptions.ConnectionClosed:
                    return ws.close_code, ws.close_reason

        async def client_closes(port):
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/", ping_interval=None)
            await ws.send("x")
            await ws.close(4100, "client-bye")
            return ws.close_code

        wp = self.wsgate(proxy_conf(py.port))
        wn = self.wsgate(proxy_conf(node.port))
        self.assertEqual(run(server_closes(wp.port), 10), (4002, "py-bye"))
        self.assertEqual(run(server_closes(wn.port), 10), (4001, "bye"))
        self.assertEqual(run(client_closes(wp.port), 10), 4100)
        self.assertEqual(run(client_closes(wn.port), 10), 4100)
        self.assertIn(4100, [e[0] for e in py.wait_ended(2)])
        self.assertEqual(node.wait_line("closed 4100"), "closed 4100 client-bye")

    def test_upstream_reset_reaches_the_client_at_once(self):
        def upstream(c, head):
            key = re.search(rb"Sec-WebSocket-Key: (\S+)", head, re.I).group(1).decode()
            c.sendall(f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n".encode())
            c.settimeout(5)
            read_frame(c)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()  # RST
        up = self.scripted(upstream)
        w = self.wsgate(proxy_conf(up.port, "proxy_read_timeout 30s;"))

        async def go():
            async with websockets.connect(f"ws://127.0.0.1:{w.port}/", ping_interval=None,
                                          close_timeout=1) as ws:
                await ws.send("bye")
                start = time.monotonic()
                try:
                    await ws.recv()
                except websockets.exceptions.ConnectionClosed:
                    return ws.close_code, time.monotonic() - start
        code, took = run(go(), 15)
        self.assertEqual(code, 1006)  # no close frame: the connection just ended
        self.assertLess(took, 2.5)

    def test_client_reset_reaches_the_upstream_at_once(self):
        py = self.py_server()
        w = self.wsgate(proxy_conf(py.port, "proxy_read_timeout 30s;"))
        s = socket.create_connection(("127.0.0.1", w.port))
        s.settimeout(5)
        s.sendall(handshake() + frame(0x1, b"ping?"))
        head, rest = read_head(s)
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        self.assertEqual(read_frame(s, rest)[:2], (0x1, b"ping?"))
        start = time.monotonic()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        ended = py.wait_ended(1, timeout=5)
        self.assertEqual(len(ended), 1, "the upstream never saw the client go")
        self.assertEqual(ended[0][0], 1006)
        self.assertLess(time.monotonic() - start, 2.5)

    def test_idle_tunnel_between_real_peers_ends_at_proxy_read_timeout(self):
        py = self.py_server()
        w = self.wsgate(proxy_conf(py.port, "proxy_read_timeout 1s;"))

        async def go():
            async with websockets.connect(f"ws://127.0.0.1:{w.port}/", ping_interval=None,
                                          close_timeout=1) as ws:
                await ws.send("a")
                await ws.recv()
                start = time.monotonic()
                try:
                    await ws.recv()
                except websockets.exceptions.ConnectionClosed:
                    return time.monotonic() - start
        took = run(go(), 10)
        self.assertGreater(took, 0.8)
        self.assertLess(took, 3.5)
        self.assertEqual(py.wait_ended()[0][0], 1006)
        self.assertIn("while proxying upgraded connection", w.log())


@unittest.skipUnless(websockets, "python3-websockets is missing (use /usr/bin/python3)")
class SendTimeouts(WsgateCase):
    def flood(self, reader_is_client):
        """One side floods, the other stops reading: the stalled write ends the tunnel after the
        send timeout (send_timeout toward the client, proxy_send_timeout toward the upstream)."""
        result = {}
        stop = threading.Event()

        def pump(sock, key):
            sock.settimeout(15)
            start = time.monotonic()
            try:
                while not stop.is_set():
                    sock.sendall(b"\x82\x7e\xff\xff" + b"z" * 65535)
            except OSError:
                pass
            result[key] = time.monotonic() - start

        def upstream(c, head):
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            if reader_is_client:
                pump(c, "flooder")
            else:
                stop.wait(15)  # never reads
        up = self.scripted(upstream)
        w = self.wsgate(proxy_conf(up.port, "proxy_read_timeout 30s; send_timeout 1s; proxy_send_timeout 1s;"))
        s = socket.create_connection(("127.0.0.1", w.port))
        self.cleanups.append(s.close)
        self.cleanups.append(stop.set)
        s.settimeout(5)
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
        head, _ = read_head(s)
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        if not reader_is_client:
            pump(s, "flooder")  # the client floods, the upstream never reads
        deadline = time.monotonic() + 15
        while "flooder" not in result and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn("flooder", result, "the stalled tunnel was never closed")
        # Socket buffers fill first (a few MB on loopback), then 1 s of stall.
        self.assertLess(result["flooder"], 8)

    def test_client_that_stops_reading_is_closed_after_send_timeout(self):
        self.flood(reader_is_client=True)

    def test_upstream_that_stops_reading_is_closed_after_proxy_send_timeout(self):
        self.flood(reader_is_client=False)


class RefusedUpgrades(WsgateCase):
    def test_101_to_a_request_whose_upgrade_was_not_forwarded_is_refused(self):
        # The location does not pass Upgrade on: a 101 from the upstream would open a tunnel past
        # the location rules (request smuggling), so wsgate answers 502 and relays nothing after.
        smuggled = []

        def upstream(c, head):
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            c.settimeout(2)
            try:
                d = c.recv(65536)
                if d:
                    smuggled.append(d)
            except OSError:
                pass
        up = self.scripted(upstream)
        w = self.wsgate(f"""server {{ listen 127.0.0.1:PORT;
  location / {{ proxy_pass http://127.0.0.1:{up.port}; proxy_http_version 1.1; }} }}""")
        r = exchange(w.port, handshake("/ws") + b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n", timeout=3)
        self.assertTrue(r.startswith(b"HTTP/1.1 502 "), r[:200])
        self.assertNotIn(b"101", r.split(b"\r\n")[0])
        self.assertNotIn(b"Upgrade: websocket", up.heads[0])
        self.assertEqual([d for d in smuggled if b"/admin" in d], [])

    def test_h2c_is_never_tunnelled_even_when_allowed(self):
        def upstream(c, head):
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
            time.sleep(0.5)
        up = self.scripted(upstream)
        w = self.wsgate(proxy_conf(up.port, "proxy_upgrade_allow websocket h2c;"))
        r = exchange(w.port, b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                             b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n", timeout=3)
        self.assertFalse(r.startswith(b"HTTP/1.1 101"), r[:200])
        # Either refused before the upstream (no Upgrade: h2c forwarded) or its 101 refused (502).
        if up.heads:
            self.assertTrue(r.startswith(b"HTTP/1.1 502 "), r[:200])
        self.assertTrue(parse_responses(r), r[:200])

    def test_101_with_another_protocol_than_asked_is_refused(self):
        def upstream(c, head):
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
            time.sleep(0.5)
        up = self.scripted(upstream)
        w = self.wsgate(proxy_conf(up.port))
        r = exchange(w.port, handshake("/ws"), timeout=3)
        self.assertTrue(r.startswith(b"HTTP/1.1 502 "), r[:200])


if __name__ == "__main__":
    unittest.main()
