#!/usr/bin/env bash
# Installs every Debian package wsgate's build, tests and demo need. Idempotent: packages already
# present are skipped, and `apt-get update` runs once, only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang-format
  libboost1.81-all-dev libssl-dev libpcre2-dev nlohmann-json3-dev libfmt-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev liburing-dev
  libespeak-ng-dev espeak-ng sox
  nginx curl haproxy openssl wrk valgrind
  python3 python3-fastapi python3-uvicorn python3-websockets
  nodejs node-ws
  chromium
)
# npm installs the browser test's playwright-core (tests/e2e/browser). A nodejs package that ships its
# own npm conflicts with Debian's npm package, so that one is wanted only when no npm is on PATH.
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  sudo=sudo
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian's nginx starts a system instance on install; tests run their own on ephemeral ports.
if command -v systemctl >/dev/null && systemctl is-active -q nginx 2>/dev/null; then
  $sudo systemctl stop nginx || true
fi
echo "install-deps: done"
