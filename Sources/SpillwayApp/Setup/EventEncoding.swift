import Foundation
import SpillwayCore

public enum EventEncoding {
    /// The encoder for a sink's `format`: Debezium's `source.name` is the consumer (its `topic.prefix`),
    /// `source.db` the database of `database.url`, `ts_ms` the wall clock when the sink writes.
    public static func encoder(for sink: SinkConfig, config: SpillwayConfig) -> EventEncoder {
        guard sink.format != .spillway else { return .spillway }
        return EventEncoder(format: sink.format,
                            envelope: DebeziumEnvelope(serverName: config.consumer,
                                                       database: DebeziumEnvelope.databaseName(connection: config.database.url)),
                            now: { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) })
    }
}
