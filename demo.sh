#!/usr/bin/env bash
# Runs vitalsign on its embedded defaults: builds both binaries, starts the
# collector (SQLite file in ./vitalsign-demo/) serving the bundled demo site, an
# agent that probes that site in headless Chromium every 20 seconds (lab data),
# and a pretend visitor that browses it with the real snippet every 5 seconds
# (field data). Prints where to look and a line for each result as it arrives.
# Ctrl-C stops all three.
#
#   VITALSIGN_DEMO_PORT=8080     collector port
#   VITALSIGN_DEMO_SECONDS=0     stop by itself after this many seconds (0 = run until Ctrl-C)
set -euo pipefail
cd "$(dirname "$0")"
port=${VITALSIGN_DEMO_PORT:-8080}
seconds=${VITALSIGN_DEMO_SECONDS:-0}
work=vitalsign-demo
base="http://127.0.0.1:$port"

if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Debian's chromium (the agent drives it headless)"
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo=sudo; fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

echo "==> building (release; the first build takes a few minutes)"
cargo build --release --quiet --bin vitalsign-collector --bin vitalsign-agent

mkdir -p "$work/flows"
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
sed "s#http://127.0.0.1:8080#$base#" deploy/flows/demo.toml > "$work/flows/demo.toml"

# Everything else is the binaries' embedded defaults; these variables only say
# where the demo lives and share a token between the two.
export VITALSIGN_AGENT_TOKENS="[\"$token\"]"
export VITALSIGN_QUERY_TOKENS="[\"$token\"]"
export VITALSIGN_DEMO_SITE_DIR="$PWD/deploy/demo-site"
export VITALSIGN_SITES="{demo={origins=[\"$base\"]}}"
export VITALSIGN_COLLECTOR_URL="$base"
export VITALSIGN_TOKEN="$token"
export VITALSIGN_FLOWS_DIR="$work/flows"
export VITALSIGN_SPOOL_DIR="$work/spool"
export VITALSIGN_LOCATION=demo
# Plain log lines in the log files (no colour escape codes).
export NO_COLOR=1

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "==> stopped; data is in $work/vitalsign.db"
}
trap cleanup EXIT INT TERM

target/release/vitalsign-collector serve --listen "127.0.0.1:$port" --db "$work/vitalsign.db" \
  >"$work/collector.log" 2>&1 &
pids+=($!)
# Ready when it logs its address (curl may not be installed on a fresh machine).
for _ in $(seq 300); do
  grep -q "listening on" "$work/collector.log" 2>/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || break
  sleep 0.1
done
grep -q "listening on" "$work/collector.log" || { echo "collector did not start:"; cat "$work/collector.log"; exit 1; }

target/release/vitalsign-agent run >"$work/agent.log" 2>&1 &
pids+=($!)
# Field data: a headless visitor, alternately desktop and mobile, browses the
# demo site; the pages' own snippet sends its beacons as for any visitor.
target/release/vitalsign-agent demo-visitor --base "$base/demo/" --every 5s >"$work/visitor.log" 2>&1 &
pids+=($!)

cat <<MSG

vitalsign is running.
  dashboard:                         $base/
    sign in with the query token     $token
    (lab numbers within 20 s, field numbers from the visitor within a minute)
  demo site (with the RUM snippet):  $base/demo/
  collector health / metrics:        $base/healthz   $base/metrics
  recent probe runs:                 curl -H 'Authorization: Bearer $token' '$base/api/v1/runs?limit=5'
  LCP p75 of the demo flow (lab):    curl -H 'Authorization: Bearer $token' '$base/api/v1/summary?metric=LCP&source=synthetic&range=1h'
  LCP p75 of the visits (field):     curl -H 'Authorization: Bearer $token' '$base/api/v1/summary?metric=LCP&source=rum&range=1h'
  logs:                              $work/collector.log  $work/agent.log  $work/visitor.log

Results as they arrive (the agent probes the demo flow every 20 s; 'delivered' means stored by the
collector; a visit sends one beacon per page it leaves):
MSG

# The agent logs one line per finished run and per result the collector
# acknowledged; the visitor one line per visit.
tail -q -n +1 -F "$work/agent.log" "$work/visitor.log" 2>/dev/null \
  | grep --line-buffered -E "flow finished|result delivered|visit finished|ERROR|WARN" &
pids+=($!)
if [ "$seconds" != 0 ]; then sleep "$seconds"; else wait "${pids[0]}"; fi
