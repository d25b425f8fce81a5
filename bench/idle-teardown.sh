#!/usr/bin/env bash
# How long a proxy takes to close many idle WebSockets closed together, and what it does to the
# HTTP requests right after (bench/run.sh runs its HTTP case right after the idle one):
#   bench/idle-teardown.sh [wsgate|nginx] [N]      (default: wsgate, 9000)
# HTTP keep-alive 3 s, N idle tunnels held 2 s and closed by the client, the time until the proxy
# holds fewer than 100 descriptors, then HTTP twice. Binaries from $WSGATE_BUILD_DIR (build/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
B=${WSGATE_BUILD_DIR:-$root/build}
proxy=${1:-wsgate}
n=${2:-9000}
d=$(mktemp -d /tmp/wsgate-teardown.XXXXXX)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ep=$(port)
wp=$(port)
ulimit -n "$(ulimit -Hn)"
taskset -c 1 "$B/tools/bench/wsgate-echo" --listen "127.0.0.1:$ep" >"$d/echo.out" 2>&1 &
epid=$!
mkdir -p "$d/logs"
user=""
[[ $proxy == nginx && $EUID -eq 0 ]] && user="user root;"
cat >"$d/proxy.conf" <<C
$user
worker_processes 1;
daemon off;
pid $d/proxy.pid;
error_log $d/logs/error.log warn;
events { worker_connections $(( $(ulimit -n) - 100 )); }
http {
  access_log off;
  upstream echo { server 127.0.0.1:$ep; keepalive 128; }
  server {
    listen 127.0.0.1:$wp;
    location /ws { proxy_pass http://echo; proxy_http_version 1.1; proxy_set_header Upgrade \$http_upgrade;
                   proxy_set_header Connection "upgrade"; proxy_buffering off; proxy_read_timeout 1h; }
    location / { proxy_pass http://echo; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffering off; }
  }
}
C
if [[ $proxy == nginx ]]; then
  taskset -c 0 /usr/sbin/nginx -p "$d" -c "$d/proxy.conf" &
  mpid=$!
  sleep 0.7
  wpid=$(pgrep -P $mpid)
else
  taskset -c 0 "$B/src/cli/wsgate" -p "$d" -c "$d/proxy.conf" &
  mpid=$!
  wpid=$mpid
  sleep 0.7
fi
trap 'kill $mpid $epid 2>/dev/null; wait 2>/dev/null; rm -rf "$d"' EXIT
http() {
  taskset -c 1 "$B/tools/bench/wsgate-bench" http "http://127.0.0.1:$wp/" -c 50 -d 3 --json 2>/dev/null |
    python3 -c "import json,sys; print(f\"{json.load(sys.stdin)['per_second']:,.0f}/s\")"
}
echo "$proxy: HTTP before the idle case: $(http)"
held=$(taskset -c 1 "$B/tools/bench/wsgate-bench" idle "ws://127.0.0.1:$wp/ws" -n "$n" --hold 2 --json 2>/dev/null |
  python3 -c "import json,sys; print(json.load(sys.stdin).get('established'))")
t0=$(date +%s.%N)
while (($(ls "/proc/$wpid/fd" | wc -l) > 100)); do sleep 0.02; done
echo "$proxy: $held idle tunnels held, then closed: descriptors below 100 after $(python3 -c "print(round($(date +%s.%N) - $t0, 2))") s"
echo "$proxy: HTTP right after: $(http), then $(http)"
