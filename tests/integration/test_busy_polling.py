"""busy_polling (wsgate's own, main context): an idle worker polls for the next event before it
sleeps, so a WebSocket ping-pong does not put the worker to sleep at each round trip; once the
traffic stops the worker sleeps again. Peers: wsgate-echo as the upstream, wsgate-bench as the
client (both tools/bench, in the same build tree)."""
import glob
import json
import os
import signal
import subprocess
import time
import unittest

from harness import WsgateCase, free_port, wait_port

BENCH_DIR = os.path.join(os.path.dirname(os.path.abspath(os.environ.get("WSGATE", "wsgate"))), "..",
                         "..", "tools", "bench")
BENCH = os.environ.get("WSGATE_BENCH") or os.path.join(BENCH_DIR, "wsgate-bench")
ECHO = os.environ.get("WSGATE_ECHO") or os.path.join(BENCH_DIR, "wsgate-echo")
HAVE_TOOLS = os.path.exists(BENCH) and os.path.exists(ECHO)

TUNNEL = """
  server {
    listen 127.0.0.1:PORT;
    location /ws {
      proxy_pass http://127.0.0.1:ECHO_PORT;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
    }
  }
"""
ROUND_TRIPS = 2000


def sleeps(pid):
    """Voluntary context switches of all the process's threads: each is the thread going to sleep."""
    total = 0
    for status in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            with open(status) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
        except FileNotFoundError:  # a thread that just ended
            pass
    return total


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@unittest.skipUnless(HAVE_TOOLS, f"wsgate-bench and wsgate-echo not built ({BENCH_DIR})")
class BusyPolling(WsgateCase):
    def echo(self):
        port = free_port()
        proc = subprocess.Popen([ECHO, "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

        def stop():
            proc.terminate()
            proc.wait(5)
        self.cleanups.append(stop)
        self.assertTrue(wait_port(port), "wsgate-echo did not start")
        return port

    def ping_pong(self, port, n):
        """n WebSocket round trips of 64 B, one at a time, on one connection."""
        out = subprocess.run([BENCH, "ws", f"ws://127.0.0.1:{port}/ws", "-c", "1", "--size", "64",
                              "--inflight", "1", "-n", str(n), "--json"],
                             capture_output=True, text=True, timeout=120)
        result = json.loads(out.stdout)
        self.assertEqual(result["completed"], n, out.stdout[:400])
        self.assertEqual(result["errors"]["total"], 0, out.stdout[:400])

    def sleeps_per_round_trip(self, **wsgate_args):
        echo_port = self.echo()
        w = self.wsgate(TUNNEL.replace("ECHO_PORT", str(echo_port)), **wsgate_args)
        pid = w.proc.pid
        self.ping_pong(w.port, 200)  # warm-up: the worker's ring and pools exist
        before = sleeps(pid)
        self.ping_pong(w.port, ROUND_TRIPS)
        per = (sleeps(pid) - before) / ROUND_TRIPS
        return w, pid, per

    def test_worker_polls_between_round_trips_and_sleeps_when_idle(self):
        _, _, off = self.sleeps_per_round_trip()
        # Without it, the worker waits for each message asleep: the premise of the comparison.
        self.assertGreaterEqual(off, 0.5, "the worker without busy_polling did not sleep per round trip")
        w, pid, on = self.sleeps_per_round_trip(main_text="busy_polling on;")
        self.assertLessEqual(on, off / 3, f"busy_polling on: {on:.2f} sleeps per round trip, off: {off:.2f}")
        # Traffic over: the worker goes back to sleep instead of polling on.
        time.sleep(0.3)
        cpu = cpu_seconds(pid)
        time.sleep(1.0)
        self.assertLess(cpu_seconds(pid) - cpu, 0.1, "an idle worker kept polling")

    def test_global_directive_from_the_command_line(self):
        # An nginx.conf shared with nginx stays valid: the setting comes with -g.
        _, _, on = self.sleeps_per_round_trip(args=("-g", "busy_polling on;"))
        self.assertLess(on, 0.5, f"-g 'busy_polling on;': {on:.2f} sleeps per round trip")

    def test_quit_and_term_still_end_a_polling_worker(self):
        # A polling worker leaves its loop when its work is done (QUIT) or it is stopped (TERM).
        echo_port = self.echo()
        for sig in (signal.SIGQUIT, signal.SIGTERM):
            w = self.wsgate(TUNNEL.replace("ECHO_PORT", str(echo_port)), main_text="busy_polling on;")
            self.ping_pong(w.port, 100)
            w.send(sig)
            self.assertEqual(w.proc.wait(10), 0, f"after {sig.name}")

    def test_reload_keeps_the_setting_and_says_so(self):
        echo_port = self.echo()
        http = TUNNEL.replace("ECHO_PORT", str(echo_port))
        w = self.wsgate(http, main_text="busy_polling on;")
        w.main_text = ""
        w.write_config(http)
        w.send(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "busy_polling" not in w.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn("busy_polling on stays until wsgate restarts", w.log())
        self.ping_pong(w.port, 50)  # the reloaded configuration serves


if __name__ == "__main__":
    unittest.main()
