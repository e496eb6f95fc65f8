#!/usr/bin/env python3
"""A webhook receiver for Spillway's integration tests: a real HTTP server on loopback, standard library only.

It verifies Standard Webhooks signatures independently of Spillway (hmac, hashlib, base64), records every
request as one JSON line in --log (which survives restarts on the same --port), and answers as scripted in
the JSON file --control, re-read whenever it changes:

    {"fail_503": 3, "retry_after": "1", "reject_ids": ["727-4"], "reject_if_contains": "\"bad\""}

fail_503: answer the next N requests 503 (with Retry-After when given); reject_ids / reject_if_contains:
answer 400 to requests whose webhook-id is listed / whose body contains the text. Everything else: 200.
The chosen port is written to --port-file once the server listens.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify(secrets, headers, body):
    """True when one of the signatures matches one of the secrets, the timestamp is recent; None if unsigned."""
    if not secrets:
        return None
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
        return False
    signed = f"{msg_id}.{timestamp}.".encode() + body
    received = [s.split(",", 1)[1] for s in headers.get("webhook-signature", "").split(" ") if s.startswith("v1,")]
    for secret in secrets:
        key = base64.b64decode(secret[len("whsec_"):])
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        if any(hmac.compare_digest(expected, r) for r in received):
            return True
    return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--control")
    parser.add_argument("--secret", action="append", default=[])
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args()

    lock = threading.Lock()
    state = {"raw": None, "fail_503": 0, "retry_after": None, "reject_ids": [], "reject_if_contains": None}

    def reload_control():
        if not args.control or not os.path.exists(args.control):
            return
        with open(args.control) as f:
            raw = f.read()
        if raw != state["raw"]:
            control = json.loads(raw or "{}")
            state.update(raw=raw, fail_503=control.get("fail_503", 0), retry_after=control.get("retry_after"),
                         reject_ids=control.get("reject_ids", []), reject_if_contains=control.get("reject_if_contains"))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            extra = {}
            with lock:
                reload_control()
                if state["fail_503"] > 0:
                    state["fail_503"] -= 1
                    status = 503
                    if state["retry_after"] is not None:
                        extra["Retry-After"] = str(state["retry_after"])
                elif headers.get("webhook-id") in state["reject_ids"] or (
                        state["reject_if_contains"] and state["reject_if_contains"] in body.decode("utf-8", "replace")):
                    status = 400
                else:
                    status = 200
                record = {"path": self.path, "headers": headers, "body": body.decode("utf-8", "replace"),
                          "verified": verify(args.secret, headers, body), "status": status, "time": time.time()}
                with open(args.log, "a") as log:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    os.fsync(log.fileno())
            answer = b'{"error": "rejected by test receiver"}' if status == 400 else b"ok"
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_):
            pass

    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    # Gone with the test process: an orphan would keep serving (and holding the test run's output pipe) after
    # a crashed test process. Its pid comes as an argument: when the test process died while this one was
    # starting, getppid() is already init's.
    def exit_when_orphaned():
        while os.getppid() == args.parent_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=exit_when_orphaned, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
