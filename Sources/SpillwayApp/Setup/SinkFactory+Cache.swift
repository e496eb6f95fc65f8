import Logging
import SpillwayCore
import SpillwayRedis
import SpillwaySinks

extension SinkFactory {
    /// The cache-invalidation sinks. They connect lazily (on validation or the first batch), so an
    /// unreachable Redis or database is retried by the pipeline rather than failing the start.
    static func makeCacheSink(_ sink: SinkConfig, config: SpillwayConfig) -> any ChangeSink {
        let logger = Logger(label: "spillway")
        switch sink.settings {
        case .redis(let settings):
            return RedisSink(name: sink.name, settings: settings, logger: logger)
        case .notify(let settings):
            return NotifySink(name: sink.name, settings: settings, url: settings.url ?? config.database.url, logger: logger)
        case .refresh(let settings):
            return RefreshSink(name: sink.name, settings: settings, url: settings.url ?? config.database.url, logger: logger)
        case .file, .kafka, .webhook:
            preconditionFailure("\(sink.kind) sinks are built in makeRoutes")
        }
    }
}
