"""Tunnels over time: websocket_keepalive (pings to both peers on an idle tunnel, pongs swallowed,
proxy_read_timeout measured from the last pong), QUIT (Close 1001 to every peer), and reloads
with a thousand open tunnels (none lost, same process)."""
import asyncio
import os
import re
import resource
import signal
import socket
import struct
import threading
import time
import unittest

from harness import Wsgate, WsgateCase
from test_tunnel import PyEchoServer, handshake, proxy_conf, read_head, websockets
from ws_client import accept_key, frame, read_frame

HAVE_TEST_UPSTREAM = os.path.exists(os.environ.get("TEST_UPSTREAM", ""))



def wsgate_threads(pid):
    """wsgate's own threads. The kernel's io_uring workers (iou-wrk-*) also show in /proc/PID/task
    and come and go with the tunnel relay's load."""
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except FileNotFoundError:
            pass
    return sum(1 for n in names if not n.startswith("iou-"))


class RawPeer:
    """One side of a tunnel driven by hand: reads frames in a thread, answers pings with pongs
    unless told not to, and records every frame it got as (opcode, payload)."""

    def __init__(self, sock, rest=b"", masked_in=False, answer_pings=True):
        self.sock = sock
        self.rest = rest
        self.masked_in = masked_in  # frames arriving here are masked (we are the upstream)
        self.answer_pings = answer_pings
        self.frames = []
        self.ended = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(30)
        try:
            while True:
                op, payload, self.rest = read_frame(self.sock, self.rest)
                self.frames.append((op, payload))
                if op == 0x9 and self.answer_pings:
                    # A server's frames are unmasked, a client's masked.
                    self.sock.sendall(frame(0xA, payload, mask=not self.masked_in))
        except (OSError, ConnectionError):
            self.ended = time.monotonic()

    def send(self, opcode, payload):
        self.sock.sendall(frame(opcode, payload, mask=not self.masked_in))

    def wait(self, pred, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.02)
        return False


class RawTunnelCase(WsgateCase):
    def tunnel(self, extra, upstream_answers=True, main_text=""):
        peers = {}
        ready = threading.Event()

        def upstream(c, head):
            key = re.search(rb"Sec-WebSocket-Key: (\S+)", head, re.I).group(1).decode()
            c.sendall(f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n".encode())
            peers["upstream"] = RawPeer(c, masked_in=True, answer_pings=upstream_answers)
            ready.set()
            peers["upstream"].thread.join(30)
        up = self.scripted(upstream)
        w = self.wsgate(proxy_conf(up.port, extra), main_text=main_text)
        s = socket.create_connection(("127.0.0.1", w.port))
        self.cleanups.append(s.close)
        s.sendall(handshake())
        head, rest = read_head(s)
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        self.assertTrue(ready.wait(5))
        return w, RawPeer(s, rest), peers["upstream"]


class Keepalive(RawTunnelCase):
    def test_idle_tunnel_outlives_proxy_read_timeout_and_pongs_are_swallowed(self):
        w, client, upstream = self.tunnel("proxy_read_timeout 2s; websocket_keepalive 1s;")
        time.sleep(5)
        self.assertIsNone(client.ended, "the idle tunnel was closed")
        self.assertIsNone(upstream.ended, "the idle tunnel was closed")
        # Both peers were pinged with wsgate's token, several times, and never saw a pong: the
        # answers were kept from the other side.
        for name, p in (("client", client), ("upstream", upstream)):
            ops = [op for op, _ in p.frames]
            self.assertGreaterEqual(ops.count(0x9), 3, f"{name} got {p.frames}")
            self.assertNotIn(0xA, ops, f"{name} saw a pong meant for wsgate")
            self.assertEqual({payload for op, payload in p.frames if op == 0x9}, {b"wsgate-k"})
        # Data still flows both ways, untouched.
        client.send(0x1, b"after the idle")
        upstream.send(0x2, b"\x00\x01back")
        self.assertTrue(upstream.wait(lambda: (0x1, b"after the idle") in upstream.frames))
        self.assertTrue(client.wait(lambda: (0x2, b"\x00\x01back") in client.frames))
        # The tunnel's accounting, logged when it closes: every frame the client sent was a
        # 14-byte pong (masked, 8-byte payload) but the 20-byte data frame.
        client.sock.shutdown(socket.SHUT_WR)  # the client finishes first, then the upstream
        time.sleep(0.2)
        try:
            upstream.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the scripted upstream already closed after wsgate passed the half-close on
        line = None
        deadline = time.monotonic() + 5
        while line is None and time.monotonic() < deadline:
            line = re.search(r"tunnel \d+ closed \((.*?)\).*to upstream (\d+) bytes (\d+) frames, "
                             r"to client (\d+) bytes (\d+) frames, pings (\d+), pongs swallowed (\d+)",
                             w.log())
            time.sleep(0.05)
        self.assertIsNotNone(line, w.log())
        reason, up_bytes, up_frames, down_bytes, down_frames, pings, swallowed = line.groups()
        self.assertEqual(reason, "client closed")
        self.assertGreaterEqual(int(up_frames), 4)
        self.assertEqual(int(up_bytes), 14 * (int(up_frames) - 1) + 20)
        # The upstream's pongs are 10 bytes (unmasked), its data frame 8.
        self.assertEqual(int(down_bytes), 10 * (int(down_frames) - 1) + 8)
        # Frames count every header, swallowed pongs included.
        self.assertEqual(int(swallowed), int(up_frames) - 1 + int(down_frames) - 1)
        self.assertGreaterEqual(int(swallowed), 6)
        self.assertGreaterEqual(int(pings), int(swallowed))

    def test_peer_that_stops_answering_is_detected(self):
        w, client, upstream = self.tunnel("proxy_read_timeout 2s; websocket_keepalive 1s;",
                                          upstream_answers=False)
        start = time.monotonic()
        self.assertTrue(client.wait(lambda: client.ended is not None, timeout=8),
                        "the tunnel to a silent upstream stayed open")
        took = client.ended - start
        self.assertGreater(took, 1.5)
        self.assertLess(took, 4.5)
        self.assertTrue(upstream.wait(lambda: upstream.ended is not None, timeout=3))

    def test_a_ping_never_lands_inside_a_frame(self):
        # The client trickles one large frame while the upstream stays silent: the ping due to
        # the upstream must wait for the frame's end (the upstream parses every frame it gets).
        w, client, upstream = self.tunnel("proxy_read_timeout 5s; websocket_keepalive 200ms;")
        payload = bytes(range(256)) * 8
        whole = frame(0x2, payload)
        client.sock.sendall(whole[:50])
        for i in range(50, len(whole), 200):
            time.sleep(0.15)
            client.sock.sendall(whole[i:i + 200])
        self.assertTrue(upstream.wait(lambda: any(op == 0x2 for op, _ in upstream.frames)))
        time.sleep(0.5)
        ops = [op for op, _ in upstream.frames]
        self.assertEqual([p for op, p in upstream.frames if op == 0x2], [payload])
        self.assertIn(0x9, ops[ops.index(0x2):], "no ping after the frame ended")
        self.assertIsNone(upstream.ended)

    def test_without_keepalive_the_idle_tunnel_ends_as_in_nginx(self):
        w, client, upstream = self.tunnel("proxy_read_timeout 1s;")
        self.assertTrue(client.wait(lambda: client.ended is not None, timeout=5))
        self.assertEqual([op for op, _ in client.frames], [])  # no pings without the directive

    @unittest.skipUnless(websockets, "python3-websockets is missing")
    def test_real_peers_stay_connected_across_idle_periods(self):
        py = PyEchoServer()
        self.cleanups.append(py.stop)
        w = self.wsgate(proxy_conf(py.port, "proxy_read_timeout 1s; websocket_keepalive 300ms;"))

        async def go():
            async with websockets.connect(f"ws://127.0.0.1:{w.port}/", ping_interval=None) as ws:
                await asyncio.sleep(3)
                await ws.send("still here")
                return await ws.recv()
        self.assertEqual(asyncio.run(asyncio.wait_for(go(), 10)), "still here")


@unittest.skipUnless(websockets, "python3-websockets is missing")
class Quit(RawTunnelCase):
    def test_every_peer_receives_close_1001(self):
        py = self.py = PyEchoServer()
        self.cleanups.append(py.stop)
        w = self.wsgate(proxy_conf(py.port), main_text="worker_shutdown_timeout 5s;")
        codes = []

        async def one(i, opened):
            async with websockets.connect(f"ws://127.0.0.1:{w.port}/", ping_interval=None) as ws:
                await ws.send(f"m{i}")
                assert await ws.recv() == f"m{i}"
                opened.append(i)
                try:
                    while True:
                        await ws.recv()
                except websockets.exceptions.ConnectionClosed:
                    codes.append(ws.close_code)

        async def go():
            opened = []
            tasks = [asyncio.create_task(one(i, opened)) for i in range(5)]
            while len(opened) < 5:
                await asyncio.sleep(0.02)
            start = time.monotonic()
            w.send(signal.SIGQUIT)
            await asyncio.gather(*tasks)
            return time.monotonic() - start
        took = asyncio.run(asyncio.wait_for(go(), 20))
        self.assertEqual(codes, [1001] * 5)
        self.assertEqual([e[0] for e in py.wait_ended(5)], [1001] * 5)
        self.assertLess(took, 3)  # the peers answered: no wait for worker_shutdown_timeout
        w.proc.wait(5)
        self.assertEqual(w.proc.returncode, 0)

    def test_node_server_receives_close_1001(self):
        from test_tunnel import HAVE_NODE_WS, NodeServer
        if not HAVE_NODE_WS:
            self.skipTest("node or node-ws is missing")
        node = NodeServer()
        self.cleanups.append(node.stop)
        w = self.wsgate(proxy_conf(node.port), main_text="worker_shutdown_timeout 5s;")

        async def go():
            async with websockets.connect(f"ws://127.0.0.1:{w.port}/", ping_interval=None) as ws:
                assert await ws.recv() == "hello"
                w.send(signal.SIGQUIT)
                try:
                    while True:
                        await ws.recv()
                except websockets.exceptions.ConnectionClosed:
                    return ws.close_code
        self.assertEqual(asyncio.run(asyncio.wait_for(go(), 10)), 1001)
        self.assertEqual(node.wait_line("closed"), "closed 1001")

    def test_a_peer_that_never_answers_is_closed_at_worker_shutdown_timeout(self):
        # Both peers read frames and never answer a Close.
        w, client, upstream = self.tunnel("", main_text="worker_shutdown_timeout 2s;")
        start = time.monotonic()
        w.send(signal.SIGQUIT)
        self.assertTrue(client.wait(lambda: client.ended is not None, timeout=6))
        self.assertTrue(upstream.wait(lambda: upstream.ended is not None, timeout=2))
        for p in (client, upstream):
            self.assertEqual(p.frames, [(0x8, struct.pack("!H", 1001))])
        self.assertGreater(client.ended - start, 1.5)
        self.assertLess(client.ended - start, 4)
        w.proc.wait(5)

    def test_close_waits_for_the_end_of_a_frame_in_flight(self):
        py = PyEchoServer()
        self.cleanups.append(py.stop)
        w = self.wsgate(proxy_conf(py.port), main_text="worker_shutdown_timeout 5s;")
        s = socket.create_connection(("127.0.0.1", w.port))
        self.cleanups.append(s.close)
        s.settimeout(5)
        s.sendall(handshake())
        head, rest = read_head(s)
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        whole = frame(0x1, b"x" * 1000)
        s.sendall(whole[:300])  # the upstream's stream is inside this frame
        time.sleep(0.3)
        w.send(signal.SIGQUIT)
        op, payload, rest = read_frame(s, rest)
        self.assertEqual((op, payload), (0x8, struct.pack("!H", 1001)))
        time.sleep(0.3)
        self.assertEqual(py.ended, [], "the upstream was closed in the middle of a frame")
        s.sendall(whole[300:])
        s.sendall(frame(0x8, struct.pack("!H", 1001)))  # our answer to wsgate's Close
        ended = py.wait_ended(1, timeout=5)
        self.assertEqual([e[0] for e in ended], [1001])


class BigWsgate(Wsgate):
    """Wsgate with room for thousands of connections."""

    def write_config(self, http_text):
        super().write_config(http_text)
        with open(self.conf) as f:
            text = f.read()
        with open(self.conf, "w") as f:
            f.write(text.replace("events {}", "events { worker_connections 8192; }"))


@unittest.skipUnless(HAVE_TEST_UPSTREAM, "test-upstream is not built")
class Reload(WsgateCase):
    TUNNELS = 1000
    RELOADS = 10

    def setUp(self):
        super().setUp()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, 16384)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        if want < 4 * self.TUNNELS + 200:
            self.skipTest(f"RLIMIT_NOFILE hard limit {hard} is too low for {self.TUNNELS} tunnels")

    def test_a_thousand_tunnels_survive_ten_reloads_in_the_same_process(self):
        up = self.upstream()
        conf = proxy_conf(up.port, "add_header X-Generation GEN;")
        w = BigWsgate(conf.replace("GEN", "0"))

        def finish():
            alerts = w.alerts()
            w.stop()
            w.dir.cleanup()
            self.assertEqual(alerts, [])
        self.cleanups.append(finish)
        pid = w.pid()
        threads = wsgate_threads(pid)

        async def client(i, state):
            # Raw WebSocket client: cheaper than a library for a thousand connections.
            reader, writer = await asyncio.open_connection("127.0.0.1", w.port)
            writer.write(handshake(f"/echo/{i}"))
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101 "), head
            state["open"] += 1
            n = 0
            try:
                while not state["stop"]:
                    msg = f"t{i}-{n}".encode()
                    writer.write(frame(0x1, msg))
                    h = await asyncio.wait_for(reader.readexactly(2), 20)
                    got = await asyncio.wait_for(reader.readexactly(h[1] & 0x7F), 20)
                    if got != msg:
                        state["wrong"] += 1
                    state["messages"] += 1
                    n += 1
                    await asyncio.sleep(0.2)
                state["survived"] += 1
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError) as e:
                state["lost"].append((i, repr(e)))
            finally:
                writer.close()

        async def go():
            state = {"open": 0, "stop": False, "messages": 0, "wrong": 0, "survived": 0, "lost": []}
            tasks = [asyncio.create_task(client(i, state)) for i in range(self.TUNNELS)]
            deadline = time.monotonic() + 60
            while state["open"] < self.TUNNELS and time.monotonic() < deadline and not state["lost"]:
                await asyncio.sleep(0.05)
            assert state["open"] == self.TUNNELS, state
            before = state["messages"]
            for gen in range(1, self.RELOADS + 1):
                w.write_config(conf.replace("GEN", str(gen)))
                w.send(signal.SIGHUP)
                await asyncio.sleep(0.5)
            # A new connection sees the last configuration.
            r, wr = await asyncio.open_connection("127.0.0.1", w.port)
            wr.write(b"GET /new HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            new_head = await r.readuntil(b"\r\n\r\n")
            wr.close()
            await asyncio.sleep(1)
            state["stop"] = True
            await asyncio.gather(*tasks)
            state["during"] = state["messages"] - before
            state["new_head"] = new_head
            return state
        state = asyncio.run(asyncio.wait_for(go(), 150))
        self.assertEqual(state["lost"], [])
        self.assertEqual(state["survived"], self.TUNNELS)
        self.assertEqual(state["wrong"], 0)
        # Every tunnel kept exchanging messages through the reloads (about 25 each).
        self.assertGreater(state["during"], self.TUNNELS * 10)
        self.assertIn(f"X-Generation: {self.RELOADS}".encode(), state["new_head"])
        self.assertEqual(w.pid(), pid)
        # No old workers left behind: the same process with the same threads.
        self.assertEqual(wsgate_threads(pid), threads)
        self.assertIsNone(w.proc.poll())
        self.assertEqual(w.log().count("reconfiguring"), self.RELOADS)


if __name__ == "__main__":
    unittest.main()
