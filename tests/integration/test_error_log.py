"""error_log at the http, server and location levels: nginx writes a request's errors to the
error_log of the level that handles it, filtered by that level, and the main error_log keeps the
process's own messages."""
import os
import signal
import time
import unittest

from harness import WsgateCase, exchange, free_port, parse_responses


def get(port, path):
    r = exchange(port, b"GET " + path + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    resp = parse_responses(r)
    return resp[0][0] if resp else None


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


class ErrorLogLevels(WsgateCase):
    def setUp(self):
        super().setUp()
        self.dead = free_port()  # nothing listens: connect() is refused

    def test_server_and_location_logs_take_request_errors(self):
        w = self.wsgate(f"""
            error_log TMPDIR/http.log warn;
            server {{
                listen 127.0.0.1:PORT;
                error_log TMPDIR/server.log info;
                location /srv {{ proxy_pass http://127.0.0.1:{self.dead}; }}
                location /loc {{ error_log TMPDIR/loc.log error; proxy_pass http://127.0.0.1:{self.dead}; }}
                location /quiet {{ error_log TMPDIR/quiet.log crit; proxy_pass http://127.0.0.1:{self.dead}; }}
            }}""")
        logdir = w.dir.name
        for path in (b"/srv", b"/loc", b"/quiet"):
            self.assertEqual(get(w.port, path), 502)
        time.sleep(0.2)
        server_log = read(os.path.join(logdir, "server.log"))
        loc_log = read(os.path.join(logdir, "loc.log"))
        self.assertIn('connect() failed (111: Connection refused) while connecting to upstream', server_log)
        self.assertIn('request: "GET /srv HTTP/1.1"', server_log)
        self.assertNotIn("/loc", server_log)
        self.assertIn('request: "GET /loc HTTP/1.1"', loc_log)
        # crit filters out the [error] line: nothing is written there.
        self.assertEqual(read(os.path.join(logdir, "quiet.log")), "")
        # The http-level log is overridden by the server's; the main log keeps no request errors.
        self.assertNotIn("connect() failed", read(os.path.join(logdir, "http.log")))
        self.assertNotIn("connect() failed", w.log())
        self.assertIn("[notice]", w.log())

        # USR1 reopens these files too (logrotate moved them).
        os.rename(os.path.join(logdir, "server.log"), os.path.join(logdir, "server.log.1"))
        w.send(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while "reopening logs" not in w.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(get(w.port, b"/srv"), 502)
        time.sleep(0.2)
        self.assertIn("connect() failed", read(os.path.join(logdir, "server.log")))

    def test_without_level_logs_requests_go_to_the_main_log(self):
        w = self.wsgate(f"""
            server {{ listen 127.0.0.1:PORT; location / {{ proxy_pass http://127.0.0.1:{self.dead}; }} }}""")
        self.assertEqual(get(w.port, b"/x"), 502)
        time.sleep(0.2)
        self.assertIn("connect() failed (111: Connection refused)", w.log())

    def test_a_new_connection_logs_nothing_of_the_last_one(self):
        # A worker hands a new connection the strings of a closed one (their capacity is kept):
        # the request line, Host and upstream of the last connection must not reach the next
        # one's log lines.
        w = self.wsgate(f"""
            server {{
                listen 127.0.0.1:PORT;
                client_header_timeout 1s;
                location / {{ proxy_pass http://127.0.0.1:{self.dead}; }}
            }}""")
        r = exchange(w.port, b"GET /first-request HTTP/1.1\r\nHost: first.example\r\n"
                             b"Connection: close\r\n\r\n")
        self.assertEqual(parse_responses(r)[0][0], 502)
        deadline = time.monotonic() + 5
        while 'request: "GET /first-request HTTP/1.1"' not in w.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn('host: "first.example"', w.log())
        # The next connection sends half a head and times out: its line names no request.
        r = exchange(w.port, b"GET /second HTTP/1.1\r\nHost: sec", timeout=5)
        self.assertEqual(r, b"")  # nginx closes without an answer
        deadline = time.monotonic() + 5
        while "while reading client request headers" not in w.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = [l for l in w.log().splitlines() if "while reading client request headers" in l]
        self.assertEqual(len(lines), 1, w.log())
        self.assertNotIn("first", lines[0])
        self.assertNotIn("request:", lines[0])
        self.assertNotIn("upstream:", lines[0])
        self.assertNotIn("host:", lines[0])


if __name__ == "__main__":
    unittest.main()
