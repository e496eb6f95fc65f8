import Foundation
import Logging
import ServiceLifecycle
import SpillwayCore
import SpillwayKafka
import SpillwaySinks
import SpillwayWebhook

public enum ConfigLoader {
    /// Reads and validates the YAML file; `SPILLWAY_DATABASE_URL` from the environment overrides database.url.
    public static func load(path: String) throws -> SpillwayConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(key: "--config", problem: "cannot read \(path)",
                              fix: "pass the path of a YAML config, e.g. --config Config/spillway.example.yaml")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(key: "--config", problem: "\(path) is not UTF-8 text", fix: "save it as UTF-8")
        }
        let config = try SpillwayConfig.parse(yaml: text, environment: ProcessInfo.processInfo.environment)
        try SinkFactory.validate(config)
        return config
    }
}

public enum SinkFactory {
    /// Opens every configured sink; on failure closes the ones already opened.
    public static func makeRoutes(_ config: SpillwayConfig) async throws -> [Fanout.Route] {
        var routes: [Fanout.Route] = []
        do {
            for (index, sink) in config.sinks.enumerated() {
                var context = SinkContext(name: sink.name, databaseURL: config.database.url, schema: config.schema,
                                          consumer: config.consumer, keyPath: "sinks[\(index)]")
                context.encoder = EventEncoding.encoder(for: sink, config: config)
                routes.append(Fanout.Route(sink: try await sink.settings.makeSink(context), filter: sink.filter,
                                           tenantRequiredBy: sink.tenantFallback == .error ? "sinks[\(index)].tenant_fallback" : nil))
            }
        } catch {
            for route in routes { try? await route.sink.close() }
            throw error
        }
        return routes
    }

    /// Checks what the config parser cannot see (Kafka: that librdkafka knows and accepts each property).
    /// Connects nowhere, so every command can call it.
    public static func validate(_ config: SpillwayConfig) throws(ConfigError) {
        for (index, sink) in config.sinks.enumerated() {
            try sink.settings.validateOffline(keyPath: "sinks[\(index)]")
        }
    }
}

public enum PipelineFactory {
    /// The daemon for the configured source.
    /// Both sources run in the one engine (`ChangePipeline`); only how the source opens differs.
    public static func make(_ config: SpillwayConfig, fanout: Fanout, options: PipelineOptions, logger: Logger) -> any Service {
        switch config.source.kind {
        case .auditLog:
            return ChangePipeline(config: config, fanout: fanout, options: options, logger: logger) { record, control, logger in
                try await AuditLogChangeSource.open(config: config, record: record, control: control, once: options.once, logger: logger)
            }
        case .replication:
            return ChangePipeline(config: config, fanout: fanout, options: options, logger: logger) { record, control, logger in
                try await ReplicationChangeSource.open(config: config, record: record, control: control, once: options.once, logger: logger)
            }
        }
    }
}

public enum LoggingSetup {
    /// Logs go to standard error (standard output may carry events from a file sink with `path: "-"`).
    public static func bootstrap(_ config: LogConfig) {
        let level = Logger.Level(rawValue: config.level.rawValue) ?? .info
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = config.format == .json
                ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

/// One JSON object per line: `{"ts","level","logger","msg",...metadata}`.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [(String, JSONValue)] = [
            ("ts", .string(ISOTimestamp.utc(postgresMicroseconds: Self.microsecondsSince2000()))),
            ("level", .string(event.level.rawValue)), ("logger", .string(label)), ("msg", .string("\(event.message)")),
        ]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }).sorted(by: { $0.key < $1.key }) {
            fields.append((key, .string("\(value)")))
        }
        var line = JSONEncoding.bytes(.object(JSONObject(fields)))
        line.append(0x0A)
        line.withUnsafeBytes { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }

    private static func microsecondsSince2000() -> Int64 {
        Int64((Date().timeIntervalSince1970 - 946_684_800) * 1_000_000)
    }
}
