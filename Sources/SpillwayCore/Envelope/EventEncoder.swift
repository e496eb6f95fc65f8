/// Turns an event into the bytes a sink writes, in the sink's `format`. The processing time for Debezium's
/// `ts_ms` comes from `now` (milliseconds since 1970), so the core reads no clock itself.
public struct EventEncoder: Sendable {
    public var format: EventFormat
    public var envelope: DebeziumEnvelope
    public var now: @Sendable () -> Int64
    public var cloudEvents: CloudEventsEnvelope

    public init(format: EventFormat, envelope: DebeziumEnvelope, now: @escaping @Sendable () -> Int64,
                cloudEvents: CloudEventsEnvelope? = nil) {
        self.format = format
        self.envelope = envelope
        self.now = now
        self.cloudEvents = cloudEvents ?? CloudEventsEnvelope(consumer: envelope.serverName)
    }

    /// Spillway's own event JSON (every sink's default).
    public static let spillway = EventEncoder(format: .spillway, envelope: DebeziumEnvelope(serverName: "", database: ""), now: { 0 })

    public func write(_ event: ChangeEvent, into out: inout [UInt8]) {
        switch format {
        case .spillway: event.writeJSON(into: &out)
        case .debezium: JSONEncoding.write(envelope.value(event, nowMilliseconds: now()), into: &out)
        case .cloudevents: cloudEvents.write(event, into: &out)
        }
    }

    /// The HTTP content type of a request carrying one event (`isBatch` false) or a JSON array of them.
    public func contentType(isBatch: Bool) -> String {
        switch format {
        case .spillway, .debezium: return "application/json"
        case .cloudevents: return isBatch ? CloudEventsEnvelope.batchContentType : CloudEventsEnvelope.contentType
        }
    }

    public func bytes(_ event: ChangeEvent) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(event, into: &out)
        return out
    }

    /// Whether a delete is followed by a tombstone whatever the sink's own setting: Debezium sends one by
    /// default (`tombstones.on.delete`), and consumers of its envelope expect it.
    public var alwaysSendsTombstones: Bool { format == .debezium }
}

extension DebeziumEnvelope {
    /// The database name of a `postgres://host/db` URL or a `dbname=db` connection string; empty when
    /// neither names one (libpq then uses the user name, which Spillway does not guess).
    public static func databaseName(connection text: String) -> String {
        if let scheme = text.range(of: "://") {
            let rest = text[scheme.upperBound...]
            guard let slash = rest.firstIndex(of: "/") else { return "" }
            let path = rest[rest.index(after: slash)...].prefix { $0 != "?" && $0 != "#" }
            return String(path).removingPercentEscapes
        }
        for part in text.split(whereSeparator: { $0 == " " || $0 == "\t" }) {
            let pair = part.split(separator: "=", maxSplits: 1)
            if pair.count == 2, pair[0] == "dbname" { return String(pair[1]).trimmingCharacters(in: "'") }
        }
        return ""
    }
}

extension String {
    /// `%41` → `A`; a malformed escape stays as written.
    var removingPercentEscapes: String {
        var bytes: [UInt8] = []
        var utf8 = Array(self.utf8)[...]
        while let b = utf8.popFirst() {
            if b == UInt8(ascii: "%"), utf8.count >= 2,
               let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(b)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
