#!/usr/bin/env python3
"""Differential data-path suite: the same requests through Debian's nginx and through the real
wsgate binary (not `explain`), with the same config file; compares the client's status (and
Location) and what the upstream received (request line, headers in order).

Part 1 reuses tests/diff's corpus and harness (its owner is "diff"; this file only imports it).
Part 2 sends raw pipelined and malformed requests to both and compares the status sequences.

  diff_datapath.py --wsgate build/src/cli/wsgate --upstream build/tests/support/test-upstream
"""
import argparse
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "diff"))
import run_diff as rd  # noqa: E402


class Wsgate:
    """The real wsgate on the case's config, started and stopped like run_diff's Nginx."""

    def __init__(self, binary, workdir, conf_path, port):
        self.workdir = workdir
        self.log = os.path.join(workdir, "wsgate.stderr")
        # The case's config names error.log, which nginx wrote to before: wsgate's lines follow.
        self.error_log = os.path.join(workdir, "error.log")
        self.error_log_from = os.path.getsize(self.error_log) if os.path.exists(self.error_log) else 0
        self.err = open(self.log, "wb")
        self.proc = subprocess.Popen([binary, "-c", conf_path, "-g", "daemon off;"],
                                     stdout=self.err, stderr=self.err, start_new_session=True)
        deadline = time.monotonic() + 5
        while True:
            if self.proc.poll() is not None:
                self.err.close()
                raise rd.CaseError("wsgate refused the config:\n" + open(self.log).read())
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise rd.CaseError("wsgate did not listen within 5 s")
                time.sleep(0.01)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.err.closed:
            self.err.close()

    def alerts(self):
        if not os.path.exists(self.error_log):
            return []
        with open(self.error_log, errors="replace") as f:
            f.seek(self.error_log_from)
            return [l for l in f if "[alert]" in l or "[emerg]" in l]


def observe(port, req, upstreams):
    offset = upstreams.log_size()
    try:
        resp = rd.send_request(port, req)
    except rd.CaseError as e:
        return {"action": "error", "status": str(e)}
    facts = rd.nginx_facts(resp, upstreams.records_since(offset), upstreams)
    facts["status"] = resp.status
    return facts


def differences(ng, ws, case, req):
    if ng["action"] != ws["action"] or ng.get("status") != ws.get("status"):
        return [("action/status", (ng["action"], ng.get("status")), (ws["action"], ws.get("status")))]
    if ng["action"] != "proxy":
        return [("Location", ng.get("location"), ws.get("location"))] if ng.get("location") != ws.get("location") else []
    out = []
    if ng["upstream"] != ws["upstream"]:
        out.append(("upstream", ng["upstream"], ws["upstream"]))
    if ng["request_line"] != ws["request_line"]:
        out.append(("request line", ng["request_line"], ws["request_line"]))
    if ng["headers"] != ws["headers"]:
        accepted = [v for d in case.deliberate for v in rd.deliberate_variants(d, ng, req)]
        if ws["headers"] not in accepted:
            out.append(("headers", ng["headers"], ws["headers"]))
    return out


# Part 2: raw requests, one connection each; the answer is the list of statuses read until the
# server closes or falls silent.
RAW_SERVER = """
server {
    listen @LISTEN@;
    client_max_body_size 10;
    location /r200 { return 200 "hi"; }
    location /up { proxy_pass http://@A@; }
}
"""
RAW_CASES = [
    b"GET /r200 HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\n\r\nGET /r200 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET /r200 HTTP/1.1\r\nHost: a\r\n\r\nGET /up/x HTTP/1.1\r\nHost: a\r\n\r\nHEAD /up/y HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"POST /up/p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /r200 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"POST /up/p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /r200 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET /r200 HTTP/1.0\r\n\r\nGET /r200 HTTP/1.0\r\n\r\n",
    b"GET /r200 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /r200 HTTP/1.0\r\n\r\n",
    b"GET /r200 HTTP/1.1\r\nHost: a\r\n\r\nGET /bad path HTTP/1.1\r\nHost: a\r\n\r\nGET /r200 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /nope HTTP/1.1\r\n\r\n",
    b"GET /nope HTTP/2.0\r\nHost: a\r\n\r\n",
    b"get /nope HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET nope HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /up HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"GET /up HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /up HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
    b"GET /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"GET /up HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET /up HTTP/1.1\r\nHost: a\r\n Folded: x\r\n\r\n",
    b"GET /up HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
    b"GET /up HTTP/1.1\r\nHost: a/b\r\n\r\n",
    b"TRACE /up HTTP/1.1\r\nHost: a\r\n\r\n",
    b"CONNECT a:80 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n",
    b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n01234567890\r\n0\r\n\r\n",
    b"GET /" + b"a" * 8200 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /up HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 8190 + b"\r\n\r\n",
    b"GET http://other.example/up/abs HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"\r\n\r\nGET /up/lead HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET /up/lf HTTP/1.1\nHost: a\nConnection: close\n\n",
]


def statuses(port, raw):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.sendall(raw)
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    out = []
    for part in data.split(b"HTTP/1.1 ")[1:]:
        code = part[:3]
        if code.isdigit():
            out.append(int(code))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wsgate", required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--only")
    opts = ap.parse_args()
    if not os.access("/usr/sbin/nginx", os.X_OK):
        print("diff-datapath: /usr/sbin/nginx is missing: run scripts/install-deps.sh")
        return 77
    cases = rd.parse_corpus(sorted(glob.glob(os.path.join(HERE, "..", "diff", "corpus", "*.cases"))))
    if opts.only:
        cases = [c for c in cases if opts.only in c.name]
    workdir = tempfile.mkdtemp(prefix="wsgate-diff-datapath-")
    upstreams = rd.Upstreams(opts.upstream, workdir)
    counts = {"agree": 0, "DIFF": 0, "ERROR": 0}
    reports = []
    try:
        for case in cases:
            case_dir = os.path.join(workdir, "".join(c if c.isalnum() else "_" for c in case.name))
            os.makedirs(case_dir)
            ports = (rd.free_port(), rd.free_port())
            conf = os.path.join(case_dir, "nginx.conf")
            with open(conf, "w") as f:
                f.write(rd.build_config(case, case_dir, ports, upstreams))
            sides = {}
            for side in ("nginx", "wsgate"):
                try:
                    server = (rd.Nginx(case_dir, conf, ports[0]) if side == "nginx"
                              else Wsgate(opts.wsgate, case_dir, conf, ports[0]))
                except rd.CaseError as e:
                    sides[side] = e
                    continue
                try:
                    got = []
                    for req in case.requests:
                        req.materialize(lambda t: rd.substitute(t, ports, upstreams))
                        got.append(observe(ports[req.port_index], req, upstreams))
                    sides[side] = got
                    if side == "wsgate" and server.alerts():
                        reports.append(f"{case.name}: wsgate alerts: {server.alerts()}")
                        counts["ERROR"] += 1
                finally:
                    server.stop()
            if any(isinstance(v, Exception) for v in sides.values()):
                counts["ERROR"] += len(case.requests)
                reports.append(f"{case.name}: {sides}")
                continue
            for i, req in enumerate(case.requests):
                diffs = differences(sides["nginx"][i], sides["wsgate"][i], case, req)
                verdict = "DIFF" if diffs else "agree"
                counts[verdict] += 1
                print(f"{case.name}#{i + 1:<3} {verdict}")
                if diffs:
                    first = req.raw.split(b"\r\n")[0]
                    reports.append(f"{case.name}#{i + 1} {first!r}: {diffs}")

        # Part 2: pipelined and malformed raw requests.
        ports = (rd.free_port(), rd.free_port())
        raw_dir = os.path.join(workdir, "raw")
        os.makedirs(raw_dir)
        conf = os.path.join(raw_dir, "nginx.conf")
        case = rd.Case("raw", conf, 0)
        case.kind, case.config = "http", RAW_SERVER
        with open(conf, "w") as f:
            f.write(rd.build_config(case, raw_dir, ports, upstreams))
        results = {}
        for side in ("nginx", "wsgate"):
            server = (rd.Nginx(raw_dir, conf, ports[0]) if side == "nginx"
                      else Wsgate(opts.wsgate, raw_dir, conf, ports[0]))
            try:
                results[side] = [statuses(ports[0], raw) for raw in RAW_CASES]
            finally:
                server.stop()
        for i, raw in enumerate(RAW_CASES):
            a, b = results["nginx"][i], results["wsgate"][i]
            verdict = "agree" if a == b else "DIFF"
            counts[verdict] += 1
            print(f"raw#{i + 1:<3} {verdict} nginx {a} wsgate {b}")
            if a != b:
                reports.append(f"raw#{i + 1} {raw[:60]!r}: nginx {a} wsgate {b}")
    finally:
        upstreams.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if reports:
        print("\n==== differences\n" + "\n".join(reports))
    print("\n==== " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 1 if counts["DIFF"] or counts["ERROR"] else 0


if __name__ == "__main__":
    sys.exit(main())
