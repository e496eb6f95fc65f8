import ServiceLifecycle
import SpillwayCore

/// A sink's lifetime as a Service of `run`'s ServiceGroup: opened before the group starts, closed (Kafka:
/// flushed, its poll loop stopped) only once a graceful shutdown reaches it. The sinks come before the
/// pipeline in the group, and a ServiceGroup shuts its services down in reverse order, one after another:
/// so the pipeline has drained — its batch in flight acknowledged and checkpointed, or abandoned to be
/// delivered again — before any sink closes.
public struct SinkService: Service {
    public let sink: any ChangeSink

    public init(sink: any ChangeSink) { self.sink = sink }

    public func run() async throws {
        try? await gracefulShutdown()  // returns at shutdown, or throws when the group is cancelled: close either way
        try await sink.close()
    }
}

extension ServiceGroupConfiguration.ServiceConfiguration {
    /// The services of a running consumer, in the order that makes shutdown drain the pipeline before the
    /// sinks: each sink, then the pipeline. Whatever ends one (`--once` done, a fatal error) shuts down the rest.
    public static func consumer(pipeline: any Service, routes: [Fanout.Route]) -> [Self] {
        routes.map {
            .init(service: SinkService(sink: $0.sink), successTerminationBehavior: .gracefullyShutdownGroup,
                  failureTerminationBehavior: .gracefullyShutdownGroup)
        } + [
            .init(service: pipeline, successTerminationBehavior: .gracefullyShutdownGroup,
                  failureTerminationBehavior: .gracefullyShutdownGroup),
        ]
    }
}
