#!/usr/bin/env bash
# Installs the browser test's npm dependencies (playwright-core, pinned in package-lock.json) into
# tests/e2e/browser/node_modules, only when they are missing or differ from the lock. It never downloads
# a browser: the test drives Debian's /usr/bin/chromium.
set -euo pipefail
cd "$(dirname "$0")"
want=$(node -p "require('./package-lock.json').packages['node_modules/playwright-core'].version")
have=$(node -p "try { require('./node_modules/playwright-core/package.json').version } catch (e) { '' }")
if [[ $have == "$want" ]]; then
  echo "browser deps: playwright-core $have present"
  exit 0
fi
command -v npm >/dev/null || { echo "browser deps: npm is missing; run scripts/install-deps.sh" >&2; exit 1; }
echo "browser deps: installing playwright-core $want (npm ci)"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
