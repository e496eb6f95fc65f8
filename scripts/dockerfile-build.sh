#!/usr/bin/env bash
# Runs the build stage of Deploy/Dockerfile as a script, here, without a Docker engine (issue #12), so CI
# builds exactly what the image ships: each `RUN` of the stage runs in order with bash, the repository being
# the build context and the stage's WORKDIR; each `COPY` must name files the context has (they are already in
# place). Two rewrites keep a developer's machine as it was: the binary the stage installs to /usr/local/bin
# goes to `.build/dockerfile-stage/`, and the image-size tidy `rm -rf /var/lib/apt/lists/*` is skipped.
# Prints the built binary's path last.
# An instruction this script cannot honour (ARG, ENV, COPY --from, ...) fails it: teach it here rather than
# let the image and CI drift apart.
#   scripts/dockerfile-build.sh [DOCKERFILE]   default Deploy/Dockerfile
set -euo pipefail
cd "$(dirname "$0")/.."
dockerfile=${1:-Deploy/Dockerfile}
out="$PWD/.build/dockerfile-stage"
mkdir -p "$out"

# The build stage's instructions, one per line, continuations joined and comments dropped.
mapfile -t instructions < <(python3 - "$dockerfile" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
lines, current = [], ""
for raw in text.splitlines():
    if not current and (not raw.strip() or raw.lstrip().startswith("#")):
        continue
    if raw.rstrip().endswith("\\"):
        current += raw.rstrip()[:-1] + " "
        continue
    lines.append(current + raw)
    current = ""
stages = [i for i, l in enumerate(lines) if re.match(r"FROM\s", l, re.I)]
if len(stages) < 2:
    sys.exit("the Dockerfile has no separate build stage (expected `FROM ... AS build`, then the runtime `FROM`)")
for line in lines[stages[0] + 1:stages[1]]:
    print(re.sub(r"\s+", " ", line).strip())
PY
)
[ "${#instructions[@]}" -gt 0 ] || { echo "$dockerfile: empty build stage" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
for instruction in "${instructions[@]}"; do
  keyword=${instruction%% *}; arguments=${instruction#* }
  case "${keyword^^}" in
    WORKDIR) ;;  # the repository is the context and the working directory
    COPY)
      [[ "$arguments" != --* ]] || { echo "$dockerfile: unsupported in the build stage: $instruction" >&2; exit 1; }
      read -r -a paths <<< "$arguments"
      for source in "${paths[@]:0:${#paths[@]}-1}"; do
        [ -e "$source" ] || { echo "$dockerfile: COPY $source: not in the build context" >&2; exit 1; }
      done ;;
    RUN)
      command=${arguments//\/usr\/local\/bin\//$out/}
      command=${command//&& rm -rf \/var\/lib\/apt\/lists\/\*/}
      echo "+ $command" >&2
      if [[ "$command" == apt-get* ]]; then as_root bash -euo pipefail -c "$command" >&2
      else bash -euo pipefail -c "$command" >&2; fi ;;
    *) echo "$dockerfile: unsupported in the build stage: $instruction (teach scripts/dockerfile-build.sh)" >&2; exit 1 ;;
  esac
done
[ -x "$out/spillway" ] || { echo "the build stage installed no $out/spillway" >&2; exit 1; }
echo "$out/spillway"
