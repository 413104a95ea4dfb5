#!/usr/bin/env bash
# Starts a Redis Cluster on this machine without Docker: six redis-server processes (three
# masters, three replicas) on ports BASE..BASE+5, cluster bus ports BASE+100..BASE+105.
#
#   bash tests/cluster/redis-cluster.sh          # start; prints REDIS_CLUSTER_URLS=...
#   bash tests/cluster/redis-cluster.sh stop     # stop and forget it
#
# Settings (env): DUET_REDIS_CLUSTER_PORT (BASE, default 7000), DUET_REDIS_CLUSTER_DIR
# (data/redis-cluster).
set -euo pipefail
cd "$(dirname "$0")/../.."

base=${DUET_REDIS_CLUSTER_PORT:-7000}
dir=${DUET_REDIS_CLUSTER_DIR:-$PWD/data/redis-cluster}
ports=$(seq "$base" $((base + 5)))

stop() {
  for port in $ports; do
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  done
  rm -rf "$dir"
}

if [ "${1:-start}" = "stop" ]; then
  stop
  echo "redis cluster stopped"
  exit 0
fi

command -v redis-server >/dev/null || { echo "redis-server is missing: apt-get install -y redis-server (7.0 or newer)" >&2; exit 1; }
stop
mkdir -p "$dir"
for port in $ports; do
  # --repl-diskless-sync-delay 0: replicas are in sync at once, not after 5 s.
  redis-server --port "$port" --cluster-port $((port + 100)) --cluster-enabled yes \
    --cluster-config-file "nodes-$port.conf" --cluster-node-timeout 2000 \
    --cluster-require-full-coverage no --repl-diskless-sync-delay 0 --cluster-replica-validity-factor 0 \
    --save "" --appendonly no --dir "$dir" --logfile "$dir/$port.log" --daemonize yes
done
for port in $ports; do
  for _ in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
done
nodes=""
for port in $ports; do nodes+=" 127.0.0.1:$port"; done
# shellcheck disable=SC2086
redis-cli --cluster create $nodes --cluster-replicas 1 --cluster-yes >"$dir/create.log"
for port in $ports; do
  for _ in $(seq 1 100); do
    redis-cli -p "$port" cluster info | grep -q cluster_state:ok && break
    sleep 0.1
  done
done
echo "REDIS_CLUSTER_URLS=redis://127.0.0.1:$base,redis://127.0.0.1:$((base + 1)),redis://127.0.0.1:$((base + 2))"
