import SpillwayCore

/// What a batch of change events becomes in Kafka. Pure, so topics, keys and headers are tested without
/// a cluster.
extension KafkaSink {
    /// The records for `events`, in order, and for each record the index of the event it carries.
    struct Records: Sendable {
        var messages: [KafkaOutgoingMessage] = []
        var eventIndices: [Int] = []
    }

    /// One record per event (two for a delete when tombstones are on): key = the event's `key` as compact
    /// JSON (nil for a table without primary key), value = the event JSON, headers `spillway-id`,
    /// `spillway-op`, `spillway-table`, `spillway-txid` and `spillway-tenant` (the last two when known).
    /// Throws when an event's topic renders to a name Kafka refuses.
    static func records(for events: [ChangeEvent], settings: KafkaSinkSettings) throws(KafkaSinkError) -> Records {
        var records = Records()
        records.messages.reserveCapacity(events.count)
        records.eventIndices.reserveCapacity(events.count)
        // Rendering and checking a topic name per record cost more than the rest of the record; a batch
        // touches few tables.
        var topics: [TopicCacheKey: String] = [:]
        for (index, event) in events.enumerated() {
            let cacheKey = TopicCacheKey(event)
            let topic: String
            if let cached = topics[cacheKey] {
                topic = cached
            } else {
                topic = try Self.topic(for: event, settings: settings)
                topics[cacheKey] = topic
            }
            let key = event.key.map { JSONEncoding.bytes(.object($0)) }
            let headers = headers(for: event)
            records.messages.append(KafkaOutgoingMessage(topic: topic, key: key, value: event.jsonBytes, headers: headers))
            records.eventIndices.append(index)
            // A tombstone needs a key: compaction removes the records with the same key. A table without
            // primary key has none, and a truncate names no row.
            if settings.tombstones, event.op == .delete, let key {
                records.messages.append(KafkaOutgoingMessage(topic: topic, key: key, value: nil, headers: headers))
                records.eventIndices.append(index)
            }
        }
        return records
    }

    /// What a topic can depend on.
    private struct TopicCacheKey: Hashable {
        var schema: String
        var table: String
        var tenant: String?
        var op: ChangeEvent.Operation

        init(_ event: ChangeEvent) {
            schema = event.schema
            table = event.table
            tenant = event.tenant
            op = event.op
        }
    }

    static func topic(for event: ChangeEvent, settings: KafkaSinkSettings) throws(KafkaSinkError) -> String {
        let template = settings.template(schema: event.schema, table: event.table)
        let topic = template.render(event, prefix: settings.prefix)
        if let problem = TopicName.problem(topic) {
            throw KafkaSinkError(
                .invalidTopic,
                problem: "event \(event.id) (\(event.qualifiedTable)) goes to topic '\(topic)' (template '\(template)'), which \(problem)",
                fix: "shorten sinks[].prefix or sinks[].topic, or give \(event.qualifiedTable) its own topic under sinks[].topics")
        }
        return topic
    }

    static func headers(for event: ChangeEvent) -> [KafkaHeader] {
        var headers = [
            KafkaHeader("spillway-id", Array(event.id.utf8)),
            KafkaHeader("spillway-op", Array(event.op.rawValue.utf8)),
            KafkaHeader("spillway-table", Array(event.qualifiedTable.utf8)),
        ]
        if let txid = event.txid { headers.append(KafkaHeader("spillway-txid", Array(String(txid).utf8))) }
        if let tenant = event.tenant, !tenant.isEmpty { headers.append(KafkaHeader("spillway-tenant", Array(tenant.utf8))) }
        return headers
    }

    /// The librdkafka properties of a sink: the user's, plus `bootstrap.servers` and `message.timeout.ms`
    /// from the sink's own keys. (`enable.idempotence` and `acks` are forced by the client.)
    static func producerProperties(_ settings: KafkaSinkSettings) -> [String: String] {
        var properties = settings.properties
        properties["bootstrap.servers"] = settings.brokers.joined(separator: ",")
        properties["message.timeout.ms"] = String(settings.timeout.clampedMilliseconds)
        if properties["client.id"] == nil { properties["client.id"] = "spillway" }
        return properties
    }
}
