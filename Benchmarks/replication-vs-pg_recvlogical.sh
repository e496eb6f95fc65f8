#!/usr/bin/env bash
# Replication throughput: spillway (replication source → file sink) against pg_recvlogical draining the
# same slot contents, in the same run, on a throwaway cluster. Prints rows/s for both, their ratio, and
# spillway's peak RSS.
#   Benchmarks/replication-vs-pg_recvlogical.sh [ROWS]    (default 250000; half in 10k-row transactions,
#                                                          half in single-row transactions)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-250000}
bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
work=$(mktemp -d /tmp/spillway-bench-XXXXXX); chmod 755 "$work"
cleanup() { scripts/pg-cluster.sh stop "$work/pg" || true; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=$(scripts/pg-cluster.sh start "$work/pg" "$port")
swift build -c release --product spillway >/dev/null
spillway="$(swift build -c release --show-bin-path)/spillway"

psql -q "$url" -c "CREATE TABLE bench (id bigint PRIMARY KEY, name text, price numeric(10,2), tags text[], at timestamptz DEFAULT now())"
cat > "$work/bench.yaml" <<YAML
database: {url: "$url"}
consumer: bench
source: {kind: replication, tables: [public.bench], batch_size: 5000, heartbeat: 0s}
sinks: [{name: out, kind: file, path: "$work/spillway.jsonl"}]
log: {level: warning}
YAML
"$spillway" install --config "$work/bench.yaml" >/dev/null
psql -qAt "$url" -c "SELECT pg_create_logical_replication_slot('bench_recvlogical', 'pgoutput')" >/dev/null

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

measure() {  # prints "seconds peak_rss_kB" of a command
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
start = time.monotonic()
subprocess.run(sys.argv[1:], check=True)
print(f"{time.monotonic() - start:.3f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
PY
}
read -r t_recv _ < <(measure "$bin/pg_recvlogical" -d "$url" -S bench_recvlogical --start -E "$end" \
  -o proto_version=1 -o publication_names=spillway_bench -f "$work/recvlogical.out")
read -r t_spill rss < <(measure "$spillway" run --once --config "$work/bench.yaml")
delivered=$(wc -l < "$work/spillway.jsonl")
python3 - "$total" "$delivered" "$t_recv" "$t_spill" "$rss" <<'PY'
import sys
total, delivered, t_recv, t_spill, rss = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
print(f"rows in table:           {total}")
print(f"spillway events written: {delivered}")
print(f"pg_recvlogical:          {t_recv:.2f} s  ({total / t_recv:,.0f} rows/s)")
print(f"spillway → file sink:    {t_spill:.2f} s  ({delivered / t_spill:,.0f} rows/s), peak RSS {rss / 1024:.1f} MiB")
print(f"ratio (spillway / pg_recvlogical throughput): {(delivered / t_spill) / (total / t_recv):.2f}")
PY
