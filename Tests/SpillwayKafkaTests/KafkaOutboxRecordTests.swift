import SpillwayCore
import Testing

@testable import SpillwayKafka

private func text(_ bytes: [UInt8]?) -> String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

private let outbox = OutboxTable(table: QualifiedName(schema: "public", name: "outbox"), deleteAfter: true)

/// An insert into the outbox as a source reads it, routed as the pipeline routes it.
private func routed(_ id: String, type: JSONValue, aggregate: JSONValue, payload: JSONValue, tenant: String? = nil) -> ChangeEvent {
    let row: JSONObject = ["id": .number(id), "aggregate_type": type, "aggregate_id": aggregate, "payload": payload]
    let insert = ChangeEvent(id: "9-\(id)", op: .insert, schema: "public", table: "outbox", key: ["id": .number(id)], after: row,
                             txid: 9, position: "9/\(id)", tenant: tenant)
    return OutboxRouter([outbox]).route([insert]).events[0]
}

private func settings(topic: String? = nil, topics: [QualifiedName: EventTemplate] = [:]) throws -> KafkaSinkSettings {
    var settings = KafkaSinkSettings(brokers: ["127.0.0.1:1"], prefix: "shop", topic: try topic.map { try EventTemplate(parsing: $0) } ?? .standardTopic,
                                     topics: topics)
    settings.outboxTables = [outbox.table]
    return settings
}

@Suite("Kafka records of outbox events (no servers)")
struct KafkaOutboxRecordTests {
    @Test func routedByTheRouteColumnKeyedByTheKeyColumnValuedByThePayload() throws {
        let event = routed("1", type: .string("Order"), aggregate: .string("o-17"),
                           payload: .object(["total": .number("39.90"), "items": .array([.number("1")])]), tenant: "acme")
        let records = try KafkaSink.records(for: [event], settings: try settings())
        try #require(records.messages.count == 1)
        let record = records.messages[0]
        #expect(record.topic == "shop.Order")
        #expect(text(record.key) == "o-17")
        #expect(text(record.value) == #"{"total":39.90,"items":[1]}"#)
        #expect(record.headers.map(\.name) == ["spillway-id", "spillway-op", "spillway-table", "spillway-txid", "spillway-tenant", "spillway-route"])
        #expect(record.headers.map { text($0.value) } == ["9-1", "insert", "public.outbox", "9", "acme", "Order"])
    }

    @Test func aTextPayloadIsItsBytesAndANumberKeyItsText() throws {
        let event = routed("2", type: .string("Customer Events"), aggregate: .number("42"), payload: .string("plain \"text\""))
        let record = try #require(try KafkaSink.records(for: [event], settings: try settings()).messages.first)
        #expect(record.topic == "shop.Customer_Events")  // Kafka-safe rendering of the route
        #expect(text(record.key) == "42")
        #expect(text(record.value) == #"plain "text""#)
    }

    @Test func aNullRouteAndKey() throws {
        let event = routed("3", type: .null, aggregate: .null, payload: .null)
        let record = try #require(try KafkaSink.records(for: [event], settings: try settings()).messages.first)
        #expect(record.topic == "shop._none")
        #expect(record.key == nil)
        #expect(text(record.value) == "null")
        #expect(!record.headers.map(\.name).contains("spillway-route"))
    }

    @Test func topicTemplates() throws {
        let event = routed("4", type: .string("Order"), aggregate: .string("o-1"), payload: .object([:]))
        // `topic` without {route} is for the other tables; with {route} it is the outbox's too.
        #expect(try KafkaSink.records(for: [event], settings: try settings(topic: "cdc.{table}")).messages[0].topic == "shop.Order")
        #expect(try KafkaSink.records(for: [event], settings: try settings(topic: "events.{route}.v1")).messages[0].topic == "events.Order.v1")
        let own = try settings(topics: [outbox.table: try EventTemplate(parsing: "{route}-{tenant|none}")])
        #expect(try KafkaSink.records(for: [event], settings: own).messages[0].topic == "Order-none")
        // Events of two routes in one batch go to two topics (the topic is rendered per event).
        let other = routed("5", type: .string("Invoice"), aggregate: .string("i-1"), payload: .object([:]))
        #expect(try KafkaSink.records(for: [event, other], settings: try settings()).messages.map(\.topic) == ["shop.Order", "shop.Invoice"])
    }

    @Test func otherTablesAreUnchanged() throws {
        let product = ChangeEvent(id: "9-9", op: .insert, schema: "public", table: "products", key: ["id": .number("1")],
                                  after: ["id": .number("1")], position: "9/9")
        let record = try #require(try KafkaSink.records(for: [product], settings: try settings()).messages.first)
        #expect(record.topic == "shop.public.products")
        #expect(record.value == product.jsonBytes)
        #expect(text(record.key) == #"{"id":1}"#)
    }
}
