import ServiceLifecycle
import SpillwayCore
import Synchronization

/// A pipelined sink's acknowledgement failed. Later batches may already be written, so the pipeline does
/// not retry this batch alone: it resumes from its checkpoint and delivers everything after it again, in
/// order, which keeps every key's changes in commit order.
public struct PipelinedDeliveryFailed: Error, CustomStringConvertible {
    public let sink: String
    public let underlying: any Error
    public var description: String { "sink '\(sink)': \(underlying)" }
}

/// A batch handed to every pipelined sink that takes it; `Fanout.complete` delivers it to the others and
/// waits for all.
public struct FanoutSubmission: Sendable {
    struct Part: Sendable {
        var route: Fanout.Route
        var events: [ChangeEvent]
        /// Set for pipelined sinks, which already hold the events.
        var acknowledgement: SinkAcknowledgement?
        /// When a pipelined sink took the events: its delivery duration runs from here to the acknowledgement.
        var submittedAt = ContinuousClock.now
    }

    var parts: [Part]

    /// Nothing to deliver (a batch without events).
    public static let empty = FanoutSubmission(parts: [])
}

extension Fanout {
    /// Hands `events` to every pipelined sink that takes them and returns without waiting for their
    /// acknowledgements. Submissions must be completed (`complete`) in the order they were made. A sink that
    /// refuses the batch throws `PipelinedDeliveryFailed`.
    public func submit(_ events: [ChangeEvent]) async throws -> FanoutSubmission {
        var parts: [FanoutSubmission.Part] = []
        for route in routes {
            let selected = route.filter.acceptsEverything
                ? events : events.filter(route.filter.accepts)
            guard !selected.isEmpty else { continue }
            var part = FanoutSubmission.Part(route: route, events: selected)
            if let sink = route.sink as? any PipelinedChangeSink {
                do {
                    if let missing = route.missingTenant(in: selected) { throw missing }
                    part.acknowledgement = try await sink.submit(selected)
                } catch {
                    monitor?.sinkFailed(sink.name, willRetry: false)
                    throw PipelinedDeliveryFailed(sink: sink.name, underlying: error)
                }
            }
            parts.append(part)
        }
        return FanoutSubmission(parts: parts)
    }

    /// Tells the pipelined sinks a session begins: one that refused batches after a failure takes them again.
    public func resumePipelinedSinks() {
        for route in routes { (route.sink as? any PipelinedChangeSink)?.resume() }
    }

    /// Delivers a submission to the sinks that are not pipelined (each retried on its own, as `deliver`
    /// does) while waiting for the pipelined sinks' acknowledgements; returns once every sink has the batch.
    /// A failed acknowledgement is reported to `onFailure` and thrown as `PipelinedDeliveryFailed`.
    public func complete(_ submission: FanoutSubmission,
                         onFailure: @escaping @Sendable (String) async -> Void = { _ in }) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for part in submission.parts {
                group.addTask {
                    guard let acknowledgement = part.acknowledgement else {
                        try await deliver(part.events, to: part.route, onFailure: onFailure)
                        return
                    }
                    let name = part.route.sink.name
                    do {
                        // A sink that retries on its own (Kafka) reports a stall through this handler: counted as a
                        // failed attempt that is retried, so /readyz and the sink-failing alert see an outage that
                        // never fails a record.
                        let monitor = monitor
                        try await SinkFailureReport.$handler.withValue(SinkFailureReport.Handler {
                            monitor?.sinkFailed(name, willRetry: true)
                            await onFailure("sink '\(name)': \($0)")
                        }) {
                            try await acknowledgement.wait(abandoningAfterShutdown: acknowledgementGrace)
                        }
                        monitor?.sinkAcknowledged(name, events: part.events.count, after: .now - part.submittedAt)
                    } catch {
                        if Task.isShuttingDownGracefully { throw DeliveryAbandoned(sink: name) }
                        monitor?.sinkFailed(name, willRetry: false)
                        await onFailure("sink '\(name)': \(error)")
                        throw PipelinedDeliveryFailed(sink: name, underlying: error)
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}

extension SinkAcknowledgement {
    /// Waits for the acknowledgement, and abandons it if the task is cancelled (the session ends) or if a
    /// graceful shutdown begins and it has not come `grace` later: a sink that never gives up a record
    /// would otherwise hold `SIGTERM` for as long as its destination is down.
    func wait(abandoningAfterShutdown grace: Duration) async throws {
        let timer = AbandonTimer()
        defer { timer.finish() }
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await wait()
            } onGracefulShutdown: {
                timer.start(after: grace) { abandon() }
            }
        } onCancel: {
            abandon()
        }
    }
}

/// The grace timer of one acknowledgement: started at most once, and never firing once the wait ended.
private final class AbandonTimer: Sendable {
    private struct State {
        var isFinished = false
        var timer: Task<Void, Never>?
    }

    private let state = Mutex(State())

    func start(after grace: Duration, _ action: @escaping @Sendable () -> Void) {
        state.withLock { state in
            guard !state.isFinished, state.timer == nil else { return }
            state.timer = Task {
                guard (try? await Task.sleep(for: grace)) != nil else { return }
                action()
            }
        }
    }

    func finish() {
        let timer = state.withLock { state -> Task<Void, Never>? in
            state.isFinished = true
            return state.timer
        }
        timer?.cancel()
    }
}
