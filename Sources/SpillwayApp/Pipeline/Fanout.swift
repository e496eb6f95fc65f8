import Logging
import ServiceLifecycle
import SpillwayCore

/// Delivery was given up because Spillway is stopping; the batch was not checkpointed and replays on the
/// next start.
public struct DeliveryAbandoned: Error, CustomStringConvertible {
    public let sink: String
    public var description: String { "stopping while sink '\(sink)' still failed; its batch will be delivered again on restart" }
}

/// Hands each batch to every sink that takes it, concurrently, and returns once all of them acknowledged.
/// A failing sink is retried on its own (with backoff and jitter) until it succeeds: the sinks that already
/// acknowledged are not sent the batch again, and nothing is skipped.
public struct Fanout: Sendable {
    public struct Route: Sendable {
        public var sink: any ChangeSink
        public var filter: EventFilter
        /// `sinks[N].tenant_fallback` when it is `error`: an event without a tenant fails the delivery.
        public var tenantRequiredBy: String?

        public init(sink: any ChangeSink, filter: EventFilter, tenantRequiredBy: String? = nil) {
            self.sink = sink
            self.filter = filter
            self.tenantRequiredBy = tenantRequiredBy
        }

        /// `tenant_fallback: error`: the first event of `events` without a tenant, as the delivery's error.
        func missingTenant(in events: [ChangeEvent]) -> MissingTenantError? {
            guard let key = tenantRequiredBy, let event = events.first(where: TenantFallback.lacksTenant) else { return nil }
            return MissingTenantError(event: event, sink: sink.name, key: key)
        }
    }

    let routes: [Route]
    let retry: RetryPolicy
    let logger: Logger
    /// Hears every sink's acknowledgements and failures (health and metrics); nil in tests that need neither.
    let monitor: PipelineMonitor?
    /// How long a graceful shutdown waits for a pipelined sink's outstanding acknowledgement before it
    /// abandons the batch (delivered again on the next start).
    let acknowledgementGrace: Duration

    public init(routes: [Route], retry: RetryPolicy = RetryPolicy(), logger: Logger, monitor: PipelineMonitor? = nil,
                acknowledgementGrace: Duration = .seconds(10)) {
        self.routes = routes
        self.retry = retry
        self.logger = logger
        self.monitor = monitor
        self.acknowledgementGrace = acknowledgementGrace
    }

    /// `onFailure` hears each failed attempt (for `status`'s last error).
    public func deliver(_ events: [ChangeEvent], onFailure: @escaping @Sendable (String) async -> Void = { _ in }) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for route in routes {
                let selected = route.filter.acceptsEverything
                    ? events : events.filter(route.filter.accepts)
                guard !selected.isEmpty else { continue }
                group.addTask {
                    try await deliver(selected, to: route, onFailure: onFailure)
                }
            }
            try await group.waitForAll()
        }
    }

    func deliver(_ events: [ChangeEvent], to route: Route,
                         onFailure: @escaping @Sendable (String) async -> Void) async throws {
        let sink = route.sink
        var attempt = 0
        let clock = ContinuousClock()
        while true {
            let started = clock.now
            do {
                // Checked at each attempt, like any failure: retried with backoff and shown in `status`.
                if let missing = route.missingTenant(in: events) { throw missing }
                try await SinkFailureReport.$handler.withValue(SinkFailureReport.Handler { await onFailure("sink '\(sink.name)': \($0)") }) {
                    try await sink.deliver(events)
                }
                monitor?.sinkAcknowledged(sink.name, events: events.count, after: clock.now - started)
                if attempt > 0 { logger.info("sink recovered", metadata: [LogKey.sink: "\(sink.name)", LogKey.attempts: "\(attempt + 1)"]) }
                return
            } catch {
                attempt += 1
                let message = "sink '\(sink.name)': \(error)"
                await onFailure(message)
                let isStopping = Task.isShuttingDownGracefully || Task.isCancelled
                monitor?.sinkFailed(sink.name, willRetry: !isStopping)
                if isStopping { throw DeliveryAbandoned(sink: sink.name) }
                let delay = retry.delay(forAttempt: attempt, jitter: Double.random(in: 0.5...1))
                logger.warning("delivery failed, retrying", metadata: [
                    LogKey.sink: "\(sink.name)", LogKey.attempts: "\(attempt)", LogKey.error: "\(error)",
                    LogKey.retryIn: "\(delay)",
                ])
                try await sleepUnlessStopping(delay)
                if Task.isShuttingDownGracefully { throw DeliveryAbandoned(sink: sink.name) }
            }
        }
    }
}

/// Sleeps `duration`, or until a graceful shutdown begins (swift-service-lifecycle's shutdown handler ends
/// the sleep at once; nothing polls). Cancellation of the task itself still throws.
func sleepUnlessStopping(_ duration: Duration) async throws {
    do {
        try await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
    } catch is CancellationError where !Task.isCancelled {
        return  // the shutdown ended the sleep
    }
}

/// Metadata keys, named once so logs stay greppable.
public enum LogKey {
    public static let sink = "sink"
    public static let consumer = "consumer"
    public static let position = "position"
    public static let events = "events"
    public static let attempts = "attempts"
    public static let error = "error"
    public static let retryIn = "retry_in"
    public static let database = "database"
    public static let commitToAck = "commit_to_ack"
}

/// How a pipeline (either source) runs.
public struct PipelineOptions: Sendable {
    /// Stop once everything committed so far is delivered (`spillway run --once`, the demo, tests).
    public var once: Bool
    /// Backoff between reconnects of the source. Default: 200ms doubling to 10s, with jitter.
    public var retry: RetryPolicy
    /// `spillway replay`: the pipeline runs beside the consumer's live `run`, so it takes neither the consumer's
    /// lock nor its checkpoint; its source starts where it is told and saves nothing.
    public var isDetached: Bool

    public init(once: Bool = false, retry: RetryPolicy = RetryPolicy(maximumDelay: .seconds(10)), isDetached: Bool = false) {
        self.once = once
        self.retry = retry
        self.isDetached = isDetached
    }
}
