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
                switch sink.settings {
                case .file(let settings):
                    routes.append(Fanout.Route(sink: try FileSink(name: sink.name, settings: settings,
                                                                  encoder: EventEncoding.encoder(for: sink, config: config)),
                                               filter: sink.filter))
                case .webhook(let settings):
                    let webhook = WebhookSink(name: sink.name, settings: settings, databaseURL: config.database.url,
                                              schema: config.schema, encoder: EventEncoding.encoder(for: sink, config: config),
                                              logger: Logger(label: "spillway.webhook"))
                    await webhook.start()
                    routes.append(Fanout.Route(sink: webhook, filter: sink.filter))
                case .kafka(let settings):
                    var logger = Logger(label: "spillway.kafka")
                    logger[metadataKey: LogKey.sink] = "\(sink.name)"
                    do {
                        routes.append(Fanout.Route(sink: try KafkaSink(name: sink.name, settings: settings,
                                                                             encoder: EventEncoding.encoder(for: sink, config: config), logger: logger), filter: sink.filter))
                    } catch {
                        throw configError(error, sink: index)
                    }
                case .redis, .notify, .refresh:
                    routes.append(Fanout.Route(sink: makeCacheSink(sink, config: config), filter: sink.filter))
                }
            }
        } catch {
            for route in routes { try? await route.sink.close() }
            throw error
        }
        return routes
    }

    /// Checks what the config parser cannot see: that librdkafka knows and accepts each Kafka property.
    /// Connects nowhere, so every command can call it.
    public static func validate(_ config: SpillwayConfig) throws(ConfigError) {
        for (index, sink) in config.sinks.enumerated() {
            guard case .kafka(let settings) = sink.settings else { continue }
            do {
                try KafkaSink.validate(settings)
            } catch {
                throw configError(error, sink: index)
            }
        }
    }

    /// A Kafka property error as a config error naming its key, e.g. `sinks[0].properties.linger.ms`.
    private static func configError(_ error: KafkaSinkError, sink index: Int) -> ConfigError {
        let key: String
        switch error.property {
        case "bootstrap.servers": key = "sinks[\(index)].brokers"
        case "message.timeout.ms": key = "sinks[\(index)].timeout"
        case let property?: key = "sinks[\(index)].properties.\(property)"
        case nil: key = "sinks[\(index)].properties"
        }
        return ConfigError(key: key, problem: error.problem, fix: error.fix)
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
