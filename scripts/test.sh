#!/usr/bin/env bash
# The test command: installs what the tests need, starts a throwaway PostgreSQL cluster (wal_level=logical)
# and a throwaway redis-server on a temp dir, runs `swift test` against them, and stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

work=$(mktemp -d /tmp/spillway-test-XXXXXX)
chmod 755 "$work"   # the cluster runs as `postgres`, which must reach its data dir
watcher=
cleanup() {
  if [ -n "$watcher" ]; then kill "$watcher" 2>/dev/null || true; fi
  scripts/pg-cluster.sh stop "$work/pg" || true
  # The shared redis-server, and any a test started for itself (their pidfiles live in $work/redis).
  for pidfile in "$work"/redis.pid "$work"/redis/*.pid; do
    if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
SPILLWAY_TEST_DATABASE_URL=$(scripts/pg-cluster.sh start "$work/pg" "$port")
export SPILLWAY_TEST_DATABASE_URL

# A throwaway Redis for the redis sink's tests: no persistence, gone with the cleanup.
redis_port=$(free_port)
mkdir -p "$work/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --pidfile "$work/redis.pid" --dir "$work/redis" --logfile "$work/redis.log"
for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$redis_port" ping >/dev/null || { cat "$work/redis.log" >&2; echo "redis-server did not start" >&2; exit 1; }
export SPILLWAY_TEST_REDIS_URL="redis://127.0.0.1:$redis_port/0"
export SPILLWAY_TEST_REDIS_DIR="$work/redis"   # where tests that stop and restart a Redis of their own keep it
export SPILLWAY_REQUIRE_INTEGRATION=1
export PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}

swift build --build-tests "$@"
# A crash must fail the run, not hang it: Swift's backtracer can stall for good trying to suspend threads
# blocked in C code (seen when librdkafka's mock cluster aborted in the test process).
export SWIFT_BACKTRACE=enable=no
export SPILLWAY_BIN="$(swift build --show-bin-path)/spillway"
# A hung run must not use up CI's 90 minutes either: the whole suite takes 2–5 minutes.
# And a crashed test process must fail the run at once: `swift test` reads its output until every holder of
# that pipe closes it, and a child the tests started could outlive the crash holding it. Once the test
# process has been gone for 60 s while `swift test` still waits, it is stopped (the run then fails below).
watch_test_process() {
  local seen=0 gone=0
  while sleep 5; do
    if pgrep -f 'PackageTests\.xctest' >/dev/null; then seen=1; gone=0
    elif [ "$seen" = 1 ]; then
      gone=$((gone + 5))
      if [ "$gone" -ge 60 ]; then
        echo "test.sh: the test process exited 60 s ago but swift test still waits on its output; stopping it" >&2
        pkill -KILL -f 'swift-test' || true
        return
      fi
    fi
  done
}
watch_test_process & watcher=$!
timeout --signal=KILL 1500 swift test --skip-build "$@" 2>&1 | tee "$work/swift-test.log"
# Deploy/ has no engine or cluster to run on here: its files are verified and linted instead.
Deploy/check.sh "$SPILLWAY_BIN"
# One plain closing line for whatever reads this output: Swift Testing's count (XCTest runs no tests here).
passed=$(sed -n 's/.*Test run with \([0-9]*\) tests\{0,1\} .* passed after.*/\1/p' "$work/swift-test.log" | tail -n 1)
[ -n "$passed" ] || { echo "swift test reported no passing test run" >&2; exit 1; }
echo "$passed" > "${SPILLWAY_TEST_SUMMARY:-/dev/null}"
echo "tests: $passed passed, 0 failed"
