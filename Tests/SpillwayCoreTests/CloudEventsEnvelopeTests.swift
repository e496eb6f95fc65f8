import Testing
@testable import SpillwayCore

/// CloudEvents 1.0 structured mode (the spec's JSON event format): required attributes `specversion`, `id`,
/// `source`, `type`; optional `subject`, `time`, `datacontenttype`; the change event itself as `data`.
@Suite("CloudEvents envelope")
struct CloudEventsEnvelopeTests {
    static let encoder = EventEncoder(format: .cloudevents, envelope: DebeziumEnvelope(serverName: "search-sync", database: "shop"), now: { 0 })

    static func event(key: JSONObject?, commitTime: String? = "2026-11-25T23:13:28.834489Z") -> ChangeEvent {
        ChangeEvent(id: "0/16E9058-2", op: .update, schema: "public", table: "products", key: key,
                    before: nil, after: ["id": .integer(7), "name": .string("Kettle")], txid: 727, commitTime: commitTime,
                    position: "0/16E9058:2")
    }

    @Test("the attributes and the event as data, in the JSON event format")
    func attributes() throws {
        let event = Self.event(key: ["id": .integer(7)])
        let parsed = try #require(try JSONParser.parse(String(decoding: Self.encoder.bytes(event), as: UTF8.self)).objectValue)
        #expect(parsed.fields.map(\.name) == ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"])
        #expect(parsed["specversion"] == .string("1.0"))
        #expect(parsed["id"] == .string("0/16E9058-2"), "the change event's id: receivers de-duplicate by (source, id)")
        #expect(parsed["source"] == .string("/spillway/search-sync"))
        #expect(parsed["type"] == .string("search-sync.public.products.update"))
        #expect(parsed["subject"] == .string(#"{"id":7}"#))
        #expect(parsed["time"] == .string("2026-11-25T23:13:28.834489Z"))
        #expect(parsed["datacontenttype"] == .string("application/json"))
        #expect(parsed["data"].map { JSONEncoding.string($0) } == String(decoding: event.jsonBytes, as: UTF8.self), "data is the event, unchanged")
    }

    @Test("no key, no commit time: subject and time are left out, not sent empty")
    func optionalAttributes() throws {
        let parsed = try #require(try JSONParser.parse(String(decoding: Self.encoder.bytes(Self.event(key: nil, commitTime: nil)), as: UTF8.self)).objectValue)
        #expect(parsed["subject"] == nil && parsed["time"] == nil)
        #expect(parsed["specversion"] != nil && parsed["data"] != nil)
    }

    @Test("content types: structured for one event, batched for an array; other formats plain JSON")
    func contentTypes() {
        #expect(Self.encoder.contentType(isBatch: false) == "application/cloudevents+json")
        #expect(Self.encoder.contentType(isBatch: true) == "application/cloudevents-batch+json")
        #expect(EventEncoder.spillway.contentType(isBatch: false) == "application/json")
        #expect(EventEncoder.spillway.contentType(isBatch: true) == "application/json")
    }
}
