/// Encodes events as CloudEvents 1.0 in structured mode (the JSON event format): the context attributes
/// at the top level and Spillway's own event, unchanged, as `data`. Pure.
///
/// - `id`: the event's id, so a receiver that de-duplicates by CloudEvents `id` (with `source`, as the spec
///   says) drops exactly the redeliveries at-least-once allows.
/// - `source`: `/spillway/<consumer>`: one producer per consumer, whatever the host it runs on.
/// - `type`: `<consumer>.<schema>.<table>.<op>`, the issue's `<prefix>.<schema>.<table>.<op>` with the consumer
///   as the prefix (as Debezium's envelope names its server), e.g. `search-sync.public.products.update`.
/// - `subject`: the primary key as compact JSON (`{"id":1}`), absent for a table without one.
/// - `time`: the commit time (RFC 3339, UTC), absent where the source has none.
/// - `datacontenttype`: `application/json`.
public struct CloudEventsEnvelope: Sendable {
    /// `application/cloudevents+json`: one event per request (HTTP structured content mode).
    public static let contentType = "application/cloudevents+json"
    /// `application/cloudevents-batch+json`: a JSON array of events (HTTP batched content mode).
    public static let batchContentType = "application/cloudevents-batch+json"

    public var consumer: String

    public init(consumer: String) { self.consumer = consumer }

    public var source: String { "/spillway/" + consumer }

    public func type(of event: ChangeEvent) -> String {
        "\(consumer).\(event.schema).\(event.table).\(event.op.rawValue)"
    }

    public func write(_ event: ChangeEvent, into out: inout [UInt8]) {
        func member(_ name: String, _ value: String) {
            JSONEncoding.writeString(name, into: &out)
            out.append(UInt8(ascii: ":"))
            JSONEncoding.writeString(value, into: &out)
            out.append(UInt8(ascii: ","))
        }
        out.append(UInt8(ascii: "{"))
        member("specversion", "1.0")
        member("id", event.id)
        member("source", source)
        member("type", type(of: event))
        if let key = event.key { member("subject", JSONEncoding.string(.object(key))) }
        if let time = event.commitTime { member("time", time) }
        member("datacontenttype", "application/json")
        JSONEncoding.writeString("data", into: &out)
        out.append(UInt8(ascii: ":"))
        event.writeJSON(into: &out)
        out.append(UInt8(ascii: "}"))
    }
}
