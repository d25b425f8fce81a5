"""error_page CODE @name through wsgate and Debian's nginx: the named location answers with the
method, URI and body unchanged; `=` and `=CODE` choose the status; a missing name is a 500."""
import os
import unittest

from harness import TEST_UPSTREAM, exchange, free_port, parse_responses
from test_buffering import Proxies

HAVE_TEST_UPSTREAM = os.path.exists(TEST_UPSTREAM)


@unittest.skipUnless(HAVE_TEST_UPSTREAM, "test-upstream is not built")
class NamedLocations(Proxies):
    def test_error_page_to_named_location(self):
        up = self.upstream()
        dead = free_port()
        conf = f"""server {{ listen 127.0.0.1:PORT;
  location /keep {{ error_page 404 @fb; return 404; }}
  location /take {{ error_page 404 = @fb; return 404; }}
  location /down {{ error_page 502 = @fb; proxy_pass http://127.0.0.1:{dead}; }}
  location /down-keep {{ error_page 502 @fb; proxy_pass http://127.0.0.1:{dead}; }}
  location /set {{ error_page 404 =201 @fb; return 404; }}
  location /missing {{ error_page 404 @nothere; return 404; }}
  location @fb {{ proxy_pass http://127.0.0.1:{up.port}; proxy_set_header X-Via fb; }} }}"""
        expected = {"/keep": 404, "/take": 200, "/down": 200, "/down-keep": 502, "/set": 201,
                    "/missing": 500}
        seen = {}
        for name, p in self.proxies(conf):
            for path, status in expected.items():
                with self.subTest(proxy=name, path=path):
                    before = len(up.records())
                    r = exchange(p.port, b"POST %s?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                                 b"Connection: close\r\n\r\nhello" % path.encode(), timeout=5)
                    got, _, body = parse_responses(r)[0]
                    self.assertEqual(got, status)
                    recs = up.records()[before:]
                    if path == "/missing":
                        self.assertEqual(recs, [])
                        continue
                    self.assertEqual(len(recs), 1)
                    rec = recs[0]
                    # Method, URI and body unchanged; the named location's own headers applied.
                    self.assertEqual(rec["request_line"], f"POST {path}?q=1 HTTP/1.0")
                    self.assertEqual(rec["body_length"], 5)
                    self.assertIn("X-Via: fb", rec["header_lines"])
                    seen.setdefault(path, []).append((name, rec["header_lines"]))
        # Both proxies sent the same upstream headers.
        for path, sides in seen.items():
            if len(sides) == 2:
                self.assertEqual(sides[0][1], sides[1][1], path)


if __name__ == "__main__":
    unittest.main()
