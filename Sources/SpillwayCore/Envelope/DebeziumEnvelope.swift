/// A sink's `format`: the shape of what it writes for each event.
public enum EventFormat: String, Sendable, Hashable, CaseIterable {
    /// Spillway's change event (README, "The change event"). The default.
    case spillway
    /// Debezium's PostgreSQL connector change event, as its JSON converter writes it with
    /// `schemas.enable=false`: the value `{"before","after","source","op","ts_ms","transaction"}` and the key
    /// (the primary-key columns), so consumers written for Debezium read Spillway's events unchanged.
    case debezium
    /// CloudEvents 1.0, structured mode: Spillway's event as `data` (`CloudEventsEnvelope`). Webhook and file
    /// sinks.
    case cloudevents
}

/// Encodes events as Debezium change events. Pure: the processing time comes in as `nowMilliseconds`.
///
/// What is filled (README, "format: debezium"): `op` c/u/d/t (and `m` for logical messages); `before`/`after`
/// as Spillway maps values; `source` with `version` (Spillway's), `connector: "postgresql"`, `name` (the
/// consumer, Debezium's `topic.prefix`), `ts_ms` (commit time), `snapshot: "false"`, `db`, `schema`,
/// `table`, `txId` and, for the replication source, `lsn` (the commit's LSN); `sequence` and `xmin` are null.
public struct DebeziumEnvelope: Sendable {
    /// `source.version`.
    public static let version = "spillway-0"

    /// `source.name`: the logical server name (Debezium's topic prefix).
    public var serverName: String
    /// `source.db`: the database.
    public var database: String

    public init(serverName: String, database: String) {
        self.serverName = serverName
        self.database = database
    }

    /// Debezium's `op` for a Spillway operation.
    public static func op(_ operation: ChangeEvent.Operation) -> String {
        switch operation {
        case .insert: return "c"
        case .update: return "u"
        case .delete: return "d"
        case .truncate: return "t"
        case .message: return "m"
        case .read: return "r"
        }
    }

    /// The record value.
    public func value(_ event: ChangeEvent, nowMilliseconds: Int64) -> JSONValue {
        var fields: [(String, JSONValue)] = []
        if event.op != .message {
            fields.append(("before", event.before.map { .object($0) } ?? .null))
            fields.append(("after", event.after.map { .object($0) } ?? .null))
        }
        fields.append(("source", .object(source(event))))
        fields.append(("op", .string(Self.op(event.op))))
        fields.append(("ts_ms", .integer(nowMilliseconds)))
        if let message = event.message {
            // Debezium sends a message's content as base64 bytes.
            fields.append(("message", .object(JSONObject([
                ("prefix", .string(message.prefix)), ("content", .string(Base64Encoding.encode(Array(message.content.utf8)))),
            ]))))
        }
        fields.append(("transaction", .null))
        return .object(JSONObject(fields))
    }

    /// The record key: the primary-key columns, `{"id": 1}`; nil when the event has none (truncates,
    /// messages, tables without a primary key), which Debezium also sends without a key.
    public func key(_ event: ChangeEvent) -> JSONValue? {
        event.key.map { .object($0) }
    }

    /// Whether Debezium follows this event with a tombstone (same key, null value) so that log compaction
    /// can drop the row's records: after every delete of a row with a key.
    public static func isFollowedByTombstone(_ event: ChangeEvent) -> Bool {
        event.op == .delete && event.key != nil
    }

    func source(_ event: ChangeEvent) -> JSONObject {
        let commitMilliseconds = event.commitTime.flatMap(ISOTimestamp.secondsSince1970(utc:)).map { Int64(($0 * 1000).rounded(.down)) }
        return JSONObject([
            ("version", .string(Self.version)),
            ("connector", .string("postgresql")),
            ("name", .string(serverName)),
            ("ts_ms", commitMilliseconds.map { .integer($0) } ?? .null),
            ("snapshot", .string("false")),
            ("db", .string(database)),
            ("sequence", .null),
            ("schema", .string(event.schema)),
            ("table", .string(event.table)),
            ("txId", event.txid.map { .integer($0) } ?? .null),
            ("lsn", Self.lsn(of: event).map { .integer($0) } ?? .null),
            ("xmin", .null),
        ])
    }

    /// The commit LSN of a replication event (`position` is `<commit LSN>:<index>`); nil for audit_log
    /// positions (`<txid>/<seq>`), which have none.
    static func lsn(of event: ChangeEvent) -> UInt64? {
        guard let colon = event.position.firstIndex(of: ":") else { return nil }
        return LSN(string: String(event.position[..<colon]))?.rawValue
    }
}

/// Standard base64 with padding (RFC 4648), for the few bytes Debezium's shape wants so (encoding only; the
/// webhook settings have their own decoder).
enum Base64Encoding {
    static func encode(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 2 < bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], UInt8(ascii: "="), UInt8(ascii: "=")]
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], UInt8(ascii: "=")]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
