#!/usr/bin/env bash
# The real `spillway` binary built with ThreadSanitizer, run through both sources against a throwaway
# PostgreSQL and redis-server: an initial snapshot of 20,000 rows while writers update and insert, a backfill
# with --where, file, webhook (a local receiver) and Redis sinks, then SIGTERM. Prints each source's TSan
# reports; exits non-zero if any is left after scripts/tsan/suppressions.txt (see there, and
# scripts/tsan/mutex_is_invisible.swift, for why those are false positives).
# librdkafka cannot run under TSan (its C11 threads start outside TSan's pthread interceptor and crash its
# allocator), so the Kafka sink is not part of this run.
#   scripts/sanitize-integration.sh        (builds into /tmp/spillway-tsan-build; about 10 minutes cold)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${SPILLWAY_TSAN_BUILD:-/tmp/spillway-tsan-build}
work=$(mktemp -d /tmp/spillway-tsan-XXXXXX); chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$work/redis.pid" ] && kill "$(cat "$work/redis.pid")" 2>/dev/null || true
  scripts/pg-cluster.sh stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "== TSan sees no Synchronization.Mutex (expected: a report on a correctly locked counter)"
swiftc -sanitize=thread -O scripts/tsan/mutex_is_invisible.swift -o "$work/mutex_check"
"$work/mutex_check" > "$work/mutex_check.out" 2>&1 || true   # TSan exits 66 after a report
if grep -q "WARNING: ThreadSanitizer" "$work/mutex_check.out"; then
  echo "   yes: Mutex-guarded state is suppressed by name (scripts/tsan/suppressions.txt)"
else
  echo "   no: this toolchain's TSan sees Mutex; running without suppressions"
  : > "$work/no-suppressions"
fi

echo "== building spillway with --sanitize=thread"
if ! swift build --sanitize=thread --build-path "$build" --product spillway > "$work/build.log" 2>&1; then
  tail -n 30 "$work/build.log"; exit 1
fi
bin="$build/debug/spillway"
url=$(scripts/pg-cluster.sh start "$work/pg" "$(free_port)")
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --pidfile "$work/redis.pid" --dir "$work" >/dev/null
python3 - > "$work/hook.port" <<'PY' &
import http.server
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
PY
pids+=($!)
for _ in $(seq 1 50); do [ -s "$work/hook.port" ] && break; sleep 0.1; done
hook_port=$(cat "$work/hook.port")
options="halt_on_error=0 second_deadlock_stack=1"
[ -f "$work/no-suppressions" ] || options="$options suppressions=$root/scripts/tsan/suppressions.txt"
export TSAN_OPTIONS="$options"

status=0
for kind in audit_log replication; do
  psql -q "$url" -c "CREATE TABLE items_$kind (id int PRIMARY KEY, v int, note text)" \
    -c "INSERT INTO items_$kind SELECT g, 0, 'seed' FROM generate_series(1, 20000) g"
  cat > "$work/$kind.yaml" <<YAML
database: {url: "$url"}
consumer: tsan_$kind
source: {kind: $kind, tables: [public.items_$kind], snapshot: initial, snapshot_chunk_size: 1000, batch_size: 200, poll_interval: 100ms}
sinks:
  - {name: out, kind: file, path: "$work/$kind.jsonl"}
  - {name: hook, kind: webhook, url: "http://127.0.0.1:$hook_port/in", concurrency: 4}
  - {name: cache, kind: redis, url: "redis://127.0.0.1:$redis_port/0", keys: {public.items_$kind: ["item:{key.id}"]}}
http: {address: "127.0.0.1:0"}
log: {level: warning}
YAML
  "$bin" install --config "$work/$kind.yaml" >/dev/null 2>>"$work/$kind.tsan"
  "$bin" run --config "$work/$kind.yaml" 2>>"$work/$kind.tsan" &
  runner=$!
  for i in $(seq 1 300); do
    psql -q "$url" -c "UPDATE items_$kind SET v = v + 1 WHERE id = $(( RANDOM % 20000 + 1 )); INSERT INTO items_$kind VALUES ($((100000 + i)), 1, 'w')"
  done
  "$bin" backfill --no-follow --config "$work/$kind.yaml" --table "public.items_$kind" --where "id % 10 = 0" >/dev/null 2>>"$work/$kind.tsan"
  for _ in $(seq 1 120); do
    "$bin" status --json --config "$work/$kind.yaml" 2>/dev/null | grep -q '"state":"done"' && break
    sleep 1
  done
  kill -TERM "$runner"
  wait "$runner" && rc=0 || rc=$?
  reports=$(grep -c "WARNING: ThreadSanitizer" "$work/$kind.tsan" || true)
  echo "$kind: run exit $rc, $(wc -l < "$work/$kind.jsonl") events, $reports ThreadSanitizer reports"
  if [ "$reports" != 0 ] || [ "$rc" != 0 ]; then
    status=1
    grep -A12 "WARNING: ThreadSanitizer" "$work/$kind.tsan" | head -n 60
  fi
done
exit $status
