#!/bin/sh
# Makes the Redis nodes given as IP:PORT arguments one Redis Cluster (--cluster-replicas 1: six
# nodes are three masters and three replicas), unless they already are one. The one-shot
# redis-cluster-init service of docker-compose.redis-cluster.yml runs it (POSIX sh: the
# redis:7-alpine image has no bash); it works on any nodes started with --cluster-enabled yes.
#
#   sh tests/cluster/redis-cluster-init.sh 172.29.70.11:6379 172.29.70.12:6379 ...
#
# Addresses, not names: CLUSTER MEET takes IP addresses only. Exits 0 once every node reports
# cluster_state:ok: at once if they already did (a second `docker compose up`), after waiting if
# they were one cluster that is settling after a restart, after `--cluster create` if all were
# empty. Nodes of which only some know the others (one lost its nodes.conf) are not repaired:
# it says so and fails, and the services that need the cluster do not start.
set -eu

[ $# -ge 6 ] || { echo "usage: $0 IP:PORT ... (at least six nodes: three masters, three replicas)" >&2; exit 2; }
wait_secs=${DUET_REDIS_CLUSTER_WAIT_SECS:-60}

cli() {
  host=${1%:*} port=${1##*:}
  shift
  redis-cli -h "$host" -p "$port" "$@"
}

# One field of CLUSTER INFO (its lines end in \r).
info() {
  cli "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"
}

all_ok() {
  for node; do
    [ "$(info "$node" cluster_state)" = ok ] || return 1
  done
}

wait_all_ok() {
  i=0
  until all_ok "$@"; do
    i=$((i + 1))
    [ "$i" -le "$wait_secs" ] || return 1
    sleep 1
  done
}

for node; do
  i=0
  until [ "$(cli "$node" ping 2>/dev/null)" = PONG ]; do
    i=$((i + 1))
    [ "$i" -le "$wait_secs" ] || { echo "redis-cluster-init: $node does not answer PING" >&2; exit 1; }
    sleep 1
  done
done

if all_ok "$@"; then
  echo "redis-cluster-init: already a cluster (cluster_state:ok on all $# nodes); nothing to do"
  exit 0
fi

joined=0
for node; do
  known=$(info "$node" cluster_known_nodes)
  [ "${known:-1}" = 1 ] || joined=$((joined + 1))
done

if [ "$joined" = 0 ]; then
  echo "redis-cluster-init: creating a cluster of $*"
  redis-cli --cluster create "$@" --cluster-replicas 1 --cluster-yes
elif [ "$joined" = $# ]; then
  echo "redis-cluster-init: the nodes are one cluster already; waiting for cluster_state:ok"
else
  echo "redis-cluster-init: only $joined of $# nodes belong to a cluster (one lost its nodes.conf?);" \
    "not repairing it. Remove the Redis containers with their volumes (docker compose ... rm -sfv" \
    "redis-1 ... redis-6) and start again." >&2
  exit 1
fi

if wait_all_ok "$@"; then
  echo "redis-cluster-init: cluster_state:ok on all $# nodes"
else
  echo "redis-cluster-init: cluster_state is not ok on every node after ${wait_secs}s" >&2
  for node; do echo "  $node: $(info "$node" cluster_state)" >&2; done
  exit 1
fi
