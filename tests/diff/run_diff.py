#!/usr/bin/python3
"""Differential routing test: Debian's nginx against `wsgate explain`, on the same configs.

For every case of the corpus (tests/diff/corpus/*.cases, format in README.md) this starts the real
nginx on the case's config, sends each request over a raw socket, reads what test-upstream
received (request line and headers, byte for byte), then asks `wsgate explain --json` the same
question on the same file and compares: proxied or not, the status and Location of what is not
proxied, which upstream, the upstream request line, and the upstream headers (names, values,
order). Only the run-time ports differ between runs, and both sides see the same ones.

Exit status: 0 all agree; 1 a mismatch, a failed nginx expectation or a harness error; 77 (ctest
"skipped") when nginx behaved as the corpus expects but `wsgate explain` is not implemented yet,
so no comparison was possible.
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
UPSTREAM_NAMES = ("A", "B", "C")
IO_TIMEOUT = 5.0
SKIP = 77


class CaseError(Exception):
    """The case could not run (bad corpus entry, nginx refused the config, a socket timed out)."""


# ---------------------------------------------------------------------------------------------
# Corpus


class Request:
    def __init__(self, head_lines, payload, ws, line_no):
        self.template = (head_lines, payload)  # @PLACEHOLDERS@ filled per run by materialize()
        self.ws = ws  # a WebSocket handshake: after 101, one echo round trip is checked
        self.line_no = line_no
        self.expect = []  # (key, value) nginx must show, checked whatever wsgate says

    def materialize(self, fill):
        head_lines, payload = self.template
        head = [fill(line) for line in head_lines]
        self.raw = ("\r\n".join(head) + "\r\n\r\n").encode("utf-8", "surrogateescape")
        self.raw += fill(payload).encode("utf-8")
        self.request_line = head[0]
        parts = self.request_line.split(" ")
        self.method = parts[0]
        self.target = " ".join(parts[1:-1]) if len(parts) >= 3 else "".join(parts[1:2])
        self.version = parts[-1] if len(parts) >= 3 else ""
        self.headers = []
        for line in head[1:]:
            name, _, value = line.partition(":")
            self.headers.append((name, value.strip(" \t")))
        self.checks = [(k, fill(v)) for k, v in self.expect]


class Case:
    def __init__(self, name, path, line_no):
        self.name = name
        self.path = path
        self.line_no = line_no
        self.kind = None  # "server" | "http" | "file"
        self.config = ""
        self.requests = []
        self.deliberate = []  # ids of deliberate differences wsgate may show on this case

    def where(self):
        return f"{os.path.relpath(self.path, SOURCE_DIR)}:{self.line_no}"


def parse_corpus(paths):
    """Reads the .cases files. Sections start with `=== name` (a case) or `--- kind` (a part)."""
    cases = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        case = None
        section = None
        body = []
        body_start = 0

        def flush():
            if case is None or section is None:
                return
            kind, _, arg = section.partition(" ")
            text = "\n".join(body)
            if kind in ("server", "http"):
                case.kind, case.config = kind, text.strip("\n") + "\n"
            elif kind == "file":
                case.kind = "file"
                with open(os.path.join(SOURCE_DIR, arg.strip()), encoding="utf-8") as cf:
                    case.config = cf.read()
            elif kind == "request":
                flags = arg.split()
                # Headers end at the first empty line; what follows, up to the next section,
                # is the body, sent as is (its Content-Length is the case's business).
                text_lines = list(body)
                while text_lines and text_lines[-1] == "":
                    text_lines.pop()
                if "" in text_lines:
                    i = text_lines.index("")
                    head, payload = text_lines[:i], "\r\n".join(text_lines[i + 1 :])
                    if "escaped" in flags:  # one line with \r\n etc. spelled out (chunked bodies)
                        payload = payload.encode().decode("unicode_escape")
                else:
                    head, payload = text_lines, ""
                req = Request(head, payload, "ws" in flags, body_start)
                req.port_index = 1 if "port2" in flags else 0  # which of the case's two ports
                case.requests.append(req)
            elif kind == "expect":
                if not case.requests:
                    raise CaseError(f"{path}:{body_start}: --- expect before any --- request")
                for line in body:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        key, _, value = line.partition(" ")
                        case.requests[-1].expect.append((key, value.strip()))
            elif kind == "deliberate":
                case.deliberate += [w for line in body for w in line.split() if w]
            else:
                raise CaseError(f"{path}:{body_start}: unknown section '--- {kind}'")

        for no, line in enumerate(lines, 1):
            if line.startswith("=== "):
                flush()
                case = Case(line[4:].strip(), path, no)
                cases.append(case)
                section, body = None, []
            elif line.startswith("--- "):
                flush()
                section, body, body_start = line[4:].strip(), [], no + 1
            elif section is not None:
                body.append(line)
            elif line.strip() and not line.startswith("#"):
                raise CaseError(f"{path}:{no}: text outside a section: {line!r}")
        flush()
    names = [c.name for c in cases]
    for c in cases:
        if names.count(c.name) > 1:
            raise CaseError(f"{c.where()}: case name '{c.name}' is used twice")
        if not c.kind or not c.requests:
            raise CaseError(f"{c.where()}: case '{c.name}' needs a config and a request")
    return cases


# ---------------------------------------------------------------------------------------------
# Processes


def _die_with_parent():
    """Runs in the child before exec: if the harness is killed outright (a ctest timeout), the
    kernel kills its nginx and upstreams too, so no process outlives the test."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstreams:
    """The test-upstream processes, one per name, all appending to one log file."""

    def __init__(self, binary, workdir):
        self.log_path = os.path.join(workdir, "upstream.log")
        self.procs = {}
        self.ports = {}
        for name in UPSTREAM_NAMES:
            p = subprocess.Popen(
                [binary, "--listen", "127.0.0.1:0", "--name", name, "--log", self.log_path],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            self.procs[name] = p
            line = p.stdout.readline().decode().strip()
            m = re.fullmatch(r"listening 127\.0\.0\.1:(\d+)", line)
            if not m:
                self.stop()
                raise SystemExit(f"diff: test-upstream did not start: {line!r}")
            self.ports[name] = int(m.group(1))
        open(self.log_path, "a").close()

    def log_size(self):
        return os.path.getsize(self.log_path)

    def records_since(self, offset):
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            data = f.read()
        return [json.loads(line) for line in data.decode("utf-8", "replace").splitlines() if line]

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def substitute(text, ports, upstreams):
    text = text.replace("@LISTEN@", f"127.0.0.1:{ports[0]}")
    text = text.replace("@PORT@", str(ports[0])).replace("@PORT2@", str(ports[1]))
    text = text.replace("@LISTEN2@", f"127.0.0.1:{ports[1]}")
    for name, port in upstreams.ports.items():
        text = text.replace(f"@{name}_PORT@", str(port)).replace(f"@{name}@", f"127.0.0.1:{port}")
    return text


def build_config(case, workdir, ports, upstreams):
    """The full nginx.conf of a case: main and events wrapped around the case's part."""
    main = (
        f"# generated by tests/diff/run_diff.py from {case.where()} ({case.name})\n"
        "user root;\n"
        "worker_processes 1;\n"
        f"pid {workdir}/nginx.pid;\n"
        f"error_log {workdir}/error.log;\n"
    )
    if case.kind == "file":
        # The example files are written for 127.0.0.1:8080 in front of the app on port 8000.
        conf = case.config.replace("127.0.0.1:8080", "@LISTEN@").replace(":8000", ":@A_PORT@")
        conf = re.sub(r"^http\s*\{", "http {\n    access_log off;", conf, count=1, flags=re.M)
        body = main + conf
    else:
        part = case.config
        if case.kind == "server":
            part = "server {\n    listen @LISTEN@;\n    server_name localhost;\n" + indent(part) + "}\n"
        body = main + "events {}\nhttp {\n    access_log off;\n" + indent(part) + "}\n"
    return substitute(body, ports, upstreams)


def indent(text):
    return "".join("    " + line + "\n" if line.strip() else "\n" for line in text.splitlines())


class Nginx:
    def __init__(self, workdir, conf_path, port):
        self.workdir = workdir
        os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)
        self.stderr = open(os.path.join(workdir, "nginx.stderr"), "wb")
        self.proc = subprocess.Popen(
            ["/usr/sbin/nginx", "-p", workdir, "-c", conf_path, "-g", "daemon off;"],
            stdout=self.stderr,
            stderr=self.stderr,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + 5
        while True:
            if self.proc.poll() is not None:
                self.stderr.close()
                raise CaseError("nginx refused the config:\n" + self.log_text())
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise CaseError("nginx did not listen within 5 s:\n" + self.log_text())
                time.sleep(0.01)

    def log_text(self):
        out = ""
        for name in ("nginx.stderr", "error.log"):
            path = os.path.join(self.workdir, name)
            if os.path.exists(path):
                with open(path, encoding="utf-8", errors="replace") as f:
                    out += f.read()
        return out

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if not self.stderr.closed:
            self.stderr.close()

    def alerts(self):
        return [l for l in self.log_text().splitlines() if re.search(r"\[(alert|emerg|crit)\]", l)]


# ---------------------------------------------------------------------------------------------
# The client side


class Response:
    def __init__(self):
        self.status = 0
        self.headers = []
        self.body = b""
        self.ws_echo = None  # for a 101: whether one text message came back unchanged

    def header(self, name):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None


def recv_until(sock, buf, marker):
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def send_request(port, request):
    """Sends the raw request and reads one response (Content-Length, chunked or close)."""
    resp = Response()
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as sock:
        sock.sendall(request.raw)
        try:
            buf = recv_until(sock, b"", b"\r\n\r\n")
        except EOFError:
            raise CaseError("nginx closed the connection without a response")
        except socket.timeout:
            raise CaseError("no response from nginx within 5 s")
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        resp.status = int(lines[0].split(" ")[1])
        while 100 <= resp.status < 200 and resp.status != 101:  # interim (100 Continue): skip
            try:
                rest = recv_until(sock, rest, b"\r\n\r\n")
            except (EOFError, socket.timeout):
                raise CaseError(f"nothing after the interim {resp.status} response")
            head, _, rest = rest.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            resp.status = int(lines[0].split(" ")[1])
        for line in lines[1:]:
            n, _, v = line.partition(":")
            resp.headers.append((n, v.strip()))
        if resp.status == 101:
            if request.ws:
                resp.ws_echo = ws_round_trip(sock, rest)
            return resp
        if request.method == "HEAD" or resp.status in (204, 304):
            return resp
        te = resp.header("Transfer-Encoding")
        try:
            if te and "chunked" in te.lower():
                body = b""
                while True:
                    rest = recv_until(sock, rest, b"\r\n")
                    size_line, _, rest = rest.partition(b"\r\n")
                    size = int(size_line.split(b";")[0], 16)
                    if size == 0:
                        break
                    while len(rest) < size + 2:
                        chunk = sock.recv(65536)
                        if not chunk:
                            raise EOFError
                        rest += chunk
                    body, rest = body + rest[:size], rest[size + 2 :]
                resp.body = body
            elif resp.header("Content-Length") is not None:
                n = int(resp.header("Content-Length"))
                while len(rest) < n:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise EOFError
                    rest += chunk
                resp.body = rest[:n]
            else:
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
                resp.body = rest
        except (EOFError, socket.timeout):
            raise CaseError(f"response {resp.status} ended before its body did")
    return resp


def ws_round_trip(sock, pending):
    """Sends one masked text frame and checks that the same text comes back."""
    payload = b"diff-ping"
    mask = b"\x11\x22\x33\x44"
    frame = bytes([0x81, 0x80 | len(payload)]) + mask
    frame += bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(frame)
    buf = pending
    try:
        while len(buf) < 2 or len(buf) < 2 + (buf[1] & 0x7F):
            chunk = sock.recv(65536)
            if not chunk:
                return False
            buf += chunk
    except socket.timeout:
        return False
    return buf[0] == 0x81 and buf[2 : 2 + (buf[1] & 0x7F)] == payload


# ---------------------------------------------------------------------------------------------
# Both sides, as comparable facts


def nginx_facts(resp, records, upstreams):
    if records:
        r = records[-1]  # after a retry to the next upstream, the last one answered
        return {
            "action": "proxy",
            "upstream": r["upstream"],
            "upstream_port": upstreams.ports[r["upstream"]],
            "request_line": r["request_line"],
            "headers": [list(h) for h in r["headers"]],
            "status": resp.status,
        }
    facts = {"action": "not proxied", "status": resp.status}
    if resp.header("Location") is not None:
        facts["location"] = resp.header("Location")
    return facts


def explain_args(binary, conf, port, request):
    """The explain command line for one request. The URL names where the client connected
    (127.0.0.1:PORT, as the listen lookup needs it); two flags appear only when needed:
    --target for an absolute-form target (its host takes part in server selection) and
    --http-version for an HTTP/1.0 request (no Host header needed, other defaults)."""
    if request.target.startswith("/"):
        url = f"http://127.0.0.1:{port}{request.target}"
    else:
        url = f"http://127.0.0.1:{port}/"
    args = [binary, "explain", "-c", conf, url, "--json", "--method", request.method]
    args += ["--remote", "127.0.0.1"]
    if not request.target.startswith("/"):
        args += ["--target", request.target]
    if request.version == "HTTP/1.0":
        args += ["--http-version", "1.0"]
    if not any(name.lower() == "host" for name, _ in request.headers):
        args.append("--no-host")  # explain otherwise adds Host from the URL, as curl does
    for name, value in request.headers:
        args += ["-H", f"{name}: {value}"]
    if request.ws:
        args.append("--ws")
    return args


def run_explain(binary, conf, port, request):
    """Returns (facts, None) or (None, why not comparable)."""
    args = explain_args(binary, conf, port, request)
    try:
        p = subprocess.run(args, capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return None, "wsgate explain took over 10 s"
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace").strip()
    if "not implemented" in err:
        return None, "not implemented"
    try:
        j = json.loads(out)
    except ValueError:
        return None, f"wsgate explain exit {p.returncode}, no JSON: {err or out[:200]}"
    facts = {"action": "proxy" if j.get("action") == "proxy" else "not proxied"}
    facts["raw"] = j
    if facts["action"] == "proxy":
        up = j.get("upstream") or {}
        facts["upstream_host"] = up.get("host")
        facts["upstream_port"] = up.get("port")
        facts["request_line"] = up.get("request_line")
        facts["headers"] = [list(h) for h in up.get("headers", [])]
    else:
        facts["status"] = j.get("status")
        if j.get("location_header"):
            facts["location"] = j.get("location_header")
    return facts, None


# Deliberate differences (ARCHITECTURE.md): each id names a way wsgate may differ from nginx on
# purpose, and the exact shapes it may take. A case lists the ids it may show.
def deliberate_variants(diff_id, nginx, request):
    if diff_id == "connection-upgrade-without-upgrade":
        # wsgate drops a "Connection: upgrade" that would go out with no Upgrade header.
        client_upgrade = any(n.lower() == "upgrade" for n, _ in request.headers)
        sent = [h for h in nginx["headers"] if h[0].lower() == "connection"]
        if client_upgrade or not sent or sent[0][1].lower() != "upgrade":
            return []
        dropped = [h for h in nginx["headers"] if h[0].lower() != "connection"]
        closed = [h if h[0].lower() != "connection" else [h[0], "close"] for h in nginx["headers"]]
        return [dropped, closed]
    if diff_id == "connection-named-headers":
        # wsgate removes the headers the client's Connection header names (RFC 9110 7.6.1) and
        # may also remove the obsolete hop-by-hop Proxy-Connection and Trailer; nginx passes
        # them all. Any of those removals, order otherwise kept, is accepted.
        named = set()
        for n, v in request.headers:
            if n.lower() == "connection":
                named |= {t.strip().lower() for t in v.split(",")}
        named |= {"proxy-connection", "trailer"}
        present = sorted({h[0].lower() for h in nginx["headers"] if h[0].lower() in named})
        variants = []
        for mask in range(1, 1 << len(present)):
            gone = {present[i] for i in range(len(present)) if mask >> i & 1}
            variants.append([h for h in nginx["headers"] if h[0].lower() not in gone])
        return variants
    raise CaseError(f"unknown deliberate difference '{diff_id}'")


def compare(nginx, wsgate, case, request):
    """Returns a list of (field, nginx value, wsgate value) and whether a deliberate difference
    explained the headers."""
    diffs = []
    if nginx["action"] != wsgate["action"]:
        diffs.append(("action", nginx["action"], wsgate["action"]))
        if nginx["action"] != "proxy":
            diffs.append(("status", nginx["status"], wsgate["raw"].get("status")))
        return diffs, False
    deliberate = False
    if nginx["action"] == "proxy":
        if wsgate["upstream_port"] not in (0, None) and wsgate["upstream_port"] != nginx["upstream_port"]:
            diffs.append(
                ("upstream", f"{nginx['upstream']} (port {nginx['upstream_port']})",
                 f"{wsgate['upstream_host']}:{wsgate['upstream_port']}")
            )
        if nginx["request_line"] != wsgate["request_line"]:
            diffs.append(("request line", nginx["request_line"], wsgate["request_line"]))
        if nginx["headers"] != wsgate["headers"]:
            accepted = [v for d in case.deliberate for v in deliberate_variants(d, nginx, request)]
            if wsgate["headers"] in accepted:
                deliberate = True
            else:
                diffs.append(("headers", nginx["headers"], wsgate["headers"]))
    else:
        if nginx["status"] != wsgate.get("status"):
            diffs.append(("status", nginx["status"], wsgate.get("status")))
        if nginx.get("location") != wsgate.get("location"):
            diffs.append(("Location", nginx.get("location"), wsgate.get("location")))
    return diffs, deliberate


def check_expect(request, resp, records):
    """The corpus's claims about nginx itself; a failure means the corpus (or nginx) is wrong."""
    failures = []
    last = records[-1] if records else None
    headers = last["headers"] if last else []
    for key, value in request.checks:
        if key == "status":
            ok = str(resp.status) == value
            got = resp.status
        elif key == "upstream":
            got = last["upstream"] if last else "none"
            ok = got == value
        elif key == "request-line":
            got = last["request_line"] if last else None
            ok = got == value
        elif key == "header":
            n, _, v = value.partition(":")
            got = headers
            ok = [n.strip(), v.strip()] in [list(h) for h in headers]
        elif key == "no-header":
            got = headers
            ok = all(h[0].lower() != value.lower() for h in headers)
        elif key == "location":
            got = resp.header("Location")
            ok = got == value
        elif key == "ws-echo":
            got = resp.ws_echo
            ok = bool(resp.ws_echo) == (value == "yes")
        else:
            raise CaseError(f"unknown expectation '{key}'")
        if not ok:
            failures.append(f"expected {key} {value}, nginx gave {got!r}")
    return failures


# ---------------------------------------------------------------------------------------------


def summarize(facts):
    if facts is None:
        return "-"
    if facts["action"] == "proxy":
        who = facts.get("upstream") or facts.get("upstream_host")
        return f"{who} '{facts['request_line']}'"
    loc = f" -> {facts['location']}" if facts.get("location") else ""
    return f"{facts.get('status')}{loc}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wsgate", required=True, help="the wsgate binary")
    ap.add_argument("--upstream", required=True, help="the test-upstream binary")
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--corpus", default=os.path.join(HERE, "corpus"))
    ap.add_argument("--only", help="run only cases whose name contains this text")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("-v", "--verbose", action="store_true", help="print both sides of every request")
    opts = ap.parse_args()

    if not os.access(opts.nginx, os.X_OK):
        print(f"diff: {opts.nginx} not found: run scripts/install-deps.sh (it installs nginx)")
        return 1
    for path in (opts.wsgate, opts.upstream):
        if not os.access(path, os.X_OK):
            print(f"diff: {path} is not built: run scripts/build.sh")
            return 1
    try:
        cases = parse_corpus(sorted(glob.glob(os.path.join(opts.corpus, "*.cases"))))
    except CaseError as e:
        print(f"diff: corpus error: {e}")
        return 1
    if opts.only:
        cases = [c for c in cases if opts.only in c.name]
    total = sum(len(c.requests) for c in cases)

    # SIGTERM (ctest, CI) unwinds like Ctrl-C, so the finally blocks stop nginx and clean up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.stdout.reconfigure(line_buffering=True)  # progress shows as it happens
    workdir = tempfile.mkdtemp(prefix="wsgate-diff-")
    upstreams = Upstreams(opts.upstream, workdir)
    started = time.monotonic()
    counts = {"agree": 0, "deliberate": 0, "DIFF": 0, "n/c": 0, "ERROR": 0}
    reports = []
    not_comparable = set()
    n = 0
    try:
        for case in cases:
            case_dir = os.path.join(workdir, re.sub(r"[^A-Za-z0-9_.-]", "_", case.name))
            os.makedirs(case_dir)
            ports = (free_port(), free_port())
            conf_path = os.path.join(case_dir, "nginx.conf")
            try:
                with open(conf_path, "w", encoding="utf-8") as f:
                    f.write(build_config(case, case_dir, ports, upstreams))
                nginx = Nginx(case_dir, conf_path, ports[0])
            except CaseError as e:
                for i, _ in enumerate(case.requests):
                    n += 1
                    counts["ERROR"] += 1
                    print(f"[{n:3}/{total}] {case.name}#{i + 1:<3} ERROR")
                reports.append(f"{case.name} ({case.where()}): {e}")
                continue
            try:
                for i, req in enumerate(case.requests):
                    n += 1
                    label = f"{case.name}#{i + 1}"
                    try:
                        req.materialize(lambda t: substitute(t, ports, upstreams))
                        offset = upstreams.log_size()
                        port = ports[req.port_index]
                        resp = send_request(port, req)
                        records = upstreams.records_since(offset)
                        failures = check_expect(req, resp, records)
                        ng = nginx_facts(resp, records, upstreams)
                        ws, why = run_explain(opts.wsgate, conf_path, port, req)
                    except CaseError as e:
                        counts["ERROR"] += 1
                        print(f"[{n:3}/{total}] {label:<44} ERROR")
                        reports.append(f"{label} ({case.where()}): {e}")
                        continue
                    if ws is None and why == "not implemented":
                        verdict, diffs, deliberate = "n/c", [], False
                        not_comparable.add(why)
                    elif ws is None:  # explain ran and failed on a request nginx answered
                        verdict, diffs, deliberate = "DIFF", [("explain", "-", why)], False
                    else:
                        diffs, deliberate = compare(ng, ws, case, req)
                        verdict = "DIFF" if diffs else ("deliberate" if deliberate else "agree")
                    if failures:
                        verdict = "ERROR"
                    counts[verdict] += 1
                    print(f"[{n:3}/{total}] {label:<44} {verdict:<10} nginx: {summarize(ng)}"
                          + (f" | wsgate: {summarize(ws)}" if ws and (diffs or opts.verbose) else ""))
                    if opts.verbose:
                        print("      nginx  " + json.dumps(ng))
                        print("      wsgate " + json.dumps({k: v for k, v in (ws or {}).items() if k != "raw"}))
                    if failures or diffs:
                        text = f"{label} ({os.path.relpath(case.path, SOURCE_DIR)}:{req.line_no})\n"
                        head = req.raw.split(b"\r\n\r\n")[0].decode("utf-8", "replace")
                        text += f"    request: {head!r}\n"
                        for f in failures:
                            text += f"    nginx expectation failed: {f}\n"
                        for field, a, b in diffs:
                            if field == "headers":
                                text += "    headers (- nginx, + wsgate):\n"
                                text += header_diff(a, b)
                            else:
                                text += f"    {field}: nginx {a!r}  wsgate {b!r}\n"
                        reports.append(text.rstrip("\n"))
                alerts = nginx.alerts()
                if alerts:
                    counts["ERROR"] += 1
                    reports.append(f"{case.name}: nginx logged alerts:\n    " + "\n    ".join(alerts))
            finally:
                nginx.stop()
    finally:
        upstreams.stop()
        if opts.keep:
            print(f"diff: kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    elapsed = time.monotonic() - started
    if reports:
        print("\n==== mismatches and errors\n")
        print("\n\n".join(reports))
    print(f"\n==== {total} requests in {len(cases)} cases, {elapsed:.1f} s: "
          + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    if not_comparable:
        print("wsgate side not comparable: " + "; ".join(sorted(not_comparable)))
    if counts["DIFF"] or counts["ERROR"]:
        return 1
    if counts["n/c"]:  # only when explain is missing altogether: nothing could be compared
        return SKIP
    return 0


def header_diff(a, b):
    import difflib

    la = [f"{n}: {v}" for n, v in a]
    lb = [f"{n}: {v}" for n, v in b]
    out = ""
    for line in difflib.ndiff(la, lb):
        if line.startswith("?"):
            continue
        out += "      " + line + "\n"
    return out


if __name__ == "__main__":
    sys.exit(main())
