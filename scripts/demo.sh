#!/usr/bin/env bash
# The main job: installs what is missing, builds, then runs the seed's system on loopback:
# voice-service (the seed's backend) on 127.0.0.1:8000 and wsgate in front of it on
# 127.0.0.1:8080 with one of examples/configs/ (default: the seed's "fixed" config).
# Ctrl-C stops both.
#   scripts/demo.sh [CONFIG]        e.g. scripts/demo.sh examples/configs/recommended.conf
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
conf=${1:-examples/configs/seed-fixed.conf}
[[ -f $conf ]] || { echo "demo: no such config: $conf (see examples/configs/)" >&2; exit 1; }
conf=$(realpath "$conf")

./scripts/install-deps.sh
./scripts/build.sh wsgate voice-service wsgate-probe
build=$root/${WSGATE_BUILD_DIR:-build}

run=$(mktemp -d /tmp/wsgate-demo.XXXXXX)
pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$run"
}
trap stop INT TERM EXIT

for port in 8000 8080; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "demo: 127.0.0.1:$port is already in use; stop what listens there (ss -ltnp 'sport = :$port')" >&2
    exit 1
  fi
done

wait_port() {  # port name
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: $2 did not start listening on 127.0.0.1:$1; its log is above" >&2
  exit 1
}

echo "demo: starting voice-service on 127.0.0.1:8000"
"$build/examples/voice-service/voice-service" --listen 127.0.0.1:8000 &
pids+=($!)
wait_port 8000 voice-service

echo "demo: checking $conf"
"$build/src/cli/wsgate" -t -c "$conf"
echo "demo: starting wsgate on 127.0.0.1:8080"
"$build/src/cli/wsgate" -c "$conf" -p "$run" -e stderr -g "daemon off; pid $run/wsgate.pid;" &
pids+=($!)
wait_port 8080 wsgate

probe=$build/tools/probe/wsgate-probe
cat <<MSG

wsgate is in front of voice-service with $conf

  open in a browser:   http://127.0.0.1:8080/
  WebSocket ping:      $probe 'ws://127.0.0.1:8080/api/v1/ws/simple-voice-chat?language=ar&voice_type=female'
  speak a reply:       $probe 'ws://127.0.0.1:8080/api/v1/ws/simple-voice-chat?language=en&voice_type=female' --send '{"type":"text","text":"hello"}'
  status endpoint:     curl -s http://127.0.0.1:8080/api/v1/ws/simple-voice-chat/status
  how it is routed:    $build/src/cli/wsgate explain -c $conf 'http://127.0.0.1:8080/api/v1/ws/simple-voice-chat' --ws

Ctrl-C stops both.
MSG
wait -n "${pids[@]}"
echo "demo: a process exited; stopping the other" >&2
