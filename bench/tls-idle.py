#!/usr/bin/env python3
"""Memory per idle WebSocket over TLS (wss), and CPU per relayed wss message, nginx against
wsgate in the same run.

   bench/tls-idle.py [-n N] [--proxies "nginx wsgate"] [--relay SECONDS] [-c CONNS]

Each proxy terminates TLS (a throwaway certificate) in front of wsgate-echo; N wss clients
connect, finish the WebSocket handshake and stay idle; the proxy's RSS (master + worker) is read
before and while they are held. Prints bytes per connection for each proxy and the ratio.
With --relay, then CONNS clients (asyncio, one 64-byte message in flight each) exchange messages
for SECONDS and the proxy's CPU time (utime + stime) per round trip is printed: the client, in
Python, is the bottleneck, so both proxies see about the same load and the CPU each spends on it
compares their cost per message (TLS both ways to the client, plain to the upstream).
Binaries come from $WSGATE_BUILD_DIR (default build/). Stops by itself: N connections, held 1 s,
then the relay for SECONDS.
"""
import asyncio
import argparse
import base64
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("WSGATE_BUILD_DIR", os.path.join(ROOT, "build"))
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def rss_kb(pid):
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                     text=True).stdout.split()]
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def conf(d, port, echo_port, crt, key):
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""{user}
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid {d}/proxy.pid;
error_log {d}/error.log warn;
events {{ worker_connections 19000; }}
http {{
  access_log off;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {crt};
    ssl_certificate_key {key};
    location /ws {{ proxy_pass http://127.0.0.1:{echo_port}; proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";
      proxy_buffering off; proxy_read_timeout 1h; }}
  }}
}}
"""


def hold(port, n):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    socks = []
    for i in range(n):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname="bench.test")
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /ws HTTP/1.1\r\nHost: bench.test\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            d = s.recv(4096)
            if not d:
                raise RuntimeError(f"connection {i}: closed during the handshake")
            head += d
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"connection {i}: {head[:60]!r}")
        socks.append(s)
        if (i + 1) % 500 == 0:
            print(f"  {i + 1}/{n} connected", file=sys.stderr)
    return socks


def cpu_ticks(pid):
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                     text=True).stdout.split()]
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except FileNotFoundError:
            pass
    return total


async def relay(port, conns, seconds):
    """Round trips completed by `conns` wss clients in `seconds`, one 64-byte message each."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    payload = b"x" * 64
    mask = b"\x01\x02\x03\x04"
    frame = bytes([0x82, 0x80 | 64]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    done = 0
    stop = time.monotonic() + seconds

    async def one():
        nonlocal done
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                             server_hostname="bench.test")
        key = base64.b64encode(os.urandom(16)).decode()
        w.write((f"GET /ws HTTP/1.1\r\nHost: bench.test\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        await r.readuntil(b"\r\n\r\n")
        while time.monotonic() < stop:
            w.write(frame)
            await r.readexactly(2 + 64)
            done += 1
        w.close()

    await asyncio.gather(*(one() for _ in range(conns)))
    return done


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--proxies", default="nginx wsgate")
    ap.add_argument("--relay", type=float, default=0)
    ap.add_argument("-c", type=int, default=20)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="wsgate-tls-idle-")
    procs = []
    try:
        crt, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt,
                        "-days", "1", "-subj", "/CN=bench.test"], check=True,
                       capture_output=True)
        echo_port = free_port()
        echo = subprocess.Popen([os.path.join(BUILD, "tools/bench/wsgate-echo"), "--listen",
                                 f"127.0.0.1:{echo_port}"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        procs.append(echo)
        if not wait_port(echo_port, echo):
            sys.exit("tls-idle: wsgate-echo did not start")
        results = {}
        cpu = {}
        for name in a.proxies.split():
            pd = os.path.join(d, name)
            os.makedirs(pd)
            port = free_port()
            with open(os.path.join(pd, "proxy.conf"), "w") as f:
                f.write(conf(pd, port, echo_port, crt, key))
            cmd = (["/usr/sbin/nginx", "-p", pd, "-c", os.path.join(pd, "proxy.conf")]
                   if name == "nginx" else
                   [os.path.join(BUILD, "src/cli/wsgate"), "-p", pd, "-c",
                    os.path.join(pd, "proxy.conf")])
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            if not wait_port(port, p):
                sys.exit(f"tls-idle: {name} did not start")
            # One connection first, so that first-use allocations are not counted per tunnel.
            warm = hold(port, 1)
            time.sleep(0.3)
            before = rss_kb(p.pid)
            print(f"{name}: opening {a.n} wss connections", file=sys.stderr)
            socks = hold(port, a.n)
            time.sleep(1)
            during = rss_kb(p.pid)
            for s in socks + warm:
                s.close()
            per = (during - before) * 1024 / a.n
            results[name] = per
            print(f"{name:8} RSS {before:,} kB -> {during:,} kB with {a.n:,} idle wss: "
                  f"{per:,.0f} B per connection")
            if a.relay > 0:
                time.sleep(0.5)
                t0 = cpu_ticks(p.pid)
                n = asyncio.run(relay(port, a.c, a.relay))
                ticks = cpu_ticks(p.pid) - t0
                us = ticks / os.sysconf("SC_CLK_TCK") * 1e6 / n if n else 0
                cpu[name] = us
                print(f"{name:8} relay: {n / a.relay:,.0f} round trips/s over {a.c} wss clients, "
                      f"proxy CPU {us:.1f} us per round trip")
            p.terminate()
            p.wait(10)
        if "nginx" in results and "wsgate" in results and results["nginx"] > 0:
            print(f"wsgate/nginx: {results['wsgate'] / results['nginx']:.2f}x (memory per idle wss)")
        if cpu.get("nginx") and cpu.get("wsgate"):
            print(f"wsgate/nginx: {cpu['wsgate'] / cpu['nginx']:.2f}x (CPU per wss round trip)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
