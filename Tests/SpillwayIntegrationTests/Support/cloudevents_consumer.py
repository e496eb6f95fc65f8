#!/usr/bin/env python3
"""Reads the webhook receiver's request log (JSON Lines: headers, body) with the CloudEvents Python SDK,
independently of Spillway: structured mode (application/cloudevents+json) and batched mode
(application/cloudevents-batch+json). Prints one line per event: `type id subject data.op`."""
import json
import sys

try:  # the SDK's 1.x API; 2.x keeps it under cloudevents.v1
    from cloudevents.http import from_http
except ImportError:
    from cloudevents.v1.http import from_http

for line in open(sys.argv[1]):
    request = json.loads(line)
    if request.get("status") != 200:
        continue
    headers, body = request["headers"], request["body"]
    if headers.get("content-type") == "application/cloudevents-batch+json":
        # The SDK reads one event per HTTP message; a batch is an array of structured events.
        events = [from_http({"content-type": "application/cloudevents+json"}, json.dumps(e)) for e in json.loads(body)]
    else:
        events = [from_http(headers, body)]
    for event in events:
        assert event["specversion"] == "1.0" and event["source"].startswith("/spillway/"), event
        print(event["type"], event["id"], event.get("subject"), event.data["op"])
