#!/usr/bin/env python3
"""The chaos soak's webhook receiver (Benchmarks/chaos-soak.sh); Python standard library only, no Spillway
code. A real HTTP/1.1 server (ThreadingHTTPServer, keep-alive) on 127.0.0.1 and a port of its own.

  webhook_receiver.py DIR
    prints its port as the first line of stdout, then serves until stdin says `quit` or closes.
    POST /NAME   the body (one change event, or a JSON array of them with `body: batch`) is checked and
                 each event is appended as one line to DIR/NAME.jsonl and flushed BEFORE the 2xx is sent:
                 whatever this receiver acknowledged is in the file, in the order it was acknowledged.
    SOAK_WEBHOOK_SECRET (environment, `whsec_<base64>`): every request must carry a valid Standard Webhooks
                 signature (README, Webhook sink); `webhook-id` must be the event's id, or for a batch the
                 first event's id + "+" + the count. A request that fails a check is answered 400 (so the
                 sink dead-letters it and the checker sees it as lost) and logged to DIR/rejected.log.

  stdin commands, one per line, each answered `ok` on stdout:
    ok     acknowledge requests (the start mode)
    fail   answer every request 500 without recording it
    hang   read the request, then never answer: wait until the client gives up and closes the
           connection (the sink's `timeout`), at most 120 s; nothing is recorded
    drop   sabotage, for proving the soak can fail: answer the next valid request 2xx without recording it
    stats  print `requests=N acknowledged=N events=N answered_500=N hung=N rejected=N dropped=N`
    quit   print the stats line and exit
"""
import base64
import hashlib
import hmac
import json
import os
import re
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
state = {"mode": "ok", "drop": False}
counts = {"requests": 0, "acknowledged": 0, "events": 0, "answered_500": 0, "hung": 0, "rejected": 0, "dropped": 0}
files = {}
directory = "."
secret_key = None


def count(name, n=1):
    with lock:
        counts[name] += n


def stats_line():
    with lock:
        return " ".join(f"{k}={v}" for k, v in counts.items())


def problem(headers, body):
    """Why a request is not a valid delivery, or None. Returns (problem, events)."""
    msg_id, ts = headers.get("webhook-id"), headers.get("webhook-timestamp")
    if not msg_id or not ts:
        return "missing webhook-id or webhook-timestamp", None
    if secret_key is not None:
        signed = f"{msg_id}.{ts}.".encode() + body
        expected = base64.b64encode(hmac.new(secret_key, signed, hashlib.sha256).digest()).decode()
        signatures = [s.split(",", 1)[1] for s in headers.get("webhook-signature", "").split(" ") if s.startswith("v1,")]
        if not any(hmac.compare_digest(expected, s) for s in signatures):
            return "bad or missing webhook-signature", None
    try:
        parsed = json.loads(body)
    except ValueError:
        return "body is not JSON", None
    if isinstance(parsed, dict):
        events, want = [parsed], str(parsed.get("id"))
    elif isinstance(parsed, list) and parsed and all(isinstance(e, dict) for e in parsed):
        events, want = parsed, f"{parsed[0].get('id')}+{len(parsed)}"
    else:
        return "body is neither an event nor a non-empty array of events", None
    if msg_id != want:
        return f"webhook-id {msg_id!r} is not {want!r}", None
    return None, events


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a production receiver would allow

    def log_message(self, *args):  # quiet: the counts tell what happened
        pass

    def answer(self, status):
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self):
        count("requests")
        name = self.path.strip("/")
        try:
            length = int(self.headers.get("content-length", "-1"))
        except ValueError:
            length = -1
        if not re.fullmatch(r"[A-Za-z0-9_]+", name) or length < 0:
            self.answer(404)
            return
        body = self.rfile.read(length)
        if len(body) < length:  # the client went away mid-body: nothing was delivered
            self.close_connection = True
            return
        mode = state["mode"]
        if mode == "fail":
            count("answered_500")
            self.answer(500)
            return
        if mode == "hang":
            count("hung")
            self.hang()
            return
        why, events = problem(self.headers, body)
        if why is not None:
            count("rejected")
            with lock:
                with open(os.path.join(directory, "rejected.log"), "a") as log:
                    log.write(f"{name}: {why}\n")
            self.answer(400)
            return
        with lock:
            if state["drop"]:
                state["drop"] = False
                counts["dropped"] += 1
                events = []
            f = files.get(name)
            if f is None:
                f = files[name] = open(os.path.join(directory, name + ".jsonl"), "a")
            for event in events:
                f.write(json.dumps(event, separators=(",", ":")) + "\n")
            f.flush()  # on disk (in the OS) before the 2xx: only the receiver process must survive
            counts["acknowledged"] += 1
            counts["events"] += len(events)
        self.answer(200)

    def hang(self):
        """Never answer: wait for the client to close (its timeout), at most 120 s, then drop the connection."""
        self.close_connection = True
        deadline = time.monotonic() + 120
        conn = self.connection
        while time.monotonic() < deadline:
            readable, _, _ = select.select([conn], [], [], 1.0)
            if readable:
                try:
                    if not conn.recv(65536, socket.MSG_PEEK):
                        return
                    conn.recv(65536)  # a pipelined request on a hung connection is not answered either
                except OSError:
                    return


def main(argv):
    global directory, secret_key
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[3], file=sys.stderr)
        return 2
    directory = argv[1]
    secret = os.environ.get("SOAK_WEBHOOK_SECRET")
    if secret:
        secret_key = base64.b64decode(secret.removeprefix("whsec_"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True  # hung handlers must not keep the receiver from exiting
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command in ("ok", "fail", "hang"):
            state["mode"] = command
            print("ok", flush=True)
        elif command == "drop":
            state["drop"] = True
            print("ok", flush=True)
        elif command == "stats":
            print(stats_line(), flush=True)
        elif command == "quit":
            break
        elif command:
            print(f"error: unknown command {command!r}", flush=True)
    print(stats_line(), flush=True)
    server.shutdown()
    with lock:
        for f in files.values():
            f.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
