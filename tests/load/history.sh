#!/usr/bin/env bash
# Search, jumps and our words on a couple with a long history (1,000,000 chats by default),
# on Postgres, through one release node's HTTP API. A benchmark, not a test: it prints
# median (min-max) of REPS requests per query, and beside each search the same query with
# the trigram index out of play (what it costs without it), in the same run.
#
#   cargo build --release && bash tests/load/history.sh            # ~5 minutes
#   CHATS=200000 REPS=9 bash tests/load/history.sh
#
# Settings (env): DUET_BIN (target/release/duet), PG_URL (postgres://postgres@127.0.0.1:5432),
# CHATS (1000000), OTHER_CHATS (another couple's, 200000), REPS (15).
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
DUET_BIN="${DUET_BIN:-$repo/target/release/duet}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
CHATS="${CHATS:-1000000}"
OTHER_CHATS="${OTHER_CHATS:-200000}"
REPS="${REPS:-15}"
db="duet_history_$$"
dir="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
base="http://127.0.0.1:$port"

[ -x "$DUET_BIN" ] || { echo "no $DUET_BIN: cargo build --release first" >&2; exit 1; }
psql "$PG_URL/postgres" -qc "select 1" >/dev/null \
  || { echo "Postgres is not reachable at $PG_URL: start it (pg_ctlcluster 15 main start)" >&2; exit 1; }
psql "$PG_URL/postgres" -qc "create database $db"
cleanup() {
  [ -n "${node:-}" ] && kill "$node" 2>/dev/null && wait "$node" 2>/dev/null
  psql "$PG_URL/postgres" -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
sql() { psql "$PG_URL/$db" -qAtX -v ON_ERROR_STOP=1 "$@"; }

DATABASE_URL="$PG_URL/$db" DUET_BIND="127.0.0.1:$port" DUET_DATA_DIR="$dir" DUET_LOG=warn \
  DUET_LOGIN_RATE_PER_ADDR=0 "$DUET_BIN" >"$dir/node.log" 2>&1 &
node=$!
for _ in $(seq 50); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.2; done

signup() { curl -sf -c "$dir/$1" -H 'content-type: application/json' \
  -d "{\"username\":\"$1\",\"password\":\"history-bench-1\"}" "$base/api/signup" >/dev/null; }
pair() {
  local id
  id=$(curl -sf -b "$dir/$1" -H 'content-type: application/json' -d "{\"username\":\"$2\"}" \
    "$base/api/requests" | python3 -c 'import json,sys; print(json.load(sys.stdin)["request"]["id"])')
  curl -sf -b "$dir/$2" -X POST "$base/api/requests/$id/accept" >/dev/null
}
for u in mina joon sora hana; do signup $u; done
pair mina joon
pair sora hana

# Chats of 3 to 6 words from a vocabulary of everyday Korean (with particles) and English;
# rare words planted at known rates: 유니콘 (3 syllables) and 달빛 (2) in one chat of
# 10,007 and 9,973, Zebra in one of 10,009.
seed() { # couple_id, sender_a, sender_b, count
  sql <<SQL
insert into chats (id, couple_id, seq, sender_id, client_id, text, sent_at)
select gen_random_uuid(), '$1', g, case when g % 2 = 0 then '$2'::uuid else '$3'::uuid end,
       gen_random_uuid(),
       array_to_string(array(
         select (array['산책을','산책이','오늘','내일','밥은','먹었어','보고','싶다','ㅋㅋㅋ','ㅎㅎ',
                       '우리','같이','가자','집에','왔어','지금','뭐해','자기야','좋아','사진',
                       '예쁘다','바다를','노을이','주말에','카페에서','케이크를','선물','고마워',
                       '퇴근','했어','피곤해','잘자','굿모닝','날씨가','춥다','따뜻하게','입어',
                       'ok','lol','love','you','see','soon','coffee','later','home','now',
                       'Picnic','tonight','dinner','movie','walk','sleep','good','night'])
                [1 + floor(random() * 55)::int]
         from generate_series(1, 3 + (g % 4)) where g > 0), ' ')
       || case when g % 10007 = 0 then ' 유니콘' else '' end
       || case when g % 9973 = 0 then ' 달빛' else '' end
       || case when g % 10009 = 0 then ' Zebra' else '' end,
       now() - (($4 - g) * interval '20 seconds')
from generate_series(1, $4) g;
update couples set last_seq = $4 where id = '$1';
SQL
}
couple_of() { sql -c "select m.couple_id from couple_members m join users u on u.id = m.user_id where u.username = '$1'"; }
user_id() { sql -c "select id from users where username = '$1'"; }
mine=$(couple_of mina); theirs=$(couple_of sora)
echo "seeding $CHATS chats (and $OTHER_CHATS of another couple)..."
t0=$(date +%s)
sql -c "drop index idx_chats_text_search"
seed "$mine" "$(user_id mina)" "$(user_id joon)" "$CHATS"
seed "$theirs" "$(user_id sora)" "$(user_id hana)" "$OTHER_CHATS"
t1=$(date +%s)
sql -c "create index idx_chats_text_search on chats using gin (couple_id, (regexp_replace(text, '(.)', '\\1\\1', 'g')) gin_trgm_ops)"
sql -c "vacuum analyze chats"
t2=$(date +%s)
echo "seeded in $((t1 - t0)) s; search index built in $((t2 - t1)) s ($(sql -c "select pg_size_pretty(pg_relation_size('idx_chats_text_search'))"))"

# Median (min-max) in ms of REPS runs of a curl to PATH.
http() {
  local path="$1" times=()
  curl -sf -b "$dir/joon" "$base$path" >/dev/null # warm
  for _ in $(seq "$REPS"); do
    times+=("$(curl -sf -o /dev/null -w '%{time_total}' -b "$dir/joon" "$base$path")")
  done
  printf '%s\n' "${times[@]}" | python3 -c '
import statistics, sys
t = sorted(float(x) * 1000 for x in sys.stdin)
print(f"{statistics.median(t):7.1f} ms ({t[0]:.1f}-{t[-1]:.1f})", end="")'
}
# The same search in SQL, with and without the trigram index in play.
sqltime() { # needle, enable_bitmapscan
  local doubled
  doubled=$(python3 -c 'import sys; print("".join(c + c for c in sys.argv[1]))' "$1")
  local q="select id from chats where couple_id = '$mine' and deleted_at is null and text ilike '%$1%' and regexp_replace(text, '(.)', '\\1\\1', 'g') ilike '%$doubled%' order by seq desc limit 50"
  local times=()
  for _ in $(seq "$REPS"); do
    times+=("$(sql -c "set enable_bitmapscan = $2" -c "explain (analyze, format json) $q" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Execution Time"])')")
  done
  printf '%s\n' "${times[@]}" | python3 -c '
import statistics, sys
t = sorted(float(x) for x in sys.stdin)
print(f"{statistics.median(t):7.1f} ms ({t[0]:.1f}-{t[-1]:.1f})", end="")'
}
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1"; }

echo
echo "first page of search hits (50), couple of $CHATS chats, $REPS runs: HTTP | SQL with index | SQL without"
for needle in 산책 유니콘 달빛 picnic zebra 없는말 콘; do
  hits=$(sql -c "select count(*) from chats where couple_id = '$mine' and text ilike '%$needle%'")
  printf '  %-8s %7s hits  %s | %s | %s\n' "$needle" "$hits" "$(http "/api/chats/search?q=$(enc "$needle")")" \
    "$(sqltime "$needle" on)" "$(sqltime "$needle" off)"
done
mid=$((CHATS / 2))
day=$(sql -c "select to_char((sent_at at time zone 'UTC')::date, 'YYYY-MM-DD') from chats where couple_id = '$mine' and seq = $mid")
echo
echo "jumps: around a chat $(http "/api/chats?around=$mid") | to a day ($day) $(http "/api/chats?date=$day") | newer page $(http "/api/chats?after=$mid")"

echo
start=$(date +%s.%N); looks=0
while :; do
  looks=$((looks + 1))
  complete=$(curl -sf -b "$dir/joon" "$base/api/words" | python3 -c 'import json,sys; print(json.load(sys.stdin)["complete"])')
  [ "$complete" = "True" ] && break
done
end=$(date +%s.%N)
echo "our words: counting $CHATS chats the first time took $(python3 -c "print(f'{$end - $start:.1f}')") s over $looks looks"
echo "our words: each later look (top 20, nothing new) $(http "/api/words")"
echo "our words: top 100 $(http "/api/words?limit=100")"
top=$(curl -sf -b "$dir/joon" "$base/api/words?limit=5" | python3 -c '
import json, sys
print(", ".join("%s %d" % (w["word"], w["count"]) for w in json.load(sys.stdin)["words"]))')
echo "our words: top 5: $top"

# What the search index costs on the write path: the same 100,000 chats inserted with it and
# without it, alternately, three times each (Postgres time per chat written).
echo
ins() { # with|without
  local from=$((OTHER_CHATS + 1)) to=$((OTHER_CHATS + 100000)) t0 t1
  t0=$(date +%s.%N)
  sql <<SQL
insert into chats (id, couple_id, seq, sender_id, client_id, text, sent_at)
select gen_random_uuid(), '$theirs', g, '$(user_id sora)', gen_random_uuid(),
       '오늘 산책이 좋았어 walk home later ' || g, now()
from generate_series($from, $to) g;
SQL
  t1=$(date +%s.%N)
  sql -c "delete from chats where couple_id = '$theirs' and seq >= $from"
  python3 -c "print(f'{($t1 - $t0) * 1e6 / 100000:.1f}')"
}
with=(); without=()
for _ in 1 2 3; do
  with+=("$(ins with)")
  sql -c "drop index idx_chats_text_search"
  without+=("$(ins without)")
  sql -c "create index idx_chats_text_search on chats using gin (couple_id, (regexp_replace(text, '(.)', '\\1\\1', 'g')) gin_trgm_ops)"
done
echo "write path: µs of Postgres per chat inserted (100,000 at once), with the search index: ${with[*]}; without: ${without[*]}"
