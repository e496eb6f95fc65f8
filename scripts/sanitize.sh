#!/usr/bin/env bash
# Runs the pure core's unit tests (SpillwayCoreTests: the pgoutput decoder, JSON, value mapping, config,
# the pipeline state machine, ...) under AddressSanitizer and ThreadSanitizer. They run in a package of
# their own (links to Sources/SpillwayCore and Tests/SpillwayCoreTests in a temp dir), so the sanitized
# build does not rebuild async-http-client, BoringSSL and librdkafka's wrapper for the whole test bundle.
#   scripts/sanitize.sh [address|thread ...]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
pkg=${SPILLWAY_SANITIZE_DIR:-/tmp/spillway-sanitize}
mkdir -p "$pkg/Sources" "$pkg/Tests"
ln -sfn "$root/Sources/SpillwayCore" "$pkg/Sources/SpillwayCore"
ln -sfn "$root/Tests/SpillwayCoreTests" "$pkg/Tests/SpillwayCoreTests"
ln -sfn "$root/Config" "$pkg/Config"   # the example-config tests read it
# LeakSanitizer's only findings: XCTest's own bookkeeping (an empty XCTest run) and two lazily initialised
# static fixture arrays of the tests (Fixtures.swift), kept until exit by design. Nothing in SpillwayCore.
printf '%s\n' 'leak:libXCTest.so' 'leak:SpillwayCoreTests7Fixture' 'leak:SpillwayCoreTests4Rows' > "$pkg/lsan.supp"
export LSAN_OPTIONS="suppressions=$pkg/lsan.supp:print_suppressions=0"
yams=$(sed -n 's/.*url: "\(https:\/\/github.com\/jpsim\/Yams\)", from: "\([^"]*\)".*/\1 \2/p' Package.swift)
cat > "$pkg/Package.swift" <<SWIFT
// swift-tools-version: 6.0
import PackageDescription
let package = Package(
    name: "SpillwayCoreSanitized",
    platforms: [.macOS(.v15)],
    dependencies: [.package(url: "${yams% *}", from: "${yams#* }")],
    targets: [
        .target(name: "SpillwayCore", dependencies: [.product(name: "Yams", package: "Yams")]),
        .testTarget(name: "SpillwayCoreTests", dependencies: ["SpillwayCore"]),
    ]
)
SWIFT
status=0
for sanitizer in "${@:-address thread}"; do
  for s in $sanitizer; do
    echo "== SpillwayCoreTests under --sanitize=$s"
    if ! (cd "$pkg" && SWIFT_BACKTRACE=enable=no swift test --sanitize="$s" --scratch-path ".build-$s" 2>&1 | tail -n 5); then status=1; fi
  done
done
exit $status
