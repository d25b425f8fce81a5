#!/usr/bin/env bash
# HTTP keep-alive throughput through wsgate and through Debian's nginx, in the same run, with wrk:
# one worker each, access logs off, keep-alive to the upstream (upstream{} keepalive 32,
# proxy_http_version 1.1). The upstream is a second nginx answering `return 200` from memory.
# The proxy runs on CPU 0, wrk and the upstream on CPU 1; proxies take turns round by round and
# the medians are printed as a Markdown table (ratio = wsgate / nginx).
#
#   bench/http-keepalive.sh [--rounds N] [--duration SECS] [--connections C] [--append FILE]
#
# --append FILE adds the table (with the date and the machine) to FILE, e.g. BENCHMARKS.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${WSGATE_BUILD_DIR:-$root/build}
[[ $build = /* ]] || build=$root/$build
rounds=3 duration=5 conns=50 append=""
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift ;;
    --duration) duration=$2; shift ;;
    --connections) conns=$2; shift ;;
    --append) append=$2; shift ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "http-keepalive.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
wsgate=$build/src/cli/wsgate
for tool in wrk /usr/sbin/nginx "$wsgate" taskset; do
  command -v "$tool" >/dev/null || { echo "http-keepalive.sh: $tool is missing (scripts/install-deps.sh, scripts/build.sh)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/wsgate-bench-ka-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }

up_port=$(free_port)
mkdir -p "$work/up"
cat > "$work/up/nginx.conf" <<CONF
user root; worker_processes 1; daemon off; pid $work/up/nginx.pid; error_log $work/up/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$up_port; location / { return 200 "hello, keep-alive"; } } }
CONF
taskset -c 1 /usr/sbin/nginx -p "$work/up" -c "$work/up/nginx.conf" & pids+=($!)
wait_port "$up_port"

proxy_conf() {  # $1 = dir, $2 = port
  cat <<CONF
user root; worker_processes 1; daemon off; pid $1/proxy.pid; error_log $1/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$up_port; keepalive 32; }
  server { listen 127.0.0.1:$2;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
}

declare -A results
for ((r = 1; r <= rounds; r++)); do
  for proxy in nginx wsgate; do
    dir=$work/$proxy-$r; mkdir -p "$dir"; port=$(free_port)
    proxy_conf "$dir" "$port" > "$dir/proxy.conf"
    if [[ $proxy = nginx ]]; then
      taskset -c 0 /usr/sbin/nginx -p "$dir" -c "$dir/proxy.conf" & p=$!
    else
      taskset -c 0 "$wsgate" -c "$dir/proxy.conf" & p=$!
    fi
    pids+=($p)
    wait_port "$port"
    taskset -c 1 wrk -t1 -c"$conns" -d"${duration}s" --latency "http://127.0.0.1:$port/" > "$dir/wrk.txt"
    kill "$p"; wait "$p" 2>/dev/null || true
    rps=$(awk '/Requests\/sec/ {print $2}' "$dir/wrk.txt")
    errors=$(grep -c "Non-2xx\|Socket errors" "$dir/wrk.txt" || true)
    p99=$(awk '$1 == "99%" {print $2}' "$dir/wrk.txt")
    echo "round $r $proxy: $rps req/s, p99 $p99, error lines $errors"
    results[$proxy]+="$rps "
    results[$proxy-p99]+="$p99 "
  done
done
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
n_rps=$(echo "${results[nginx]}" | median)
w_rps=$(echo "${results[wsgate]}" | median)
ratio=$(awk -v a="$w_rps" -v b="$n_rps" 'BEGIN {printf "%.2f", a / b}')
table="| proxy | requests/s (median of $rounds) | p99 per round |
|---|---|---|
| nginx 1.22.1 | $n_rps | ${results[nginx-p99]}|
| wsgate | $w_rps | ${results[wsgate-p99]}|
| **ratio wsgate / nginx** | **$ratio** | |"
echo
echo "$table"
if [[ -n $append ]]; then
  {
    echo
    echo "## HTTP keep-alive with wrk ($(date -u +%Y-%m-%d), bench/http-keepalive.sh)"
    echo
    echo "\`wrk -t1 -c$conns -d${duration}s\` to each proxy (one worker, CPU 0) in front of an nginx"
    echo "\`return 200\` upstream with upstream keepalive (CPU 1, with wrk). $(nproc) CPUs, $(uname -r)."
    echo
    echo "$table"
  } >> "$append"
fi
rm -rf "$work"
