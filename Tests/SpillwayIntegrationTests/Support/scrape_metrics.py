#!/usr/bin/env python3
"""Fetches a running `spillway run`'s /healthz, /readyz and /metrics, parses the metrics with
prometheus_client's own text parser (independent of Spillway's encoder), and prints one JSON object:
{"healthz": [status, body], "readyz": [status, body], "samples": [{"name", "labels", "value"}]}.
A page that does not parse fails the script (exit 1), so a malformed exposition fails the test."""
import json
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8"), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8"), error.headers.get("Content-Type", "")


def main():
    base = sys.argv[1].rstrip("/")
    out = {}
    for path in ("healthz", "readyz"):
        status, body, _ = get(f"{base}/{path}")
        out[path] = [status, body]
    status, text, content_type = get(f"{base}/metrics")
    if status != 200:
        print(f"/metrics answered {status}: {text}", file=sys.stderr)
        sys.exit(1)
    out["content_type"] = content_type
    samples = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.append({"name": sample.name, "labels": dict(sample.labels), "value": sample.value})
    out["samples"] = samples
    print(json.dumps(out))


if __name__ == "__main__":
    main()
