#!/usr/bin/env bash
# The test command: installs what the tests need, starts a throwaway PostgreSQL cluster (wal_level=logical)
# on a temp dir, runs `swift test` against it, and stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

work=$(mktemp -d /tmp/spillway-test-XXXXXX)
chmod 755 "$work"   # the cluster runs as `postgres`, which must reach its data dir
cleanup() { scripts/pg-cluster.sh stop "$work/pg" || true; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SPILLWAY_TEST_DATABASE_URL=$(scripts/pg-cluster.sh start "$work/pg" "$port")
export SPILLWAY_TEST_DATABASE_URL
export SPILLWAY_REQUIRE_INTEGRATION=1
export PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}

swift build --build-tests "$@"
export SPILLWAY_BIN="$(swift build --show-bin-path)/spillway"
swift test --skip-build "$@"
