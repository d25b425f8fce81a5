#!/usr/bin/env python3
"""Turns bench/run.sh's raw results (RESULTS/<proxy>/<case>/<round>.json, one wsgate-bench --json
each) into the side-by-side table: medians over rounds and the ratio wsgate/peer, with the CPU per operation of the proxy and of the load side
(wsgate-bench + wsgate-echo) next to each other. Warns when "direct" (no proxy) is not at least
--headroom times the best proxy: the load side, not the proxy, then sets the pace and the ratios
are capped. With --gate, reads only the quick check's pairs (gate-nginx, gate-wsgate: WebSocket
64 B runs made back to back) and exits 1 when the median of the ratios wsgate/nginx is below 1."""
import argparse
import json
import os
import statistics
import sys


def round_files(d):
    """ROUND.json names in round order (10 after 9)."""
    names = [n for n in os.listdir(d) if n.endswith(".json")]
    return sorted(names, key=lambda n: (int(n[:-5]) if n[:-5].isdigit() else 1 << 30, n))


def load(results, proxy, case):
    d = os.path.join(results, proxy, case)
    runs = []
    if not os.path.isdir(d):
        return runs
    for name in round_files(d):
        try:
            with open(os.path.join(d, name)) as f:
                runs.append(json.load(f))
        except (OSError, ValueError):
            runs.append({"failed": True})
        runs[-1]["_round"] = name[:-5]
    return runs


def paired_ratios(results, a, b, case, pick):
    """a/b per round, for the rounds where both have a valid result: the two run back to back in
    a round, so a slow stretch of the machine hits both and cancels out of the ratio."""
    bs = {r["_round"]: r for r in load(results, b, case) if ok(r) and pick(r)}
    return [pick(r) / pick(bs[r["_round"]]) for r in load(results, a, case)
            if ok(r) and pick(r) and r["_round"] in bs]


def ok(run):
    return not run.get("failed") and run.get("errors", {}).get("total", 1) == 0


def median_of(runs, pick):
    vals = []
    for r in runs:
        if not ok(r):
            continue
        v = pick(r)
        if v is not None:
            vals.append(v)
    return statistics.median(vals) if vals else None


def lat(key):
    return lambda r: r.get("latency_us", {}).get(key)


def headroom_report(table, rows, columns, headroom):
    """Lines comparing direct with the best proxy for the throughput cases, with a warning when
    the load side (not the proxy) may be what limits the proxies."""
    proxies = [c for c in columns if c != "direct"]
    out = []
    for label in [r[0] for r in rows if r[1] in ("ws64", "http_rps", "handshake") and r[4] == "high"]:
        d = table.get((label, "direct"))
        vals = [(table.get((label, p)), p) for p in proxies if table.get((label, p))]
        if not d or not vals:
            continue
        best, who = max(vals)
        ratio = d / best
        line = f"- {label}: direct {d:,.0f} = {ratio:.2f}× the best proxy ({who} {best:,.0f})"
        if ratio < headroom:
            line = ("WARNING: " + line[2:] + f", under {headroom:g}×: the load side (wsgate-bench "
                    "and wsgate-echo sharing one CPU) is near its own limit, so a proxy more than "
                    f"~{ratio:.2f}× {who} could not show it in this row.")
        out.append(line)
    return ("\nLoad-side headroom (direct against the best proxy):\n" + "\n".join(out) + "\n") if out else ""


def gate(results):
    """The quick check: wsgate/nginx WebSocket 64 B messages/s over pairs of runs made back to
    back; exits 1 when the median of the pair ratios is below 1."""
    def pick(r):
        return r.get("per_second")
    ratios = paired_ratios(results, "gate-wsgate", "gate-nginx", "ws64", pick)
    bad = [r["_round"] for p in ["gate-wsgate", "gate-nginx"] for r in load(results, p, "ws64")
           if not ok(r)]
    if bad:
        print(f"quick check: pairs {', '.join(sorted(set(bad)))} had errors and are left out")
    if not ratios:
        print("quick check: FAILED (no pair with valid WS 64 B results for both)")
        return 1
    w = statistics.median([pick(r) for r in load(results, "gate-wsgate", "ws64") if ok(r)])
    n = statistics.median([pick(r) for r in load(results, "gate-nginx", "ws64") if ok(r)])
    r = statistics.median(ratios)
    verdict = "passed" if r >= 1.0 else "FAILED"
    print(f"quick check: {verdict}: wsgate/nginx WS 64 B messages/s, median of {len(ratios)} pairs "
          f"{r:.2f}× (pairs: {', '.join(f'{x:.2f}' for x in ratios)}; medians wsgate {w:,.0f}, "
          f"nginx {n:,.0f})")
    return 0 if r >= 1.0 else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--proxies", default="nginx haproxy wsgate")
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--http-rate", type=float, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--skipped", default="")
    ap.add_argument("--note", default="")
    ap.add_argument("--gate", action="store_true",
                    help="the quick check's verdict from the gate-nginx/gate-wsgate pairs only")
    ap.add_argument("--out", default="")
    ap.add_argument("--headroom", type=float, default=1.5,
                    help="direct must reach this multiple of the best proxy, else a warning")
    a = ap.parse_args()
    if a.gate:
        return gate(a.results)

    proxies = a.proxies.split()
    columns = ["direct"] + [p for p in ["nginx", "haproxy", "haproxy-busy", "wsgate", "wsgate-busy"]
                            if p in proxies]
    rate = int(a.http_rate)

    def idle_per_conn(r):
        n = r.get("established", 0)
        if not n or "rss_hold_kb" not in r:
            return None
        return (r["rss_hold_kb"] - r["rss_before_kb"]) * 1024.0 / n

    def cpu_per_million(r):
        if "proxy_cpu_s" not in r or not r.get("completed"):
            return None
        return r["proxy_cpu_s"] / r["completed"] * 1e6

    def load_cpu_us(r):
        # wsgate-bench's own CPU over the measured window plus wsgate-echo's over the run.
        if "cpu_s" not in r or "echo_cpu_s" not in r or not r.get("completed"):
            return None
        return (r["cpu_s"] + r["echo_cpu_s"]) / r["completed"] * 1e6

    # (label, case, pick, format, better): better is "high" or "low" (for reading the ratio).
    rows = [
        ("HTTP keep-alive requests/s (50 conns)", "http_rps", lambda r: r.get("per_second"), "{:,.0f}", "high"),
        (f"HTTP p99 at {rate:,}/s fixed rate (us)", "http_rate", lat("p99"), "{:,.0f}", "low"),
        ("WS 64 B messages/s (100 conns, 1 in flight)", "ws64", lambda r: r.get("per_second"), "{:,.0f}", "high"),
        ("WS 64 B round trip p50 (us)", "ws64", lat("p50"), "{:,.0f}", "low"),
        ("WS 64 B round trip p99 (us)", "ws64", lat("p99"), "{:,.0f}", "low"),
        ("WS 16 KiB MB/s (10 conns, 2 in flight)", "ws16k", lambda r: r.get("mb_per_s"), "{:,.0f}", "high"),
        ("WS 64 B ping-pong, 1 conn: round trip p50 (us)", "ws1", lat("p50"), "{:,.0f}", "low"),
        ("WS 64 B ping-pong, 1 conn: round trip p99 (us)", "ws1", lat("p99"), "{:,.0f}", "low"),
        ("WS handshakes/s (50 concurrent)", "handshake", lambda r: r.get("per_second"), "{:,.0f}", "high"),
        (f"proxy RSS per idle WS at {a.idle:,} (bytes)", "idle", idle_per_conn, "{:,.0f}", "low"),
        ("proxy CPU s per million WS 64 B round trips", "ws64", cpu_per_million, "{:,.2f}", "low"),
        ("load side CPU s per million WS 64 B round trips (bench + echo)", "ws64", load_cpu_us,
         "{:,.2f}", "low"),
        ("proxy CPU s per million HTTP requests", "http_rps", cpu_per_million, "{:,.2f}", "low"),
        ("load side CPU s per million HTTP requests (bench + echo)", "http_rps", load_cpu_us,
         "{:,.2f}", "low"),
    ]
    table = {}
    for label, case, pick, _fmt, _b in rows:
        for col in columns:
            table[(label, col)] = median_of(load(a.results, col, case), pick)

    failures = []
    for col in columns:
        for case in ["http_rps", "http_rate", "ws64", "ws16k", "ws1", "handshake", "idle"]:
            for i, r in enumerate(load(a.results, col, case)):
                if not ok(r):
                    failures.append(f"{col} {case} round {i + 1}: "
                                    f"{r.get('first_error', 'no result') if not r.get('failed') else 'no result'}"
                                    f" (errors {r.get('errors', {})})")

    peers = [p for p in ["nginx", "haproxy"] if p in columns]
    header = ["metric"] + columns + [f"wsgate/{p}" for p in peers if "wsgate" in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, case, pick, fmt, better in rows:
        if all(table[(label, col)] is None for col in columns):
            continue  # a case this run did not include (--quick)
        cells = [label + (" ↓" if better == "low" else "")]
        for col in columns:
            v = table[(label, col)]
            cells.append(fmt.format(v) if v is not None else "–")
        if "wsgate" in columns:
            w = table[(label, "wsgate")]
            for p in peers:
                v = table[(label, p)]
                cells.append(f"{w / v:.2f}×" if w is not None and v else "–")
        lines.append("| " + " | ".join(cells) + " |")

    # Derived lines: added latency over direct, and 16 KiB throughput against direct.
    extra = []
    def label(start):
        return next(r[0] for r in rows if r[0].startswith(start))
    l_http, l_ws, l_big, l_idle = (label("HTTP p99"), label("WS 64 B round trip p99"),
                                   label("WS 16 KiB"), label("proxy RSS per idle"))
    d_http = table[(l_http, "direct")]
    d_ws = table[(l_ws, "direct")]
    d_big = table[(l_big, "direct")]
    for col in columns[1:]:
        parts = []
        v = table[(l_http, col)]
        if v is not None and d_http is not None:
            parts.append(f"HTTP p99 added {v - d_http:,.0f} us")
        v = table[(l_ws, col)]
        if v is not None and d_ws is not None:
            parts.append(f"WS p99 added {v - d_ws:,.0f} us")
        v = table[(l_big, col)]
        if v is not None and d_big:
            parts.append(f"16 KiB {v / d_big:.2f}× direct")
        v = table[(l_idle, col)]
        if v is not None and a.idle < 100000:
            # Not measured: this machine cannot give one process 200,000 descriptors.
            parts.append(f"100,000 idle WS projected at {v * 100000 / 2**30:.2f} GiB "
                         f"(from {a.idle:,}, not measured)")
        if parts:
            extra.append(f"- {col}: " + ", ".join(parts))

    text = "\n".join(lines) + "\n"
    text += (f"\nMedians of {a.rounds} round(s) of {a.duration:g} s; ↓ = lower is better. "
             "Ratios are wsgate/peer.\n")
    if extra:
        text += "\n" + "\n".join(extra) + "\n"
    if a.skipped:
        text += f"\nSkipped {a.skipped}\n"
    if a.note:
        for n in a.note.split("\n"):
            text += f"\nNote: {n}\n"
    text += headroom_report(table, rows, columns, a.headroom)
    if failures:
        text += "\nRuns with errors (left out of the medians):\n" + "\n".join("- " + f for f in failures) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)

    return 0


if __name__ == "__main__":
    sys.exit(main())
