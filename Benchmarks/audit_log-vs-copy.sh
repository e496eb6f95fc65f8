#!/usr/bin/env bash
# audit_log throughput and writer cost, on a throwaway cluster, every figure against a baseline measured
# in the same run:
#  1. drain: `spillway run --once` (audit_log source → file sink) against `psql \copy (select * from the
#     audit table order by txid, seq) to /dev/null` reading the same rows; then audit_log → Kafka
#     (librdkafka's mock cluster) against audit_log → file;
#  2. writers: pgbench single-row inserts (4 clients) into a captured table against the same inserts into an
#     uncaptured one, with the wake NOTIFY on (`source.notify: true`, the default) and off.
#   Benchmarks/audit_log-vs-copy.sh [ROWS] [ROUNDS]
#     ROWS   default 200000: half in 10k-row transactions, half single-row
#     ROUNDS default 3; ratios are per round, then their median (short runs on a shared 2-core machine swing)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-200000}
rounds=${2:-3}
. Benchmarks/lib.sh
bench_setup bench.public.bench:6

psql -q "$url" -c "CREATE TABLE bench (id bigint PRIMARY KEY, name text, price numeric(10,2), tags text[], at timestamptz DEFAULT now())" \
  -c "CREATE TABLE uncaptured (LIKE bench INCLUDING ALL)" -c "CREATE SEQUENCE s"
config() {  # config NAME NOTIFY SINKS
  cat > "$work/$1.yaml" <<YAML
database: {url: "$url"}
consumer: $1
source: {kind: audit_log, tables: [public.bench], batch_size: 5000, notify: $2}
sinks: [$3]
log: {level: warning}
YAML
}
config file true "{name: out, kind: file, path: \"$work/spillway.jsonl\"}"
config kafka true "{name: kafka, kind: kafka, brokers: \"$brokers\", prefix: bench, properties: {linger.ms: 5, batch.num.messages: 10000}}"
config quiet false "{name: out, kind: file, path: /dev/null}"
"$spillway" install --config "$work/file.yaml" >/dev/null
"$spillway" install --config "$work/kafka.yaml" >/dev/null

bulk=$((rows / 2)); single=$((rows - bulk))
psql -q "$url" -c "DO \$\$ BEGIN FOR b IN 0..$(( (bulk + 9999) / 10000 - 1 )) LOOP
  INSERT INTO bench SELECT g, 'product ' || g, g % 1000 + 0.99, ARRAY['a','b'] FROM generate_series(b * 10000 + 1, least((b + 1) * 10000, $bulk)) g;
  COMMIT; END LOOP; END \$\$"
echo "INSERT INTO bench VALUES ($bulk + nextval('s'), 'single', 1.5, NULL);" > "$work/load.sql"
"$bin/pgbench" -n -c 4 -j 2 -t $((single / 4)) -f "$work/load.sql" "$url" >/dev/null
for table in bench uncaptured; do
  echo "INSERT INTO $table VALUES ($bulk + nextval('s'), 'writer', 1.5, NULL);" > "$work/$table.sql"
done
total=$(psql -qAt "$url" -c "SELECT count(*) FROM spillway.audit_log")

tps() {  # tps SCRIPT: single-row insert transactions per second, 4 clients
  "$bin/pgbench" -n -c 4 -j 2 -t 2500 -f "$work/$1.sql" "$url" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}
: > "$work/rounds.tsv"
for round in $(seq 1 "$rounds"); do
  rm -f "$work/spillway.jsonl"
  read -r t_copy _ < <(measure psql -qAt "$url" -c "\\copy (SELECT * FROM spillway.audit_log ORDER BY txid, seq) TO '/dev/null'")
  read -r t_file rss_file cpu_file < <(measure "$spillway" run --once --config "$work/file.yaml")
  delivered=$(wc -l < "$work/spillway.jsonl")
  read -r t_kafka rss_kafka cpu_kafka < <(measure "$spillway" run --once --config "$work/kafka.yaml")
  produced=$(psql -qAt "$url" -c "SELECT events_total FROM spillway.checkpoints WHERE consumer = 'kafka'")
  "$spillway" reset --config "$work/file.yaml" >/dev/null; "$spillway" reset --config "$work/kafka.yaml" >/dev/null
  psql -qAt "$url" -c "UPDATE spillway.checkpoints SET events_total = 0" >/dev/null
  # Writers, captured against uncaptured, with the wake NOTIFY on, then off (install toggles its trigger).
  base_on=$(tps uncaptured); captured_on=$(tps bench)
  "$spillway" install --config "$work/quiet.yaml" >/dev/null
  base_off=$(tps uncaptured); captured_off=$(tps bench)
  "$spillway" install --config "$work/file.yaml" >/dev/null
  # The writer phase added audit rows; drop them so every round drains the same rows.
  psql -qAt "$url" -c "ALTER TABLE bench DISABLE TRIGGER USER" -c "DELETE FROM bench WHERE name = 'writer'" \
    -c "ALTER TABLE bench ENABLE TRIGGER USER" -c "DELETE FROM spillway.audit_log WHERE new_data->>'name' = 'writer'" \
    -c "TRUNCATE uncaptured" -c "VACUUM ANALYZE" >/dev/null
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$t_copy" "$t_file" "$delivered" "$rss_file" "$cpu_file" \
    "$t_kafka" "$produced" "$rss_kafka" "$base_on" "$captured_on" "$base_off" "$captured_off" "$cpu_kafka" >> "$work/rounds.tsv"
done

python3 - "$total" "$work/rounds.tsv" <<'PY'
import statistics, sys
total, rows = int(sys.argv[1]), [l.split("\t") for l in open(sys.argv[2]).read().splitlines()]
print(f"audit rows: {total}")
print("round  \\copy          spillway→file (RSS, CPU)          spillway→Kafka (RSS, CPU)          file/copy  Kafka/file  writers: notify on  notify off")
drain, kafka, on, off = [], [], [], []
for n, t_copy, t_file, delivered, rss, cpu, t_kafka, produced, rss_k, base_on, cap_on, base_off, cap_off, cpu_k in rows:
    copy_rate, file_rate, kafka_rate = total / float(t_copy), int(delivered) / float(t_file), int(produced or 0) / float(t_kafka)
    drain.append(file_rate / copy_rate); kafka.append(kafka_rate / file_rate)
    on.append(float(cap_on) / float(base_on)); off.append(float(cap_off) / float(base_off))
    print(f"{n:>5}  {copy_rate:>9,.0f} rows/s  {file_rate:>9,.0f} rows/s ({int(rss) / 1024:.0f} MiB, {cpu} s)  "
          f"{kafka_rate:>9,.0f} rows/s ({int(rss_k) / 1024:.0f} MiB, {cpu_k} s)  {drain[-1]:>9.2f}  {kafka[-1]:>10.2f}  "
          f"{on[-1]:>7.2f} ({float(cap_on):,.0f}/{float(base_on):,.0f} tps)  {off[-1]:>5.2f} ({float(cap_off):,.0f}/{float(base_off):,.0f} tps)")
    if int(delivered) != total or int(produced or 0) != total:
        print(f"       MISMATCH: {total} audit rows, file sink wrote {delivered}, Kafka sink acknowledged {produced}")
print(f"median ratio (spillway → file / \\copy):               {statistics.median(drain):.2f}")
print(f"median ratio (Kafka sink / file sink):                {statistics.median(kafka):.2f}")
print(f"median writer tps kept with capture on, NOTIFY on:    {statistics.median(on):.2f}")
print(f"median writer tps kept with capture on, NOTIFY off:   {statistics.median(off):.2f}")
PY
