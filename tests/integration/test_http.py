"""The client side of wsgate's data path: parsing, limits, statuses, error pages, keep-alive,
pipelining, bodies and timeouts, each as nginx 1.22 answers it."""
import socket
import time
import unittest

from harness import WsgateCase, exchange, parse_responses

PAGE_404 = (b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
            b"<center><h1>404 Not Found</h1></center>\r\n<hr><center>wsgate</center>\r\n"
            b"</body>\r\n</html>\r\n")

SERVER = """
server {
  listen 127.0.0.1:PORT;
  server_tokens off;
  client_max_body_size 10;
  client_header_timeout 1s;
  client_body_timeout 1s;
  keepalive_timeout 2s;
  location /r301 { return 301 /target; }
  location /r200 { return 200 "hi"; }
  location /r204 { return 204; }
  location /r418 { return 418; }
  location /r500 { return 500; }
  location /added { add_header X-Added yes; add_header X-Always yes always; return 200 "a"; }
  location /added404 { add_header X-Added yes; add_header X-Always yes always; return 404; }
  location /custom { error_page 404 /page; return 404; }
  location = /page { return 200 "custom page"; }
  location /tokens { server_tokens on; return 404; }
}
"""


class ErrorPages(WsgateCase):
    def setUp(self):
        super().setUp()
        self.w = self.wsgate(SERVER)

    def get(self, path, extra=b""):
        return exchange(self.w.port, b"GET " + path + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n" + extra + b"\r\n")

    def test_404_page_is_nginx_shaped(self):
        r = self.get(b"/nope")
        head, _, body = r.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 404 Not Found\r\nServer: wsgate\r\nDate: "), head)
        self.assertIn(b"\r\nContent-Type: text/html\r\nContent-Length: %d\r\nConnection: close" % len(PAGE_404), head)
        self.assertEqual(body, PAGE_404)

    def test_server_tokens_on_prints_version(self):
        status, headers, body = parse_responses(self.get(b"/tokens"))[0]
        self.assertEqual(status, 404)
        self.assertRegex(headers["server"], r"^wsgate/\d+\.\d+\.\d+$")
        self.assertIn(b"<hr><center>wsgate/", body)

    def test_return_and_redirect(self):
        status, headers, body = parse_responses(self.get(b"/r301"))[0]
        self.assertEqual((status, headers["location"]), (301, f"http://a:{self.w.port}/target"))
        self.assertIn(b"<title>301 Moved Permanently</title>", body)
        status, headers, body = parse_responses(self.get(b"/r200"))[0]
        self.assertEqual((status, headers["content-type"], body), (200, "text/plain", b"hi"))
        r = self.get(b"/r204")
        self.assertTrue(r.startswith(b"HTTP/1.1 204 No Content\r\n"))
        self.assertNotIn(b"Content-Length", r)
        r = self.get(b"/r418")
        self.assertTrue(r.startswith(b"HTTP/1.1 418 \r\n"), r)
        self.assertIn(b"Content-Length: 0\r\n", r)

    def test_add_header_only_on_success_unless_always(self):
        _, h, _ = parse_responses(self.get(b"/added"))[0]
        self.assertEqual((h.get("x-added"), h.get("x-always")), ("yes", "yes"))
        status, h, _ = parse_responses(self.get(b"/added404"))[0]
        self.assertEqual(status, 404)
        self.assertNotIn("x-added", h)
        self.assertEqual(h.get("x-always"), "yes")

    def test_error_page_replaces_the_page(self):
        status, _, body = parse_responses(self.get(b"/custom"))[0]
        self.assertEqual((status, body), (404, b"custom page"))

    def test_500_closes(self):
        r = exchange(self.w.port, b"GET /r500 HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertIn(b"Connection: close", r)


class Parsing(WsgateCase):
    def setUp(self):
        super().setUp()
        self.w = self.wsgate(SERVER)

    def status(self, raw, timeout=2.0):
        r = exchange(self.w.port, raw, timeout=timeout)
        return int(r.split(b" ")[1]) if r.startswith(b"HTTP/1.1 ") else r

    def test_statuses_as_nginx(self):
        cases = [
            (b"GET /nope HTTP/1.0\r\n\r\n", 404),
            (b"GET /nope HTTP/1.1\r\n\r\n", 400),  # no Host
            (b"GET /nope HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            (b"GET /nope HTTP/1.2\r\nHost: a\r\nConnection: close\r\n\r\n", 404),
            (b"get /nope HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET /nope http/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET nope HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET /nope HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"GET /nope HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            (b"GET /nope HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            (b"GET /nope HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"GET /nope HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", 400),
            (b"GET /nope HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400),
            (b"GET /nope HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET /nope HTTP/1.1\r\nHost: a\r\n Folded: x\r\n\r\n", 400),
            (b"GET /nope HTTP/1.1\r\nHost: a\r\nNoColon\r\nConnection: close\r\n\r\n", 404),
            (b"GET /nope HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400),
            (b"GET /nope HTTP/1.1\r\nHost: a\r\nBad@Name: x\r\nConnection: close\r\n\r\n", 404),
            (b"GET /nope HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
            (b"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", 405),
            (b"CONNECT a:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET http://x.com/nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 404),
            (b"\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 404),
            (b"GET  /nope  HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 404),
            (b"GET /nope HTTP/1.1\nHost: a\nConnection: close\n\n", 404),
            (b"POST /r200 HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", 413),
        ]
        for raw, want in cases:
            with self.subTest(raw=raw):
                self.assertEqual(self.status(raw), want)

    def test_http09_gets_a_bare_body(self):
        r = exchange(self.w.port, b"GET /nope\r\n")
        self.assertTrue(r.startswith(b"<html>"), r)

    def test_too_long_request_line_is_414(self):
        ok = b"GET /" + b"a" * 8170 + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        self.assertEqual(self.status(ok), 404)
        r = exchange(self.w.port, b"GET /" + b"a" * 8200 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 414 Request-URI Too Large\r\n"), r[:100])

    def test_too_large_header_is_400_with_its_page(self):
        ok = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX: " + b"a" * 8180 + b"\r\n\r\n"
        self.assertEqual(self.status(ok), 404)
        r = exchange(self.w.port, b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 8190 + b"\r\n\r\n")
        status, _, body = parse_responses(r)[0]
        self.assertEqual(status, 400)
        self.assertIn(b"<title>400 Request Header Or Cookie Too Large</title>", body)
        self.assertIn(b"<center>Request Header Or Cookie Too Large</center>", body)
        # Several large lines: 4 buffers of 8k hold 8 lines of 4000 bytes, not 9.
        many = lambda n: (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n" +
                          b"".join(b"X%d: " % i + b"a" * 4000 + b"\r\n" for i in range(n)) + b"\r\n")
        self.assertEqual(self.status(many(8)), 404)
        self.assertEqual(self.status(many(9)), 400)


class KeepAlive(WsgateCase):
    def setUp(self):
        super().setUp()
        self.w = self.wsgate(SERVER)

    def test_pipelined_requests_answer_in_order(self):
        raw = (b"GET /r200 HTTP/1.1\r\nHost: a\r\n\r\n" b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"
               b"HEAD /r200 HTTP/1.1\r\nHost: a\r\n\r\n" b"GET /r301 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        r = exchange(self.w.port, raw)
        # HEAD: headers only, Content-Length kept.
        parts = r.split(b"HTTP/1.1 ")
        self.assertEqual([p[:3] for p in parts[1:]], [b"200", b"404", b"200", b"301"])
        head_resp = b"HTTP/1.1 " + parts[3]
        self.assertTrue(head_resp.endswith(b"\r\n\r\n"))
        self.assertIn(b"Content-Length: 2", head_resp)

    def test_http10_closes_unless_keep_alive(self):
        r = exchange(self.w.port, b"GET /r200 HTTP/1.0\r\n\r\n", timeout=3)
        self.assertIn(b"Connection: close", r)
        s = socket.create_connection(("127.0.0.1", self.w.port))
        s.sendall(b"GET /r200 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        s.settimeout(3)
        first = s.recv(4096)
        self.assertIn(b"Connection: keep-alive", first)
        s.sendall(b"GET /r200 HTTP/1.0\r\n\r\n")
        second = s.recv(4096)
        self.assertTrue(second.startswith(b"HTTP/1.1 200"))
        s.close()

    def test_keepalive_timeout_closes_idle(self):
        s = socket.create_connection(("127.0.0.1", self.w.port))
        s.sendall(b"GET /r200 HTTP/1.1\r\nHost: a\r\n\r\n")
        s.settimeout(5)
        self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200"))
        start = time.monotonic()
        self.assertEqual(s.recv(4096), b"")  # closed by keepalive_timeout 2s
        self.assertGreater(time.monotonic() - start, 1.5)
        s.close()

    def test_header_timeout_closes_without_answer(self):
        start = time.monotonic()
        r = exchange(self.w.port, b"GET / HTTP/1.1\r\nHost: a\r\n", timeout=5)
        self.assertEqual(r, b"")
        self.assertLess(time.monotonic() - start, 3)

    def test_expect_continue_and_chunked_body_discarded_for_return(self):
        s = socket.create_connection(("127.0.0.1", self.w.port))
        s.settimeout(3)
        s.sendall(b"POST /r200 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"3\r\nabc\r\n0\r\n\r\nGET /r200 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
        self.assertEqual([r[0] for r in parse_responses(data)], [200, 200])
        s.close()


if __name__ == "__main__":
    unittest.main()
