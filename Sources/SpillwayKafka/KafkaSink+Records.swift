import SpillwayCore

/// What a batch of change events becomes in Kafka. Pure, so topics, keys and headers are tested without
/// a cluster.
extension KafkaSink {
    /// The records for `events`, in order, and for each record the index of the event it carries.
    struct Records: Sendable {
        var batch: KafkaRecordBatch
        var eventIndices: [Int] = []

        /// The records as messages, for tests.
        var messages: [KafkaOutgoingMessage] { batch.messages }
    }

    static let headerNames = ["spillway-id", "spillway-op", "spillway-table", "spillway-txid", "spillway-tenant", "spillway-route"]

    /// One record per event (two for a delete when tombstones are on): key = the event's `key` as compact
    /// JSON (nil for a table without primary key), value = the event JSON, headers `spillway-id`,
    /// `spillway-op`, `spillway-table`, `spillway-txid` and `spillway-tenant` (the last two when known).
    /// Throws when an event's topic renders to a name Kafka refuses.
    ///
    /// `encoder` writes the value (`format: debezium`: Debezium's envelope, and a tombstone after every
    /// keyed delete, as Debezium sends by default).
    ///
    /// An outbox event (`source.outbox`) is the application's message rather than a change: key = the key
    /// column's text, value = the payload (JSON as compact JSON, text as its bytes), whatever the format, and
    /// a `spillway-route` header besides the others.
    static func records(for events: [ChangeEvent], settings: KafkaSinkSettings,
                        encoder: EventEncoder = .spillway) throws(KafkaSinkError) -> Records {
        var records = Records(batch: KafkaRecordBatch(headerNames: headerNames, capacity: events.count))
        records.eventIndices.reserveCapacity(events.count)
        // Rendering and checking a topic name per record cost more than the rest of the record; a batch
        // touches few tables. A template that reads the row or the id ({after.region}) can send each
        // event elsewhere, so only the others are cached.
        var topics: [TopicCacheKey: Int] = [:]
        for (index, event) in events.enumerated() {
            let topic: Int
            let template = settings.template(schema: event.schema, table: event.table)
            if template.readsEventValues {
                topic = records.batch.index(ofTopic: try Self.topic(for: event, template: template, prefix: settings.prefix))
            } else if let cached = topics[TopicCacheKey(event)] {
                topic = cached
            } else {
                topic = records.batch.index(ofTopic: try Self.topic(for: event, template: template, prefix: settings.prefix))
                topics[TopicCacheKey(event)] = topic
            }
            if let outbox = event.outbox {
                let key = outbox.key.map { key in records.batch.append { $0.append(contentsOf: key.utf8) } }
                let value = records.batch.append { bytes in
                    if case .string(let text) = outbox.payload { bytes.append(contentsOf: text.utf8) } else { JSONEncoding.write(outbox.payload, into: &bytes) }
                }
                let firstHeader = records.batch.headers.count
                appendHeaders(for: event, to: &records.batch)
                if let route = outbox.route { records.batch.addHeader(name: 5) { $0.append(contentsOf: route.utf8) } }
                records.batch.addRecord(topic: topic, key: key, value: value, firstHeader: firstHeader)
                records.eventIndices.append(index)
                continue
            }
            let key = event.key.map { key in records.batch.append { JSONEncoding.write(key, into: &$0) } }
            let value = records.batch.append { encoder.write(event, into: &$0) }
            let firstHeader = records.batch.headers.count
            appendHeaders(for: event, to: &records.batch)
            records.batch.addRecord(topic: topic, key: key, value: value, firstHeader: firstHeader)
            records.eventIndices.append(index)
            // A tombstone needs a key: compaction removes the records with the same key. A table without
            // primary key has none, and a truncate names no row.
            if settings.tombstones || encoder.alwaysSendsTombstones, event.op == .delete, key != nil {
                records.batch.addTombstone(after: records.batch.count - 1)
                records.eventIndices.append(index)
            }
        }
        return records
    }

    /// What a topic can depend on when its template reads no row value.
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
        try topic(for: event, template: settings.template(schema: event.schema, table: event.table), prefix: settings.prefix)
    }

    static func topic(for event: ChangeEvent, template: EventTemplate, prefix: String) throws(KafkaSinkError) -> String {
        let topic = template.rendered(event, as: .topicName, prefix: prefix)
        if let problem = TopicName.problem(topic) {
            throw KafkaSinkError(
                .invalidTopic,
                problem: "event \(event.id) (\(event.qualifiedTable)) goes to topic '\(topic)' (template '\(template)'), which \(problem)",
                fix: "shorten sinks[].prefix or sinks[].topic, or give \(event.qualifiedTable) its own topic under sinks[].topics")
        }
        return topic
    }

    /// Headers in `headerNames` order; txid and tenant only when the event has them.
    static func appendHeaders(for event: ChangeEvent, to batch: inout KafkaRecordBatch) {
        batch.addHeader(name: 0) { $0.append(contentsOf: event.id.utf8) }
        batch.addHeader(name: 1) { $0.append(contentsOf: event.op.rawValue.utf8) }
        batch.addHeader(name: 2) { bytes in
            bytes.append(contentsOf: event.schema.utf8)
            bytes.append(UInt8(ascii: "."))
            bytes.append(contentsOf: event.table.utf8)
        }
        if let txid = event.txid { batch.addHeader(name: 3) { $0.append(contentsOf: String(txid).utf8) } }
        if let tenant = event.tenant, !tenant.isEmpty { batch.addHeader(name: 4) { $0.append(contentsOf: tenant.utf8) } }
    }

    /// The librdkafka properties of a sink: the user's, plus `bootstrap.servers` from the sink's `brokers`, and
    /// no message timeout. (`enable.idempotence` and `acks` are forced by the client.)
    ///
    /// No timeout (`message.timeout.ms=0`): librdkafka gives up a record that timed out while records
    /// produced after it, of the same key, may still be stored once the brokers are back. The topic would
    /// then hold `v3` before `v2`, and after the redelivery `v3, v2, v3`: a consumer that drops repeated ids
    /// keeps the stale `v2`. So records are retried until stored, and the sink's `timeout` only reports a stall.
    static func producerProperties(_ settings: KafkaSinkSettings) -> [String: String] {
        var properties = settings.properties
        properties["bootstrap.servers"] = settings.brokers.joined(separator: ",")
        properties["message.timeout.ms"] = "0"
        if properties["client.id"] == nil { properties["client.id"] = "spillway" }
        return properties
    }
}
