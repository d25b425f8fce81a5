"""Proxying: the upstream request as route() computed it, response framing, upstream failures
(502/504), keep-alive to upstreams, round-robin, proxy_redirect, hidden headers, and the upgrade
tunnel."""
import json
import os
import socket
import time
import unittest

from harness import TEST_UPSTREAM, WsgateCase, exchange, free_port, parse_responses

HAVE_TEST_UPSTREAM = os.path.exists(TEST_UPSTREAM)


def respond_with(data, then_sleep=0.0, close=True):
    def handler(c, head):
        c.sendall(data)
        if then_sleep:
            time.sleep(then_sleep)
    return handler


def proxy_conf(port, extra=""):
    return f"""
server {{
  listen 127.0.0.1:PORT;
  location / {{ proxy_pass http://127.0.0.1:{port}; proxy_read_timeout 2s; {extra} }}
  location /ws {{ proxy_pass http://127.0.0.1:{port}; proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection upgrade;
    proxy_read_timeout 2s; }}
}}
"""


class Framing(WsgateCase):
    def through(self, upstream_bytes, request, sleep=0.2, timeout=3.0):
        up = self.scripted(respond_with(upstream_bytes, sleep))
        w = self.wsgate(proxy_conf(up.port))
        return exchange(w.port, request, timeout=timeout), up

    def test_close_delimited_is_rechunked_for_http11(self):
        r, up = self.through(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nhelloworld",
                             b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", timeout=1.5)
        self.assertEqual(up.heads[0], b"GET /x HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % up.port)
        status, h, body = parse_responses(r)[0]
        self.assertEqual((status, h["transfer-encoding"], h["connection"], body),
                         (200, "chunked", "keep-alive", b"helloworld"))
        self.assertTrue(r.endswith(b"0\r\n\r\n"))

    def test_close_delimited_to_http10_closes(self):
        r, _ = self.through(b"HTTP/1.1 200 OK\r\n\r\nhelloworld", b"GET /x HTTP/1.0\r\n\r\n")
        self.assertIn(b"Connection: close\r\n", r)
        self.assertTrue(r.endswith(b"\r\n\r\nhelloworld"))
        self.assertNotIn(b"Transfer-Encoding", r)

    def test_chunked_upstream_to_http10_client_is_dechunked(self):
        r, _ = self.through(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                            b"GET /x HTTP/1.0\r\n\r\n")
        self.assertTrue(r.endswith(b"\r\n\r\nhello"), r)

    def test_upstream_closing_mid_body_is_not_passed_as_complete(self):
        r, _ = self.through(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc",
                            b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(r.endswith(b"\r\n\r\nabc"))  # and the connection was closed (exchange ended)
        r, _ = self.through(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
                            b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(r.endswith(b"3\r\nabc\r\n"), r)  # no terminating chunk

    def test_204_304_head_have_no_body(self):
        r, _ = self.through(b"HTTP/1.1 304 Not Modified\r\nETag: x\r\nContent-Length: 5\r\n\r\n",
                            b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(r.endswith(b"ETag: x\r\n\r\n"), r)
        r, _ = self.through(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                            b"HEAD /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(r.endswith(b"\r\n\r\n") and b"Content-Length: 5" in r, r)

    def test_interim_responses_are_skipped(self):
        r, _ = self.through(b"HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                            b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertEqual([(s, b) for s, _, b in parse_responses(r)], [(200, b"ok")])

    def test_hidden_headers_and_proxy_redirect_default(self):
        up = self.scripted(lambda c, h: c.sendall(
            b"HTTP/1.1 200 Fine\r\nServer: up\r\nDate: x\r\nX-Pad: 1\r\nX-Accel-Buffering: no\r\n"
            b"Content-Length: 2\r\nContent-Type: a/b\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
            b"X-Z: z\r\nLocation: http://127.0.0.1:%d/up/x\r\n\r\nok" % up.port))
        w = self.wsgate(proxy_conf(up.port))
        r = exchange(w.port, b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        head = r.split(b"\r\n\r\n")[0].decode()
        self.assertTrue(head.startswith("HTTP/1.1 200 Fine\r\n"))
        for gone in ("Server: up", "Date: x", "X-Pad", "X-Accel", "Keep-Alive"):
            self.assertNotIn(gone, head)
        self.assertIn(f"Location: http://a:{w.port}/up/x", head)
        self.assertIn("X-Z: z", head)


class Failures(WsgateCase):
    def test_refused_is_502(self):
        port = free_port()
        w = self.wsgate(proxy_conf(port))
        r = exchange(w.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"))
        self.assertIn("connect() failed (111", w.log())

    def test_read_timeout_is_504(self):
        up = self.scripted(lambda c, h: time.sleep(4))
        w = self.wsgate(proxy_conf(up.port))
        start = time.monotonic()
        r = exchange(w.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", timeout=6)
        self.assertTrue(r.startswith(b"HTTP/1.1 504 Gateway Time-out\r\n"), r[:60])
        self.assertGreater(time.monotonic() - start, 1.8)

    def test_reset_before_response_is_502(self):
        def reset(c, h):
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        up = self.scripted(reset)
        w = self.wsgate(proxy_conf(up.port))
        r = exchange(w.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 502 "), r[:60])

    def test_invalid_header_is_502(self):
        up = self.scripted(respond_with(b"garbage\r\n\r\n"))
        w = self.wsgate(proxy_conf(up.port))
        r = exchange(w.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 502 "), r[:60])

    def test_101_without_upgrade_request_is_502(self):
        up = self.scripted(respond_with(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", 1))
        w = self.wsgate(proxy_conf(up.port))
        r = exchange(w.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 502 "), r[:60])

    def test_h2c_upgrade_is_refused(self):
        up = self.scripted(respond_with(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n", 1))
        w = self.wsgate(proxy_conf(up.port))
        r = exchange(w.port, b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n", timeout=2)
        self.assertTrue(r.startswith(b"HTTP/1.1 502 "), r[:60])


class BodyTimeout(WsgateCase):
    def test_client_body_timeout_closes_without_answer_as_nginx(self):
        up = self.scripted(lambda c, h: time.sleep(3))
        w = self.wsgate(f"""server {{ listen 127.0.0.1:PORT; client_body_timeout 1s;
  location / {{ proxy_pass http://127.0.0.1:{up.port}; }} }}""")
        for body in (b"Content-Length: 5\r\n\r\nab", b"Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n"):
            start = time.monotonic()
            r = exchange(w.port, b"POST / HTTP/1.1\r\nHost: a\r\n" + body, timeout=4)
            self.assertEqual(r, b"")
            self.assertLess(time.monotonic() - start, 3)
        self.assertIn("client timed out", w.log())


class Tunnel(WsgateCase):
    def test_bytes_flow_both_ways_with_early_data_and_half_close(self):
        got = []

        def upstream(c, head):
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nEARLY")
            c.settimeout(5)
            while True:
                d = c.recv(100)
                if not d:
                    break
                got.append(d)
                c.sendall(d.upper())
            c.sendall(b"BYE")  # after the client's half-close, the other direction still works
            c.shutdown(socket.SHUT_WR)
        up = self.scripted(upstream)
        w = self.wsgate(proxy_conf(up.port))
        s = socket.create_connection(("127.0.0.1", w.port))
        s.settimeout(3)
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nhello")
        data = b""
        while b"EARLYHELLO" not in data:
            data += s.recv(4096)
        self.assertTrue(data.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"))
        self.assertIn(b"Upgrade: websocket\r\n", data)
        s.sendall(b"more")
        self.assertEqual(s.recv(100), b"MORE")
        s.shutdown(socket.SHUT_WR)
        rest = b""
        while True:
            d = s.recv(100)
            if not d:
                break
            rest += d
        self.assertEqual(rest, b"BYE")
        self.assertEqual(b"".join(got), b"hellomore")
        self.assertIn(b"Upgrade: websocket\r\nConnection: upgrade\r\n", up.heads[0])

    def test_idle_tunnel_closes_after_proxy_read_timeout(self):
        def upstream(c, head):
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            c.settimeout(10)
            try:
                while c.recv(100):
                    pass
            except OSError:
                pass
        up = self.scripted(upstream)
        w = self.wsgate(proxy_conf(up.port))
        s = socket.create_connection(("127.0.0.1", w.port))
        s.settimeout(6)
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
        self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 101"))
        time.sleep(1.2)
        s.sendall(b"x")  # activity resets the idle clock
        start = time.monotonic()
        self.assertEqual(s.recv(100), b"")
        self.assertGreater(time.monotonic() - start, 1.5)
        s.close()


@unittest.skipUnless(HAVE_TEST_UPSTREAM, "test-upstream is not built")
class WithTestUpstream(WsgateCase):
    def test_upstream_receives_what_route_computed(self):
        up = self.upstream()
        w = self.wsgate(f"""
server {{ listen 127.0.0.1:PORT;
  location /api/ {{ proxy_pass http://127.0.0.1:{up.port}/v2/; proxy_set_header X-Real-IP $remote_addr; }} }}""")
        r = exchange(w.port, b"GET /api/x?y=1 HTTP/1.1\r\nHost: Example.org\r\nUser-Agent: t\r\n"
                             b"Connection: close\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 200"), r[:80])
        rec = up.records()[-1]
        self.assertEqual(rec["request_line"], "GET /v2/x?y=1 HTTP/1.0")
        self.assertEqual(rec["header_lines"], ["X-Real-IP: 127.0.0.1", f"Host: 127.0.0.1:{up.port}",
                                               "Connection: close", "User-Agent: t"])

    def test_bodies_content_length_and_chunked(self):
        up = self.upstream()
        w = self.wsgate(f"""server {{ listen 127.0.0.1:PORT; client_max_body_size 1m;
  location /buffered {{ proxy_pass http://127.0.0.1:{up.port}; }}
  location /streamed {{ proxy_pass http://127.0.0.1:{up.port}; proxy_http_version 1.1;
    proxy_request_buffering off; proxy_buffering off; }} }}""")
        body = b"x" * 100000
        r = exchange(w.port, b"POST /buffered HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        self.assertTrue(r.startswith(b"HTTP/1.1 200"), r[:80])
        self.assertEqual(up.records()[-1]["body_length"], len(body))
        chunked = b"".join(b"%x\r\n" % 1000 + b"y" * 1000 + b"\r\n" for _ in range(80)) + b"0\r\n\r\n"
        r = exchange(w.port, b"POST /buffered HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked)
        rec = up.records()[-1]
        self.assertIn("Content-Length: 80000", rec["header_lines"])
        self.assertEqual((rec["body_length"], rec["body_chunked"]), (80000, False))
        r = exchange(w.port, b"POST /streamed HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked)
        rec = up.records()[-1]
        self.assertIn("Transfer-Encoding: chunked", rec["header_lines"])
        self.assertEqual((rec["body_length"], rec["body_chunked"]), (80000, True))
        # Over client_max_body_size while chunked: 413.
        big = b"".join(b"%x\r\n" % 60000 + b"z" * 60000 + b"\r\n" for _ in range(20)) + b"0\r\n\r\n"
        r = exchange(w.port, b"POST /buffered HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + big)
        self.assertTrue(r.startswith(b"HTTP/1.1 413"), r[:80])

    def test_expect_100_continue(self):
        up = self.upstream()
        w = self.wsgate(f"server {{ listen 127.0.0.1:PORT; location / {{ proxy_pass http://127.0.0.1:{up.port}; }} }}")
        s = socket.create_connection(("127.0.0.1", w.port))
        s.settimeout(3)
        s.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\n")
        self.assertEqual(s.recv(100), b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"abc")
        data = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
        self.assertTrue(data.startswith(b"HTTP/1.1 200"))
        self.assertEqual(up.records()[-1]["body_length"], 3)
        self.assertFalse(any(h.lower().startswith("expect") for h in up.records()[-1]["header_lines"]))

    def test_upstream_keepalive_and_round_robin(self):
        a, b = self.upstream("a"), self.upstream("b")
        w = self.wsgate(f"""
upstream pool {{ server 127.0.0.1:{a.port}; server 127.0.0.1:{b.port}; keepalive 4; }}
server {{ listen 127.0.0.1:PORT;
  location / {{ proxy_pass http://pool; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}""")
        s = socket.create_connection(("127.0.0.1", w.port))
        s.settimeout(3)
        names = []
        for i in range(6):
            s.sendall(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i)
            data = b""
            while True:
                data += s.recv(65536)
                resp = parse_responses(data)
                if resp and len(resp[0][2]) == int(resp[0][1].get("content-length", -1)):
                    break
            names.append(json.loads(resp[0][2])["upstream"])
        s.close()
        self.assertEqual(names, ["a", "b"] * 3)
        # Keep-alive: each upstream saw one connection, and three requests on it.
        for u in (a, b):
            recs = u.records()
            self.assertEqual({r["connection"] for r in recs}, {1}, recs)
            self.assertEqual([r["sequence"] for r in recs], [1, 2, 3])

    def test_websocket_echo_through_the_tunnel(self):
        import asyncio
        try:
            import websockets
        except ImportError:
            self.skipTest("python3-websockets is missing")
        up = self.upstream()
        w = self.wsgate(f"""
map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
server {{ listen 127.0.0.1:PORT;
  location / {{ proxy_pass http://127.0.0.1:{up.port}; proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade; }} }}""")

        async def run():
            async with websockets.connect(f"ws://127.0.0.1:{w.port}/echo", max_size=None) as ws:
                out = []
                for msg in ("hello", b"\x00\x01" * 70000, "x" * 200000):
                    await ws.send(msg)
                    out.append(await ws.recv())
                return out
        out = asyncio.run(run())
        self.assertEqual(out, ["hello", b"\x00\x01" * 70000, "x" * 200000])


if __name__ == "__main__":
    unittest.main()
