#!/usr/bin/env bash
# Replication throughput: spillway (replication source → file sink) against pg_recvlogical draining the
# same slot contents, in the same run, on a throwaway cluster; then replication → Kafka (librdkafka's mock
# cluster over loopback TCP) against replication → file for the same rows, and a live phase that measures
# commit-to-acknowledgement latency (p50/p99, as spillway logs it when it stops) through Kafka. Prints
# rows/s, ratios, CPU seconds and spillway's peak RSS.
#   Benchmarks/replication-vs-pg_recvlogical.sh [ROWS] [ROUNDS]
#     ROWS   default 250000; half in 10k-row transactions, half in single-row transactions
#     ROUNDS default 3: each round drains the same WAL with pg_recvlogical, Spillway → file and Spillway →
#            Kafka one after another (every slot is reset to a copy taken before the data was written, so
#            each round reads exactly the same changes); ratios are per round, then their median, because
#            two-second runs on a shared 2-core machine swing by ±20%.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-250000}
rounds=${2:-3}
. Benchmarks/lib.sh
bench_setup bench.public.bench:6

psql -q "$url" -c "CREATE TABLE bench (id bigint PRIMARY KEY, name text, price numeric(10,2), tags text[], at timestamptz DEFAULT now())"
cat > "$work/bench.yaml" <<YAML
database: {url: "$url"}
consumer: bench
source: {kind: replication, tables: [public.bench], batch_size: 5000, heartbeat: 0s}
sinks: [{name: out, kind: file, path: "$work/spillway.jsonl"}]
log: {level: warning}
YAML
"$spillway" install --config "$work/bench.yaml" >/dev/null
cat > "$work/kafka.yaml" <<YAML
database: {url: "$url"}
consumer: benchk
source: {kind: replication, tables: [public.bench], batch_size: 5000, heartbeat: 0s}
sinks: [{name: kafka, kind: kafka, brokers: "$brokers", prefix: bench, properties: {linger.ms: 20, batch.num.messages: 10000}}]
log: {level: notice}
YAML
"$spillway" install --config "$work/kafka.yaml" >/dev/null
psql -qAt "$url" -c "SELECT pg_create_logical_replication_slot('bench_recvlogical', 'pgoutput')" >/dev/null
# Copies of the three slots as they are before any data: each round starts its slot over from them.
for slot in spillway_bench spillway_benchk bench_recvlogical; do
  psql -qAt "$url" -c "SELECT pg_copy_logical_replication_slot('$slot', 'start_$slot')" >/dev/null
done

bulk=$((rows / 2)); single=$((rows - bulk))
psql -q "$url" -c "DO \$\$ BEGIN FOR b IN 0..$(( (bulk + 9999) / 10000 - 1 )) LOOP
  INSERT INTO bench SELECT g, 'product ' || g, g % 1000 + 0.99, ARRAY['a','b'] FROM generate_series(b * 10000 + 1, least((b + 1) * 10000, $bulk)) g;
  COMMIT; END LOOP; END \$\$"
echo "\\set id random(1, 1000000000)" > "$work/single.sql"
echo "INSERT INTO bench VALUES ($bulk + :client_id * 1000000 + nextval('s'), 'single', 1.5, NULL) ON CONFLICT DO NOTHING;" >> "$work/single.sql"
psql -q "$url" -c "CREATE SEQUENCE s"
"$bin/pgbench" -n -c 4 -j 2 -t $((single / 4)) -f "$work/single.sql" "$url" >/dev/null
end=$(psql -qAt "$url" -c "SELECT pg_current_wal_lsn()")
total=$(psql -qAt "$url" -c "SELECT count(*) FROM bench")

restart() {  # restart SLOT [CONSUMER]: the slot back to before the data, the consumer's checkpoint cleared
  psql -qAt "$url" -c "SELECT pg_drop_replication_slot('$1')" -c "SELECT pg_copy_logical_replication_slot('start_$1', '$1')" >/dev/null
  [ -z "${2:-}" ] || psql -qAt "$url" -c "UPDATE spillway.checkpoints SET position = NULL, lsn = NULL, events_total = 0 WHERE consumer = '$2'" >/dev/null
}
: > "$work/rounds.tsv"
for round in $(seq 1 "$rounds"); do
  if [ "$round" -gt 1 ]; then
    restart bench_recvlogical; restart spillway_bench bench; restart spillway_benchk benchk
  fi
  rm -f "$work/recvlogical.out" "$work/spillway.jsonl"
  read -r t_recv _ < <(measure "$bin/pg_recvlogical" -d "$url" -S bench_recvlogical --start -E "$end" \
    -o proto_version=1 -o publication_names=spillway_bench -f "$work/recvlogical.out")
  read -r t_spill rss cpu_spill < <(measure "$spillway" run --once --config "$work/bench.yaml")
  delivered=$(wc -l < "$work/spillway.jsonl")
  read -r t_kafka rss_kafka cpu_kafka < <(measure "$spillway" run --once --config "$work/kafka.yaml" 2>/dev/null)
  produced=$(psql -qAt "$url" -c "SELECT events_total FROM spillway.checkpoints WHERE consumer = 'benchk'")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$t_recv" "$t_spill" "$delivered" "$rss" "$cpu_spill" \
    "$t_kafka" "$produced" "$rss_kafka" "$cpu_kafka" >> "$work/rounds.tsv"
done

# Live phase: 20 s of single-row commits at a fixed rate while `spillway run` streams to Kafka. Spillway
# measures commit_time (in the event) to the moment every sink acknowledged it, and logs percentiles when it
# stops; the benchmark also reads the records back and checks commit_time against the record's CreateTime.
"$spillway" run --config "$work/kafka.yaml" 2> "$work/live.log" &
live_pid=$!
sleep 2
live_start=$(python3 -c 'import time; print(int(time.time() * 1000))')
# The throwaway cluster runs with synchronous_commit=off (fast loading); a walsender then sees a commit only
# when the WAL writer flushes it (wal_writer_delay, 200ms), so the live writers commit synchronously.
PGOPTIONS="-c synchronous_commit=on" "$bin/pgbench" -n -c 2 -j 2 -R 500 -T 20 -f "$work/single.sql" "$url" >/dev/null
sleep 3
kill -TERM "$live_pid"; wait "$live_pid" || true; live_pid=
kcat -b "$brokers" -C -t bench.public.bench -o beginning -e -q -f '%T\t%s\n' > "$work/kafka.tsv" 2>/dev/null || true

python3 - "$total" "$work/rounds.tsv" "$work/kafka.tsv" "$live_start" "$work/live.log" <<'PY'
import datetime, json, re, statistics, sys
total, rounds_file, tsv, live_start, live_log = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
rounds = [line.split("\t") for line in open(rounds_file).read().splitlines()]
print(f"rows in table: {total}")
print("round  pg_recvlogical   spillway→file (RSS, CPU)           spillway→Kafka (RSS, CPU)           file/recv  Kafka/file")
file_ratios, kafka_ratios = [], []
for r in rounds:
    n, t_recv, t_spill, delivered, rss, cpu_spill, t_kafka, produced, rss_kafka, cpu_kafka = r
    t_recv, t_spill, t_kafka = float(t_recv), float(t_spill), float(t_kafka)
    delivered, produced = int(delivered), int(produced or 0)
    file_rate, kafka_rate, recv_rate = delivered / t_spill, produced / t_kafka, total / t_recv
    file_ratios.append(file_rate / recv_rate)
    kafka_ratios.append(kafka_rate / file_rate)
    print(f"{n:>5}  {recv_rate:>9,.0f} rows/s  {file_rate:>9,.0f} rows/s ({int(rss) / 1024:.0f} MiB, {cpu_spill} s)"
          f"  {kafka_rate:>9,.0f} rows/s ({int(rss_kafka) / 1024:.0f} MiB, {cpu_kafka} s)  {file_ratios[-1]:>9.2f}  {kafka_ratios[-1]:>10.2f}")
    if delivered != total or produced != total:
        print(f"       MISMATCH: {total} rows, file sink wrote {delivered}, Kafka sink acknowledged {produced}")
print(f"median ratio (spillway → file / pg_recvlogical throughput): {statistics.median(file_ratios):.2f}")
print(f"median ratio (Kafka sink / file sink throughput):           {statistics.median(kafka_ratios):.2f}")
latencies = []
with open(tsv) as f:
    for line in f:
        created, value = line.rstrip("\n").split("\t", 1)
        if int(created) < live_start:  # produced before the live phase: skip without parsing
            continue
        commit = json.loads(value)["commit_time"]
        committed = datetime.datetime.fromisoformat(commit.replace("Z", "+00:00")).timestamp() * 1000
        if committed >= live_start:  # the backlog drained above: its age is not latency
            latencies.append(int(created) - committed)
if latencies:
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"live commit→produce latency (kcat CreateTime) over {len(latencies)} records: p50 {pick(0.5):.0f} ms, p99 {pick(0.99):.0f} ms")
acked = re.findall(r"commit_to_ack=(.*? events)", open(live_log).read())
print(f"live commit→ack latency (spillway):  {acked[-1] if acked else 'not logged'}")
PY
