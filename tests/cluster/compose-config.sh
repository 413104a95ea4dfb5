#!/usr/bin/env bash
# Checks the compose files the way Docker Compose reads them: `docker compose config` on the main
# file and on each override, then the merged formation file for what it must say (no single
# Postgres, every node given both formation hosts). Needs Compose v2.24 or newer for the !reset
# tags; Debian bookworm packages only v1, so when none is found this takes Debian trixie's
# docker-compose package (a static Go binary) and runs it standalone. No Docker engine is needed:
# config only parses and merges.
set -euo pipefail
cd "$(dirname "$0")/../.."

compose=()
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1 && docker-compose version 2>/dev/null | grep -q 'v\?2\.'; then
  compose=(docker-compose)
else
  dir="${DUET_COMPOSE_DIR:-/usr/local/lib/duet-compose}"
  if [ ! -x "$dir/docker-compose" ]; then
    echo "installing Docker Compose v2 from Debian trixie into $dir" >&2
    tmp=$(mktemp -d)
    mirror=http://deb.debian.org/debian
    curl -fsS -m 60 -o "$tmp/Packages.xz" "$mirror/dists/trixie/main/binary-amd64/Packages.xz"
    deb=$(xz -dc "$tmp/Packages.xz" | awk '/^Package: docker-compose$/{p=1} p && !done && /^Filename:/{print $2; done=1}')
    if [ -z "$deb" ]; then
      echo "Debian trixie lists no docker-compose package; install Compose v2.24+ by hand" >&2
      exit 1
    fi
    curl -fsS -m 300 -o "$tmp/compose.deb" "$mirror/$deb"
    dpkg-deb -x "$tmp/compose.deb" "$tmp/root"
    mkdir -p "$dir"
    install -m 0755 "$tmp/root/usr/libexec/docker/cli-plugins/docker-compose" "$dir/docker-compose"
    rm -rf "$tmp"
  fi
  compose=("$dir/docker-compose")
fi
echo "compose: $("${compose[@]}" version)"

check() {
  echo "config: $*"
  "${compose[@]}" "$@" config -q
}
check -f docker-compose.yml
check -f docker-compose.yml -f docker-compose.redis-cluster.yml
check -f docker-compose.yml -f docker-compose.pg-failover.yml
check -f docker-compose.yml -f docker-compose.pg-failover.yml -f docker-compose.redis-cluster.yml

# What the merge must come to, not only that it parses: the formation replaces the one Postgres.
services=$("${compose[@]}" -f docker-compose.yml -f docker-compose.pg-failover.yml config --services)
for want in pg-monitor pg-node1 pg-node2 duet1 duet2 duet3; do
  grep -qx "$want" <<<"$services" || { echo "formation file: no service $want" >&2; exit 1; }
done
if grep -qx postgres <<<"$services"; then
  echo "formation file: the single postgres still starts" >&2
  exit 1
fi
merged=$("${compose[@]}" -f docker-compose.yml -f docker-compose.pg-failover.yml config --format json)
python3 - "$merged" <<'PY'
import json, sys
config = json.loads(sys.argv[1])
for name, service in config["services"].items():
    if not name.startswith("duet"):
        continue
    url = service["environment"]["DATABASE_URL"]
    assert "pg-node1:5432,pg-node2:5432" in url and "target_session_attrs=read-write" in url, (name, url)
    assert "postgres" not in service.get("depends_on", {}), (name, "still waits for postgres")
print("formation file: every Duet node is given both hosts and waits for no single postgres")
PY
