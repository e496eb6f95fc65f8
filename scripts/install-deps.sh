#!/usr/bin/env bash
# Installs the Debian packages Spillway builds, runs and tests with. Skips apt when all are present.
set -euo pipefail
# iptables and iproute2 (ss): the hot-standby test that cuts a runner's network.
packages=(libpq-dev postgresql postgresql-contrib librdkafka-dev libhiredis-dev redis-server kcat pkg-config openssl pgbouncer iptables iproute2)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# promtool, for Deploy/check.sh's alert-rule tests: Debian ships it in `prometheus` (the server is not started;
# its recommendations are not wanted).
if ! command -v promtool >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# Python packages the tests use: prometheus_client's text parser reads `/metrics` independently of
# Spillway's encoder (MetricsTests); the CloudEvents SDK reads `format: cloudevents` webhooks.
python_packages=(prometheus_client cloudevents)
for p in "${python_packages[@]}"; do
  python3 -c "import $p" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check "$p" >&2
done
