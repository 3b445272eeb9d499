#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine with the Rust toolchain
# (Debian's chromium, Node.js for the snippet, the snippet's npm packages, a
# Python venv with an SMTP server for the alert tests, PostgreSQL's server for
# the storage tests of the PostgreSQL backend), then runs every test:
# the Rust workspace (unit, integration and end-to-end), the snippet's
# browser tests and the dashboard's (tests/browser/). Safe to run again: each
# install step is skipped when done.
set -euo pipefail
cd "$(dirname "$0")"

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v python3 >/dev/null || missing+=(python3 python3-venv)
# The PostgreSQL tests start clusters of their own (test-support/src/pg.rs)
# from Debian's server binaries; nothing uses a server someone else started.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && command -v psql >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The alert tests start a real SMTP server (aiosmtpd) on loopback.
venv=target/test-venv
if [ ! -x "$venv/bin/aiosmtpd" ]; then
  echo "==> creating $venv with aiosmtpd"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q aiosmtpd==1.4.6
fi
export VITALSIGN_TEST_AIOSMTPD="$PWD/$venv/bin/aiosmtpd"
# tests/tests/openapi.rs runs schemathesis against the collector's served
# OpenAPI description.
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "version 4.32.5$"; then
  echo "==> installing schemathesis==4.32.5 into $venv"
  "$venv/bin/pip" install -q schemathesis==4.32.5
fi
export VITALSIGN_TEST_SCHEMATHESIS="$PWD/$venv/bin/schemathesis"

if [ -f web-snippet/package-lock.json ]; then
  echo "==> npm ci in web-snippet/"
  (cd web-snippet && npm ci --no-audit --no-fund --loglevel=error)
fi

# Clusters a killed test run left behind (its process gone, its server not).
for pid_file in target/pg-test/*/data/postmaster.pid; do
  [ -f "$pid_file" ] || continue
  pid=$(head -1 "$pid_file")
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ] && kill -INT "$pid" 2>/dev/null || true
done
rm -rf target/pg-test

echo "==> building the binaries the end-to-end tests start"
cargo build --workspace --bins --quiet
export VITALSIGN_COLLECTOR_BIN="$PWD/target/debug/vitalsign-collector"
export VITALSIGN_AGENT_BIN="$PWD/target/debug/vitalsign-agent"

echo "==> cargo test --workspace"
cargo test --workspace --quiet

if [ -f web-snippet/package.json ]; then
  echo "==> npm test in web-snippet/"
  (cd web-snippet && npm test)
fi

# The dashboard in Chromium against the collector binary built above; it
# imports the snippet's test harness, so it runs after web-snippet's npm ci.
echo "==> npm ci and npm test in tests/browser/ (screenshots in target/dashboard-screenshots/)"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && npm test)
