# Shared set-up of the benchmarks (sourced): a throwaway cluster, the release binaries, librdkafka's mock
# cluster as a Kafka broker, and a cleanup that stops all of it. Sets work, url, spillway, brokers, bin.
#   bench_setup TOPIC:PARTITIONS
#   SPILLWAY_RELEASE_BIN=PATH runs that spillway binary instead of building one (CI: the Dockerfile stage's).
bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
bench_cleanup() {
  [ -n "${mock_pid:-}" ] && kill "$mock_pid" 2>/dev/null || true
  [ -n "${live_pid:-}" ] && kill "$live_pid" 2>/dev/null || true
  scripts/pg-cluster.sh stop "$work/pg" || true; rm -rf "$work"
}
bench_setup() {
  work=$(mktemp -d /tmp/spillway-bench-XXXXXX); chmod 755 "$work"
  trap bench_cleanup EXIT
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  url=$(scripts/pg-cluster.sh start "$work/pg" "$port")
  if [ -n "${SPILLWAY_RELEASE_BIN:-}" ]; then spillway=$SPILLWAY_RELEASE_BIN
  else
    # Linked as the image links it (Deploy/Dockerfile): the static Swift runtime is ~15 % faster per row.
    swift build -c release --product spillway --static-swift-stdlib >/dev/null
    spillway="$(swift build -c release --show-bin-path)/spillway"
  fi
  swift build -c release --product spillway-kafka-mock >/dev/null
  local mock
  mock="$(swift build -c release --show-bin-path)/spillway-kafka-mock"
  # The mock broker runs until its stdin closes: keep a pipe open to it.
  mkfifo "$work/mock.in"
  "$mock" --brokers 3 --topic "$1" < "$work/mock.in" > "$work/mock.out" 2>/dev/null &
  mock_pid=$!
  exec 7> "$work/mock.in"
  for _ in $(seq 1 100); do [ -s "$work/mock.out" ] && break; sleep 0.1; done
  brokers=$(head -n 1 "$work/mock.out")
}
# measure COMMAND...: prints "seconds peak_rss_kB cpu_seconds" of the command
measure() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
start = time.monotonic()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{time.monotonic() - start:.3f} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime:.2f}")
PY
}
