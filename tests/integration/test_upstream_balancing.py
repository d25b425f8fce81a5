"""upstream{} balancing through Debian's nginx and through wsgate, the same config and requests:
which server answered each request must be the same sequence. Weighted round robin, a server
that refuses connections (retried on the next server, then left out for fail_timeout), backup
servers (only while every primary one is out), `down`, and no live upstreams (502)."""
import json
import os
import unittest

from harness import NGINX, WsgateCase, free_port, get_from, parse_responses, start_nginx

HAVE_TEST_UPSTREAM = os.path.exists(os.environ.get("TEST_UPSTREAM", ""))


def answer(port, target, source=None):
    (status, _, body), = parse_responses(get_from(source or "127.0.0.1", port, target))
    if status != 200:
        return str(status)
    return json.loads(body)["upstream"]


@unittest.skipUnless(HAVE_TEST_UPSTREAM, "needs tests/support's test-upstream (TEST_UPSTREAM)")
@unittest.skipUnless(os.path.exists(NGINX), "Debian's nginx is not installed")
class Balancing(WsgateCase):
    def test_same_servers_as_nginx(self):
        a, b, c = self.upstream("a"), self.upstream("b"), self.upstream("c")
        dead, dead2 = free_port(), free_port()  # nothing listens: connections are refused
        conf = f"""
upstream pool {{ server 127.0.0.1:{a.port} weight=3; server 127.0.0.1:{b.port};
  server 127.0.0.1:{dead} max_fails=1 fail_timeout=30s; server 127.0.0.1:{c.port} backup; }}
upstream primaries_dead {{ server 127.0.0.1:{dead}; server 127.0.0.1:{dead2};
  server 127.0.0.1:{c.port} backup; }}
upstream all_dead {{ server 127.0.0.1:{dead}; server 127.0.0.1:{dead2}; }}
upstream down_marked {{ server 127.0.0.1:{a.port} down; server 127.0.0.1:{b.port}; }}
upstream weights {{ server 127.0.0.1:{a.port} weight=5; server 127.0.0.1:{b.port};
  server 127.0.0.1:{c.port}; }}
server {{ listen 127.0.0.1:PORT;
  location /pool/ {{ proxy_pass http://pool; }}
  location /pd/ {{ proxy_pass http://primaries_dead; }}
  location /ad/ {{ proxy_pass http://all_dead; }}
  location /dm/ {{ proxy_pass http://down_marked; }}
  location /w/ {{ proxy_pass http://weights; }}
}}"""
        plan = ["/w/"] * 14 + ["/pool/"] * 12 + ["/pd/"] * 3 + ["/ad/"] * 2 + ["/dm/"] * 3
        seen = {}
        nginx_port = start_nginx(self, conf)
        seen["nginx"] = [answer(nginx_port, t) for t in plan]
        gate = self.wsgate(conf)
        seen["wsgate"] = [answer(gate.port, t) for t in plan]
        self.assertEqual(seen["wsgate"], seen["nginx"])
        # What the sequence means (so that agreeing on something trivial cannot pass):
        w = seen["wsgate"]
        self.assertEqual("".join(w[:14]), "aabacaaaabacaa")  # weights 5, 1, 1
        pool = w[14:26]
        self.assertEqual(pool.count("a"), 9)  # weight 3 against 1, the dead one left out
        self.assertEqual(pool.count("b"), 3)
        self.assertEqual(w[26:29], ["c"] * 3)  # primaries out: the backup
        self.assertEqual(w[29:31], ["502", "502"])  # refused, then no live upstreams
        self.assertEqual(w[31:], ["b"] * 3)
        log = gate.log()
        self.assertIn("upstream server temporarily disabled while connecting to upstream", log)
        self.assertIn("no live upstreams while connecting to upstream", log)


    def test_hashing_as_nginx(self):
        """ip_hash (the first three bytes of the client's IPv4 address) and `hash KEY`
        (Cache::Memcached's CRC32 scheme), with weights, a `down` server that keeps its place, and
        a refused one that makes the key rehash: the same server for each key as nginx."""
        a, b, c = self.upstream("a"), self.upstream("b"), self.upstream("c")
        dead = free_port()
        conf = f"""
upstream by_ip {{ ip_hash; server 127.0.0.1:{a.port}; server 127.0.0.1:{b.port} weight=2;
  server 127.0.0.1:{c.port}; }}
upstream by_room {{ hash $arg_room; server 127.0.0.1:{a.port}; server 127.0.0.1:{b.port} down;
  server 127.0.0.1:{c.port} weight=3; server 127.0.0.1:{dead}; }}
server {{ listen 127.0.0.1:PORT;
  location /ip/ {{ proxy_pass http://by_ip; }}
  location /room/ {{ proxy_pass http://by_room; }}
}}"""
        sources = [f"127.0.{x}.{y}" for x in (1, 2, 3, 5, 8, 13, 21, 34, 55, 89) for y in (1, 7)]
        rooms = [f"/room/?room={r}" for r in
                 ["lobby", "a", "b", "general", "voice-ar", "voice-en", "42", "x" * 40, "room-7", "z9"]]
        seen = {}
        for name in ("nginx", "wsgate"):
            port = start_nginx(self, conf) if name == "nginx" else self.wsgate(conf).port
            seen[name] = ([answer(port, "/ip/", src) for src in sources],
                          [answer(port, r) for r in rooms * 2])
        self.assertEqual(seen["wsgate"], seen["nginx"])
        by_ip, by_room = seen["wsgate"]
        # Affinity: the two sources of one /24 always land together; the keys spread.
        for i in range(0, len(by_ip), 2):
            self.assertEqual(by_ip[i], by_ip[i + 1])
        self.assertGreater(len(set(by_ip)), 1)
        self.assertEqual(by_room[:len(rooms)], by_room[len(rooms):])  # the same key, the same server
        self.assertNotIn("b", by_room)  # down
        self.assertGreater(len(set(by_room)), 1)


if __name__ == "__main__":
    unittest.main()
