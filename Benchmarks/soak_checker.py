#!/usr/bin/env python3
"""Independent checker of the chaos soak (Benchmarks/chaos-soak.sh); Python standard library only, no
Spillway code. The truth is the captured table itself, not Spillway's audit table: every writer
transaction inserts a row at version 1 or sets version = version + 1, so a row whose final version is V
went through exactly the versions 1..V, each committed once, and a sink must have received each of them
at least once, per key in increasing order, ending at V.

  soak_checker.py TABLE_STATE NAME=[KIND:]PATH...
  soak_checker.py --self-test     feeds every check below correct and doctored input; exits 1 unless
                                  each doctored input fails and each correct one passes
    TABLE_STATE  lines "id|version" (psql -At) of the table's final state
    NAME=PATH             JSON Lines of change events in arrival order (file sink; the webhook receiver)
    NAME=kafka:PATH       kcat -J output of the topic (any order of lines): read back per partition in
                          offset order; every record's key must be the event's key, every key on one
                          partition, header spillway-id the event's id
    NAME=redis:SEEDS:KEYS a `del` sink's keys PREFIX{id}:{version}. SEEDS: lines "PREFIX FIRST_ID LAST_ID
                          MAX_VERSION" the soak SET before any change; KEYS: the keys left after the drain

Per sink it prints `sink=NAME lost=N duplicated=N reordered=N`:
  lost        versions 1..final of a row that never reached the sink (redis: seeded keys of committed
              versions still there)
  duplicated  copies beyond the first of a version (redis: n/a, a DEL leaves no trace of how often)
  reordered   per key, first occurrences of a version that came after a higher version's first occurrence
              (redis: n/a, a DEL leaves no trace of when)
and, when any is non-zero, a second line `sink=NAME extra: ...` with what else is wrong:
  stale_last  rows whose last event at the sink is not their final (id, version)
  phantom     events of a version the table never committed (above the final version, or of an unknown id;
              redis: seeded keys of uncommitted versions that are gone)
  bad_lines   lines that are not a JSON change event of the table (kafka: a record whose key or
              spillway-id header disagrees with its event, or a tombstone; redis: a key left that was
              never seeded)
  id_clash    one event id carried by two different (key, version) pairs, or one (key, version) by two ids
  split_keys  (kafka) keys whose records are on more than one partition: no order between them
  trimmed     (kafka) offsets missing from the read-back (below the first offset read, or gaps): records the
              broker no longer has, so nothing about them can be checked (librdkafka's mock cluster keeps
              only the last 5 MB or 100000 records of a partition and drops older ones, like retention)
and for redis always `sink=NAME unchecked=N`: committed versions outside the seeded grid, not checked.
Exits 1 if any sink has lost, reordered, stale_last, phantom, bad_lines, id_clash, split_keys or trimmed > 0.
"""
import json
import os
import sys
import tempfile
from collections import defaultdict

FAILING = ("lost", "reordered", "stale_last", "phantom", "bad_lines", "id_clash", "split_keys", "trimmed")


def read_state(path):
    final = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                key, version = line.split("|")
                final[int(key)] = int(version)
    return final


def parse_event(raw):
    """(key, version, event id) of a change event of `items`, or None."""
    try:
        event = json.loads(raw)
        after = event["after"]
        key, version = int(after["id"]), int(after["version"])
        if event["op"] not in ("insert", "update") or event["table"] != "items":
            return None
        if event["key"] != {"id": key}:
            return None
        return key, version, event.get("id")
    except (ValueError, KeyError, TypeError):
        return None


def check_stream(final, events, bad=0):
    """events: (key, version, event id) in the order the sink received them (per key is what counts)."""
    seen = defaultdict(list)  # id -> versions in arrival order
    by_event, by_version = {}, {}
    phantom = clash = 0
    for key, version, event_id in events:
        if key not in final or version > final[key] or version < 1:
            phantom += 1
            continue
        seen[key].append(version)
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
    return {"lost": lost, "duplicated": duplicated, "reordered": reordered, "stale_last": stale,
            "phantom": phantom, "bad_lines": bad, "id_clash": clash}


def check_jsonl(final, path):
    events, bad = [], 0
    with open(path, "rb") as f:
        for raw in f:
            parsed = parse_event(raw)
            if parsed is None:
                bad += 1
            else:
                events.append(parsed)
    return check_stream(final, events, bad)


def check_kafka(final, path):
    records = []
    with open(path, "rb") as f:
        for raw in f:
            if raw.strip():
                records.append(json.loads(raw))
    records.sort(key=lambda r: (r["partition"], r["offset"]))
    offsets = defaultdict(set)
    for record in records:
        offsets[record["partition"]].add(record["offset"])
    trimmed = sum(max(seen) + 1 - len(seen) for seen in offsets.values())
    events, bad = [], 0
    partitions = defaultdict(set)
    for record in records:
        parsed = parse_event(record["payload"]) if record.get("payload") is not None else None
        if parsed is None:
            bad += 1
            continue
        key, version, event_id = parsed
        headers = record.get("headers") or []
        header = dict(zip(headers[0::2], headers[1::2]))
        try:
            record_key = json.loads(record.get("key") or "null")
        except ValueError:
            record_key = None
        if record_key != {"id": key} or header.get("spillway-id") != event_id:
            bad += 1
            continue
        partitions[key].add(record["partition"])
        events.append(parsed)
    result = check_stream(final, events, bad)
    result["split_keys"] = sum(1 for p in partitions.values() if len(p) > 1)
    result["trimmed"] = trimmed
    return result


def check_redis(final, seeds_path, keys_path):
    with open(keys_path) as f:
        left = {line.strip() for line in f if line.strip()}
    lost = phantom = 0
    grid = {}  # prefix -> [(first id, last id, max version)]
    with open(seeds_path) as f:
        for line in f:
            if line.strip():
                prefix, first, last, top = line.split()
                grid.setdefault(prefix, []).append((int(first), int(last), int(top)))
    for prefix, ranges in grid.items():
        for first, last, top in ranges:
            for key in range(first, last + 1):
                committed = final.get(key, 0)
                for version in range(1, top + 1):
                    present = f"{prefix}{key}:{version}" in left
                    if version <= committed and present:
                        lost += 1
                    elif version > committed and not present:
                        phantom += 1

    def seeded(name):
        for prefix, ranges in grid.items():
            if name.startswith(prefix):
                key, _, version = name[len(prefix):].partition(":")
                if key.isdigit() and version.isdigit():
                    return any(a <= int(key) <= b and 1 <= int(version) <= t for a, b, t in ranges)
        return False

    def covered(key):  # the highest version seeded for this row under every prefix
        return min((max([t for a, b, t in ranges if a <= key <= b] or [0]) for ranges in grid.values()), default=0)

    unchecked = sum(max(0, top - covered(key)) for key, top in final.items())
    return {"lost": lost, "duplicated": "n/a", "reordered": "n/a", "stale_last": 0, "phantom": phantom,
            "bad_lines": sum(1 for name in left if not seeded(name)), "id_clash": 0, "unchecked": unchecked}


def check(final, spec):
    name, target = spec.split("=", 1)
    kind, _, rest = target.partition(":")
    if kind == "kafka":
        return name, check_kafka(final, rest)
    if kind == "redis":
        seeds, keys = rest.split(":", 1)
        return name, check_redis(final, seeds, keys)
    return name, check_jsonl(final, target)


def main(argv):
    if len(argv) == 2 and argv[1] == "--self-test":
        return self_test()
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[6], file=sys.stderr)
        return 2
    final = read_state(argv[1])
    failed = False
    for spec in argv[2:]:
        name, r = check(final, spec)
        print(f"sink={name} lost={r['lost']} duplicated={r['duplicated']} reordered={r['reordered']}")
        extra = {k: r.get(k, 0) for k in FAILING[2:]}
        if any(extra.values()):
            print(f"sink={name} extra: " + " ".join(f"{k}={v}" for k, v in extra.items()))
        if "unchecked" in r:
            print(f"sink={name} unchecked={r['unchecked']}")
        if any(isinstance(r.get(k), int) and r[k] > 0 for k in FAILING):
            failed = True
    return 1 if failed else 0


# --- self-test: each check must pass on a correct history and fail on a doctored one -------------------

def self_test():
    final = {1: 3, 2: 2, 3: 1}
    # A history interleaving rows, with a redelivered stretch (duplicates are allowed, in order per key).
    history = [(1, 1), (2, 1), (1, 2), (3, 1), (2, 2), (1, 2), (2, 2), (1, 3)]

    def event(key, version):
        return {"id": f"0/{key:X}-{version}", "op": "insert" if version == 1 else "update", "schema": "public",
                "table": "items", "key": {"id": key}, "after": {"id": key, "version": version, "payload": "x"}}

    def jsonl(pairs):
        return "".join(json.dumps(event(k, v)) + "\n" for k, v in pairs)

    def kcat(pairs, partition_of=lambda key, version: key % 2, key_of=None):
        lines, offsets = [], defaultdict(int)
        for k, v in pairs:
            p = partition_of(k, v)
            e = event(k, v)
            lines.append(json.dumps({"topic": "t", "partition": p, "offset": offsets[p],
                                     "key": json.dumps(key_of(k) if key_of else {"id": k}),
                                     "payload": json.dumps(e), "headers": ["spillway-id", e["id"]]}))
            offsets[p] += 1
        return "".join(reversed([line + "\n" for line in lines]))  # the reader must sort by offset itself

    swapped = [(1, 1), (2, 1), (1, 3), (3, 1), (2, 2), (1, 2)]  # row 1: 3 before 2
    redis_seeds = "p: 1 3 5\n"  # ids 1..3, versions 1..5; id 3 is committed only up to 1
    committed_keys = {f"p:{k}:{v}" for k in (1, 2, 3) for v in range(1, 6) if v <= final.get(k, 0)}
    all_keys = {f"p:{k}:{v}" for k in (1, 2, 3) for v in range(1, 6)}
    redis_left = sorted(all_keys - committed_keys)
    cases = [
        # (what, files, expect exit code, a field that must show the doctoring)
        ("file: correct, with redelivered copies", {"s": jsonl(history)}, "s", 0, "duplicated=2"),
        ("file: a line dropped", {"s": jsonl(history[:3] + history[4:])}, "s", 1, "lost=1"),
        ("file: two versions of a key swapped", {"s": jsonl(swapped)}, "s", 1, "reordered=1"),
        ("file: last event not the final version", {"s": jsonl(history + [(3, 1), (1, 2)])}, "s", 1, "stale_last=1"),
        ("file: a version never committed", {"s": jsonl(history + [(3, 2)])}, "s", 1, "phantom=1"),
        ("file: one id on two changes", {"s": jsonl(history).replace('"0/1-2"', '"0/1-1"')}, "s", 1, "id_clash=2"),
        ("file: a line that is no event", {"s": jsonl(history) + "{}\n"}, "s", 1, "bad_lines=1"),
        ("kafka: correct", {"k": kcat(history)}, "kafka:k", 0, "lost=0"),
        ("kafka: a record dropped", {"k": kcat(history[:-1])}, "kafka:k", 1, "lost=1"),
        ("kafka: two versions of a key swapped", {"k": kcat(swapped)}, "kafka:k", 1, "reordered=1"),
        ("kafka: a key on two partitions",
         {"k": kcat(history, partition_of=lambda key, version: key % 2 + (2 if (key, version) == (1, 3) else 0))},
         "kafka:k", 1, "split_keys=1"),
        ("kafka: the broker no longer has a partition's first record",
         {"k": "".join(l for l in kcat(history).splitlines(keepends=True) if '"partition": 1, "offset": 0,' not in l)},
         "kafka:k", 1, "trimmed=1"),
        ("kafka: a record key that is not the event's", {"k": kcat(history, key_of=lambda key: {"id": 9})},
         "kafka:k", 1, "bad_lines=8"),
        ("redis: correct", {"seeds": redis_seeds, "left": "\n".join(redis_left)}, "redis:seeds:left", 0, "lost=0"),
        ("redis: a committed version's key left", {"seeds": redis_seeds, "left": "\n".join(redis_left + ["p:2:2"])},
         "redis:seeds:left", 1, "lost=1"),
        ("redis: an uncommitted version's key gone", {"seeds": redis_seeds, "left": "\n".join(redis_left[1:])},
         "redis:seeds:left", 1, "phantom=1"),
        ("redis: a key left that was never seeded", {"seeds": redis_seeds, "left": "\n".join(redis_left + ["p:9:1"])},
         "redis:seeds:left", 1, "bad_lines=1"),
        ("redis: versions beyond the seeded grid are counted", {"seeds": "p: 1 3 2\n", "left": "p:3:2"},
         "redis:seeds:left", 0, "unchecked=1"),
    ]
    failures = 0
    with tempfile.TemporaryDirectory() as d:
        state = os.path.join(d, "state")
        with open(state, "w") as f:
            f.write("".join(f"{k}|{v}\n" for k, v in final.items()))
        for what, files, spec, want_rc, want in cases:
            for name, text in files.items():
                with open(os.path.join(d, name), "w") as f:
                    f.write(text)
            parts = spec.split(":")
            target = ":".join(p if p in ("kafka", "redis") else os.path.join(d, p) for p in parts)
            out = tempfile.TemporaryFile("w+")
            saved, sys.stdout = sys.stdout, out
            try:
                rc = main(["soak_checker.py", state, f"t={target}"])
            finally:
                sys.stdout = saved
            out.seek(0)
            printed = out.read().replace("\n", " ").strip()
            ok = rc == want_rc and want in printed.split()
            failures += 0 if ok else 1
            print(f"self-test {'ok  ' if ok else 'FAIL'} {what}: exit {rc} (want {want_rc}), {printed}")
    print(f"self-test: {len(cases) - failures} of {len(cases)} cases behaved")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
