#!/usr/bin/env bash
# The side-by-side benchmark (issue 6): wsgate against Debian's nginx and HAProxy (and no proxy at
# all, "direct"), with the same fast upstream (wsgate-echo) and equivalent configs: one worker,
# access logs off, buffering off. The proxy is pinned to CPU 0, the load generator and the upstream
# to CPU 1. Proxies take turns round by round (A B C A B C ...); the table reports medians and the
# ratio wsgate/peer, and the load side's own CPU per round trip (wsgate-bench + wsgate-echo, both on
# io_uring where the kernel allows it) next to the proxy's: when "direct" is not well above the best
# proxy, the load side caps the ratios and the report says so.
#
#   bench/run.sh [--quick] [--rounds N] [--duration SECS] [--proxies "nginx haproxy wsgate"]
#                [--idle N] [--http-rate R] [--cases "idle http_rps ..."] [--out FILE] [--strict]
#
#   --quick   ~1.5 minutes for CI: nginx and wsgate only, HTTP and WS 64 B, 3 rounds of 2 s for the
#             table, then the check: 10 pairs of WS 64 B runs, nginx and wsgate back to back (both
#             running, order alternating); exits 1 if the median of the pairs' ratios wsgate/nginx
#             of messages/s is below 1 (below after 10 pairs: 10 more, and all 20 decide).
#   --proxies any of nginx haproxy wsgate, and haproxy-busy / wsgate-busy: the same with HAProxy's
#             busy-polling / wsgate's busy_polling on (both poll instead of sleeping when idle)
#   --cases   a subset of: idle http_rps http_rate ws64 ws16k ws1 handshake (default: all of them;
#             ws1 is one client in WebSocket ping-pong: the latency a lone voice client sees)
#   --strict  a wsgate that cannot serve yet is a failure (default: it is skipped with a message).
# Binaries come from $WSGATE_BUILD_DIR (default build/); wsgate-bench and wsgate-echo from
# $BENCH_BUILD_DIR (default: the same), built there if missing. Raw results stay in the printed
# work directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${WSGATE_BUILD_DIR:-$root/build}
[[ $build = /* ]] || build=$root/$build
bench_build=${BENCH_BUILD_DIR:-$build}
[[ $bench_build = /* ]] || bench_build=$root/$bench_build

quick=0
strict=0
rounds=3
duration=5
proxies="nginx haproxy wsgate"
idle_n=10000
http_rate=2000
out=""
cases="idle http_rps http_rate ws64 ws16k ws1 handshake"
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    --strict) strict=1 ;;
    --rounds) rounds=$2; shift ;;
    --duration) duration=$2; shift ;;
    --proxies) proxies=$2; shift ;;
    --idle) idle_n=$2; shift ;;
    --http-rate) http_rate=$2; shift ;;
    --out) out=$2; shift ;;
    --cases) cases=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for c in $cases; do
  case $c in idle | http_rps | http_rate | ws64 | ws16k | ws1 | handshake) ;;
    *) echo "run.sh: unknown case '$c' (cases: idle http_rps http_rate ws64 ws16k ws1 handshake)" >&2; exit 2 ;;
  esac
done
gate_pairs=10
if ((quick)); then
  rounds=3
  duration=2
  proxies="nginx wsgate"
  cases="http_rps ws64"
fi

bench=$bench_build/tools/bench/wsgate-bench
echo_bin=$bench_build/tools/bench/wsgate-echo
wsgate_bin=$build/src/cli/wsgate
if [[ ! -x $bench || ! -x $echo_bin ]]; then
  echo "run.sh: building wsgate-bench and wsgate-echo in $bench_build"
  [[ -f $bench_build/build.ninja ]] || cmake -S "$root" -B "$bench_build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$bench_build" --target wsgate-bench wsgate-echo -- -j2
fi
for tool in taskset python3; do
  command -v $tool >/dev/null || { echo "run.sh: $tool is missing (scripts/install-deps.sh)" >&2; exit 2; }
done

# CPU 0 for the proxy, CPU 1 for load and upstream (both 0 on a single-CPU machine).
proxy_cpu=0
load_cpu=$(($(nproc) > 1 ? 1 : 0))
clk_tck=$(getconf CLK_TCK)
# A proxy holds two descriptors per tunnel (plus listeners, logs, spare upstream keep-alives), and
# every process started from here inherits this shell's limit: raise the hard limit first (needs
# CAP_SYS_RESOURCE, and at most fs.nr_open), then the soft one.
fd_want=$((idle_n * 2 + 2000))
if (($(ulimit -Hn) < fd_want)); then
  ulimit -Hn "$fd_want" 2>/dev/null || prlimit --pid $$ --nofile="$fd_want:$fd_want" 2>/dev/null || true
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fd_hard=$(ulimit -Hn)
idle_max=$(((fd_hard - 2000) / 2))
idle_note=""
if ((idle_n > idle_max)); then
  why="raising it needs CAP_SYS_RESOURCE, which this process lacks"
  if grep -q '^CapEff:' /proc/self/status &&
    (($(printf '%d' "0x$(awk '/^CapEff:/ {print $2}' /proc/self/status)") & (1 << 24))); then
    why="fs.nr_open is $(cat /proc/sys/fs/nr_open)"
  fi
  idle_note="idle test capped at $idle_max connections (asked $idle_n): RLIMIT_NOFILE hard limit is $fd_hard here and could not be raised to $fd_want ($why); a proxy needs 2 descriptors per tunnel, so 10,000 and 100,000 idle tunnels per proxy cannot be measured on this machine"
  echo "run.sh: $idle_note"
  idle_n=$idle_max
fi

work=$(mktemp -d /tmp/wsgate-bench.XXXXXX)
results=$work/results
mkdir -p "$results"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {  # wait_port PORT PID: true once PORT accepts, false if PID dies or 5 s pass
  for _ in $(seq 100); do
    port_open "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
tree_pids() {  # the process and its children (nginx's master and worker)
  echo "$1"
  pgrep -P "$1" || true
}
rss_kb() {
  local sum=0 p v
  for p in $(tree_pids "$1"); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    sum=$((sum + ${v:-0}))
  done
  echo $sum
}
cpu_ticks() {  # utime + stime of the process tree, in clock ticks
  local sum=0 p v
  for p in $(tree_pids "$1"); do
    # Fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
    v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0)
    sum=$((sum + ${v:-0}))
  done
  echo $sum
}
add_fields() {  # add_fields FILE KEY=NUMBER...: merge numbers into a result JSON
  python3 - "$@" <<'EOF'
import json, sys
path = sys.argv[1]
try:
    j = json.load(open(path))
except Exception:
    j = {"failed": True}
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    j[k] = float(v)
json.dump(j, open(path, "w"))
EOF
}

# The load side runs SCHED_BATCH: wsgate-bench and wsgate-echo share CPU 1, and without wake-up
# preemption each runs through its whole batch of completions before the other gets the CPU
# (measured through nginx: ~20% less CPU per round trip on the load side, see BENCHMARKS.md).
load_sched=()
command -v chrt >/dev/null && chrt -b 0 true 2>/dev/null && load_sched=(chrt -b 0)

# --- the upstream ------------------------------------------------------------------------------
echo_port=$(free_port)
"${load_sched[@]}" taskset -c "$load_cpu" "$echo_bin" --listen "127.0.0.1:$echo_port" >"$work/echo.out" 2>&1 &
echo_pid=$!
pids+=("$echo_pid")
wait_port "$echo_port" "$echo_pid" || { echo "run.sh: wsgate-echo did not start" >&2; cat "$work/echo.out"; exit 1; }

# --- proxy configs ---------------------------------------------------------------------------------
write_nginx_conf() {  # write_nginx_conf DIR PORT: nginx syntax, also what wsgate reads
  local dir=$1 port=$2 user=""
  mkdir -p "$dir/logs" "$dir/tmp"
  [[ $EUID -eq 0 ]] && user="user root;"
  cat >"$dir/nginx.conf" <<EOF
$user
worker_processes 1;
worker_rlimit_nofile $fd_hard;
daemon off;
pid $dir/proxy.pid;
error_log $dir/logs/error.log warn;
events { worker_connections $((fd_hard - 100)); }
http {
  access_log off;
  client_body_temp_path $dir/tmp;
  proxy_temp_path $dir/tmp;
  upstream echo { server 127.0.0.1:$echo_port; keepalive 128; }
  server {
    listen 127.0.0.1:$port;
    location /ws {
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_buffering off;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
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
}
write_haproxy_conf() {  # write_haproxy_conf DIR PORT [EXTRA_GLOBAL_LINE]
  local dir=$1 port=$2 extra=${3:-}
  mkdir -p "$dir"
  cat >"$dir/haproxy.cfg" <<EOF
global
  maxconn $(((fd_hard - 200) / 2))
  nbthread 1
  $extra
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  timeout http-keep-alive 1h
frontend fe
  bind 127.0.0.1:$port
  default_backend be
backend be
  server echo 127.0.0.1:$echo_port
EOF
}

proxy_pid=""
proxy_port=""
start_proxy() {  # start_proxy NAME: sets proxy_pid/proxy_port; false if it does not come up
  local name=$1 dir=$work/$1
  proxy_port=$(free_port)
  case $name in
    nginx)
      write_nginx_conf "$dir" "$proxy_port"
      taskset -c "$proxy_cpu" /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/stderr" 2>&1 &
      ;;
    haproxy)
      write_haproxy_conf "$dir" "$proxy_port"
      taskset -c "$proxy_cpu" haproxy -db -f "$dir/haproxy.cfg" >"$dir/stderr" 2>&1 &
      ;;
    haproxy-busy)
      write_haproxy_conf "$dir" "$proxy_port" busy-polling
      taskset -c "$proxy_cpu" haproxy -db -f "$dir/haproxy.cfg" >"$dir/stderr" 2>&1 &
      ;;
    wsgate)
      write_nginx_conf "$dir" "$proxy_port"
      taskset -c "$proxy_cpu" "$wsgate_bin" -p "$dir" -c "$dir/nginx.conf" >"$dir/stderr" 2>&1 &
      ;;
    wsgate-busy)
      write_nginx_conf "$dir" "$proxy_port"
      taskset -c "$proxy_cpu" "$wsgate_bin" -p "$dir" -c "$dir/nginx.conf" -g 'busy_polling on;' \
        >"$dir/stderr" 2>&1 &
      ;;
  esac
  proxy_pid=$!
  pids+=("$proxy_pid")
  wait_port "$proxy_port" "$proxy_pid"
}
stop_proxy() {
  kill "$proxy_pid" 2>/dev/null || true
  wait "$proxy_pid" 2>/dev/null || true
  # nginx's worker leaves with its master; give the port time to close.
  for _ in $(seq 50); do port_open "$proxy_port" || break; sleep 0.05; done
}

# wsgate is checked once: it must listen and relay both an HTTP request and a WebSocket echo.
wsgate_skip=""
if [[ " $proxies " == *" wsgate "* ]]; then
  if [[ ! -x $wsgate_bin ]]; then
    wsgate_skip="$wsgate_bin is not built"
  elif ! start_proxy wsgate; then
    wsgate_skip="wsgate does not listen yet: $(tail -n 3 "$work/wsgate/stderr" | tr '\n' ' ')"
    stop_proxy
  else
    probe=$work/wsgate/probe.json
    if ! timeout 10 "$bench" http "http://127.0.0.1:$proxy_port/" -c 1 -n 20 --timeout 2 --json >"$probe" 2>/dev/null; then
      wsgate_skip="wsgate listens but does not proxy HTTP yet: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("first_error","no answer"))' "$probe" 2>/dev/null || echo no answer)"
    elif ! timeout 10 "$bench" ws "ws://127.0.0.1:$proxy_port/ws" -c 1 -n 20 --timeout 2 --json >"$probe" 2>/dev/null; then
      wsgate_skip="wsgate listens but does not relay WebSocket yet: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("first_error","no answer"))' "$probe" 2>/dev/null || echo no answer)"
    fi
    stop_proxy
  fi
  if [[ -n $wsgate_skip ]]; then
    echo "run.sh: SKIPPING wsgate ($wsgate_skip)"
    proxies=$(echo " $proxies " | sed 's/ wsgate / /')
  fi
fi

run_case() {  # run_case PROXY CASE ROUND BASE_HTTP BASE_WS
  local proxy=$1 case=$2 round=$3 http_url=$4 ws_url=$5
  local file=$results/$proxy/$case/$round.json
  mkdir -p "$(dirname "$file")"
  local load=("${load_sched[@]}" taskset -c "$load_cpu" timeout $((duration * 3 + 60)) "$bench")
  local t0=0 e0
  [[ $proxy != direct ]] && t0=$(cpu_ticks "$proxy_pid")
  e0=$(cpu_ticks "$echo_pid")
  case $case in
    http_rps) "${load[@]}" http "$http_url" -c 50 -d "$duration" --json >"$file" 2>/dev/null || true ;;
    http_rate) "${load[@]}" http "$http_url" -c 50 -d "$duration" --rate "$http_rate" --json >"$file" 2>/dev/null || true ;;
    ws64) "${load[@]}" ws "$ws_url" -c 100 --size 64 --inflight 1 -d "$duration" --json >"$file" 2>/dev/null || true ;;
    ws16k) "${load[@]}" ws "$ws_url" -c 10 --size 16384 --inflight 2 --binary -d "$duration" --json >"$file" 2>/dev/null || true ;;
    ws1) "${load[@]}" ws "$ws_url" -c 1 --size 64 --inflight 1 -d "$duration" --json >"$file" 2>/dev/null || true ;;
    handshake) "${load[@]}" handshake "$ws_url" -c 50 -d "$duration" --json >"$file" 2>/dev/null || true ;;
    idle)
      local before ready=$work/idle.ready hold_rss
      rm -f "$ready"
      before=$(rss_kb "$proxy_pid")
      "${load[@]}" idle "$ws_url" -n "$idle_n" --hold 2 --ready-file "$ready" --json >"$file" 2>/dev/null &
      local idle_pid=$!
      for _ in $(seq 1200); do [[ -f $ready ]] && break; kill -0 $idle_pid 2>/dev/null || break; sleep 0.05; done
      sleep 0.5
      hold_rss=$(rss_kb "$proxy_pid")
      wait $idle_pid || true
      add_fields "$file" rss_before_kb="$before" rss_hold_kb="$hold_rss"
      ;;
  esac
  # The upstream's CPU over the run; wsgate-bench reports its own (cpu_s) in the JSON.
  add_fields "$file" echo_cpu_s="$(python3 -c "print(($(cpu_ticks "$echo_pid") - $e0) / $clk_tck)")"
  if [[ $proxy != direct ]]; then
    add_fields "$file" proxy_cpu_s="$(python3 -c "print(($(cpu_ticks "$proxy_pid") - $t0) / $clk_tck)")"
  fi
  python3 - "$file" "$proxy" "$case" "$round" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
lat = j.get("latency_us", {})
if sys.argv[3] == "idle":
    n = j.get("established", 0)
    per = (j.get("rss_hold_kb", 0) - j.get("rss_before_kb", 0)) * 1024 / n if n else 0
    print(f"  round {sys.argv[4]} {sys.argv[2]:8} {sys.argv[3]:10} {n:>12} held, {j.get('alive', 0)} alive, "
          f"{per:,.0f} B/conn errors {j.get('errors', {}).get('total', '?')}")
    sys.exit(0)
n = j.get("completed", 0)
cost = ""
if n:
    # CPU per operation: the load side (wsgate-bench + wsgate-echo, CPU 1) and the proxy (CPU 0).
    cost = f" cpu/op load {(j.get('cpu_s', 0) + j.get('echo_cpu_s', 0)) * 1e6 / n:5.1f}us"
    if "proxy_cpu_s" in j:
        cost += f" proxy {j['proxy_cpu_s'] * 1e6 / n:5.1f}us"
print(f"  round {sys.argv[4]} {sys.argv[2]:8} {sys.argv[3]:10} {j.get('per_second', 0):>12.0f}/s "
      f"p50 {lat.get('p50', 0):8.0f}us p99 {lat.get('p99', 0):8.0f}us errors {j.get('errors', {}).get('total', '?')}{cost}")
EOF
}

run_rounds() {  # run_rounds FIRST LAST
  local round proxy c
  for round in $(seq "$1" "$2"); do
    for proxy in direct $proxies; do
      if [[ $proxy == direct ]]; then
        for c in $cases; do
          case $c in http_rps | http_rate | ws64 | ws16k | ws1 | handshake)
            run_case direct "$c" "$round" "http://127.0.0.1:$echo_port/" "ws://127.0.0.1:$echo_port/ws" ;;
          esac
        done
        continue
      fi
      if ! start_proxy "$proxy"; then
        echo "run.sh: $proxy did not start: $(tail -n 3 "$work/$proxy/stderr" | tr '\n' ' ')" >&2
        exit 1
      fi
      for c in $cases; do
        run_case "$proxy" "$c" "$round" "http://127.0.0.1:$proxy_port/" "ws://127.0.0.1:$proxy_port/ws"
      done
      stop_proxy
    done
  done
}
report() {  # report ROUNDS: the table over every round so far; its exit status
  local report_args=(--results "$results" --proxies "$proxies" --idle "$idle_n"
    --http-rate "$http_rate" --rounds "$1" --duration "$duration")
  [[ -n $wsgate_skip ]] && report_args+=(--skipped "wsgate: $wsgate_skip")
  [[ -n $idle_note && " $cases " == *" idle "* ]] && report_args+=(--note "$idle_note")
  [[ -n $out ]] && report_args+=(--out "$out")
  python3 "$root/bench/report.py" "${report_args[@]}"
}

# The quick check's verdict: nginx and wsgate both running, WS 64 B runs back to back in pairs
# (the order alternating), so that the machine's slow and fast stretches, which move even the
# direct figures by 20% between rounds here, fall on both halves of a pair.
run_gate() {  # run_gate FIRST LAST: pairs into gate-nginx/ and gate-wsgate/
  local i p n_pid n_port w_pid w_port order
  start_proxy nginx || { echo "run.sh: nginx did not start" >&2; exit 1; }
  n_pid=$proxy_pid n_port=$proxy_port
  start_proxy wsgate || { echo "run.sh: wsgate did not start" >&2; exit 1; }
  w_pid=$proxy_pid w_port=$proxy_port
  for i in $(seq "$1" "$2"); do
    order="nginx wsgate"
    ((i % 2 == 0)) && order="wsgate nginx"
    for p in $order; do
      if [[ $p == nginx ]]; then proxy_pid=$n_pid proxy_port=$n_port; else proxy_pid=$w_pid proxy_port=$w_port; fi
      run_case "gate-$p" ws64 "$i" "http://127.0.0.1:$proxy_port/" "ws://127.0.0.1:$proxy_port/ws"
    done
  done
  proxy_pid=$n_pid proxy_port=$n_port
  stop_proxy
  proxy_pid=$w_pid proxy_port=$w_port
  stop_proxy
}

echo "run.sh: $rounds round(s) of ${duration} s; proxies: $proxies (+ direct); cases: $cases; raw results in $results"
run_rounds 1 "$rounds"
set +e
report "$rounds"
rc=$?
set -e
if ((quick)) && [[ -z $wsgate_skip ]]; then
  echo "run.sh: quick check: $gate_pairs pairs of WS 64 B runs, nginx and wsgate back to back"
  run_gate 1 "$gate_pairs"
  set +e
  python3 "$root/bench/report.py" --results "$results" --gate
  rc=$?
  set -e
  if ((rc == 1)); then
    # A real regression stays below over twice the pairs; a slow stretch of the machine does not.
    echo "run.sh: quick check: $gate_pairs more pairs decide (the verdict is taken over all $((gate_pairs * 2)))"
    run_gate $((gate_pairs + 1)) $((gate_pairs * 2))
    set +e
    python3 "$root/bench/report.py" --results "$results" --gate
    rc=$?
    set -e
  fi
fi
if ((rc == 0 && strict)) && [[ -n $wsgate_skip ]]; then
  echo "run.sh: --strict: wsgate was skipped" >&2
  rc=1
fi
exit $rc
