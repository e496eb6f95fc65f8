"""A consumer of Debezium PostgreSQL change events, written from Debezium's documentation (PostgreSQL
connector, "Data change events"; JSON converter with schemas.enable=false) and nothing of Spillway's.

Reads kcat -J output (one JSON object per record: key, payload) and prints one line per record:
  `<op> <schema>.<table> <key json>` for a change, `tombstone <key json>` for a tombstone.
Exits 1 naming the record when a record breaks the documented shape.
"""
import json
import sys

REQUIRED_SOURCE = ["version", "connector", "name", "ts_ms", "snapshot", "db", "schema", "table"]


def fail(index, problem):
    print(f"record {index}: {problem}", file=sys.stderr)
    sys.exit(1)


def main(path):
    last_delete_key = {}
    with open(path) as lines:
        for index, line in enumerate(lines):
            record = json.loads(line)
            key_text = record.get("key")
            key = json.loads(key_text) if key_text is not None else None
            key_repr = json.dumps(key, sort_keys=True)
            if record.get("payload") is None:
                # "a tombstone event ... has the same key as the delete event" and follows it.
                if key is None or last_delete_key.get(record["partition"]) != key_repr:
                    fail(index, "a tombstone that does not follow a delete of the same key")
                last_delete_key[record["partition"]] = None
                print(f"tombstone {key_repr}")
                continue
            value = json.loads(record["payload"])
            for field in ["before", "after", "source", "op", "ts_ms"]:
                if field not in value:
                    fail(index, f"no {field}")
            source = value["source"]
            for field in REQUIRED_SOURCE:
                if field not in source:
                    fail(index, f"no source.{field}")
            if source["connector"] != "postgresql":
                fail(index, "connector is not postgresql")
            if not isinstance(value["ts_ms"], int):
                fail(index, "ts_ms is not a number")
            op = value["op"]
            before, after = value["before"], value["after"]
            if op in ("c", "r"):
                if before is not None or not isinstance(after, dict):
                    fail(index, "a create or read needs before null and an after row")
            elif op == "u":
                if not isinstance(after, dict):
                    fail(index, "an update needs an after row")
            elif op == "d":
                if not isinstance(before, dict) or after is not None:
                    fail(index, "a delete needs a before row and after null")
                last_delete_key[record["partition"]] = key_repr
            elif op == "t":
                pass
            else:
                fail(index, f"unknown op {op}")
            row = after if after is not None else before
            if key is not None and row is not None and any(row.get(k) != v for k, v in key.items()):
                fail(index, "the key does not match the row")
            print(f"{op} {source['schema']}.{source['table']} {key_repr}")


if __name__ == "__main__":
    main(sys.argv[1])
