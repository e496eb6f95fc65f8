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

private func event(tenant: String?, table: String = "products") -> ChangeEvent {
    ChangeEvent(id: "1-1", op: .insert, schema: "public", table: table, key: ["id": .number("1")], after: ["id": .number("1")],
                position: "1/1", tenant: tenant)
}

@Suite("sinks[].tenant_fallback in the configuration")
struct TenantFallbackConfigTests {
    @Test func unsetKeepsTodaysRendering() throws {
        let config = try parse("  - {name: k, kind: kafka, brokers: [b:9092], topic: '{tenant}.{table}'}")
        #expect(config.sinks[0].tenantFallback == nil)
        #expect(config.sinks[0].filter.acceptsEverything)
        let settings = try #require(config.sinks[0].settings as? KafkaSinkSettings)
        #expect(try KafkaSinkSettingsTopic.topic(event(tenant: nil), settings) == "_none.products")
    }

    @Test func skipFiltersEventsWithoutATenant() throws {
        let config = try parse("  - {name: f, kind: file, path: out, tenant_fallback: skip}")
        let filter = config.sinks[0].filter
        #expect(config.sinks[0].tenantFallback == .skip)
        #expect(!filter.acceptsEverything)
        #expect(filter.accepts(event(tenant: "acme")))
        #expect(!filter.accepts(event(tenant: nil)))
        #expect(!filter.accepts(event(tenant: "")))
    }

    @Test func errorIsKeptForTheFanout() throws {
        let config = try parse("  - {name: f, kind: file, path: out, tenant_fallback: error}")
        #expect(config.sinks[0].tenantFallback == .error)
        #expect(config.sinks[0].filter.acceptsEverything)  // not filtered: its delivery fails instead
        let message = MissingTenantError(event: event(tenant: nil), sink: "f", key: "sinks[0].tenant_fallback").description
        #expect(message.contains("event 1-1 (public.products)"))
        #expect(message.contains("sink 'f'"))
        #expect(message.contains("sinks[0].tenant_fallback"))
    }

    @Test func defaultRendersTheTenantInEverySinkKindsTemplates() throws {
        let config = try parse("""
              - {name: k, kind: kafka, brokers: [b:9092], topic: '{prefix}.{tenant}.{table}', tenant_fallback: {default: shared}}
              - {name: w, kind: webhook, url: 'https://h/{tenant}/{table}', tenant_fallback: {default: shared}}
              - {name: r, kind: redis, url: 'redis://h', keys: {public.products: ['t:{tenant}:p:{key.id}']}, tenant_fallback: {default: shared}}
              - {name: n, kind: notify, channel: 'ch_{tenant}', tenant_fallback: {default: shared}}
            """)
        #expect(config.sinks.map(\.tenantFallback) == Array(repeating: .default("shared"), count: 4))
        let kafka = try #require(config.sinks[0].settings as? KafkaSinkSettings)
        #expect(try KafkaSinkSettingsTopic.topic(event(tenant: nil), kafka) == "spillway.shared.products")
        #expect(try KafkaSinkSettingsTopic.topic(event(tenant: "acme"), kafka) == "spillway.acme.products")
        let webhook = try #require(config.sinks[1].settings as? WebhookSinkSettings)
        #expect(webhook.url.rendered(event(tenant: nil), as: .url) == "https://h/shared/products")
        let redis = try #require(config.sinks[2].settings as? RedisSinkSettings)
        #expect(redis.templates(schema: "public", table: "products")[0].render(event(tenant: nil), as: .plain) == "t:shared:p:1")
        let notify = try #require(config.sinks[3].settings as? NotifySinkSettings)
        #expect(notify.channel.rendered(event(tenant: nil), as: .plain) == "ch_shared")
    }

    @Test func aPlainStringOtherThanSkipOrErrorNamesTheKeyAndTheDefaultForm() throws {
        let failure = try #require(error { try parse("  - {name: f, kind: file, path: out}\n  - {name: g, kind: file, path: o2, tenant_fallback: shared}") })
        #expect(failure.key == "sinks[1].tenant_fallback")
        #expect(failure.problem == "'shared' is neither skip nor error")
        #expect(failure.fix.contains("tenant_fallback: {default: shared}"))
    }

    @Test func malformedDefaults() throws {
        let empty = try #require(error { try parse("  - {name: f, kind: file, path: out, tenant_fallback: {default: ''}}") })
        #expect(empty.key == "sinks[0].tenant_fallback.default")
        let typo = try #require(error { try parse("  - {name: f, kind: file, path: out, tenant_fallback: {defualt: x}}") })
        #expect(typo.key.hasPrefix("sinks[0].tenant_fallback"))
        let list = try #require(error { try parse("  - {name: f, kind: file, path: out, tenant_fallback: [skip]}") })
        #expect(list.key == "sinks[0].tenant_fallback")
    }
}

/// The topic a Kafka sink's settings give an event (the records' own rendering, through the public API).
private enum KafkaSinkSettingsTopic {
    static func topic(_ event: ChangeEvent, _ settings: KafkaSinkSettings) throws -> String {
        settings.template(schema: event.schema, table: event.table).rendered(event, as: .topicName, prefix: settings.prefix)
    }
}

