#!/usr/bin/env python3
"""Checks that Deploy/Dockerfile's runtime stage provides every shared library a spillway binary loads.

No Docker engine runs here, so the stage's package list is read from the Dockerfile and checked against this
Debian release (the image's): each library `ldd` resolves must come from a package the stage installs, from
one of their dependencies, or from what debian:*-slim has (Priority: required, and apt's own dependencies).

    Deploy/runtime-libraries.py BINARY DOCKERFILE [--image-binary]

The Dockerfile links the Swift runtime statically. A development build links it dynamically, so its Swift
libraries are skipped; with --image-binary (the binary scripts/dockerfile-build.sh built, as CI runs it) a
Swift library it loads is an error, since the image would not have it.
"""
import re, subprocess, sys
binary, dockerfile = sys.argv[1], open(sys.argv[2]).read()
image_binary = "--image-binary" in sys.argv[3:]
runtime = dockerfile.split("\nFROM ")[-1]
install = re.search(r"apt-get install -y --no-install-recommends ([^&\\]+)", runtime)
assert install, "the runtime stage has no `apt-get install -y --no-install-recommends ...`"
packages = install.group(1).split()
static_swift = "--static-swift-stdlib" in dockerfile
def closure(names):
    out = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
                          "--no-breaks", "--no-replaces", "--no-enhances", "--no-pre-depends", *names],
                         capture_output=True, text=True, check=True).stdout
    return {line.strip() for line in out.splitlines() if line and not line.startswith(" ") and not line.startswith("<")}
required = {line.split()[0] for line in subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Priority}\n"],
            capture_output=True, text=True).stdout.splitlines() if line.endswith(" required")}
available = closure(packages) | closure(["apt"]) | required
missing = []
for line in subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout.splitlines():
    match = re.search(r"=> (/\S+)", line)
    if not match:
        continue
    path = match.group(1)
    if static_swift and "/swift/linux/" in path and not image_binary:
        continue
    owner = None
    for candidate in (path, path.replace("/lib/", "/usr/lib/", 1), path.replace("/usr/lib/", "/lib/", 1)):
        found = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if found.returncode == 0:
            owner = found.stdout.split(":")[0]
            break
    if owner is None or owner not in available:
        missing.append(f"{path} (package {owner or 'unknown'})")
if not static_swift and image_binary:
    missing.append("the Dockerfile does not link the Swift runtime statically (--static-swift-stdlib), and the runtime stage has no Swift")
if missing:
    print("not in the runtime image: " + ", ".join(missing), file=sys.stderr)
    sys.exit(1)
