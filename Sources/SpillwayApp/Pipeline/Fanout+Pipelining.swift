import SpillwayCore

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

    /// Delivers a submission to the sinks that are not pipelined (each retried on its own, as `deliver`
    /// does) while waiting for the pipelined sinks' acknowledgements; returns once every sink has the batch.
    /// A failed acknowledgement is reported to `onFailure` and thrown as `PipelinedDeliveryFailed`.
    public func complete(_ submission: FanoutSubmission,
                         onFailure: @escaping @Sendable (String) async -> Void = { _ in }) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for part in submission.parts {
                group.addTask {
                    guard let acknowledgement = part.acknowledgement else {
                        try await deliver(part.events, to: part.route.sink, onFailure: onFailure)
                        return
                    }
                    do {
                        try await acknowledgement.wait()
                        monitor?.sinkAcknowledged(part.route.sink.name, events: part.events.count, after: .now - part.submittedAt)
                    } catch {
                        monitor?.sinkFailed(part.route.sink.name, willRetry: false)
                        await onFailure("sink '\(part.route.sink.name)': \(error)")
                        throw PipelinedDeliveryFailed(sink: part.route.sink.name, underlying: error)
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}
