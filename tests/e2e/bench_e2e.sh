#!/usr/bin/env bash
# wsgate-bench end to end, on real loopback sockets: every mode against wsgate-echo directly, then
# http and ws through Debian's nginx, then the error accounting (refused connects, a 403 upgrade).
# Both tools run on io_uring by default; the epoll backend of each is run too (bench and echo on
# epoll, and each against the other's io_uring), and wsgate-echo's protocol behaviour is checked
# over raw sockets on both backends (tests/e2e/bench_echo_check.py).
# Each run lasts 1-2 s; the whole test stays well under a minute.
#   bench_e2e.sh WSGATE_BENCH WSGATE_ECHO [BENCH_NO_URING]
# BENCH_NO_URING (tests/e2e/bench_no_uring.cpp) runs a command with io_uring_setup failing: the
# tools must then fall back to epoll, and refuse --io uring.
set -euo pipefail
bench=$1
echo_bin=$2
no_uring=${3:-}
nginx_bin=${NGINX:-/usr/sbin/nginx}
work=$(mktemp -d /tmp/bench-e2e.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

failures=0
passes=0
check() {  # check NAME PYTHON-EXPRESSION-OVER-j JSON-FILE
  local name=$1 expr=$2 file=$3
  if python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($expr) else 1)" "$file"; then
    echo "ok   $name"
    passes=$((passes + 1))
  else
    echo "FAIL $name: ($expr) is false for:"
    cat "$file"
    failures=$((failures + 1))
  fi
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {  # wait_port PORT: until something accepts there (5 s at most)
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "FAIL nothing listens on port $1" >&2
  exit 1
}

# --- the echo upstream -------------------------------------------------------------------------
"$echo_bin" --listen 127.0.0.1:0 >"$work/echo.out" &
echo_pid=$!
pids+=($echo_pid)
for _ in $(seq 100); do grep -q listening "$work/echo.out" 2>/dev/null && break; sleep 0.05; done
echo_port=$(sed -n 's/^listening 127.0.0.1:\([0-9]*\)$/\1/p' "$work/echo.out")
[[ -n $echo_port ]] || { echo "FAIL wsgate-echo printed no 'listening' line"; exit 1; }
direct_http=http://127.0.0.1:$echo_port/
direct_ws=ws://127.0.0.1:$echo_port/
here=$(cd "$(dirname "$0")" && pwd)

# The same upstream on epoll, for the fallback backend.
"$echo_bin" --listen 127.0.0.1:0 --io epoll >"$work/echo_epoll.out" 2>"$work/echo_epoll.err" &
epoll_pid=$!
pids+=($epoll_pid)
for _ in $(seq 100); do grep -q listening "$work/echo_epoll.out" 2>/dev/null && break; sleep 0.05; done
epoll_port=$(sed -n 's/^listening 127.0.0.1:\([0-9]*\)$/\1/p' "$work/echo_epoll.out")
[[ -n $epoll_port ]] || { echo "FAIL wsgate-echo --io epoll printed no 'listening' line"; exit 1; }

for pair in "$echo_port default $echo_pid" "$epoll_port epoll $epoll_pid"; do
  set -- $pair
  if python3 "$here/bench_echo_check.py" "$1" "echo ($2)" "$3"; then
    passes=$((passes + 1))
  else
    failures=$((failures + 1))
  fi
done

run() {  # run OUT ARGS...: a bench run with --json, bounded in time
  local out=$1
  shift
  timeout 60 "$bench" "$@" --json >"$work/$out.json" 2>"$work/$out.err" || true
}

run http_direct http "$direct_http" -c 10 -d 1
check "http direct: requests completed, no errors" \
  'j["completed"] > 1000 and j["errors"]["total"] == 0 and j["latency_us"]["p50"] > 0' "$work/http_direct.json"
check "http direct: percentiles ordered" \
  '(lambda l: l["min"] <= l["p50"] <= l["p90"] <= l["p99"] <= l["p99_9"] <= l["max"])(j["latency_us"])' \
  "$work/http_direct.json"

run http_count http "$direct_http" -c 4 -n 5000 --body-size 3000
check "http -n: exactly the requested count, with POST bodies" \
  'j["completed"] == 5000 and j["sent"] == 5000 and j["errors"]["total"] == 0 and j["bytes_out"] >= 5000 * 3000' \
  "$work/http_count.json"

# Fixed rate: 3000/s for 2 s is 6000 scheduled requests; the count must be within 10 %.
run http_rate http "$direct_http" -c 10 -d 2 --rate 3000
check "http --rate 3000 for 2 s sends 6000 +-10%" \
  '5400 <= j["sent"] <= 6600 and j["completed"] >= 0.9 * j["sent"] and j["errors"]["total"] == 0' \
  "$work/http_rate.json"
run ws_rate ws "$direct_ws" -c 10 --size 64 -d 2 --rate 2000
check "ws --rate 2000 for 2 s sends 4000 +-10%, latency far below the 5 ms interval" \
  '3600 <= j["sent"] <= 4400 and j["completed"] >= 0.9 * j["sent"] and j["errors"]["total"] == 0 and j["latency_us"]["p50"] < 2000' \
  "$work/ws_rate.json"
run hs_rate handshake "$direct_ws" -c 10 -d 2 --rate 500
check "handshake --rate 500 for 2 s opens 1000 +-10%, each a whole upgrade and close" \
  '900 <= j["sent"] <= 1100 and j["completed"] >= 0.9 * j["sent"] and j["errors"]["total"] == 0' \
  "$work/hs_rate.json"

run ws_small ws "$direct_ws" -c 20 --size 64 -d 1
check "ws 64 B direct: messages echoed, no errors" \
  'j["completed"] > 1000 and j["errors"]["total"] == 0 and j["bytes_in"] == 64 * j["completed"]' \
  "$work/ws_small.json"
check "the load generator reports its backend and its own CPU per message" \
  '(j["io"] == "io_uring" or (j["io"] == "epoll" and "io_note" in j)) and j["cpu_s"] > 0 and 0 < j["cpu_us_per_op"] < 1e4' \
  "$work/ws_small.json"

# --- the epoll backends, and each backend against the other -----------------------------------
epoll_http=http://127.0.0.1:$epoll_port/
epoll_ws=ws://127.0.0.1:$epoll_port/
run e_http http "$epoll_http" -c 10 -d 1 --io epoll
check "epoll bench, epoll echo: http, no errors" \
  'j["io"] == "epoll" and "io_note" not in j and j["completed"] > 1000 and j["errors"]["total"] == 0' "$work/e_http.json"
run e_ws_large ws "$epoll_ws" -c 4 --size 16384 --inflight 4 --binary -n 4000 --io epoll
check "epoll bench, epoll echo: ws 16 KiB, every byte echoed" \
  'j["completed"] == 4000 and j["errors"]["total"] == 0 and j["bytes_in"] == 16384 * 4000' "$work/e_ws_large.json"
run e_hs handshake "$epoll_ws" -c 4 -d 1 --io epoll
check "epoll bench, epoll echo: handshakes, no errors" \
  'j["completed"] > 100 and j["errors"]["total"] == 0' "$work/e_hs.json"
run e_idle idle "$epoll_ws" -n 200 --hold 0.2 --io epoll
check "epoll bench, epoll echo: idle 200 held and alive" \
  'j["established"] == 200 and j["alive"] == 200 and j["errors"]["total"] == 0' "$work/e_idle.json"
run x_ws ws "$epoll_ws" -c 8 --size 3000 --inflight 3 -n 6000
check "default bench against the epoll echo: ws 3000 B, 3 in flight" \
  'j["completed"] == 6000 and j["errors"]["total"] == 0 and j["bytes_in"] == 3000 * 6000' "$work/x_ws.json"
run x_ws2 ws "$direct_ws" -c 8 --size 3000 --inflight 3 -n 6000 --io epoll
check "epoll bench against the default echo: ws 3000 B, 3 in flight" \
  'j["completed"] == 6000 and j["errors"]["total"] == 0 and j["bytes_in"] == 3000 * 6000' "$work/x_ws2.json"

run ws_large ws "$direct_ws" -c 4 --size 16384 --inflight 4 --binary -n 4000
check "ws 16 KiB binary, 4 in flight: every byte echoed" \
  'j["completed"] == 4000 and j["errors"]["total"] == 0 and j["bytes_in"] == 16384 * 4000' \
  "$work/ws_large.json"

run ws_huge ws "$direct_ws" -c 2 --size 200000 -n 200
check "ws 200 kB text (64-bit length frames)" \
  'j["completed"] == 200 and j["errors"]["total"] == 0' "$work/ws_huge.json"

run handshake handshake "$direct_ws" -c 4 -d 1
check "handshake: upgrade + close cycles, no errors" \
  'j["completed"] > 100 and j["errors"]["total"] == 0' "$work/handshake.json"

run idle idle "$direct_ws" -n 300 --hold 0.2
check "idle: 300 held and all answer the final ping" \
  'j["established"] == 300 and j["alive"] == 300 and j["errors"]["total"] == 0' "$work/idle.json"

# --- where io_uring is not allowed ----------------------------------------------------------------
if [[ -n $no_uring ]]; then
  "$no_uring" "$echo_bin" --listen 127.0.0.1:0 >"$work/echo_nu.out" 2>"$work/echo_nu.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q listening "$work/echo_nu.out" 2>/dev/null && break; sleep 0.05; done
  nu_port=$(sed -n 's/^listening 127.0.0.1:\([0-9]*\)$/\1/p' "$work/echo_nu.out")
  if [[ -n $nu_port ]] && grep -q "io_uring unavailable.*using epoll" "$work/echo_nu.err"; then
    echo "ok   echo without io_uring: says so and listens on epoll"
    passes=$((passes + 1))
  else
    echo "FAIL echo without io_uring: $(cat "$work/echo_nu.err")"
    failures=$((failures + 1))
  fi
  timeout 60 "$no_uring" "$bench" ws "ws://127.0.0.1:${nu_port:-1}/" -c 4 -n 2000 --json >"$work/nu.json" 2>/dev/null || true
  check "bench without io_uring: falls back to epoll, says why, and works" \
    'j["io"] == "epoll" and "io_uring unavailable" in j["io_note"] and j["completed"] == 2000 and j["errors"]["total"] == 0' \
    "$work/nu.json"
  set +e
  timeout 30 "$no_uring" "$bench" ws "$direct_ws" -c 1 -n 10 --io uring >/dev/null 2>"$work/nu_forced.err"
  rc=$?
  set -e
  if ((rc == 2)) && grep -q -- "--io uring: .*use --io epoll" "$work/nu_forced.err"; then
    echo "ok   bench --io uring without io_uring: exit 2 with what to do"
    passes=$((passes + 1))
  else
    echo "FAIL bench --io uring without io_uring: rc $rc, $(cat "$work/nu_forced.err")"
    failures=$((failures + 1))
  fi
fi

# --- error accounting ----------------------------------------------------------------------------
dead_port=$(free_port)
set +e
timeout 30 "$bench" http "http://127.0.0.1:$dead_port/" -c 2 -d 1 --json >"$work/refused.json" 2>/dev/null
rc=$?
set -e
check "refused connects are counted as connect errors (and exit 1)" \
  "j['errors']['connect'] > 0 and j['completed'] == 0 and $rc == 1" "$work/refused.json"

# --- through Debian's nginx ----------------------------------------------------------------------
if [[ -x $nginx_bin ]]; then
  nginx_port=$(free_port)
  mkdir -p "$work/nginx/logs"
  user_line=""
  [[ $EUID -eq 0 ]] && user_line="user root;"
  cat >"$work/nginx/nginx.conf" <<EOF
$user_line
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/tmp;
  proxy_temp_path $work/nginx/tmp;
  upstream echo { server 127.0.0.1:$echo_port; keepalive 32; }
  server {
    listen 127.0.0.1:$nginx_port;
    location = /forbidden { return 403; }
    location /ws {
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_buffering off;
    }
    location / {
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
  "$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>"$work/nginx/stderr" &
  pids+=($!)
  wait_port "$nginx_port"

  run nginx_http http "http://127.0.0.1:$nginx_port/" -c 10 -d 1
  check "http through nginx: no errors" \
    'j["completed"] > 500 and j["errors"]["total"] == 0' "$work/nginx_http.json"
  run nginx_ws ws "ws://127.0.0.1:$nginx_port/ws" -c 20 --size 64 -d 1
  check "ws 64 B through nginx: no errors" \
    'j["completed"] > 500 and j["errors"]["total"] == 0' "$work/nginx_ws.json"
  run nginx_ws_large ws "ws://127.0.0.1:$nginx_port/ws" -c 4 --size 16384 --inflight 2 -n 2000
  check "ws 16 KiB through nginx: every message" \
    'j["completed"] == 2000 and j["errors"]["total"] == 0' "$work/nginx_ws_large.json"
  run nginx_403 ws "ws://127.0.0.1:$nginx_port/forbidden" -c 2 --size 64 -d 1
  check "an upgrade answered 403 is counted as a status error" \
    'j["errors"]["status"] > 0 and j["completed"] == 0 and "403" in j.get("first_error", "")' \
    "$work/nginx_403.json"
  if grep -E '\[(alert|emerg|crit)\]' "$work/nginx/logs/error.log"; then
    echo "FAIL nginx logged alerts"
    failures=$((failures + 1))
  fi
else
  echo "skip nginx runs: $nginx_bin not found (scripts/install-deps.sh installs it)"
fi

echo "bench_e2e: $passes passed, $failures failed"
((failures == 0))
