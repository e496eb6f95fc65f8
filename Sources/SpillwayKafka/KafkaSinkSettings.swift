import Logging
import SpillwayCore

/// Settings of a `kind: kafka` sink (see README, "Kafka sink").
public struct KafkaSinkSettings: Sendable {
    /// The bootstrap brokers, `host:port` each. Required.
    public var brokers: [String]
    /// What `{prefix}` renders as. Default: the consumer name.
    public var prefix: String
    /// The topic of every table without an override. Default: `{prefix}.{schema}.{table}`.
    public var topic: EventTemplate
    /// Per-table topics (templates allowed), overriding `topic`. Default: none.
    public var topics: [QualifiedName: EventTemplate]
    /// After a delete, also send a null-value message with the same key, so log compaction can drop the
    /// row. Default: false.
    public var tombstones: Bool
    /// librdkafka properties passed through (TLS, SASL, batching, ...). Values may be secrets and are
    /// never logged. `enable.idempotence=true` and `acks=all` are always set. Default: none.
    public var properties: [String: String]
    /// How long a batch may wait for the cluster's acknowledgement before the sink reports it as stalled
    /// (a warning, and `status`'s last error), again after each further `timeout`. Its records are never
    /// given up for it (librdkafka's `message.timeout.ms` is infinite). Default: 30s.
    public var timeout: Duration
    /// `source.outbox` tables: their events (routed outbox rows) go to `topics[table]`, else to `topic` when it
    /// uses `{route}`, else to `{prefix}.{route}`. Default: none.
    public var outboxTables: Set<QualifiedName> = []

    /// The topic of outbox events when neither `topics` nor `topic` says otherwise.
    public static let standardOutboxTopic = try! EventTemplate(parsing: "{prefix}.{route}")

    public init(brokers: [String], prefix: String, topic: EventTemplate = .standardTopic, topics: [QualifiedName: EventTemplate] = [:],
                tombstones: Bool = false, properties: [String: String] = [:], timeout: Duration = .seconds(30)) {
        self.brokers = brokers
        self.prefix = prefix
        self.topic = topic
        self.topics = topics
        self.tombstones = tombstones
        self.properties = properties
        self.timeout = timeout
    }

    /// The template for events of `schema.table`.
    public func template(schema: String, table: String) -> EventTemplate {
        guard !outboxTables.isEmpty, outboxTables.contains(QualifiedName(schema: schema, name: table)) else {
            return topics.isEmpty ? topic : topics[QualifiedName(schema: schema, name: table)] ?? topic
        }
        return topics[QualifiedName(schema: schema, name: table)] ?? (topic.fields.contains(.route) ? topic : Self.standardOutboxTopic)
    }

    /// Properties the sink sets from its own keys; setting them under `properties` is an error.
    static let ownedProperties: [String: String] = [
        "bootstrap.servers": "brokers", "metadata.broker.list": "brokers",
    ]
}

extension KafkaSinkSettings: SinkSettings {
    public static let kind = "kafka"

    /// `tenant_fallback: {default: VALUE}`: the topic templates write VALUE for a missing tenant.
    public func fillingMissingTenant(with value: String) -> KafkaSinkSettings {
        var settings = self
        settings.topic = topic.fillingMissingTenant(with: value)
        settings.topics = topics.mapValues { $0.fillingMissingTenant(with: value) }
        return settings
    }

    /// Reads a kafka sink's own keys. The consumer name is the default prefix; a per-table topic for a table
    /// this sink does not receive is a typo.
    public static func parse(_ r: inout ConfigReader, context: SinkParseContext) throws(ConfigError) -> KafkaSinkSettings {
        let consumer = context.consumer
        let tables = context.tables
        let environment = context.environment
        guard let brokerList = try r.stringList("brokers"), !brokerList.isEmpty else {
            throw ConfigError(key: r.keyPath("brokers"), problem: "is required",
                              fix: "list the bootstrap brokers, e.g. `brokers: [kafka-1:9092, kafka-2:9092]`")
        }
        var brokers: [String] = []
        for (index, entry) in brokerList.enumerated() {
            for broker in entry.split(separator: ",", omittingEmptySubsequences: false).map({ String($0).trimmingCharacters(in: " ") }) {
                guard !broker.isEmpty, !broker.contains(where: { $0.isWhitespace }) else {
                    throw ConfigError(key: "\(r.keyPath("brokers"))[\(index)]", problem: "'\(entry)' is not a broker address",
                                      fix: "write host:port, e.g. kafka-1:9092")
                }
                brokers.append(broker)
            }
        }

        let prefix: String
        if let text = try r.optionalString("prefix") {
            if let problem = TopicName.problem(text) {
                throw ConfigError(key: r.keyPath("prefix"), problem: "'\(text)' \(problem)",
                                  fix: "use ASCII letters, digits, '.', '_' and '-'")
            }
            prefix = text
        } else {
            prefix = TopicName.sanitized(consumer)
        }

        var topic = EventTemplate.standardTopic
        let isTopicSet = r.has("topic")  // `topic:` with no value is an empty template, not the default
        let topicText = try r.optionalString("topic")
        if isTopicSet { topic = try template(topicText ?? "", key: r.keyPath("topic")) }
        var topics: [QualifiedName: EventTemplate] = [:]
        for (name, text) in try r.stringMap("topics") ?? [] {
            let key = "\(r.keyPath("topics")).\(name)"
            guard let table = QualifiedName(parsing: name) else {
                throw ConfigError(key: key, problem: "'\(name)' is not a table name", fix: "write schema.table, e.g. public.products")
            }
            guard tables.contains(table) else {
                throw ConfigError(key: key, problem: "\(table) is not a table this sink receives",
                                  fix: "use one of \(tables.map(\.description).joined(separator: ", ")), or remove the entry")
            }
            topics[table] = try template(text, key: key)
        }

        let tombstones = try r.bool("tombstones", default: false)

        var properties: [String: String] = [:]
        for (name, value) in try r.stringMap("properties") ?? [] {
            if name == "message.timeout.ms" || name == "delivery.timeout.ms" {
                throw ConfigError(key: "\(r.keyPath("properties")).\(name)",
                                  problem: "cannot be set: Spillway never gives up a record (one given up while a later record of its key is stored would leave the topic out of key order)",
                                  fix: "remove it; the sink's `timeout` sets when a delivery that waits is reported as stalled")
            }
            if let owner = ownedProperties[name] {
                throw ConfigError(key: "\(r.keyPath("properties")).\(name)", problem: "is set by the sink's own key '\(owner)'",
                                  fix: "remove it from properties and set `\(owner)` instead")
            }
            // `${NAME}` reads a secret (sasl.password, ssl.key.password) from the environment.
            properties[name] = try EnvironmentSubstitution.substitute(value, environment: environment, key: "\(r.keyPath("properties")).\(name)")
        }

        let timeout = try r.duration("timeout", default: .seconds(30))
        guard timeout >= .milliseconds(100), timeout <= .seconds(86_400) else {
            throw ConfigError(key: r.keyPath("timeout"), problem: "must be between 100ms and 24h", fix: "use e.g. 30s")
        }
        var settings = KafkaSinkSettings(brokers: brokers, prefix: prefix, topic: topic, topics: topics, tombstones: tombstones,
                                         properties: properties, timeout: timeout)
        settings.outboxTables = Set(context.source.outbox.map(\.table))
        return settings
    }

    private static func template(_ text: String, key: String) throws(ConfigError) -> EventTemplate {
        try EventTemplate(parsing: text, key: key, use: .kafkaTopic)
    }

    /// librdkafka must know and accept each property: checked without connecting, by every command.
    public func validateOffline(keyPath: String) throws(ConfigError) {
        do {
            try KafkaSink.validate(self)
        } catch {
            throw error.configError(sink: keyPath)
        }
    }

    public func makeSink(_ context: SinkContext) async throws -> any ChangeSink {
        var logger = Logger(label: "spillway.kafka")
        logger[metadataKey: "sink"] = "\(context.name)"
        do {
            return try KafkaSink(name: context.name, settings: self, encoder: context.encoder, logger: logger)
        } catch {
            throw error.configError(sink: context.keyPath)
        }
    }

    public func refusal(of format: EventFormat) -> (problem: String, fix: String)? {
        // Kafka's CloudEvents binding carries the attributes in ce_* headers, which is not built.
        format == .cloudevents
            ? ("format: cloudevents is for webhook and file sinks (Kafka's binding, attributes as ce_* headers, is not built)",
               "use format: spillway (the spillway-* headers carry id, op and table) or format: debezium")
            : nil
    }
}

extension KafkaSinkError {
    /// A property error as a config error naming its key, e.g. `sinks[0].properties.linger.ms`.
    func configError(sink keyPath: String) -> ConfigError {
        let key: String
        switch property {
        case "bootstrap.servers": key = "\(keyPath).brokers"
        case "message.timeout.ms": key = "\(keyPath).timeout"
        case let property?: key = "\(keyPath).properties.\(property)"
        case nil: key = "\(keyPath).properties"
        }
        return ConfigError(key: key, problem: problem, fix: fix)
    }
}
