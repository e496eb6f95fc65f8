#!/usr/bin/env bash
# Chaos soak (issue #15): pgbench writers insert and update rows of `items(id, version, payload)` on a
# throwaway cluster while two `spillway run` daemons (one audit_log consumer, one replication consumer) are
# killed with SIGKILL at random moments and restarted. Each consumer has four sinks: a file, Kafka (librdkafka's
# mock cluster), a webhook (Benchmarks/webhook_receiver.py) and Redis (`action: del`, on a redis-server of the
# soak's own). On a schedule, PostgreSQL is stopped once with `-m immediate` and started again, the Kafka mock
# goes down and up, the webhook receiver answers 500s for a while and then hangs (never answers) for a while,
# and Redis is SIGKILLed and started again (append-only file, fsync always). Then the writers stop, each
# consumer drains (`run --once`), Kafka is read back with kcat, the Redis keys left are listed, and
# Benchmarks/soak_checker.py (standard library only, no Spillway code) compares every sink with the table's
# final state and prints `sink=CONSUMER/SINK lost=N duplicated=N reordered=N`. Exits non-zero on any loss or
# per-key reordering, on a failed checker self-test, or if a secret shows up in a daemon's log.
#   Benchmarks/chaos-soak.sh [SECONDS] [KILLS]
#     SECONDS default 300: how long the writers and the chaos run
#     KILLS   default 20: SIGKILLs in total, spread at random over SECONDS, alternating between the daemons
#   SOAK_KEEP=DIR copies the sinks' output, the table state and the daemons' logs to DIR.
#   SOAK_TPS (default 300) the writers' rate; SOAK_SYNC_COMMIT=off runs the cluster with asynchronous commits.
#   SOAK_SABOTAGE=1 proves the checks can fail on real output: the webhook receiver acknowledges one request
#     without recording it (at 90 %), and after the drain one change is cut from audit_log's file and from
#     replication's Kafka read-back, a committed version's Redis key is set again and an uncommitted one's
#     deleted. The soak must then fail.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
kills=${2:-20}
tps=${SOAK_TPS:-300}
# The checker first: a checker that cannot fail proves nothing (it feeds every check doctored input).
python3 Benchmarks/soak_checker.py --self-test > /tmp/spillway-soak-selftest.$$ 2>&1 \
  || { cat /tmp/spillway-soak-selftest.$$; rm -f /tmp/spillway-soak-selftest.$$; echo "FAILED: checker self-test"; exit 1; }
selftest=$(tail -n 1 /tmp/spillway-soak-selftest.$$); rm -f /tmp/spillway-soak-selftest.$$
. Benchmarks/lib.sh
# librdkafka's mock keeps only the last 5 MB (or 100000 records) of a partition and drops older records:
# enough partitions that each stays below half of that (about 2.5 committed versions of ~420 bytes per
# transaction, plus redeliveries), so the read-back has every record (the checker's `trimmed` tells).
partitions=$(( tps * seconds / 2000 + 3 ))
bench_setup "soak_audit_log.public.items:$partitions"
echo "topic soak_replication.public.items $partitions" >&7
pgdir="$work/pg"
port=${url##*:}; port=${port%%/*}
as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }

# Everything the soak starts is stopped on any exit, failure included: daemons, writers, the webhook
# receiver, redis-server, then lib.sh's cleanup (the Kafka mock, the cluster, the work dir).
declare -A pid starts
writers="" receiver_pid=""
soak_cleanup() {
  set +e
  local p
  for p in "${pid[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  # The writers' loop; a pgbench it started ends when the cluster stops below.
  [ -n "$writers" ] && { kill -KILL "$writers" 2>/dev/null; wait "$writers" 2>/dev/null; }
  [ -n "$receiver_pid" ] && { kill -KILL "$receiver_pid" 2>/dev/null; wait "$receiver_pid" 2>/dev/null; }
  [ -f "$work/redis/redis.pid" ] && kill -KILL "$(cat "$work/redis/redis.pid")" 2>/dev/null
  bench_cleanup
}
trap soak_cleanup EXIT
# wait_for SECONDS COMMAND...: polls COMMAND every 0.1 s; fails after SECONDS.
wait_for() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# pg-cluster.sh runs with synchronous_commit=off: a crash (and `-m immediate`) then loses the last
# commits, which other sessions had already seen (the audit_log reader waits for the WAL flush, so it must
# not deliver them; the replication source only decodes flushed WAL). The soak's truth is what survives
# the crash; it runs with synchronous_commit=on, and SOAK_SYNC_COMMIT=off checks no taken-back commit is delivered.
server_opts="-c synchronous_commit=${SOAK_SYNC_COMMIT:-on}"
scripts/pg-cluster.sh stop "$pgdir"
scripts/pg-cluster.sh start "$pgdir" "$port" $server_opts >/dev/null

# Redis with an append-only file fsynced before every reply, so a SIGKILL loses no UNLINK it acknowledged:
# after its restart, a key that is back would be Redis's loss, not Spillway's, and this makes that impossible.
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/redis"
redis_up() { [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ]; }  # PONG only once the AOF is loaded
redis_start() {
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync always \
    --dir "$work/redis" --pidfile "$work/redis/redis.pid" --logfile "$work/redis/redis.log" --daemonize yes
  wait_for 60 redis_up || { tail -n 20 "$work/redis/redis.log" >&2; echo "FAILED: redis-server did not start" >&2; exit 1; }
}
redis_start

# The webhook receiver: records what it acknowledged; `fail`/`hang`/`ok` on its stdin switch its mode.
SOAK_WEBHOOK_SECRET="whsec_$(head -c 32 /dev/urandom | base64 -w 0)"
export SOAK_WEBHOOK_SECRET
mkdir -p "$work/hook"; mkfifo "$work/hook.in"
python3 Benchmarks/webhook_receiver.py "$work/hook" < "$work/hook.in" > "$work/hook.out" 2>"$work/hook.err" &
receiver_pid=$!
exec 8> "$work/hook.in"
wait_for 30 test -s "$work/hook.out" || { cat "$work/hook.err" >&2; echo "FAILED: webhook receiver did not start" >&2; exit 1; }
hook_port=$(head -n 1 "$work/hook.out")
hook() { echo "$1" >&8; }

psql -q "$url" -c "CREATE TABLE items (id int PRIMARY KEY, version int NOT NULL, payload text)" \
  -c "CREATE SEQUENCE ids START 1001"
for source in audit_log replication; do
  # The audit_log consumer's webhook takes batches, the replication one single events on four lanes. Kafka's
  # timeout (SOAK_KAFKA_TIMEOUT, default 3s) is shorter than the 5 s outage: the case that once left topics
  # out of key order (a record given up while a later one of its key was stored; issue #15). The sink now
  # never gives a record up: the outage only stalls acknowledgements, reported after each timeout.
  [ "$source" = audit_log ] && hook_body="body: batch, batch_size: 100" || hook_body="body: event, concurrency: 4"
  cat > "$work/$source.yaml" <<YAML
database: {url: "$url"}
consumer: soak_$source
source: {kind: $source, tables: [public.items], batch_size: 500}
sinks:
  - {name: file, kind: file, path: "$work/$source.jsonl"}
  - {name: kafka, kind: kafka, brokers: "$brokers", prefix: soak_$source, timeout: ${SOAK_KAFKA_TIMEOUT:-3s}, properties: {linger.ms: 5}}
  - {name: webhook, kind: webhook, url: "http://127.0.0.1:$hook_port/$source", $hook_body, timeout: 2s,
     secret: "\${SOAK_WEBHOOK_SECRET}"}
  - {name: redis, kind: redis, url: "redis://127.0.0.1:$redis_port/0", keys: {public.items: "soak:$source:{key.id}:{after.version}"}}
log: {level: notice}
http: {address: "off"}
YAML
  "$spillway" install --config "$work/$source.yaml" >/dev/null
done

# Redis `del` check: before any change, SET a key soak:CONSUMER:ID:VERSION for every (row, version) the run
# can reach; each change's event UNLINKs its own version's key (and, from audit_log, which has the before
# image, its previous version's too). After the drain, every committed version's key must be gone and every
# other one still there. New ids come from the sequence (one per transaction, rolled back or not); old rows
# 1..1000 get an update of about one transaction in a thousand each, new rows a few at most.
old_top=$(( tps * seconds * 2 / 1000 + 30 ))
new_last=$(( 1000 + tps * seconds * 3 / 2 + 500 ))
new_top=12
for source in audit_log replication; do
  printf 'soak:%s: 1 1000 %s\nsoak:%s: 1001 %s %s\n' "$source" "$old_top" "$source" "$new_last" "$new_top" \
    > "$work/redis-$source.seeds"
done
cat "$work"/redis-*.seeds | python3 -c '
import sys
out = sys.stdout.buffer
for line in sys.stdin:
    prefix, first, last, top = line.split()
    for key in range(int(first), int(last) + 1):
        out.write(b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\n1\r\n" % (len(k), k)
                           for k in (f"{prefix}{key}:{v}".encode() for v in range(1, int(top) + 1))))
' | redis-cli -p "$redis_port" --pipe > "$work/redis.seed.log"
seeded=$(redis-cli -p "$redis_port" dbsize)

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
# stop_daemon SOURCE: SIGTERM, and SIGKILL if it has not exited after 60 s (counted as unexpected).
stop_daemon() {
  local p=${pid[$1]} rc
  kill -TERM "$p" 2>/dev/null || true
  if ! wait_for 60 eval "! kill -0 $p"; then
    echo "$(date +%T) $1: still running 60 s after SIGTERM; SIGKILL" | tee -a "$work/chaos.log"
    unexpected=$((unexpected + 1)); kill -KILL "$p" 2>/dev/null || true
  fi
  wait "$p" && rc=0 || rc=$?
  [ "$rc" = 0 ] || echo "$(date +%T) $1: SIGTERM exit code $rc" | tee -a "$work/chaos.log"
}
start_daemon audit_log; start_daemon replication

end=$(( $(date +%s) + seconds ))
( while [ "$(date +%s)" -lt "$end" ]; do
    "$bin/pgbench" -n -c 4 -j 2 -t 100 -R "$tps" -f "$work/writer.sql" "$url" >>"$work/pgbench.log" 2>&1 || sleep 0.3
  done ) &
writers=$!

# The chaos schedule: KILLS kill moments at random over SECONDS; Kafka down at 20 % and up 5 s later; the
# webhook receiver answering 500s from 30 % for 6 s; one PostgreSQL restart at 40–60 %; the receiver hanging
# from 70 % for 6 s (three times the sink's 2 s timeout); Redis SIGKILLed at 80 % and started 3 s later.
python3 - "$seconds" "$kills" ${SOAK_SABOTAGE:+sabotage} > "$work/schedule" <<'PY'
import random, sys
seconds, kills = int(sys.argv[1]), int(sys.argv[2])
events = [(random.uniform(2, seconds - 2), "kill") for _ in range(kills)]
events.append((random.uniform(0.4, 0.6) * seconds, "pg-restart"))
events += [(0.2 * seconds, "kafka-down"), (0.2 * seconds + 5, "kafka-up")]
events += [(0.3 * seconds, "hook-fail"), (0.3 * seconds + 6, "hook-ok")]
events += [(0.7 * seconds, "hook-hang"), (0.7 * seconds + 6, "hook-ok")]
events += [(0.8 * seconds, "redis-kill"), (0.8 * seconds + 3, "redis-start")]
if len(sys.argv) > 3:
    events.append((0.9 * seconds, "hook-drop"))
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
      as_postgres "'$bin/pg_ctl' -D '$pgdir/data' -m immediate -w -t 60 stop" >/dev/null
      sleep 2
      scripts/pg-cluster.sh start "$pgdir" "$port" $server_opts >/dev/null
      echo "$(date +%T) PostgreSQL started" >> "$work/chaos.log" ;;
    kafka-down) echo down-all >&7; echo "$(date +%T) Kafka down-all" >> "$work/chaos.log" ;;
    kafka-up) echo up-all >&7; echo "$(date +%T) Kafka up-all" >> "$work/chaos.log" ;;
    hook-fail|hook-hang|hook-ok|hook-drop) hook "${what#hook-}"; echo "$(date +%T) webhook receiver: ${what#hook-}" >> "$work/chaos.log" ;;
    redis-kill)
      kill -KILL "$(cat "$work/redis/redis.pid")"
      wait_for 30 eval '! redis_up' || { echo "FAILED: redis-server outlived SIGKILL" >&2; exit 1; }
      rm -f "$work/redis/redis.pid"  # its number may be another process's by the time the cleanup runs
      echo "$(date +%T) Redis SIGKILL" >> "$work/chaos.log" ;;
    redis-start) redis_start; echo "$(date +%T) Redis started" >> "$work/chaos.log" ;;
  esac
done < "$work/schedule"
while [ "$(date +%s)" -lt "$end" ]; do sleep 0.5; keep_running; done
wait "$writers"; writers=""
keep_running

# Drain: a graceful stop, then `run --once` delivers whatever is committed and not yet acknowledged.
drain_started=$(date +%s)
for source in audit_log replication; do
  stop_daemon "$source"; unset "pid[$source]"
  timeout 300 "$spillway" run --once --config "$work/$source.yaml" >>"$work/$source.out" 2>>"$work/$source.log" \
    || echo "$(date +%T) $source: run --once failed ($?)" | tee -a "$work/chaos.log"
done
drain_seconds=$(( $(date +%s) - drain_started ))
psql -qAt "$url" -c "SELECT id, version FROM items ORDER BY id" > "$work/items.state"
dead_letters=$(psql -qAt "$url" -c "SELECT count(*) FROM spillway.dead_letters")
# Read back what the other sinks hold, each by a client independent of Spillway.
if [ -n "${SOAK_SABOTAGE:-}" ]; then
  redis-cli -p "$redis_port" SET soak:audit_log:1:1 1 >/dev/null; redis-cli -p "$redis_port" DEL "soak:replication:1:$old_top" >/dev/null
fi
for source in audit_log replication; do
  timeout 120 kcat -b "$brokers" -C -t "soak_$source.public.items" -o beginning -e -J -q > "$work/kafka-$source.json"
  redis-cli -p "$redis_port" --raw KEYS "soak:$source:*" > "$work/redis-$source.left"
done
hook quit
wait_for 30 eval "! kill -0 $receiver_pid" || kill -KILL "$receiver_pid"
wait "$receiver_pid" || true; receiver_pid=""
hook_stats=$(tail -n 1 "$work/hook.out")
field() { sed -n "s/.*\\b$1=\\([0-9]*\\).*/\\1/p" <<< "$2"; }

committed=$(grep -c . "$work/items.state"); versions=$(awk -F'|' '{s += $2} END {print s}' "$work/items.state")
echo "soak: ${seconds}s, $killed SIGKILLs, 1 PostgreSQL restart (-m immediate), Kafka down/up once," \
  "webhook 500s and hangs, 1 Redis SIGKILL; starts: audit_log ${starts[audit_log]}, replication ${starts[replication]};" \
  "unexpected exits: $unexpected; drain ${drain_seconds}s"
echo "table: $committed rows, $versions committed versions;" \
  "pgbench transactions: $(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/pgbench.log" | awk '{s += $1} END {print s}')," \
  "pgbench runs with aborted clients: $(grep -c 'aborted\|terminated' "$work/pgbench.log" || true)"
echo "webhook receiver: $hook_stats; dead letters: $dead_letters"
echo "redis: $seeded keys seeded; kafka: $(cat "$work"/kafka-*.json | grep -c .) records read back ($partitions partitions a topic); $selftest"
# That the chaos landed, from the daemons' logs: failed attempts each sink retried, and sessions started over.
landed() { grep -c -- "$2" "$work/$1.log" || true; }
for source in audit_log replication; do
  echo "landed on $source: kafka stalls reported $(landed "$source" "Kafka delivery stalled")," \
    "kafka acknowledgements failed (session started over) $(landed "$source" "delivery failed; resuming from the last checkpoint")," \
    "webhook attempts failed $(landed "$source" "webhook failed, retrying"), redis attempts failed $(landed "$source" "error=sink 'redis'")," \
    "source reconnects $(landed "$source" "source failed, reconnecting")"
done
if [ -n "${SOAK_KEEP:-}" ]; then
  mkdir -p "$SOAK_KEEP"
  cp -r "$work"/*.jsonl "$work"/*.log "$work"/kafka-*.json "$work"/redis-*.left "$work"/redis-*.seeds "$work"/hook \
    "$work"/items.state "$work"/schedule "$SOAK_KEEP"/ 2>/dev/null || true
fi
if [ -n "${SOAK_SABOTAGE:-}" ]; then
  cut_one() {  # cut_one FILE: removes every copy of the change of the file's last line
    python3 - "$1" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines(keepends=True)
event = lambda line: json.loads(json.loads(line).get("payload") or "{}") if '"partition"' in line else json.loads(line)
victim = event(lines[-1])["id"]
open(sys.argv[1], "w").writelines(l for l in lines if event(l).get("id") != victim)
print(f"sabotage: cut change {victim} from {sys.argv[1]}")
PY
  }
  cut_one "$work/audit_log.jsonl"; cut_one "$work/kafka-replication.json"
  echo "sabotage: redis key soak:audit_log:1:1 set again, soak:replication:1:$old_top deleted; webhook: one request dropped"
fi
rc=0
specs=()
for source in audit_log replication; do
  specs+=("$source/file=$work/$source.jsonl" "$source/kafka=kafka:$work/kafka-$source.json"
          "$source/webhook=$work/hook/$source.jsonl" "$source/redis=redis:$work/redis-$source.seeds:$work/redis-$source.left")
done
python3 Benchmarks/soak_checker.py "$work/items.state" "${specs[@]}" || rc=$?
# Secrets never reach a log: the webhook secret must not be in anything the daemons wrote.
if grep -qF "${SOAK_WEBHOOK_SECRET#whsec_}" "$work"/*.log "$work"/*.out; then
  echo "FAILED: the webhook secret appears in a daemon's output"; rc=1
fi
if [ -s "$work/hook/rejected.log" ]; then
  echo "FAILED: the webhook receiver rejected requests:"; sort "$work/hook/rejected.log" | uniq -c | head; rc=1
fi
[ "$(field answered_500 "$hook_stats")" != 0 ] || echo "note: no webhook request met the 500s (nothing was sent then)"
[ "$(field hung "$hook_stats")" != 0 ] || echo "note: no webhook request met the hang (nothing was sent then)"
[ "$unexpected" = 0 ] || echo "note: daemons exited on their own $unexpected times (see chaos.log)"
[ "$rc" = 0 ] || { echo "FAILED; chaos log:"; cat "$work/chaos.log"; }
exit "$rc"
