#!/usr/bin/env python3
"""bench/report.py over synthetic results: medians, the load side's CPU per operation next to the
proxy's, the warning when direct is not well above the best proxy, and the quick check's verdict (--gate).
    bench_report_test.py PATH/TO/report.py"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

REPORT = sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "..", "bench", "report.py")


def write(results, proxy, case, rnd, per_second, cpu_s, echo_cpu_s, proxy_cpu_s=None, errors=0):
    d = os.path.join(results, proxy, case)
    os.makedirs(d, exist_ok=True)
    completed = int(per_second * 2)
    j = {"per_second": per_second, "completed": completed, "cpu_s": cpu_s, "echo_cpu_s": echo_cpu_s,
         "errors": {"total": errors}, "latency_us": {"p50": 1000, "p99": 2000}}
    if proxy_cpu_s is not None:
        j["proxy_cpu_s"] = proxy_cpu_s
    with open(os.path.join(d, f"{rnd}.json"), "w") as f:
        json.dump(j, f)


def run(results, *extra):
    p = subprocess.run([sys.executable, REPORT, "--results", results, "--proxies", "nginx wsgate",
                        "--rounds", "3", "--duration", "2", *extra], capture_output=True, text=True)
    return p.returncode, p.stdout


class ReportTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.results = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def fill(self, direct_rates, nginx_rates, wsgate_rates):
        for rnd, (d, n, w) in enumerate(zip(direct_rates, nginx_rates, wsgate_rates), 1):
            # 2 s runs: completed = 2 * rate. Load side 0.5 s + 0.3 s of CPU, proxy 1.0 s.
            write(self.results, "direct", "ws64", rnd, d, 0.5, 0.3)
            write(self.results, "nginx", "ws64", rnd, n, 0.5, 0.3, 1.0)
            write(self.results, "wsgate", "ws64", rnd, w, 0.5, 0.3, 1.0)

    def test_cpu_rows_and_no_warning_with_headroom(self):
        self.fill([100000, 90000, 110000], [40000, 50000, 45000], [60000, 55000, 65000])
        rc, out = run(self.results)
        self.assertEqual(rc, 0, out)
        # Median wsgate 60,000/s over 2 s = 120,000 round trips; 1.0 s of proxy CPU -> 8.33 s per
        # million; load side 0.8 s -> 6.67 s per million.
        self.assertRegex(out, r"\| proxy CPU s per million WS 64 B round trips ↓ \| – \| [0-9.]+ \| 8\.33 \|")
        self.assertRegex(out, r"\| load side CPU s per million WS 64 B round trips \(bench \+ echo\) ↓ \| 4\.00 \| [0-9.]+ \| 6\.67 \|")
        self.assertIn("direct 100,000 = 1.67× the best proxy (wsgate 60,000)", out)
        self.assertNotIn("WARNING", out)
        self.assertNotIn("HTTP p99", out.split("Medians")[0])  # cases not run are left out

    def test_warning_when_direct_is_close_to_the_best_proxy(self):
        self.fill([70000, 70000, 70000], [55000, 56000, 57000], [30000, 31000, 32000])
        rc, out = run(self.results)
        self.assertEqual(rc, 0, out)
        self.assertIn("WARNING: WS 64 B messages/s", out)
        self.assertIn("1.25× the best proxy (nginx 56,000)", out)

    def gate(self, nginx_rates, wsgate_rates, errors_in=()):
        for rnd, (n, w) in enumerate(zip(nginx_rates, wsgate_rates), 1):
            write(self.results, "gate-nginx", "ws64", rnd, n, 0.5, 0.3, 1.0)
            write(self.results, "gate-wsgate", "ws64", rnd, w, 0.5, 0.3, 1.0,
                  errors=3 if rnd in errors_in else 0)
        p = subprocess.run([sys.executable, REPORT, "--results", self.results, "--gate"],
                           capture_output=True, text=True)
        return p.returncode, p.stdout

    def test_gate_fails_when_wsgate_is_below_nginx_in_most_pairs(self):
        # Pair ratios 0.8, 0.9, 1.2, 0.95, 1.1: median 0.95.
        rc, out = self.gate([50000, 50000, 50000, 40000, 50000], [40000, 45000, 60000, 38000, 55000])
        self.assertEqual(rc, 1, out)
        self.assertIn("quick check: FAILED", out)
        self.assertIn("median of 5 pairs 0.95×", out)

    def test_gate_pairs_runs_of_the_same_round_not_the_medians(self):
        # The medians favour nginx (60,000 vs 50,500), but in every pair wsgate is ahead: a slow
        # stretch of the machine hit both halves of pairs 1-2, a fast one pairs 3-5.
        rc, out = self.gate([30000, 31000, 60000, 61000, 62000], [33000, 34000, 66000, 67000, 50500])
        self.assertEqual(rc, 0, out)
        self.assertIn("quick check: passed", out)
        self.assertIn("median of 5 pairs 1.10×", out)

    def test_gate_leaves_out_pairs_with_errors(self):
        rc, out = self.gate([50000] * 3, [60000, 10000, 60000], errors_in=(2,))
        self.assertEqual(rc, 0, out)
        self.assertIn("pairs 2 had errors and are left out", out)
        self.assertIn("median of 2 pairs 1.20×", out)

    def test_gate_fails_without_any_valid_pair(self):
        rc, out = self.gate([50000], [60000], errors_in=(1,))
        self.assertEqual(rc, 1, out)
        self.assertIn("no pair with valid", out)

    def test_runs_with_errors_are_left_out_of_the_medians(self):
        self.fill([100000] * 3, [40000] * 3, [50000] * 3)
        write(self.results, "wsgate", "ws64", 3, 1, 0.5, 0.3, 1.0, errors=7)
        rc, out = run(self.results)
        self.assertEqual(rc, 0, out)
        self.assertIn("| WS 64 B messages/s (100 conns, 1 in flight) | 100,000 | 40,000 | 50,000 | 1.25× |", out)
        self.assertIn("wsgate ws64 round 3", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
