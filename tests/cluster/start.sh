#!/usr/bin/env bash
# Starts Duet as a cluster on this machine, without Docker: three nodes behind nginx, against
# the local Postgres and Redis, sharing one files directory. With --redis-cluster (or
# DUET_REDIS_CLUSTER=1) the nodes use a Redis Cluster instead of the Redis on 6379: six
# redis-server processes (three masters, three replicas) that tests/cluster/redis-cluster.sh
# starts on ports DUET_REDIS_CLUSTER_PORT..+5 (7000..7005), and `stop` stops them too.
#
#   bash tests/cluster/start.sh                    # build, start, print the address
#   bash tests/cluster/start.sh --redis-cluster    # the same on a Redis Cluster (Redis 7.0+)
#   bash tests/cluster/start.sh --pg-failover      # on a pg_auto_failover formation (a primary and
#                                                  # its synchronous standby) instead of one Postgres
#   bash tests/cluster/start.sh stop               # stop everything it started
#
# Settings (env): DUET_CLUSTER_PORT (nginx, default 8090), DUET_CLUSTER_DB (duet_cluster),
# DATABASE_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres), REDIS_URL
# (redis://127.0.0.1:6379), DUET_CLUSTER_NODES (3), DUET_BIN (a duet binary to run instead of
# building target/release/duet). With a Redis Cluster: DUET_REDIS_CLUSTER_PORT (7000), or
# REDIS_CLUSTER_URLS to use a cluster that is already running (then it is neither started nor
# stopped here). With a formation: DUET_PG_FORMATION_PORT (6500: the monitor, then the two
# Postgres nodes), see tests/cluster/pg-formation.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."

action=start
pg_failover=0
case ${DUET_REDIS_CLUSTER:-0} in
  0 | "") redis_cluster=0 ;;
  *) redis_cluster=1 ;;
esac
for arg in "$@"; do
  case $arg in
    start | stop) action=$arg ;;
    --redis-cluster) redis_cluster=1 ;;
    --pg-failover) pg_failover=1 ;;
    *) echo "usage: bash tests/cluster/start.sh [--redis-cluster] [--pg-failover] [start|stop]" >&2; exit 2 ;;
  esac
done

port=${DUET_CLUSTER_PORT:-8090}
nodes=${DUET_CLUSTER_NODES:-3}
db=${DUET_CLUSTER_DB:-duet_cluster}
admin=${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
redis=${REDIS_URL:-redis://127.0.0.1:6379}
dir=$PWD/data/cluster
mkdir -p "$dir/files"

# The Redis Cluster this script started, if any: its first port is kept in this file, so
# `stop` stops that one whatever the environment says then.
redis_cluster_port_file=$dir/redis-cluster.port
redis_cluster_sh() { # start|stop, first port
  DUET_REDIS_CLUSTER_PORT=$2 DUET_REDIS_CLUSTER_DIR=$dir/redis-cluster \
    bash tests/cluster/redis-cluster.sh "$1"
}

# Likewise the pg_auto_failover formation this script started, if any.
pg_formation_port_file=$dir/pg-formation.port
pg_formation_sh() { # start|stop, first port
  DUET_PG_FORMATION_PORT=$2 DUET_PG_FORMATION_DIR=$dir/pg-formation \
    bash tests/cluster/pg-formation.sh "$1"
}

stop() {
  local pids=() pid
  for pidfile in "$dir"/node-*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null && pids+=("$pid")
    rm -f "$pidfile"
  done
  if [ -e "$dir/nginx.pid" ]; then
    kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
  fi
  if [ -e "$redis_cluster_port_file" ]; then
    # The nodes drain first (5 s of /readyz at 503, then their sockets): let them finish on
    # the Redis Cluster before it goes.
    for pid in "${pids[@]}"; do
      for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
    done
    redis_cluster_sh stop "$(cat "$redis_cluster_port_file")" >/dev/null
    rm -f "$redis_cluster_port_file"
  fi
  if [ -e "$pg_formation_port_file" ]; then
    pg_formation_sh stop "$(cat "$pg_formation_port_file")"
    rm -f "$pg_formation_port_file"
  fi
}

if [ "$action" = stop ]; then
  stop
  echo "cluster stopped"
  exit 0
fi

command -v nginx >/dev/null || { echo "nginx is missing: apt-get install -y nginx-light" >&2; exit 1; }
command -v psql >/dev/null || { echo "psql is missing: apt-get install -y postgresql-client" >&2; exit 1; }
if [ "$redis_cluster" = 0 ]; then
  (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null || { echo "Redis is not listening on 6379: redis-server --daemonize yes" >&2; exit 1; }
elif [ -z "${REDIS_CLUSTER_URLS:-}" ]; then
  command -v redis-server >/dev/null || { echo "redis-server is missing: apt-get install -y redis-server (7.0 or newer)" >&2; exit 1; }
  redis_major=$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')
  [ "${redis_major:-0}" -ge 7 ] || { echo "a Redis Cluster for Duet needs Redis 7.0 or newer (sharded pub/sub): $(redis-server --version)" >&2; exit 1; }
fi

stop
if [ -n "${DUET_BIN:-}" ]; then
  bin=$DUET_BIN
else
  cargo build --release --bin duet
  bin=./target/release/duet
fi
if [ "$pg_failover" = 1 ]; then
  pg_port=${DUET_PG_FORMATION_PORT:-6500}
  echo "$pg_port" >"$pg_formation_port_file"
  database_url=$(pg_formation_sh start "$pg_port" | sed -n 's/^DATABASE_URL=//p') || true
  [ -n "$database_url" ] || { echo "the formation did not start; see $dir/pg-formation/" >&2; stop; exit 1; }
  db_desc="a pg_auto_failover formation (monitor on $pg_port, Postgres on $((pg_port + 1)) and $((pg_port + 2)))"
else
  psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
    || psql "$admin" -qc "CREATE DATABASE $db"
  database_url=${admin%/*}/$db
  db_desc="Postgres at ${admin%/*}/$db"
fi

# The bus of every node: one Redis or a Redis Cluster, and never both (a node refuses that,
# so the other variable is removed from the environment the nodes inherit).
if [ "$redis_cluster" = 1 ]; then
  if [ -n "${REDIS_CLUSTER_URLS:-}" ]; then
    cluster_urls=$REDIS_CLUSTER_URLS
    redis_desc="the Redis Cluster at $cluster_urls"
  else
    redis_port=${DUET_REDIS_CLUSTER_PORT:-7000}
    echo "$redis_port" >"$redis_cluster_port_file"
    cluster_urls=$(redis_cluster_sh start "$redis_port" | sed -n 's/^REDIS_CLUSTER_URLS=//p') || true
    [ -n "$cluster_urls" ] || { echo "the Redis Cluster did not start; see $dir/redis-cluster/" >&2; stop; exit 1; }
    redis_desc="a Redis Cluster on ports $redis_port..$((redis_port + 5))"
  fi
  bus=(-u REDIS_URL "REDIS_CLUSTER_URLS=$cluster_urls")
else
  bus=(-u REDIS_CLUSTER_URLS "REDIS_URL=$redis")
  redis_desc="Redis at $redis"
fi

origins="http://127.0.0.1:$port,http://localhost:$port"
upstreams=""
for i in $(seq 1 "$nodes"); do
  node_port=$((port + i))
  env "${bus[@]}" \
    "DUET_BIND=127.0.0.1:$node_port" \
    "DUET_METRICS_BIND=127.0.0.1:$((node_port + 100))" \
    "DATABASE_URL=$database_url" \
    DUET_REDIS_PREFIX=duet-cluster: \
    "DUET_FILES_DIR=$dir/files" \
    "DUET_ORIGINS=$origins" \
    DUET_TRUSTED_PROXIES=127.0.0.1 \
    DUET_LOG_FORMAT=json \
    "$bin" >"$dir/node-$i.log" 2>&1 &
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
echo "Duet cluster: $nodes nodes behind nginx at http://127.0.0.1:$port, on $redis_desc and $db_desc, /metrics of node i at 127.0.0.1:$((port + 100))+i (logs in $dir; stop with: bash tests/cluster/start.sh stop)"
