#!/usr/bin/env bash
# Chaos soak (issue #15): pgbench writers insert and update rows of `items(id, version, payload)` on a
# throwaway cluster while two `spillway run` daemons (one audit_log consumer, one replication consumer, each
# with a file sink and a Kafka sink to librdkafka's mock cluster) are killed with SIGKILL at random moments
# and restarted, PostgreSQL is restarted once with `-m immediate`, and the Kafka mock is taken down and up.
# Then the writers stop, each consumer drains (`run --once`), and Benchmarks/soak_checker.py (standard
# library only, no Spillway code) compares the table's final state with each file sink's JSON Lines and
# prints `sink=NAME lost=N duplicated=N reordered=N`. Exits non-zero on any loss or per-key reordering.
#   Benchmarks/chaos-soak.sh [SECONDS] [KILLS]
#     SECONDS default 300: how long the writers and the chaos run
#     KILLS   default 20: SIGKILLs in total, spread at random over SECONDS, alternating between the daemons
#   SOAK_KEEP=DIR copies the sinks' files, the table state and the daemons' logs to DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
kills=${2:-20}
. Benchmarks/lib.sh
bench_setup soak.public.items:3
pgdir="$work/pg"
port=${url##*:}; port=${port%%/*}
as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
# pg-cluster.sh runs with synchronous_commit=off: a crash (and `-m immediate`) then loses the last
# commits, which other sessions had already seen (the audit_log reader waits for the WAL flush, so it must
# not deliver them; the replication source only decodes flushed WAL). The soak's truth is what survives
# the crash; it runs with synchronous_commit=on, and SOAK_SYNC_COMMIT=off checks no taken-back commit is delivered.
server_opts="-c synchronous_commit=${SOAK_SYNC_COMMIT:-on}"
scripts/pg-cluster.sh stop "$pgdir"
scripts/pg-cluster.sh start "$pgdir" "$port" $server_opts >/dev/null

psql -q "$url" -c "CREATE TABLE items (id int PRIMARY KEY, version int NOT NULL, payload text)" \
  -c "CREATE SEQUENCE ids START 1001"
for source in audit_log replication; do
  cat > "$work/$source.yaml" <<YAML
database: {url: "$url"}
consumer: soak_$source
source: {kind: $source, tables: [public.items], batch_size: 500}
sinks:
  - {name: file, kind: file, path: "$work/$source.jsonl"}
  - {name: kafka, kind: kafka, brokers: "$brokers", prefix: soak_$source, properties: {linger.ms: 5}}
log: {level: notice}
YAML
  "$spillway" install --config "$work/$source.yaml" >/dev/null
done
# 1000 rows to update, inserted once captured (each row's history starts at its version 1).
psql -q "$url" -c "INSERT INTO items SELECT g, 1, md5(g::text) FROM generate_series(1, 1000) g"

# One writer transaction: insert a new id (version 1), update a random existing row (version + 1), one
# in ten rolled back.
cat > "$work/writer.sql" <<'SQL'
\set u random(1, 1000)
\set r random(1, 10)
BEGIN;
INSERT INTO items VALUES (nextval('ids'), 1, md5(random()::text));
UPDATE items SET version = version + 1, payload = md5(random()::text) WHERE id = :u;
UPDATE items SET version = version + 1 WHERE id = (SELECT max(id) FROM items WHERE id < currval('ids') - :r);
\if :r = 1
ROLLBACK;
\else
COMMIT;
\endif
SQL

declare -A pid starts
start_daemon() {  # start_daemon SOURCE
  "$spillway" run --config "$work/$1.yaml" >>"$work/$1.out" 2>>"$work/$1.log" &
  pid[$1]=$!
  starts[$1]=$(( ${starts[$1]:-0} + 1 ))
}
unexpected=0
keep_running() {  # restarts a daemon that exited on its own (counted: it should not)
  for source in audit_log replication; do
    if ! kill -0 "${pid[$source]}" 2>/dev/null; then
      wait "${pid[$source]}" && rc=0 || rc=$?
      echo "$(date +%T) $source exited on its own (rc=$rc); restarting" | tee -a "$work/chaos.log"
      unexpected=$((unexpected + 1))
      start_daemon "$source"
    fi
  done
}
start_daemon audit_log; start_daemon replication

end=$(( $(date +%s) + seconds ))
( while [ "$(date +%s)" -lt "$end" ]; do
    "$bin/pgbench" -n -c 4 -j 2 -t 100 -R "${SOAK_TPS:-300}" -f "$work/writer.sql" "$url" >>"$work/pgbench.log" 2>&1 || sleep 0.3
  done ) &
writers=$!

# The chaos schedule: KILLS kill moments at random over SECONDS, one PostgreSQL restart at 40–60 % of
# it, Kafka down at 20 % and up 5 s later.
python3 - "$seconds" "$kills" > "$work/schedule" <<'PY'
import random, sys
seconds, kills = int(sys.argv[1]), int(sys.argv[2])
events = [(random.uniform(2, seconds - 2), "kill") for _ in range(kills)]
events.append((random.uniform(0.4, 0.6) * seconds, "pg-restart"))
events.append((0.2 * seconds, "kafka-down"))
events.append((0.2 * seconds + 5, "kafka-up"))
for at, what in sorted(events):
    print(f"{int(at * 1000)} {what}")
PY
t0=$(date +%s%3N)
victim=audit_log; killed=0
while read -r at what; do
  while [ $(( $(date +%s%3N) - t0 )) -lt "$at" ]; do
    sleep 0.2; keep_running
  done
  case "$what" in
    kill)
      kill -KILL "${pid[$victim]}" 2>/dev/null || true
      wait "${pid[$victim]}" 2>/dev/null || true
      echo "$(date +%T) SIGKILL $victim (pid ${pid[$victim]}, $(wc -l < "$work/$victim.jsonl" 2>/dev/null || echo 0) lines so far)" >> "$work/chaos.log"
      killed=$((killed + 1))
      start_daemon "$victim"
      [ "$victim" = audit_log ] && victim=replication || victim=audit_log ;;
    pg-restart)
      echo "$(date +%T) PostgreSQL stop -m immediate" >> "$work/chaos.log"
      as_postgres "'$bin/pg_ctl' -D '$pgdir/data' -m immediate -w stop" >/dev/null
      sleep 2
      scripts/pg-cluster.sh start "$pgdir" "$port" $server_opts >/dev/null
      echo "$(date +%T) PostgreSQL started" >> "$work/chaos.log" ;;
    kafka-down) echo down-all >&7; echo "$(date +%T) Kafka down-all" >> "$work/chaos.log" ;;
    kafka-up) echo up-all >&7; echo "$(date +%T) Kafka up-all" >> "$work/chaos.log" ;;
  esac
done < "$work/schedule"
while [ "$(date +%s)" -lt "$end" ]; do sleep 0.5; keep_running; done
wait "$writers"
keep_running

# Drain: a graceful stop, then `run --once` delivers whatever is committed and not yet acknowledged.
for source in audit_log replication; do
  kill -TERM "${pid[$source]}" 2>/dev/null || true
  wait "${pid[$source]}" && rc=0 || rc=$?
  [ "$rc" = 0 ] || echo "$(date +%T) $source: SIGTERM exit code $rc" | tee -a "$work/chaos.log"
  timeout 120 "$spillway" run --once --config "$work/$source.yaml" >>"$work/$source.out" 2>>"$work/$source.log" \
    || echo "$(date +%T) $source: run --once failed ($?)" | tee -a "$work/chaos.log"
done
psql -qAt "$url" -c "SELECT id, version FROM items ORDER BY id" > "$work/items.state"

committed=$(grep -c . "$work/items.state"); versions=$(awk -F'|' '{s += $2} END {print s}' "$work/items.state")
echo "soak: ${seconds}s, $killed SIGKILLs, 1 PostgreSQL restart (-m immediate), Kafka down/up once;" \
  "starts: audit_log ${starts[audit_log]}, replication ${starts[replication]}; unexpected exits: $unexpected"
echo "table: $committed rows, $versions committed versions;" \
  "pgbench transactions: $(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/pgbench.log" | awk '{s += $1} END {print s}')," \
  "pgbench runs with aborted clients: $(grep -c 'aborted\|terminated' "$work/pgbench.log" || true)"
if [ -n "${SOAK_KEEP:-}" ]; then
  mkdir -p "$SOAK_KEEP"; cp "$work"/*.jsonl "$work"/*.log "$work"/items.state "$work"/schedule "$SOAK_KEEP"/ 2>/dev/null || true
fi
rc=0
python3 Benchmarks/soak_checker.py "$work/items.state" "audit_log=$work/audit_log.jsonl" \
  "replication=$work/replication.jsonl" || rc=$?
[ "$unexpected" = 0 ] || echo "note: daemons exited on their own $unexpected times (see chaos.log)"
[ "$rc" = 0 ] || { echo "FAILED; chaos log:"; cat "$work/chaos.log"; }
exit "$rc"
