"""The status pages. stub_status: nginx's counters in nginx's exact layout (checked against
Debian's nginx answering the same requests), Reading/Writing/Waiting as nginx counts them (an open
tunnel is a request in progress). wsgate_status: every open WebSocket tunnel of every worker (two
workers here, so the page must collect from both), with what went through each, as JSON,
Prometheus text and HTML; closed tunnels move to the totals by reason; only GET and HEAD."""
import json
import os
import re
import socket
import time
import unittest

from harness import NGINX, WsgateCase, exchange, free_port, parse_responses, start_nginx
from test_tunnel import handshake, read_head
from ws_client import frame, read_frame

HAVE_TEST_UPSTREAM = os.path.exists(os.environ.get("TEST_UPSTREAM", ""))

STUB = re.compile(r"Active connections: (\d+) \nserver accepts handled requests\n (\d+) (\d+) (\d+) "
                  r"\nReading: (\d+) Writing: (\d+) Waiting: (\d+) \n\Z")


def conf(upstream_port):
    return f"""
map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
server {{ listen 127.0.0.1:PORT;
  location = /basic_status {{ stub_status; }}
  location = /status {{ wsgate_status; }}
  location / {{ proxy_pass http://127.0.0.1:{upstream_port}; proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade; }}
}}"""


def get(port, target, method="GET", headers=""):
    data = exchange(port, f"{method} {target} HTTP/1.1\r\nHost: a\r\n{headers}Connection: close\r\n\r\n"
                    .encode())
    (status, headers, body), = parse_responses(data)
    return {"status": status, "headers": headers, "body": body}


def body_of(resp):
    return resp["body"].decode() if isinstance(resp["body"], bytes) else resp["body"]


def open_tunnel(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(handshake("/echo"))
    head, rest = read_head(s)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, rest


def echo(sock, payload, rest=b""):
    sock.sendall(frame(0x1, payload))
    op, data, rest = read_frame(sock, rest)
    assert (op, data) == (0x1, payload), (op, data)
    return rest


@unittest.skipUnless(HAVE_TEST_UPSTREAM, "needs tests/support's test-upstream (TEST_UPSTREAM)")
class StatusPages(WsgateCase):
    def setUp(self):
        super().setUp()
        self.up = self.upstream()
        self.gate = self.wsgate(conf(self.up.port), main_text="worker_processes 2;")

    def status_json(self):
        resp = get(self.gate.port, "/status")
        self.assertEqual(resp["status"], 200, resp)
        self.assertEqual(resp["headers"].get("content-type"), "application/json")
        return json.loads(body_of(resp))

    def test_every_open_tunnel_of_every_worker_is_listed_with_its_traffic(self):
        tunnels = []
        for i in range(6):
            s, rest = open_tunnel(self.gate.port)
            for _ in range(i + 1):  # tunnel i echoes i + 1 messages of 10 bytes
                rest = echo(s, b"0123456789", rest)
            tunnels.append(s)
        j = self.status_json()
        self.assertEqual(j["workers"], 2)
        self.assertEqual(j["workers_not_answering"], [])
        self.assertEqual(j["tunnels"]["open"], 6)
        listed = {t["client"]: t for t in j["tunnels"]["list"]}
        self.assertEqual(len(listed), 6)
        for i, s in enumerate(tunnels):
            host, port = s.getsockname()
            t = listed[f"{host}:{port}"]
            self.assertEqual(t["upstream"], f"127.0.0.1:{self.up.port}")
            self.assertEqual(t["frames_to_upstream"], i + 1)
            self.assertEqual(t["frames_to_client"], i + 1)
            # A masked 10-byte text frame is 16 bytes, the unmasked echo 12.
            self.assertEqual(t["bytes_to_upstream"], 16 * (i + 1))
            self.assertEqual(t["bytes_to_client"], 12 * (i + 1))
            self.assertGreaterEqual(t["age_s"], 0)
            self.assertIn(t["worker"], (0, 1))
        self.assertEqual(j["tunnels"]["frames_to_upstream_total"], sum(range(1, 7)))
        # Six tunnels and this request are busy; the six are still active client connections.
        self.assertEqual(j["connections"]["writing"], 7)
        self.assertEqual(j["connections"]["active"], 7)

        # A closed tunnel leaves the list; its traffic stays in the totals, its reason is counted.
        tunnels[0].sendall(frame(0x8, b"\x03\xe8"))
        op, _, _ = read_frame(tunnels[0])
        self.assertEqual(op, 0x8)
        tunnels[0].close()
        deadline = time.time() + 5
        while time.time() < deadline:
            j = self.status_json()
            if j["tunnels"]["open"] == 5:
                break
            time.sleep(0.05)
        self.assertEqual(j["tunnels"]["open"], 5)
        self.assertEqual(j["tunnels"]["opened_total"], 6)
        self.assertEqual(sum(j["tunnels"]["closed_by_reason"].values()), 1)
        self.assertEqual(j["tunnels"]["frames_to_upstream_total"], sum(range(1, 7)) + 1)
        self.assertEqual(len(j["tunnels"]["list"]), 5)
        for s in tunnels[1:]:
            s.close()

    def test_prometheus_and_html(self):
        s, rest = open_tunnel(self.gate.port)
        echo(s, b"hello", rest)
        resp = get(self.gate.port, "/status?format=prometheus")
        self.assertEqual(resp["status"], 200)
        self.assertTrue(resp["headers"]["content-type"].startswith("text/plain; version=0.0.4"))
        text = body_of(resp)
        samples = {}
        for line in text.splitlines():
            if line.startswith("#"):
                self.assertRegex(line, r"^# (HELP|TYPE) wsgate_\w+ ")
                continue
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
        self.assertEqual(samples["wsgate_tunnels_open"], 1)
        self.assertEqual(samples['wsgate_tunnel_frames_total{direction="to_upstream"}'], 1)
        self.assertEqual(samples['wsgate_tunnel_bytes_total{direction="to_client"}'], 7)
        self.assertGreaterEqual(samples["wsgate_requests_total"], 2)
        # A Prometheus scraper's Accept header gets the same without ?format=.
        resp = get(self.gate.port, "/status",
                   headers="Accept: text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n")
        self.assertIn("wsgate_tunnels_open 1\n", body_of(resp))

        resp = get(self.gate.port, "/status", headers="Accept: text/html,*/*;q=0.8\r\n")
        self.assertEqual(resp["headers"]["content-type"], "text/html; charset=utf-8")
        page = body_of(resp)
        host, port = s.getsockname()
        self.assertIn(f"<td class=t>{host}:{port}</td>", page)
        self.assertIn("1 open", page)
        s.close()

        resp = get(self.gate.port, "/status?format=xml")
        self.assertEqual(resp["status"], 400)
        self.assertIn("format=json, prometheus or html", body_of(resp))

    def test_only_get_and_head(self):
        self.assertEqual(get(self.gate.port, "/status", method="POST",
                             headers="Content-Length: 0\r\n")["status"], 405)
        self.assertEqual(get(self.gate.port, "/basic_status", method="DELETE")["status"], 405)
        resp = get(self.gate.port, "/basic_status", method="HEAD")
        self.assertEqual(resp["status"], 200)

    def test_stub_status_counts_as_nginx(self):
        tunnels = [open_tunnel(self.gate.port)[0] for _ in range(3)]
        idle = socket.create_connection(("127.0.0.1", self.gate.port))  # accepted, no request yet
        time.sleep(0.2)
        resp = get(self.gate.port, "/basic_status")
        self.assertEqual(resp["headers"]["content-type"], "text/plain")
        m = STUB.match(body_of(resp))
        self.assertIsNotNone(m, body_of(resp))
        active, accepts, handled, requests, reading, writing, waiting = map(int, m.groups())
        # 3 tunnels + the idle connection + this request; accepted also the harness's start probe;
        # 3 handshakes and this request.
        self.assertEqual((active, accepts, handled, requests), (5, 6, 6, 4))
        self.assertEqual((reading, writing, waiting), (0, 4, 1))
        idle.close()
        for s in tunnels:
            s.close()


@unittest.skipUnless(HAVE_TEST_UPSTREAM, "needs tests/support's test-upstream (TEST_UPSTREAM)")
class UpstreamHealthOnThePage(WsgateCase):
    def test_a_refusing_server_shows_out(self):
        up = self.upstream()
        dead = free_port()
        gate = self.wsgate(f"""
upstream pool {{ server 127.0.0.1:{up.port} weight=2; server 127.0.0.1:{dead} max_fails=1 fail_timeout=60s;
  server 127.0.0.1:{up.port} backup; }}
server {{ listen 127.0.0.1:PORT;
  location = /status {{ wsgate_status; }}
  location / {{ proxy_pass http://pool; }} }}""")
        for _ in range(4):  # the refusing server is tried once, then left out
            self.assertEqual(get(gate.port, "/x")["status"], 200)
        j = json.loads(body_of(get(gate.port, "/status")))
        servers = {(s["server"], s["backup"]): s for s in j["upstreams"]["pool"]}
        live = servers[(f"127.0.0.1:{up.port}", False)]
        out = servers[(f"127.0.0.1:{dead}", False)]
        self.assertEqual((live["available"], live["fails"], live["weight"]), (True, 0, 2))
        self.assertEqual((out["available"], out["fails"]), (False, 1))
        self.assertTrue(servers[(f"127.0.0.1:{up.port}", True)]["available"])
        text = body_of(get(gate.port, "/status?format=prometheus"))
        self.assertIn(f'wsgate_upstream_server_available{{upstream="pool",server="127.0.0.1:{dead}"}} 0\n', text)
        self.assertIn(f'wsgate_upstream_server_fails{{upstream="pool",server="127.0.0.1:{dead}"}} 1\n', text)
        page = body_of(get(gate.port, "/status?format=html"))
        self.assertIn("out (max_fails)", page)


@unittest.skipUnless(os.path.exists(NGINX), "Debian's nginx is not installed")
class StubStatusAgainstNginx(WsgateCase):
    """The same requests to nginx's stub_status and to wsgate's: the same body, byte for byte
    once both have seen the same traffic (one worker each)."""

    def test_same_body_as_nginx(self):
        http_text = """server { listen 127.0.0.1:PORT;
          location = /s { stub_status; }
          location / { return 200 "ok\\n"; } }"""
        ports = {"nginx": start_nginx(self, http_text), "wsgate": self.wsgate(http_text).port}
        bodies = {}
        for name, port in ports.items():
            # wait_port's probe connection is one accepted connection on both.
            for target in ["/a", "/b"]:
                self.assertEqual(get(port, target)["status"], 200)
            keep = socket.create_connection(("127.0.0.1", port))
            keep.sendall(b"GET /c HTTP/1.1\r\nHost: a\r\n\r\n")  # answered, then kept alive
            keep.recv(4096)
            time.sleep(0.2)
            bodies[name] = body_of(get(port, "/s"))
            keep.close()
        self.assertRegex(bodies["nginx"], STUB)
        self.assertEqual(bodies["wsgate"], bodies["nginx"])


if __name__ == "__main__":
    unittest.main()
