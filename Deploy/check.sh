#!/usr/bin/env bash
# Checks Deploy/ without a Docker engine or a cluster (scripts/test.sh runs it; so can you):
#   - the systemd unit with `systemd-analyze verify`;
#   - the Kubernetes manifests against Kubernetes' schemas (PyPI kubernetes-validate, offline, --strict);
#   - the compose file with `docker-compose config` (PyPI docker-compose 1.29.2 validates without an engine);
#   - the Dockerfile copies everything Package.swift builds, and uses a toolchain no older than any
#     dependency's swift-tools-version;
#   - the configs shipped in Deploy/ are valid (`spillway check` exits 2 only on a config problem);
#   - the Prometheus rules are valid and their unit tests pass (promtool; scripts/install-deps.sh installs it),
#     and the Grafana dashboard parses.
# A tool that cannot be installed is skipped with the reason printed, never silently.
# Usage: Deploy/check.sh [path/to/spillway]
set -euo pipefail
cd "$(dirname "$0")/.."
spillway=$(realpath "${1:-$(swift build --show-bin-path)/spillway}")
# Two virtualenvs: docker-compose 1.29 needs jsonschema < 4, kubernetes-validate a newer one.
venvs=${SPILLWAY_DEPLOY_VENVS:-${TMPDIR:-/tmp}/spillway-deploy}
failed=0
ok() { echo "deploy check ok: $*"; }
fail() { echo "deploy check FAILED: $*" >&2; failed=1; }
skip() { echo "deploy check SKIPPED: $*" >&2; }

k8s=$venvs/k8s compose=$venvs/compose
for v in "$k8s" "$compose"; do [ -x "$v/bin/python" ] || python3 -m venv "$v"; done
pip() { local v=$1; shift; "$v/bin/python" -m pip install -q --disable-pip-version-check "$@"; }

# systemd unit, as an instance (`verify` needs one for a template). It checks that ExecStart's binary exists:
# the copy points it at the binary just built, nothing else changes.
if command -v systemd-analyze >/dev/null; then
  scratch=$(mktemp -d)
  sed "s#/usr/local/bin/spillway#$spillway#g" Deploy/spillway@.service > "$scratch/spillway@search-sync.service"
  if out=$(systemd-analyze verify "$scratch/spillway@search-sync.service" 2>&1) && [ -z "$out" ]; then
    ok "systemd unit (systemd-analyze verify)"
  else
    fail "systemd unit: $out"
  fi
  rm -rf "$scratch"
else
  skip "systemd unit: systemd-analyze is not installed"
fi

# Kubernetes manifests.
if "$k8s/bin/python" -c "import kubernetes_validate" 2>/dev/null || pip "$k8s" kubernetes-validate; then
  if "$k8s/bin/kubernetes-validate" --strict --quiet Deploy/kubernetes/*.yaml; then
    ok "kubernetes manifests (kubernetes-validate --strict)"
  else
    fail "kubernetes manifests"
  fi
else
  skip "kubernetes manifests: pip could not install kubernetes-validate"
fi

# Compose. docker-compose 1.29.2 pins PyYAML 5.x, whose sdist does not build with Cython 3 on Python 3.11+:
# build PyYAML 5.4.1 against Cython < 3 first, without build isolation.
if [ -x "$compose/bin/docker-compose" ] || { pip "$compose" "cython<3.0" wheel setuptools \
      && pip "$compose" --no-build-isolation "pyyaml==5.4.1" && pip "$compose" "docker-compose==1.29.2"; }; then
  if "$compose/bin/docker-compose" -f Deploy/docker-compose.yml config -q; then
    ok "docker-compose.yml (docker-compose config)"
  else
    fail "docker-compose.yml"
  fi
else
  skip "docker-compose.yml: pip could not install docker-compose 1.29.2"
fi

# Dockerfile: copies what the package needs, and a new enough toolchain.
dockerfile=Deploy/Dockerfile
for needed in Package.swift Sources Tests; do
  grep -Eq "^COPY +$needed( |$)" "$dockerfile" || fail "Dockerfile does not COPY $needed"
done
image_version=$(sed -n 's/^FROM swift:\([0-9.]*\).*/\1/p' "$dockerfile" | head -n 1)
newest_tools=$( (head -n 1 Package.swift; for f in .build/checkouts/*/Package.swift; do head -n 1 "$f"; done) 2>/dev/null \
  | sed -n 's/.*swift-tools-version: *\([0-9.]*\).*/\1/p' | sort -V | tail -n 1)
if [ -z "$image_version" ]; then
  fail "Dockerfile: no FROM swift:<version> build stage"
elif [ -n "$newest_tools" ] && [ "$(printf '%s\n%s\n' "$newest_tools" "$image_version" | sort -V | tail -n 1)" != "$image_version" ]; then
  fail "Dockerfile builds with swift:$image_version, but a dependency needs swift-tools-version $newest_tools"
else
  ok "Dockerfile (copies Package.swift, Sources, Tests; swift:$image_version >= tools ${newest_tools:-?})"
fi
grep -Eq '^USER +[0-9]+' "$dockerfile" || fail "Dockerfile: the runtime stage must run as a numeric non-root USER"

# The runtime stage installs every shared library the binary loads (the script says how that is read without
# an engine). .ci/run checks the statically linked binary the build stage makes, too.
python3 Deploy/runtime-libraries.py "$spillway" "$dockerfile" && ok "Dockerfile runtime stage provides every shared library the binary loads" || fail "Dockerfile runtime stage lacks a library (above)"

# The configs Deploy/ ships: valid for `spillway check` (exit 2 = a config problem; 1 = servers unreachable here).
configs=$(mktemp -d)
cp Deploy/compose/spillway.yaml "$configs/compose.yaml"
"$compose/bin/python" - "$configs/kubernetes.yaml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open("Deploy/kubernetes/configmap.yaml"))
open(sys.argv[1], "w").write(doc["data"]["spillway.yaml"])
PY
for config in "$configs"/*.yaml; do
  set +e
  out=$(SPILLWAY_DATABASE_URL=postgres://check@127.0.0.1:1/none timeout 60 "$spillway" check --config "$config" 2>&1)
  code=$?
  set -e
  if [ "$code" = 2 ]; then fail "$(basename "$config") config: $out"; else ok "$(basename "$config") config parses (spillway check exit $code)"; fi
done
rm -rf "$configs"

# Prometheus rules and the dashboard.
if command -v promtool >/dev/null; then
  promtool check rules Deploy/prometheus-rules.yml >/dev/null && ok "prometheus rules (promtool check rules)" || fail "prometheus rules"
  # Each alert fires on its series after its `for`, and not before (Deploy/prometheus-rules.test.yml).
  (cd Deploy && promtool test rules prometheus-rules.test.yml >/dev/null) && ok "prometheus rule unit tests (promtool test rules)" \
    || fail "prometheus rule unit tests: $(cd Deploy && promtool test rules prometheus-rules.test.yml 2>&1 | tail -n 20)"
else
  "$compose/bin/python" - <<'PY' && ok "prometheus rules parse (promtool not installed: expressions not checked)" || fail "prometheus rules"
import yaml
rules = [r for g in yaml.safe_load(open("Deploy/prometheus-rules.yml"))["groups"] for r in g["rules"]]
assert rules and all(r.get("alert") and r.get("expr") for r in rules), rules
PY
fi
python3 -c "import json; d = json.load(open('Deploy/grafana-dashboard.json')); assert d['panels']" \
  && ok "grafana dashboard parses" || fail "grafana dashboard"

exit $failed
