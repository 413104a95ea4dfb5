#!/usr/bin/env bash
# The end-to-end browser test of Duet, as CI runs it. From anywhere inside the repo:
#
#   cargo build && tests/e2e/run.sh                  # embedded mode: one duet node, SQLite
#   E2E_MODE=cluster tests/e2e/run.sh                # two nodes, Postgres + Redis on 127.0.0.1
#
# Needs Node.js >= 20, npm and Chromium. Uses target/debug/duet (or DUET_BIN); builds nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

die() { echo "e2e: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
  || die "node and npm are required: apt-get install -y nodejs npm chromium (Node.js >= 20)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] \
  || die "Node.js >= 20 is required (found $(node --version)); Debian 12's nodejs is 18: install Node 20+ (e.g. from NodeSource), then apt-get install -y chromium"

if [ -z "${CHROMIUM_BIN:-}" ]; then
  CHROMIUM_BIN="$(command -v chromium || true)"
fi
[ -n "$CHROMIUM_BIN" ] && [ -x "$CHROMIUM_BIN" ] \
  || die "chromium is required: apt-get install -y nodejs npm chromium (or set CHROMIUM_BIN)"
export CHROMIUM_BIN

DUET_BIN="${DUET_BIN:-$repo/target/debug/duet}"
[ -x "$DUET_BIN" ] || die "no duet binary at $DUET_BIN: run cargo build first (or set DUET_BIN)"
export DUET_BIN

if [ ! -d "$here/node_modules/playwright-core" ] || [ ! -d "$here/node_modules/axe-core" ]; then
  echo "e2e: installing test dependencies (npm ci)"
  npm ci --prefix "$here" --no-audit --no-fund
fi

exec node "$here/chat.e2e.mjs"
