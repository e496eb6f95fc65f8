import Testing
import SpillwayApp
@testable import SpillwayCore
import SpillwayKafka
import SpillwayRedis
import SpillwaySinks
import SpillwayWebhook

/// A config with one kafka sink whose keys (after name and kind) are `sink`, indented by 4.
private func kafkaYAML(_ sink: String, tables: String = "[public.products, public.orders]", consumer: String = "search-sync") -> String {
    """
    database: {url: "postgres://localhost/shop"}
    consumer: \(consumer)
    source: {tables: \(tables)}
    sinks:
      - name: out
        kind: file
        path: changes.jsonl
      - name: bus
        kind: kafka
    \(sink.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n"))
    """
}

private func kafkaSettings(_ sink: String, consumer: String = "search-sync",
                           environment: [String: String] = [:]) throws -> KafkaSinkSettings {
    let config = try SpillwayConfig.parse(yaml: kafkaYAML(sink, consumer: consumer), environment: environment)
    guard let settings = config.sinks[1].settings as? KafkaSinkSettings else {
        Issue.record("sinks[1] is not a kafka sink")
        throw ConfigError(key: "sinks[1]", problem: "not kafka", fix: "")
    }
    #expect(config.sinks[1].kind == "kafka")
    return settings
}

private func kafkaError(_ sink: String, tables: String = "[public.products, public.orders]",
                        environment: [String: String] = [:]) -> ConfigError? {
    do {
        _ = try SpillwayConfig.parse(yaml: kafkaYAML(sink, tables: tables), environment: environment)
        return nil
    } catch {
        return error
    }
}

private func event(schema: String = "public", table: String = "products", op: ChangeEvent.Operation = .insert,
                   tenant: String? = nil) -> ChangeEvent {
    ChangeEvent(id: "7-1", op: op, schema: schema, table: table, key: ["id": .number("1")], position: "7/1", tenant: tenant)
}

@Suite("Kafka sink configuration and topic templates")
struct KafkaSinkConfigTests {
    @Test func defaults() throws {
        let settings = try kafkaSettings("brokers: kafka-1:9092")
        #expect(settings.brokers == ["kafka-1:9092"])
        #expect(settings.prefix == "search-sync", "the prefix defaults to the consumer name")
        #expect(settings.topic.text == "{prefix}.{schema}.{table}")
        #expect(settings.topics.isEmpty)
        #expect(settings.tombstones == false)
        #expect(settings.properties.isEmpty)
        #expect(settings.timeout == .seconds(30))
    }

    @Test func everyKey() throws {
        let settings = try kafkaSettings("""
            brokers: [kafka-1:9092, "kafka-2:9092,kafka-3:9093"]
            prefix: neon
            topic: "{prefix}.{tenant}.{table}"
            topics: {public.products: products-topic, orders: "{prefix}.orders-{op}"}
            tombstones: true
            properties: {security.protocol: SASL_SSL, sasl.password: hunter2, linger.ms: 20}
            timeout: 5s
            tables: [public.products, public.orders]
            ops: [insert, delete]
            """)
        #expect(settings.brokers == ["kafka-1:9092", "kafka-2:9092", "kafka-3:9093"])
        #expect(settings.prefix == "neon")
        #expect(settings.topic.fields == [.prefix, .tenant, .table])
        #expect(settings.topics[QualifiedName(schema: "public", name: "products")]?.text == "products-topic")
        #expect(settings.topics[QualifiedName(schema: "public", name: "orders")]?.text == "{prefix}.orders-{op}")
        #expect(settings.tombstones)
        #expect(settings.properties == ["security.protocol": "SASL_SSL", "sasl.password": "hunter2", "linger.ms": "20"])
        #expect(settings.timeout == .seconds(5))
    }

    @Test func prefixNeonSendsProductsToNeonPublicProducts() throws {
        let settings = try kafkaSettings("brokers: k:9092\nprefix: neon")
        let products = event()
        #expect(settings.template(schema: "public", table: "products").rendered(products, as: .topicName, prefix: settings.prefix) == "neon.public.products")
    }

    @Test func perTableOverridesWinAndMayBeTemplates() throws {
        let settings = try kafkaSettings("brokers: k:9092\nprefix: p\ntopics: {public.products: products-topic, public.orders: \"{prefix}-orders.{op}\"}")
        #expect(settings.template(schema: "public", table: "products").rendered(event(), as: .topicName, prefix: "p") == "products-topic")
        let order = event(table: "orders", op: .delete)
        #expect(settings.template(schema: "public", table: "orders").rendered(order, as: .topicName, prefix: "p") == "p-orders.delete")
        #expect(settings.template(schema: "public", table: "other").text == "{prefix}.{schema}.{table}")
    }

    @Test func renderingSanitisesValuesAndFallsBackForAMissingTenant() throws {
        let template = try EventTemplate(parsing: "{prefix}.{tenant}.{schema}.{table}.{op}")
        #expect(template.rendered(event(tenant: "acme"), as: .topicName, prefix: "x") == "x.acme.public.products.insert")
        #expect(template.rendered(event(tenant: nil), as: .topicName, prefix: "x") == "x._none.public.products.insert")
        #expect(template.rendered(event(tenant: ""), as: .topicName, prefix: "x") == "x._none.public.products.insert")
        #expect(template.rendered(event(schema: "Sales Data", table: "größe", tenant: "org/1"), as: .topicName, prefix: "a b")
                == "a_b.org_1.Sales_Data.gr__e.insert")
    }

    @Test func theDefaultPrefixIsTheConsumerNameMadeSafe() throws {
        #expect(try kafkaSettings("brokers: k:9092", consumer: "\"search sync/1\"").prefix == "search_sync_1")
    }

    @Test(arguments: [
        ("\"{prefix}.{schema}.{tabel}\"", "unknown placeholder '{tabel}' (column 19)"),
        ("\"{prefix}.{schema\"", "contains '{'"),
        ("\"prefix}.x\"", "contains '}'"),
        ("orders topic", "contains ' '"),
        ("\"\"", "empty"),
        ("", "empty"),
        ("..", "not allowed"),
    ])
    func badTopicTemplatesNameTheKey(template: String, problem: String) {
        let error = kafkaError("brokers: k:9092\ntopic: \(template)")
        #expect(error?.key == "sinks[1].topic")
        #expect(error?.problem.contains(problem) == true, "\(String(describing: error))")
    }

    @Test func badOverridesNameTheirKey() {
        #expect(kafkaError("brokers: k:9092\ntopics: {public.products: \"{nope}\"}")?.key == "sinks[1].topics.public.products")
        let uncaptured = kafkaError("brokers: k:9092\ntopics: {public.prodcts: t}")
        #expect(uncaptured?.key == "sinks[1].topics.public.prodcts")
        #expect(uncaptured?.problem.contains("not a table this sink receives") == true)
        // A table outside the sink's own `tables` filter would never use its override either.
        let filtered = kafkaError("brokers: k:9092\ntables: [public.orders]\ntopics: {public.products: t}")
        #expect(filtered?.key == "sinks[1].topics.public.products")
    }

    @Test func otherErrors() {
        #expect(kafkaError("prefix: x")?.key == "sinks[1].brokers")
        #expect(kafkaError("brokers: []")?.key == "sinks[1].brokers")
        #expect(kafkaError("brokers: \"a:1,,b:2\"")?.key == "sinks[1].brokers[0]")
        #expect(kafkaError("brokers: k:9092\nprefix: \"a b\"")?.key == "sinks[1].prefix")
        #expect(kafkaError("brokers: k:9092\ntimeout: 10ms")?.key == "sinks[1].timeout")
        #expect(kafkaError("brokers: k:9092\ntombstones: maybe")?.key == "sinks[1].tombstones")
        let owned = kafkaError("brokers: k:9092\nproperties: {bootstrap.servers: other:9092}")
        #expect(owned?.key == "sinks[1].properties.bootstrap.servers")
        #expect(owned?.fix.contains("brokers") == true)
        #expect(kafkaError("brokers: k:9092\nproperties: {message.timeout.ms: 5}")?.key == "sinks[1].properties.message.timeout.ms")
        let typo = kafkaError("brokers: k:9092\ntombstone: true")
        #expect(typo?.key == "sinks[1].tombstone")
        #expect(typo?.fix.contains("did you mean 'tombstones'") == true)
        let topicTypo = kafkaError("brokers: k:9092\ntopik: x")
        #expect(topicTypo?.fix.contains("did you mean 'topic'") == true, "topic is a known key even when not set")
    }

    @Test func topicNames() {
        #expect(TopicName.problem("a.b-c_D9") == nil)
        #expect(TopicName.problem(String(repeating: "a", count: 250))?.contains("at most 249") == true)
        #expect(TopicName.problem(".") != nil)
        #expect(TopicName.problem("a/b") != nil)
    }
}

@Suite("Kafka sink secrets from the environment")
struct KafkaSinkSecretTests {
    @Test("${NAME} in a property value reads the environment, so a SASL password stays out of the YAML")
    func propertiesReadTheEnvironment() throws {
        let settings = try kafkaSettings("""
            brokers: kafka-1:9092
            properties: {security.protocol: SASL_SSL, sasl.username: spillway, sasl.password: "${KAFKA_PASSWORD}", client.id: "cdc-${HOST}-1"}
            """, environment: ["KAFKA_PASSWORD": "s3cr3t/+=", "HOST": "db7"])
        #expect(settings.properties["sasl.password"] == "s3cr3t/+=")
        #expect(settings.properties["client.id"] == "cdc-db7-1")
        #expect(settings.properties["security.protocol"] == "SASL_SSL")
    }

    @Test("an unset or empty variable is a config error naming the property and the variable, not the value")
    func missingVariable() throws {
        let sink = "brokers: kafka-1:9092\nproperties: {sasl.password: \"${KAFKA_PASSWORD}\"}"
        let unset = try #require(kafkaError(sink))
        #expect(unset.key == "sinks[1].properties.sasl.password")
        #expect(unset.problem == "reads ${KAFKA_PASSWORD}, which is not set in the environment")
        #expect(unset.fix == "export KAFKA_PASSWORD before starting Spillway")
        let empty = try #require(kafkaError(sink, environment: ["KAFKA_PASSWORD": ""]))
        #expect(empty.problem == "reads ${KAFKA_PASSWORD}, which is empty in the environment")
        let malformed = try #require(kafkaError("brokers: kafka-1:9092\nproperties: {sasl.password: \"${KAFKA PASSWORD}\"}"))
        #expect(malformed.problem == "'${KAFKA PASSWORD}' is not an environment variable name")
    }
}

