import SpillwayApp
import SpillwayKafka
import SpillwayRedis
import SpillwaySinks
import SpillwayWebhook
import Testing

@testable import SpillwayCore

private func parse(source: String = "{tables: [public.products]}", _ sinks: String) throws(ConfigError) -> SpillwayConfig {
    try parseConfig(source: source, sinks: sinks)
}

private func error(_ body: () throws -> SpillwayConfig) -> ConfigError? { thrownConfigError(body) }

@Suite("source.outbox in the configuration")
struct OutboxConfigTests {
    @Test func oneObjectWithDefaultsIsCapturedImplicitly() throws {
        let config = try parse(source: "{tables: [public.orders], outbox: {table: public.outbox}}", "  - {name: f, kind: file, path: out}")
        #expect(config.source.outbox == [OutboxTable(table: QualifiedName(schema: "public", name: "outbox"), routeBy: "aggregate_type",
                                                     key: "aggregate_id", payload: "payload", deleteAfter: false, configKey: "source.outbox")])
        #expect(config.source.tables.map(\.description) == ["public.orders", "public.outbox"])
    }

    @Test func aListWithEveryKey() throws {
        let config = try parse(source: """
            {tables: [public.orders, public.outbox], outbox: [{table: public.outbox, route_by: type, key: agg, payload: body, delete_after: true},
                                                            {table: billing.outbox}]}
            """, "  - {name: f, kind: file, path: out}")
        #expect(config.source.outbox.count == 2)
        #expect(config.source.outbox[0] == OutboxTable(table: QualifiedName(schema: "public", name: "outbox"), routeBy: "type", key: "agg",
                                                       payload: "body", deleteAfter: true, configKey: "source.outbox[0]"))
        #expect(config.source.outbox[1].configKey == "source.outbox[1]")
        #expect(config.source.tables.map(\.description) == ["public.orders", "public.outbox", "billing.outbox"])
    }

    @Test func errorsNameTheKey() throws {
        let cases: [(String, String)] = [
            ("{tables: [public.orders], outbox: {route_by: type}}", "source.outbox.table"),
            ("{tables: [public.orders], outbox: {table: 'not a table!'}}", "source.outbox.table"),
            ("{tables: [public.orders], outbox: [{table: public.outbox}, {table: public.outbox}]}", "source.outbox[1].table"),
            ("{tables: [public.orders], outbox: {table: public.outbox, route_by: ''}}", "source.outbox.route_by"),
            ("{tables: [public.orders], outbox: {table: public.outbox, delete_after: maybe}}", "source.outbox.delete_after"),
            ("{tables: [public.orders], outbox: {table: public.outbox, rout_by: type}}", "source.outbox.rout_by"),
            ("{tables: [public.orders], outbox: public.outbox}", "source.outbox"),
        ]
        for (source, key) in cases {
            let failure = error { try parse(source: source, "  - {name: f, kind: file, path: out}") }
            #expect(failure?.key == key, "\(source)")
        }
    }

    @Test func routeIsAPlaceholderForKafkaTopicsAndWebhookURLs() throws {
        let config = try parse(source: "{tables: [public.orders], outbox: {table: public.outbox}}", """
              - {name: k, kind: kafka, brokers: [b:9092], topic: 'events.{route}'}
              - {name: w, kind: webhook, url: 'https://h/{route}'}
            """)
        let kafka = try #require(config.sinks[0].settings as? KafkaSinkSettings)
        #expect(kafka.outboxTables == [QualifiedName(schema: "public", name: "outbox")])
        #expect(kafka.template(schema: "public", table: "outbox").text == "events.{route}")
        let standard = try parse(source: "{tables: [public.orders], outbox: {table: public.outbox}}", "  - {name: k, kind: kafka, brokers: [b:9092]}")
        let plain = try #require(standard.sinks[0].settings as? KafkaSinkSettings)
        #expect(plain.template(schema: "public", table: "outbox").text == "{prefix}.{route}")
        #expect(plain.template(schema: "public", table: "orders").text == "{prefix}.{schema}.{table}")
    }
}
