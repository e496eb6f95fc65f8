#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL cluster with logical decoding, on a temp dir, for tests and benches.
#   scripts/pg-cluster.sh start DIR PORT [SERVER OPTION...]   → prints the connection URL
#     e.g. `-c ssl=on -c ssl_cert_file=/tmp/x/server.crt -c ssl_key_file=/tmp/x/server.key` (no spaces in values)
#   scripts/pg-cluster.sh stop DIR
#   scripts/pg-cluster.sh crash-restart DIR   → `pg_ctl restart -m immediate`: a crash and recovery, same options
# initdb refuses to run as root, so as root the cluster runs as the `postgres` user.
set -euo pipefail
# A test runner can leave hundreds of descriptors open to its children; the postmaster would inherit them,
# count them against max_files_per_process and refuse to start ("insufficient file descriptors available").
for fd in /proc/$$/fd/*; do fd=${fd##*/}; if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi; done
cmd=${1:?start|stop} dir=${2:?directory}
bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$bin/initdb" ] || { echo "no PostgreSQL server binaries (initdb) found; install postgresql" >&2; exit 1; }
as_owner() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
case "$cmd" in
  start)
    port=${3:?port}
    shift 3
    extra="$*"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "'$bin/initdb' -D '$dir/data' -U postgres --auth=trust -E UTF8 --no-sync" >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    as_owner "'$bin/pg_ctl' -D '$dir/data' -l '$dir/log' -w -t 60 start -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1 \
      -c wal_level=logical -c max_wal_senders=64 -c max_replication_slots=64 -c max_connections=500 \
      -c track_commit_timestamp=on -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
      -c logical_decoding_work_mem=64kB $extra\"" >/dev/null \
      || { cat "$dir/log" >&2; exit 1; }
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    [ -f "$dir/data/postmaster.pid" ] && as_owner "'$bin/pg_ctl' -D '$dir/data' -m fast -w stop" >/dev/null || true
    ;;
  crash-restart)
    as_owner "'$bin/pg_ctl' -D '$dir/data' -l '$dir/log' -m immediate -w -t 60 restart" >/dev/null \
      || { cat "$dir/log" >&2; exit 1; }
    ;;
  *) echo "usage: $0 start DIR PORT | stop DIR | crash-restart DIR" >&2; exit 2 ;;
esac
