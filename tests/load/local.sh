#!/usr/bin/env bash
# Measures Duet on this machine with its own load generator (src/bin/duet-load), the way the
# figures of docs/PERFORMANCE.md were measured: two release nodes on a fresh Postgres database
# and a Redis prefix of their own, 200 couples with the two partners on different nodes.
#
#   cargo build --release && bash tests/load/local.sh            # everything, ~10 minutes
#   MODES="step rate" bash tests/load/local.sh                     # a subset
#   MODES=mix REPS=3 bash tests/load/local.sh                      # mixed load beside plain chats
#
# Settings (env): DUET_BIN, LOAD_BIN (default target/release/duet and duet-load), PG_URL
# (postgres://postgres@127.0.0.1:5432), REDIS_URL (redis://127.0.0.1:6379), COUPLES (200),
# RATES (step rates), SECS (seconds per step, 10), RATE (the fixed-rate run, 1000), REPS (3),
# IDLE_COUNTS (2000,10000,18000: this machine allows 20,000 open files per process),
# STORM_SOCKETS (10000), PUSH_RATE (200: chats/s to offline partners in `push`), MIX_RATE
# (1000: events/s of `mix`, which runs plain chats and then the mixed load MIX at that rate,
# each on a fresh database, alternating which goes first), MIX ("reactions=10,replies=5,edits=5"),
# MODES ("step rate idle resume storm push"; `mix` on request), DUET_EXTRA_ENV (added to both
# nodes, e.g. "DUET_COMMIT_WINDOW_US=0"), REDIS_MODES ("single": the Redis at REDIS_URL;
# "single cluster" also runs every measurement against a Redis Cluster of three masters and
# three replicas that tests/cluster/redis-cluster.sh starts on ports CLUSTER_PORT..+5 (7400 by default),
# rep by rep in the same run). Results: JSON lines in tests/load/results/<time>/, one file
# per mode and Redis (e.g. rate-cluster.jsonl).
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
DUET_BIN="${DUET_BIN:-$repo/target/release/duet}"
LOAD_BIN="${LOAD_BIN:-$repo/target/release/duet-load}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
COUPLES="${COUPLES:-200}"
RATES="${RATES:-1000,2000,3000,4000,5000,6000,7000,8000,10000,12000}"
SECS="${SECS:-10}"
RATE="${RATE:-1000}"
REPS="${REPS:-3}"
IDLE_COUNTS="${IDLE_COUNTS:-2000,10000,18000}"
STORM_SOCKETS="${STORM_SOCKETS:-10000}"
PUSH_RATE="${PUSH_RATE:-200}"
MIX_RATE="${MIX_RATE:-1000}"
MIX="${MIX:-reactions=10,replies=5,edits=5}"
MODES="${MODES:-step rate idle resume storm push}"
REDIS_MODES="${REDIS_MODES:-single}"
CLUSTER_PORT="${CLUSTER_PORT:-7400}"
redis_mode=single
DB=duet_load_local
PREFIX="duet-load-local:"
NODE1=127.0.0.1:19181
NODE2=127.0.0.1:19182
# Each node's /metrics: duet-load reads their stage histograms (where an event's time goes).
declare -A METRICS=([node1]=127.0.0.1:19191 [node2]=127.0.0.1:19192)
out="$repo/tests/load/results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"

for bin in "$DUET_BIN" "$LOAD_BIN"; do
  [[ -x "$bin" ]] || { echo "no binary at $bin: run cargo build --release" >&2; exit 1; }
done
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

declare -A PID=()
stop() { # name
  local pid="${PID[$1]:-}"
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "PID[$1]"
}
cluster() { # start|stop
  DUET_REDIS_CLUSTER_PORT=$CLUSTER_PORT DUET_REDIS_CLUSTER_DIR="$out/redis-cluster" \
    bash "$repo/tests/cluster/redis-cluster.sh" "$1" | sed -n 's/^REDIS_CLUSTER_URLS=//p'
}
cleanup() {
  for name in "${!PID[@]}"; do stop "$name"; done
  if [[ " $REDIS_MODES " == *" cluster "* ]]; then cluster stop >/dev/null; fi
}
trap cleanup EXIT

# The limits a sizing run raises: the defaults protect a node from one abusive client.
start_node() { # name addr
  local redis_env="REDIS_URL=$REDIS_URL"
  [[ "$redis_mode" == cluster ]] && redis_env="REDIS_CLUSTER_URLS=$CLUSTER_URLS"
  (exec env DUET_BIND="$2" DUET_METRICS_BIND="${METRICS[$1]}" DATABASE_URL="$PG_URL/$DB" "$redis_env" DUET_REDIS_PREFIX="$PREFIX" \
    DUET_DATA_DIR="$out/data-$1" DUET_ASSETS_DIR="$repo/assets" DUET_LOG=warn \
    DUET_FRAME_RATE=100000 DUET_FRAME_BURST=100000 DUET_MAX_SOCKETS=30000 DUET_MAX_SOCKETS_PER_USER=30000 DUET_SOCKET_RATE_PER_USER=0 \
    DUET_LOGIN_RATE_PER_ADDR=0 DUET_HASH_WAIT_MS=60000 DUET_DRAIN_DELAY_SECS=0 \
    DUET_PUSH_ALLOW_HTTP=true \
    ${DUET_EXTRA_ENV:-} "$DUET_BIN") >>"$out/$1.log" 2>&1 &
  PID[$1]=$!
  for _ in $(seq 1 300); do curl -fs -o /dev/null "http://$2/readyz" && return 0; sleep 0.1; done
  echo "$1 did not become ready; see $out/$1.log" >&2
  exit 1
}
fresh() {
  cleanup
  psql "$PG_URL/postgres" -qX -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  redis-cli -u "$REDIS_URL" --scan --pattern "$PREFIX*" | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null
  # A cluster of its own for each measurement on one, none otherwise (its idle processes
  # would count as Redis CPU).
  if [[ "$redis_mode" == cluster ]]; then CLUSTER_URLS=$(cluster start); fi
  start_node node1 "$NODE1"
  start_node node2 "$NODE2"
  "$LOAD_BIN" setup --addr "$NODE1" --couples "$COUPLES" --out "$out/tokens.txt" >>"$out/setup.jsonl"
  # A fresh process for what is measured: setting up (Argon2 hashing) leaves memory behind.
  stop node1
  start_node node1 "$NODE1"
}
pids() { echo "node1=${PID[node1]},node2=${PID[node2]}"; }
run() { # file, command...
  local file=$1; shift
  echo "# $*" >>"$out/commands.txt"
  "$@" >>"$out/$file" || true
}
load_opts=(--nodes "$NODE1,$NODE2" --tokens "$out/tokens.txt" --couples "$COUPLES" --pg-db "$DB" --redis --pg-url "$PG_URL/postgres"
  --metrics "${METRICS[node1]},${METRICS[node2]}")

{
  echo "duet: $DUET_BIN ($(sha256sum "$DUET_BIN" | cut -c1-12)) extra env: ${DUET_EXTRA_ENV:-none}"
  echo "postgres: $(psql "$PG_URL/postgres" -AtXc 'show server_version') synchronous_commit=$(psql "$PG_URL/postgres" -AtXc 'show synchronous_commit')"
  echo "redis: $(redis-cli -u "$REDIS_URL" info server | grep redis_version | tr -d '\r')"
  echo "cpus: $(nproc)"
} >"$out/env.txt"

for rep in $(seq 1 "$REPS"); do
for redis_mode in $REDIS_MODES; do
  log "rep $rep on redis: $redis_mode"
  if [[ " $MODES " == *" step "* ]]; then
    log "rep $rep: step $RATES"
    fresh
    run step-$redis_mode.jsonl "$LOAD_BIN" step "${load_opts[@]}" --rates "$RATES" --secs "$SECS" --pids "$(pids)"
  fi
  if [[ " $MODES " == *" rate "* ]]; then
    log "rep $rep: $RATE chats/s for 30 s"
    fresh
    run rate-$redis_mode.jsonl "$LOAD_BIN" rate "${load_opts[@]}" --rate "$RATE" --secs 30 --pids "$(pids)"
  fi
  if [[ " $MODES " == *" idle "* ]]; then
    log "rep $rep: idle sockets $IDLE_COUNTS"
    fresh
    run idle-$redis_mode.jsonl "$LOAD_BIN" idle --node "$NODE1" --tokens "$out/tokens.txt" --users 20 --counts "$IDLE_COUNTS" --pid "${PID[node1]}" --hold 10
  fi
  if [[ " $MODES " == *" resume "* ]]; then
    log "rep $rep: resume after 1000 missed"
    fresh
    run resume-$redis_mode.jsonl "$LOAD_BIN" resume --nodes "$NODE1,$NODE2" --tokens "$out/tokens.txt" --couple 0 --count 1000 --reps 5
  fi
  if [[ " $MODES " == *" storm "* ]]; then
    log "rep $rep: $STORM_SOCKETS sockets reconnect when node 1 dies"
    fresh
    run storm-$redis_mode.jsonl "$LOAD_BIN" storm --nodes "$NODE1,$NODE2" --tokens "$out/tokens.txt" --sockets "$STORM_SOCKETS" --kill-pid "${PID[node1]}"
    unset "PID[node1]"
  fi
  if [[ " $MODES " == *" mix "* ]]; then
    # Plain chats and the mixed load at the same rate, each on a fresh database; which goes
    # first alternates by rep, so neither always meets a warmer machine.
    order=("" "$MIX")
    if (( rep % 2 == 0 )); then order=("$MIX" ""); fi
    for mix in "${order[@]}"; do
      log "rep $rep: $MIX_RATE events/s for 30 s, mix: ${mix:-plain chats}"
      fresh
      run mix-$redis_mode.jsonl "$LOAD_BIN" rate "${load_opts[@]}" --rate "$MIX_RATE" --secs 30 --pids "$(pids)" --mix "$mix"
    done
  fi
  if [[ " $MODES " == *" push "* ]]; then
    log "rep $rep: Web Push to $COUPLES offline partners at $PUSH_RATE chats/s for 30 s"
    fresh
    run push-$redis_mode.jsonl "$LOAD_BIN" push --nodes "$NODE1,$NODE2" --tokens "$out/tokens.txt" --couples "$COUPLES" --rate "$PUSH_RATE" --secs 30
  fi
done
done
cleanup
psql "$PG_URL/postgres" -qX -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
log "results in $out"
