"""allow / deny: the same config through Debian's nginx and through wsgate, requests from four
loopback source addresses (127.0.0.1-4), and the statuses compared: the first rule that matches
decides, a level with rules replaces the outer list, CIDR masks, `all`, and the access phase after
the rewrite phase (a `return` answers a denied client). A denied request never reaches the
upstream, and the error log says "access forbidden by rule" as nginx's does."""
import os
import time
import unittest

from harness import NGINX, WsgateCase, get_from, parse_responses, start_nginx

HAVE_TEST_UPSTREAM = os.path.exists(os.environ.get("TEST_UPSTREAM", ""))

CONF = """
server { listen 127.0.0.1:PORT;
  deny 127.0.0.3;
  location /a/ { allow 127.0.0.2; deny all; proxy_pass http://127.0.0.1:UP; }
  location /b/ { deny 127.0.0.0/31; allow all; proxy_pass http://127.0.0.1:UP; }
  location /c/ { proxy_pass http://127.0.0.1:UP; }
  location /d/ { allow 127.0.0.1; deny 127.0.0.0/8; allow all; proxy_pass http://127.0.0.1:UP; }
  location /v6/ { deny ::1; proxy_pass http://127.0.0.1:UP; }
  location /r/ { deny all; return 200 "r\\n"; }
  location /s { deny all; stub_status; }
}
"""
SOURCES = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
TARGETS = ["/a/x", "/b/x", "/c/x", "/d/x", "/v6/x", "/r/x", "/s", "/none"]


def status_from(source, port, target):
    return parse_responses(get_from(source, port, target))[0][0]


@unittest.skipUnless(HAVE_TEST_UPSTREAM, "needs tests/support's test-upstream (TEST_UPSTREAM)")
@unittest.skipUnless(os.path.exists(NGINX), "Debian's nginx is not installed")
class AccessRules(WsgateCase):
    def test_same_statuses_as_nginx(self):
        up = self.upstream()
        conf = CONF.replace("UP", str(up.port))
        ports = {"nginx": start_nginx(self, conf)}
        gate = self.wsgate(conf)
        ports["wsgate"] = gate.port
        seen, reached = {}, {}
        for name, port in ports.items():
            before = len(up.records())
            seen[name] = {(src, t): status_from(src, port, t) for src in SOURCES for t in TARGETS}
            time.sleep(0.3)  # the upstream logs after it answered
            reached[name] = len(up.records()) - before
        for key in seen["nginx"]:
            with self.subTest(source=key[0], target=key[1]):
                self.assertEqual(seen["wsgate"][key], seen["nginx"][key])
        # The table is not trivial: both answers occur, and the rules were read as meant.
        w = seen["wsgate"]
        self.assertEqual([w[(s, "/a/x")] for s in SOURCES], [403, 200, 403, 403])
        self.assertEqual([w[(s, "/b/x")] for s in SOURCES], [403, 200, 200, 200])
        self.assertEqual([w[(s, "/c/x")] for s in SOURCES], [200, 200, 403, 200])
        self.assertEqual([w[(s, "/d/x")] for s in SOURCES], [200, 403, 403, 403])
        self.assertEqual([w[(s, "/r/x")] for s in SOURCES], [200] * 4)
        self.assertEqual([w[(s, "/s")] for s in SOURCES], [403] * 4)

        # Denied requests never reached the upstream: only the allowed proxied ones did.
        proxied = ("/a/", "/b/", "/c/", "/d/", "/v6")
        allowed = sum(1 for (_, t), st in w.items() if st == 200 and t.startswith(proxied))
        self.assertEqual(allowed, 12)  # /a/ 1, /b/ 3, /c/ 3, /d/ 1, /v6/ 4 (its own list)
        self.assertEqual(reached["wsgate"], allowed)
        self.assertEqual(reached["nginx"], allowed)
        deadline = time.time() + 3
        while time.time() < deadline and "access forbidden by rule" not in gate.log():
            time.sleep(0.05)
        self.assertIn("access forbidden by rule, client: 127.0.0.3", gate.log())


if __name__ == "__main__":
    unittest.main()
