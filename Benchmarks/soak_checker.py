#!/usr/bin/env python3
"""Independent checker of the chaos soak (Benchmarks/chaos-soak.sh); Python standard library only, no
Spillway code. The truth is the captured table itself, not Spillway's audit table: every writer
transaction inserts a row at version 1 or sets version = version + 1, so a row whose final version is V
went through exactly the versions 1..V, each committed once, and a sink must have received each of them
at least once, per key in increasing order, ending at V.

  soak_checker.py TABLE_STATE NAME=JSONL [NAME=JSONL...]
    TABLE_STATE  lines "id|version" (psql -At) of the table's final state
    JSONL        what a sink received (file sink output)

Per sink it prints `sink=NAME lost=N duplicated=N reordered=N`:
  lost        versions 1..final of a row that never reached the sink
  duplicated  copies beyond the first of a version
  reordered   per key, first occurrences of a version that came after a higher version's first occurrence
and, when any is non-zero, a second line `sink=NAME extra: ...` with what else is wrong:
  stale_last  rows whose last event at the sink is not their final (id, version)
  phantom     events of a version the table never committed (above the final version, or of an unknown id)
  bad_lines   lines that are not a JSON change event of the table
  id_clash    one event id carried by two different (key, version) pairs, or one (key, version) by two ids
Exits 1 if any sink has lost, reordered, stale_last, phantom, bad_lines or id_clash > 0.
"""
import json
import sys
from collections import defaultdict


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[-13], file=sys.stderr)
        return 2
    final = {}
    with open(argv[1]) as f:
        for line in f:
            line = line.strip()
            if line:
                key, version = line.split("|")
                final[int(key)] = int(version)
    failed = False
    for spec in argv[2:]:
        name, path = spec.split("=", 1)
        seen = defaultdict(list)  # id -> versions in arrival order
        by_event, by_version = {}, {}
        bad = phantom = clash = 0
        with open(path, "rb") as f:
            for raw in f:
                try:
                    event = json.loads(raw)
                    after = event["after"]
                    key, version = int(after["id"]), int(after["version"])
                    if event["op"] not in ("insert", "update") or event["table"] != "items":
                        raise ValueError(event["op"])
                except (ValueError, KeyError, TypeError):
                    bad += 1
                    continue
                if key not in final or version > final[key] or version < 1:
                    phantom += 1
                    continue
                seen[key].append(version)
                event_id = event.get("id")
                if by_event.setdefault(event_id, (key, version)) != (key, version):
                    clash += 1
                if by_version.setdefault((key, version), event_id) != event_id:
                    clash += 1
        lost = duplicated = reordered = stale = 0
        for key, top in final.items():
            versions = seen.get(key, [])
            distinct = set(versions)
            lost += sum(1 for v in range(1, top + 1) if v not in distinct)
            duplicated += len(versions) - len(distinct)
            first, highest = set(), 0
            for v in versions:
                if v in first:
                    continue
                first.add(v)
                if v < highest:
                    reordered += 1
                highest = max(highest, v)
            if not versions or versions[-1] != top:
                stale += 1
        print(f"sink={name} lost={lost} duplicated={duplicated} reordered={reordered}")
        if stale or phantom or bad or clash:
            print(f"sink={name} extra: stale_last={stale} phantom={phantom} bad_lines={bad} id_clash={clash}")
        if lost or reordered or stale or phantom or bad or clash:
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
