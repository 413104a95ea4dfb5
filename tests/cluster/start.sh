#!/usr/bin/env bash
# Starts Duet as a cluster on this machine, without Docker: three nodes behind nginx, against
# the local Postgres and Redis, sharing one files directory.
#
#   bash tests/cluster/start.sh          # build, start, print the address
#   bash tests/cluster/start.sh stop     # stop everything it started
#
# Settings (env): DUET_CLUSTER_PORT (nginx, default 8090), DUET_CLUSTER_DB (duet_cluster),
# DATABASE_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres), REDIS_URL
# (redis://127.0.0.1:6379), DUET_CLUSTER_NODES (3).
set -euo pipefail
cd "$(dirname "$0")/../.."

port=${DUET_CLUSTER_PORT:-8090}
nodes=${DUET_CLUSTER_NODES:-3}
db=${DUET_CLUSTER_DB:-duet_cluster}
admin=${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
redis=${REDIS_URL:-redis://127.0.0.1:6379}
dir=$PWD/data/cluster
mkdir -p "$dir/files"

stop() {
  for pidfile in "$dir"/node-*.pid; do
    [ -e "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
  if [ -e "$dir/nginx.pid" ]; then
    kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
  fi
}

if [ "${1:-start}" = "stop" ]; then
  stop
  echo "cluster stopped"
  exit 0
fi

command -v nginx >/dev/null || { echo "nginx is missing: apt-get install -y nginx-light" >&2; exit 1; }
command -v psql >/dev/null || { echo "psql is missing: apt-get install -y postgresql-client" >&2; exit 1; }
(exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null || { echo "Redis is not listening on 6379: redis-server --daemonize yes" >&2; exit 1; }

stop
cargo build --release --bin duet
psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
  || psql "$admin" -qc "CREATE DATABASE $db"
base=${admin%/*}

origins="http://127.0.0.1:$port,http://localhost:$port"
upstreams=""
for i in $(seq 1 "$nodes"); do
  node_port=$((port + i))
  DUET_BIND=127.0.0.1:$node_port \
  DATABASE_URL=$base/$db \
  REDIS_URL=$redis \
  DUET_REDIS_PREFIX=duet-cluster: \
  DUET_FILES_DIR=$dir/files \
  DUET_ORIGINS=$origins \
  DUET_TRUSTED_PROXIES=127.0.0.1 \
  DUET_LOG_FORMAT=json \
    ./target/release/duet >"$dir/node-$i.log" 2>&1 &
  echo $! >"$dir/node-$i.pid"
  upstreams+="        server 127.0.0.1:$node_port max_fails=1 fail_timeout=5s;"$'\n'
done

sed -e "s|__PREFIX__|$dir|g" -e "s|__LISTEN__|127.0.0.1:$port|" tests/cluster/nginx.conf.template \
  | awk -v ups="$upstreams" '{ if ($0 == "__UPSTREAMS__") printf "%s", ups; else print }' >"$dir/nginx.conf"
nginx -c "$dir/nginx.conf" -p "$dir" -e "$dir/nginx-error.log"

for i in $(seq 1 "$nodes"); do
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$((port + i))/readyz" >/dev/null && break
    sleep 0.2
  done
  curl -fs "http://127.0.0.1:$((port + i))/readyz" >/dev/null || { echo "node $i did not become ready; see $dir/node-$i.log" >&2; stop; exit 1; }
done
curl -fs "http://127.0.0.1:$port/readyz" >/dev/null || { echo "nginx does not reach the nodes; see $dir/nginx-error.log" >&2; stop; exit 1; }
echo "Duet cluster: $nodes nodes behind nginx at http://127.0.0.1:$port (logs in $dir; stop with: bash tests/cluster/start.sh stop)"
