#!/usr/bin/env bash
# The REST API against its own OpenAPI document, as CI runs it: schemathesis (property-based
# tests generated from the schema) against one embedded Duet node (SQLite, in-process bus)
# with a fresh data directory. It fails when any response is a 5xx (not_a_server_error), has
# a status code, a Content-Type, headers or a body that the document does not describe for
# that operation (status_code_conformance, content_type_conformance,
# response_headers_conformance, response_schema_conformance). The document is the one the
# node serves at GET /api/openapi.json (committed as docs/openapi.json).
#
# From anywhere inside the repo:
#
#   cargo build && tests/schema/run.sh
#   DUET_BIN=/path/to/duet tests/schema/run.sh                 # another build
#   SCHEMA=docs/openapi.json tests/schema/run.sh              # another document (file or URL)
#   ST_MAX_EXAMPLES=300 tests/schema/run.sh -- --seed 42      # longer; extra args go to `st run`
#   SCHEMA_KEEP=1 tests/schema/run.sh                         # keep the node's data dir and log
#   ST_WORKERS=2 tests/schema/run.sh                          # parallel (see the note at --workers)
#
# Needs python3 (with venv: installed with apt-get when missing and root) and PyPI. Installs
# schemathesis once into target/schemathesis-venv; builds nothing (uses target/debug/duet or
# DUET_BIN). Takes about 30 s on two cores.
#
# Before the run, two users sign up and pair with curl (chats, answers, files and the couple
# routes answer 409 not_paired otherwise), and every request schemathesis sends carries the
# first one's session as `Authorization: Bearer <token>`. No `Origin` header is sent, which
# the node's Origin check lets through (it guards browsers).
#
# Excluded from the run, and why:
#   - POST /api/logout (any path ending in /logout): it deletes the session the whole run
#     authenticates with, so every later request would be a 401 `unauthenticated` and the
#     rest of the run would test nothing but the 401 path.
# Kept on purpose: DELETE /api/couple only schedules the break-up (the couple stays usable for
# the grace period, a week by default) and POST /api/couple/restore undoes it; sign-ups and
# logins open other sessions and leave ours alone.
#
# Knobs of the node that differ from its defaults here, and why:
#   - DUET_LOGIN_RATE_PER_ADDR=0, DUET_LOGIN_RATE_PER_USER=0: schemathesis sends far more
#     than 30 sign-ups and logins a minute from 127.0.0.1; with the limits on, nearly all of
#     them would be 429 and the sign-up and login handlers would go untested.
#   - DUET_DRAIN_SECS=1, DUET_DRAIN_DELAY_SECS=0: stop quickly at the end.
# Every other DUET_*, DATABASE_URL and REDIS_* of the caller's environment is ignored (the node
# runs under `env -i`), so a developer's shell cannot point it at a real database.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

die() { echo "schema: $*" >&2; exit 1; }
say() { echo "schema: $*" >&2; }

# The pinned schemathesis (4.x: its CLI differs from 3.x's).
ST_VERSION="4.32.5"
# Test cases per operation and phase: 100 makes about 2,500 requests, ~30 s on two cores.
ST_MAX_EXAMPLES="${ST_MAX_EXAMPLES:-100}"
# A hung run fails instead of holding CI (each request also times out after 10 s).
ST_TIMEOUT_SECS="${ST_TIMEOUT_SECS:-600}"
[ "${1:-}" = "--" ] && shift

DUET_BIN="${DUET_BIN:-$repo/target/debug/duet}"
[ -x "$DUET_BIN" ] || die "no duet binary at $DUET_BIN: run cargo build first (or set DUET_BIN)"
command -v python3 >/dev/null 2>&1 || die "python3 is required: apt-get install -y python3 python3-venv"
command -v curl >/dev/null 2>&1 || die "curl is required: apt-get install -y curl"

# --- schemathesis, in a virtualenv cached under target/ ---------------------------------------
venv="$repo/target/schemathesis-venv"
st="$venv/bin/st"
if ! "$st" --version 2>/dev/null | grep -qF "version $ST_VERSION"; then
  # Debian's python3 has no `venv`/`ensurepip` without the python3-venv package.
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "installing python3-venv for the schemathesis virtualenv"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >&2
      apt-get install -y -qq python3-venv >/dev/null
    else
      die "python3 has no venv module: apt-get install -y python3-venv"
    fi
  fi
  say "installing schemathesis $ST_VERSION into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$ST_VERSION" \
    || die "could not install schemathesis $ST_VERSION from PyPI"
  "$st" --version | grep -qF "version $ST_VERSION" || die "schemathesis $ST_VERSION did not install"
fi

# --- one embedded node --------------------------------------------------------------------------
tmp="$(mktemp -d "${TMPDIR:-/tmp}/duet-schema.XXXXXX")"
node_pid=""
cleanup() {
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
    kill "$node_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$node_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
  if [ -n "${SCHEMA_KEEP:-}" ]; then
    say "kept $tmp (node.log, data/)"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_node() {
  port="$(free_port)"
  base="http://127.0.0.1:$port"
  mkdir -p "$tmp/data/files"
  env -i PATH="$PATH" HOME="${HOME:-$tmp}" TMPDIR="${TMPDIR:-/tmp}" \
    NO_COLOR=1 RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 \
    DUET_BIND="127.0.0.1:$port" \
    DUET_DATA_DIR="$tmp/data" \
    DUET_FILES_DIR="$tmp/data/files" \
    DUET_ASSETS_DIR="$repo/assets" \
    DUET_LOGIN_RATE_PER_ADDR=0 \
    DUET_LOGIN_RATE_PER_USER=0 \
    DUET_DRAIN_SECS=1 \
    DUET_DRAIN_DELAY_SECS=0 \
    "$DUET_BIN" serve >>"$tmp/node.log" 2>&1 &
  node_pid=$!
  for _ in $(seq 1 300); do
    if ! kill -0 "$node_pid" 2>/dev/null; then
      wait "$node_pid" 2>/dev/null || true
      node_pid=""
      return 1
    fi
    if curl -fsS -o /dev/null --max-time 2 "$base/readyz" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  die "the node did not become ready within 30 s on $base; its log:
$(tail -n 40 "$tmp/node.log")"
}

started=""
for attempt in 1 2 3; do
  if start_node; then started=1; break; fi
  # Most likely the port was taken between picking it and binding it: try another.
  say "the node exited at start (attempt $attempt); retrying on another port"
done
[ -n "$started" ] || die "the node would not start; its log:
$(tail -n 40 "$tmp/node.log")"
say "node $DUET_BIN ready on $base (data in $tmp/data)"

# --- two users, paired --------------------------------------------------------------------------
# api METHOD PATH [JSON] [TOKEN]: prints the body; fails on a status >= 400.
api() {
  local method="$1" path="$2" body="${3:-}" token="${4:-}" out status
  local args=(-sS --max-time 10 -X "$method" -H 'Accept: application/json' -o "$tmp/body" -w '%{http_code}')
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data "$body")
  [ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
  args+=(-c "$tmp/cookies")
  status="$(curl "${args[@]}" "$base$path")" || die "$method $path: curl failed"
  out="$(cat "$tmp/body")"
  [ "$status" -lt 400 ] || die "$method $path answered $status: $out"
  printf '%s' "$out"
}

# json EXPR: reads JSON on stdin, prints the Python expression EXPR of it (`j` is the document).
json() {
  python3 -c 'import json, sys; j = json.load(sys.stdin); v = eval(sys.argv[1]); print("" if v is None else v)' "$1"
}

# signup USERNAME: signs up, prints the session token. The node sets it as the duet_session
# cookie; a token in the body (`token`), if the API ever returns one, is taken first.
signup() {
  local name="$1" body token
  rm -f "$tmp/cookies"
  body="$(api POST /api/signup "{\"username\":\"$name\",\"password\":\"schemathesis-$name\"}")"
  token="$(printf '%s' "$body" | json 'j.get("token")')"
  if [ -z "$token" ]; then
    token="$(awk '$6 == "duet_session" { print $7 }' "$tmp/cookies" | tail -n 1)"
  fi
  [ -n "$token" ] || die "signing up $name gave no session token (neither in the body nor a duet_session cookie): $body"
  printf '%s' "$token"
}

token="$(signup st_alice)"
partner_token="$(signup st_bob)"
request_id="$(api POST /api/requests '{"username":"st_bob"}' "$token" | json 'j["request"]["id"]')"
api POST "/api/requests/$request_id/accept" "" "$partner_token" >/dev/null
partner="$(api GET /api/me "" "$token" | json '(j.get("couple") or {}).get("partner", {}).get("username")')"
[ "$partner" = "st_bob" ] || die "st_alice is not paired with st_bob after the accept (GET /api/me: partner=$partner)"
say "st_alice and st_bob are paired; running as st_alice"

# --- schemathesis -------------------------------------------------------------------------------
SCHEMA="${SCHEMA:-$base/api/openapi.json}"
case "$SCHEMA" in
  http://* | https://*)
    code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "$SCHEMA" || true)"
    [ "$code" = 200 ] || die "the OpenAPI document is not served at $SCHEMA (status $code): does this build serve /api/openapi.json? (or set SCHEMA)"
    ;;
  *)
    [ -f "$SCHEMA" ] || die "no OpenAPI document at $SCHEMA"
    ;;
esac

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
# One worker: with two, hypothesis describes filter lambdas with ast.parse from two threads at
# once, which CPython 3.11 does not survive ("SystemError: AST constructor recursion depth
# mismatch", a crash of the tool seen once in CI, not a finding about the API).
cmd=(
  "$st" run "$SCHEMA"
  --url "$base"
  --header "Authorization: Bearer $token"
  --checks "$checks"
  --exclude-path-regex '/logout$'
  --max-examples "$ST_MAX_EXAMPLES"
  --workers "${ST_WORKERS:-1}"
  --request-timeout 10
  --generation-database none
  --suppress-health-check too_slow
  "$@"
)
say "running: ${cmd[*]/$token/<token>}"
started_at="$(date +%s)"
set +e
# schemathesis writes nothing into the repo (no .hypothesis, no report dir) from $tmp.
(cd "$tmp" && timeout --signal=INT --kill-after=10 "$ST_TIMEOUT_SECS" "${cmd[@]}")
rc=$?
[ "$rc" -ne 124 ] || say "schemathesis did not finish within $ST_TIMEOUT_SECS s (ST_TIMEOUT_SECS)"
set -e
say "schemathesis took $(( $(date +%s) - started_at )) s and exited with $rc"

# The run's session must have survived (else something that ends it was not excluded).
if ! curl -fsS -o /dev/null --max-time 5 -H "Authorization: Bearer $token" "$base/api/me"; then
  say "warning: the run's session no longer works after the run: some operation ended it"
fi

if [ "$rc" -ne 0 ]; then
  errors="$(grep -E ' (ERROR|WARN) ' "$tmp/node.log" | tail -n 40 || true)"
  if [ -n "$errors" ]; then
    say "the node's errors and warnings during the run:"
    printf '%s\n' "$errors" >&2
  fi
  die "schemathesis found failures (see its report above)"
fi
say "ok: no 5xx, and every response matches the OpenAPI document"
