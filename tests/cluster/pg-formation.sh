#!/usr/bin/env bash
# A pg_auto_failover formation on this machine, without Docker: a monitor on port PORT, then
# a primary and its synchronous standby on PORT+1 and PORT+2 (created one after the other, the
# second copied from the first), each run by its own `pg_autoctl` keeper as the `postgres`
# user. `start` prints the multi-host DATABASE_URL to give Duet once the standby is in place.
#
#   bash tests/cluster/pg-formation.sh start     # create (or start again) and wait; prints DATABASE_URL=...
#   bash tests/cluster/pg-formation.sh state     # the monitor's view: who is primary
#   bash tests/cluster/pg-formation.sh switchover
#   bash tests/cluster/pg-formation.sh stop      # stop the keepers and their Postgres (data kept)
#
# Settings (env): DUET_PG_FORMATION_PORT (6500), DUET_PG_FORMATION_DIR (data/pg-formation).
# Needs Debian's pg-auto-failover-cli and postgresql-<version>-auto-failover. The monitor's
# default timings apply: a dead primary's standby is promoted after about half a minute (the
# tests shorten them, tests/api/formation.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."

action=${1:-start}
port=${DUET_PG_FORMATION_PORT:-6500}
dir=${DUET_PG_FORMATION_DIR:-$PWD/data/pg-formation}
monitor_url="postgres://autoctl_node@127.0.0.1:$port/pg_auto_failover?sslmode=disable"
url="postgres://postgres@127.0.0.1:$((port + 1)),127.0.0.1:$((port + 2))/duet?sslmode=disable&target_session_attrs=read-write"

command -v pg_autoctl >/dev/null || {
  echo "pg_autoctl is missing: apt-get install -y pg-auto-failover-cli postgresql-15-auto-failover (your Postgres version)" >&2
  exit 1
}
pg_ctl=$(ls /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -1)

# Postgres refuses root: under root every pg_autoctl runs as `postgres`, which owns $dir.
autoctl() {
  local env=(env "XDG_CONFIG_HOME=$dir/xdg-config" "XDG_DATA_HOME=$dir/xdg-data"
    "XDG_RUNTIME_DIR=$dir/xdg-run" "PG_CONFIG=${pg_ctl%/pg_ctl}/pg_config")
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "${env[@]}" pg_autoctl "$@"
  else
    "${env[@]}" pg_autoctl "$@"
  fi
}

monitor_sql() { psql "$monitor_url" -tAXc "$1" 2>/dev/null; }

# Waits (up to $2 seconds) until the monitor's answer to $1 is "t".
wait_for() {
  for _ in $(seq 1 $(($2 * 2))); do
    [ "$(monitor_sql "$1")" = t ] && return 0
    sleep 0.5
  done
  echo "the formation did not get there in $2 s: $1; see $dir/*.log" >&2
  exit 1
}

# Starts a keeper in the background: `create ... --run` the first time, `run` after.
keeper() { # name, create arguments...
  local name=$1
  shift
  if [ -d "$dir/$name" ]; then
    setsid bash -c "$(declare -f autoctl); dir='$dir' pg_ctl='$pg_ctl' autoctl run --pgdata '$dir/$name'" \
      >>"$dir/$name.log" 2>&1 </dev/null &
  else
    setsid bash -c "$(declare -f autoctl); dir='$dir' pg_ctl='$pg_ctl' autoctl $* --pgdata '$dir/$name' --pgctl '$pg_ctl' --run" \
      >>"$dir/$name.log" 2>&1 </dev/null &
  fi
}

case $action in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    keeper monitor create monitor --pgport "$port" --hostname 127.0.0.1 --auth trust --no-ssl
    for _ in $(seq 1 120); do monitor_sql "SELECT 1" >/dev/null && break; sleep 0.5; done
    node="create postgres --hostname 127.0.0.1 --dbname duet --auth trust --no-ssl --monitor $monitor_url"
    keeper node1 $node --pgport $((port + 1)) --name node1
    wait_for "SELECT count(*) >= 1 FROM pgautofailover.node WHERE reportedstate IN ('single', 'primary')" 120
    keeper node2 $node --pgport $((port + 2)) --name node2
    wait_for "SELECT count(*) = 2 FROM pgautofailover.node
              WHERE reportedstate = goalstate AND reportedstate IN ('primary', 'secondary')" 180
    # Started again, the monitor still has the states of before: wait for a primary that
    # takes writes (libpq follows target_session_attrs itself).
    for _ in $(seq 1 240); do
      [ "$(psql "$url" -tAXc "SELECT NOT pg_is_in_recovery()" 2>/dev/null)" = t ] && break
      sleep 0.5
    done
    [ "$(psql "$url" -tAXc "SELECT NOT pg_is_in_recovery()" 2>/dev/null)" = t ] \
      || { echo "no primary takes writes at $url; see $dir/*.log" >&2; exit 1; }
    echo "DATABASE_URL=$url"
    ;;
  state) autoctl show state --monitor "$monitor_url" ;;
  switchover) autoctl perform switchover --monitor "$monitor_url" ;;
  stop)
    for name in node2 node1 monitor; do
      [ -d "$dir/$name" ] && autoctl stop --pgdata "$dir/$name" >/dev/null 2>&1 || true
    done
    ;;
  *) echo "usage: bash tests/cluster/pg-formation.sh start|state|switchover|stop" >&2; exit 2 ;;
esac
