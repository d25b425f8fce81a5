#!/usr/bin/env bash
# User-space instructions per HTTP request (and per WebSocket round trip) of nginx and wsgate,
# counted by callgrind in the same run. Unlike requests/s or CPU time on this shared machine
# (+-20% from run to run), the count repeats within about 1%, so it shows what a change to
# wsgate's request path saves. It leaves out the kernel's share (~70% of either proxy's CPU per
# request on loopback: bench/run.sh and bench/http-pairs.sh measure the whole).
#
#   bench/instructions.sh [-n N] [--ws] [--handshake] [--proxies "nginx wsgate"] [--wsgate BINARY]
#
# Each proxy runs as one process under `valgrind --tool=callgrind` (nginx with master_process
# off; wsgate's one worker thread), in front of wsgate-echo with bench/run.sh's config (upstream
# keepalive, buffering off, access log off). 2,000 warm-up requests first; then the counters are
# zeroed, N requests (default 20,000, 50 connections) run, and the counters are dumped. With
# --ws, the same for N WebSocket 64-byte round trips (100 connections, one in flight each); with
# --handshake, for the WebSocket handshakes of 4 s (50 at a time: connect, upgrade, close).
# Stops by itself: N requests per proxy and mode, each proxy killed after its dump.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
B=${WSGATE_BUILD_DIR:-$root/build}
n=20000
ws=0
handshake=0
proxies="nginx wsgate"
wsgate_bin=$B/src/cli/wsgate
while (($#)); do
  case $1 in
    -n) n=$2; shift 2 ;;
    --ws) ws=1; shift ;;
    --handshake) handshake=1; shift ;;
    --proxies) proxies=$2; shift 2 ;;
    --wsgate) wsgate_bin=$2; shift 2 ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "instructions.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for tool in valgrind callgrind_control; do
  command -v $tool >/dev/null || { echo "instructions.sh: $tool is missing: apt-get install valgrind" >&2; exit 1; }
done
for f in "$B/tools/bench/wsgate-bench" "$B/tools/bench/wsgate-echo" "$wsgate_bin"; do
  [[ -x $f ]] || { echo "instructions.sh: $f is missing: run scripts/build.sh first" >&2; exit 1; }
done

d=$(mktemp -d /tmp/wsgate-instr.XXXXXX)
chmod 755 "$d"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$d"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ep=$(port)
"$B/tools/bench/wsgate-echo" --listen "127.0.0.1:$ep" >/dev/null 2>&1 &
pids+=($!)

# count PROXY MODE: prints the instructions per request (or round trip).
count() {
  local proxy=$1 mode=$2 p dir=$d/$1-$2 pid
  p=$(port)
  mkdir -p "$dir/logs"
  local user="" master=""
  [[ $proxy == nginx ]] && master="master_process off;"
  [[ $proxy == nginx && $EUID -eq 0 ]] && user="user root;"
  cat >"$dir/proxy.conf" <<C
$user
$master
worker_processes 1;
daemon off;
pid $dir/proxy.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  map \$http_upgrade \$connection_upgrade { default upgrade; "" ""; }
  upstream echo { server 127.0.0.1:$ep; keepalive 128; }
  server {
    listen 127.0.0.1:$p;
    location / { proxy_pass http://echo; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffering off; }
    location /ws { proxy_pass http://echo; proxy_http_version 1.1;
                   proxy_set_header Upgrade \$http_upgrade;
                   proxy_set_header Connection \$connection_upgrade; proxy_read_timeout 1h; }
  }
}
C
  local bin=$wsgate_bin
  [[ $proxy == nginx ]] && bin=/usr/sbin/nginx
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$bin" -p "$dir" -c "$dir/proxy.conf" \
    >"$dir/valgrind.txt" 2>&1 &
  pid=$!
  pids+=($pid)
  for _ in $(seq 150); do (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.2; done
  local load=("$B/tools/bench/wsgate-bench" http "http://127.0.0.1:$p/" -c 50)
  [[ $mode == ws ]] && load=("$B/tools/bench/wsgate-bench" ws "ws://127.0.0.1:$p/ws" -c 100 --size 64 --inflight 1)
  [[ $mode == handshake ]] && load=("$B/tools/bench/wsgate-bench" handshake "ws://127.0.0.1:$p/ws" -c 50)
  # Handshake mode runs for a time, not a count: 1 s warm-up, then 4 s measured.
  local warm=(-n 2000) measure=(-n "$n")
  [[ $mode == handshake ]] && warm=(-d 1) measure=(-d 4)
  "${load[@]}" "${warm[@]}" >/dev/null 2>&1 || { echo "instructions.sh: $proxy warm-up failed: $(tail -3 "$dir/valgrind.txt")" >&2; return 1; }
  callgrind_control -z "$pid" >/dev/null 2>&1
  "${load[@]}" "${measure[@]}" --json >"$dir/load.json" 2>/dev/null
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local done_ ir
  done_=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["completed"])' "$dir/load.json")
  ir=$(cat "$dir"/cg.out.* 2>/dev/null | awk '/^summary:/ {s += $2} END {print s + 0}')
  ((done_ > 0 && ir > 0)) || { echo "instructions.sh: $proxy $mode: no count ($done_ done)" >&2; return 1; }
  echo $((ir / done_))
}

modes=(http)
((ws)) && modes+=(ws)
((handshake)) && modes+=(handshake)
for mode in "${modes[@]}"; do
  declare -A per=()
  for proxy in $proxies; do
    echo "instructions.sh: $proxy, $mode: $n under callgrind ..." >&2
    per[$proxy]=$(count "$proxy" "$mode")
    unit="request"
    [[ $mode == ws ]] && unit="round trip"
    [[ $mode == handshake ]] && unit="handshake"
    printf '%-8s %-9s %8d user-space instructions per %s\n' "$proxy" "$mode" "${per[$proxy]}" "$unit"
  done
  if [[ -n ${per[nginx]:-} && -n ${per[wsgate]:-} ]]; then
    python3 -c "import sys; print(f'wsgate/nginx {sys.argv[1]}: {int(sys.argv[2]) / int(sys.argv[3]):.2f}x')" \
      "$mode" "${per[wsgate]}" "${per[nginx]}"
  fi
  unset per
done
