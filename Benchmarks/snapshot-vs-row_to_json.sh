#!/usr/bin/env bash
# Initial snapshot speed and memory (issue #14), on a throwaway cluster, against a baseline measured in the
# same run: `spillway run --once` with `source.snapshot: initial` into the file sink, per source, against
# `psql \copy (SELECT row_to_json(t) FROM items t) TO /dev/null` (PostgreSQL rendering the same rows as
# JSON); plain `\copy` for scale. Peak RSS of `run` is reported too. Default settings (batch_size 1000, four
# batches in flight, snapshot_chunk_size 5000).
#   Benchmarks/snapshot-vs-row_to_json.sh [ROWS] [ROUNDS]
#     ROWS   default 1000000 (6 columns, about 150 bytes a row)
#     ROUNDS default 3; the ratio per round, then the median
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
rounds=${2:-3}
. Benchmarks/lib.sh
bench_setup bench.public.items:1

psql -q "$url" -c "CREATE TABLE items (id bigint PRIMARY KEY, name text, price numeric(10,2), qty int, tags text[], at timestamptz)" \
  -c "INSERT INTO items SELECT g, 'product number ' || g, g % 1000 + 0.99, g % 97, ARRAY['kitchen', 'garden'], '2026-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, $rows) g" \
  -c "VACUUM ANALYZE items"
time_of() { python3 - "$@" <<'PY'
import subprocess, sys, time
start = time.monotonic()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(f"{time.monotonic() - start:.3f}")
PY
}
: > "$work/rounds.tsv"
for round in $(seq 1 "$rounds"); do
  copy=$(time_of psql -q "$url" -c "\\copy (SELECT * FROM items) TO /dev/null")
  json=$(time_of psql -q "$url" -c "\\copy (SELECT row_to_json(t) FROM items t) TO /dev/null")
  line="$round $copy $json"
  for source in audit_log replication; do
    consumer="snap_${source}_$round"
    cat > "$work/$consumer.yaml" <<YAML
database: {url: "$url"}
consumer: $consumer
source: {kind: $source, tables: [public.items], snapshot: initial}
sinks: [{name: out, kind: file, path: "$work/$consumer.jsonl"}]
log: {level: warning}
YAML
    "$spillway" install --config "$work/$consumer.yaml" >/dev/null
    read -r seconds rss cpu < <(measure "$spillway" run --once --config "$work/$consumer.yaml")
    lines=$(wc -l < "$work/$consumer.jsonl")
    [ "$lines" -ge "$rows" ] || { echo "$source: only $lines of $rows rows emitted" >&2; exit 1; }
    rm -f "$work/$consumer.jsonl"
    "$spillway" uninstall --force --config "$work/$consumer.yaml" >/dev/null 2>&1 || true
    line="$line $seconds $rss"
  done
  echo "$line" >> "$work/rounds.tsv"
done
python3 - "$rows" "$work/rounds.tsv" <<'PY'
import statistics, sys
rows = int(sys.argv[1])
data = [list(map(float, l.split())) for l in open(sys.argv[2]) if l.strip()]
def rate(s): return rows / s
for r in data:
    _, copy, json, audit, audit_rss, repl, repl_rss = r
    print(f"round {int(r[0])}: \\copy {rate(copy):,.0f} rows/s, row_to_json {rate(json):,.0f} rows/s; "
          f"audit_log {rate(audit):,.0f} rows/s ({json / audit:.2f}x row_to_json, {audit_rss / 1024:.0f} MiB peak); "
          f"replication {rate(repl):,.0f} rows/s ({json / repl:.2f}x, {repl_rss / 1024:.0f} MiB peak)")
print(f"median: audit_log {statistics.median(r[2] / r[3] for r in data):.2f}x row_to_json, "
      f"replication {statistics.median(r[2] / r[5] for r in data):.2f}x; peak RSS max "
      f"{max(max(r[4], r[6]) for r in data) / 1024:.0f} MiB")
PY
