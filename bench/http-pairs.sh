#!/usr/bin/env bash
# CPU per HTTP keep-alive request (or, with --handshake, per WebSocket handshake: connect,
# upgrade, close frames, close; 50 at a time) of two proxies running side by side, in back-to-back
# pairs of 2 s runs (order alternating), so that this machine's slow and fast stretches fall on
# both:
#   bench/http-pairs.sh [--handshake] [--rate R] [PAIRS] [A] [B]
#       A, B: "nginx" or a wsgate binary (default: nginx and $WSGATE_BUILD_DIR/src/cli/wsgate);
#       PAIRS: 6; --rate: a fixed total rate (requests or handshakes per second) instead of as fast
#       as the proxy goes, so that both proxies are measured at the same load
# Prints requests/s and proxy CPU us per request for each run, then both medians. Same config as
# bench/run.sh (one worker, upstream keepalive, buffering off); proxies on CPU 0, load on CPU 1.
set -euo pipefail
mode=http
rate=()
while [[ ${1:-} == --* ]]; do
  case $1 in
    --handshake) mode=handshake ;;
    --rate) rate=(--rate "$2"); shift ;;
    *) echo "http-pairs.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
root=$(cd "$(dirname "$0")/.." && pwd)
B=${WSGATE_BUILD_DIR:-$root/build}
n=${1:-6}
sides=("${2:-nginx}" "${3:-$B/src/cli/wsgate}")
d=$(mktemp -d /tmp/wsgate-pairs.XXXXXX)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ep=$(port)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$d"' EXIT
taskset -c 1 "$B/tools/bench/wsgate-echo" --listen "127.0.0.1:$ep" >/dev/null 2>&1 &
pids+=($!)
ports=() workers=()
for i in 0 1; do
  p=$(port)
  mkdir -p "$d/$i/logs"
  user=""
  [[ ${sides[$i]} == nginx && $EUID -eq 0 ]] && user="user root;"
  cat >"$d/$i/proxy.conf" <<C
$user
worker_processes 1;
daemon off;
pid $d/$i/proxy.pid;
error_log $d/$i/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream echo { server 127.0.0.1:$ep; keepalive 128; }
  server {
    listen 127.0.0.1:$p;
    location / { proxy_pass http://echo; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffering off; }
    location /ws { proxy_pass http://echo; proxy_http_version 1.1;
                   proxy_set_header Upgrade \$http_upgrade; proxy_set_header Connection "upgrade";
                   proxy_buffering off; proxy_read_timeout 1h; }
  }
}
C
  if [[ ${sides[$i]} == nginx ]]; then
    taskset -c 0 /usr/sbin/nginx -p "$d/$i" -c "$d/$i/proxy.conf" &
  else
    taskset -c 0 "${sides[$i]}" -p "$d/$i" -c "$d/$i/proxy.conf" &
  fi
  pids+=($!)
  ports+=("$p")
done
sleep 0.7
for i in 0 1; do
  w=$(pgrep -P "${pids[$((i + 1))]}" || true)
  workers+=("${w:-${pids[$((i + 1))]}}")
done
one() {  # one SIDE: "requests/s us-per-request"
  local pid=${workers[$1]} t0 t1 r
  t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  local load=(http "http://127.0.0.1:${ports[$1]}/")
  [[ $mode == handshake ]] && load=(handshake "ws://127.0.0.1:${ports[$1]}/ws")
  r=$(taskset -c 1 "$B/tools/bench/wsgate-bench" "${load[@]}" -c 50 -d 2 "${rate[@]}" --json 2>/dev/null |
    python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["completed"], round(j["per_second"]))')
  t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  set -- $r
  echo "$2 $(python3 -c "print(round(($t1-$t0)*1e6/$(getconf CLK_TCK)/$1,1))")"
}
unit=req
[[ $mode == handshake ]] && unit=handshake
a_us=() b_us=()
for i in $(seq "$n"); do
  if ((i % 2)); then a=$(one 0); b=$(one 1); else b=$(one 1); a=$(one 0); fi
  echo "pair $i: A ${a% *}/s ${a#* } us/$unit | B ${b% *}/s ${b#* } us/$unit"
  a_us+=("${a#* }") b_us+=("${b#* }")
done
python3 - "${sides[0]}" "${sides[1]}" "${a_us[*]}" "${b_us[*]}" "$unit" <<'P'
import statistics, sys
a = [float(x) for x in sys.argv[3].split()]
b = [float(x) for x in sys.argv[4].split()]
what = "request" if sys.argv[5] == "req" else sys.argv[5]
print(f"median CPU per {what}: A ({sys.argv[1]}) {statistics.median(a):.1f} us, "
      f"B ({sys.argv[2]}) {statistics.median(b):.1f} us, B/A {statistics.median(b) / statistics.median(a):.2f}x")
P
