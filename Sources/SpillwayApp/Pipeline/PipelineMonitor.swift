import Foundation
import Metrics
import SpillwayCore
import Synchronization

/// What the pipeline reports as it runs, for `/healthz`, `/readyz` and `/metrics`: the health state (pure,
/// `HealthState`) behind a Mutex, and the metrics, created once. Metrics go to whatever backend the process
/// bootstrapped (`spillway run` bootstraps Prometheus); without one they cost next to nothing.
///
/// Dimensions are bounded: consumer, source, sink, table, op, slot — never keys or positions.
public final class PipelineMonitor: Sendable {
    public typealias Health = HealthState<ContinuousClock.Instant>

    private let health: Mutex<Health>
    private let consumer: String
    private let source: String
    private let tableCounters = Mutex<[TableOp: (read: Counter, delivered: Counter)]>([:])
    private let sinkMetrics: [String: SinkMetrics]
    private let commitToAck: Metrics.Timer
    private let leader: Gauge

    struct TableOp: Hashable {
        var table: String
        var op: ChangeEvent.Operation
    }

    struct SinkMetrics: Sendable {
        let acknowledged: Counter
        let retried: Counter
        let failed: Counter
        let duration: Metrics.Timer
    }

    /// The histogram buckets of the commit-to-acknowledgement latency (its range is wider than a request's).
    public static let commitToAckLabel = "spillway_commit_to_ack_seconds"
    public static let commitToAckBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(300),
    ]

    public init(config: SpillwayConfig, now: ContinuousClock.Instant = .now) {
        consumer = config.consumer
        source = config.source.kind.rawValue
        health = Mutex(Health(sinks: config.sinks.map(\.name), stallAfter: config.http.stallAfter,
                              livenessTimeout: config.http.livenessTimeout, now: now))
        var sinks: [String: SinkMetrics] = [:]
        for sink in config.sinks {
            let dimensions = [("consumer", config.consumer), ("sink", sink.name)]
            sinks[sink.name] = SinkMetrics(
                acknowledged: Counter(label: "spillway_sink_acknowledged_total", dimensions: dimensions),
                retried: Counter(label: "spillway_sink_retried_total", dimensions: dimensions),
                failed: Counter(label: "spillway_sink_failed_total", dimensions: dimensions),
                duration: Metrics.Timer(label: "spillway_batch_delivery_duration_seconds", dimensions: dimensions,
                                        preferredDisplayUnit: .seconds))
        }
        sinkMetrics = sinks
        commitToAck = Metrics.Timer(label: Self.commitToAckLabel, dimensions: [("consumer", consumer), ("source", source)],
                                    preferredDisplayUnit: .seconds)
        leader = Gauge(label: "spillway_leader", dimensions: [("consumer", consumer)])
        Gauge(label: "spillway_build_info", dimensions: [("consumer", consumer), ("source", source), ("version", SpillwayVersion.current)])
            .record(1)
    }

    // MARK: health

    public func liveness() -> Health.Answer { health.withLock { $0.liveness(now: .now) } }
    public func readiness() -> Health.Answer { health.withLock { $0.readiness(now: .now) } }

    func tick() { health.withLock { $0.tick(now: .now) } }

    func sessionStarted() {
        health.withLock { $0.sessionStarted(now: .now) }
        leader.record(1)
    }

    func sessionFailed() {
        health.withLock { $0.sessionFailed(now: .now) }
        leader.record(0)
    }

    func standby() {
        health.withLock { $0.standby(now: .now) }
        leader.record(0)
    }

    func stopped() {
        health.withLock { $0.stopped() }
        leader.record(0)
    }

    // MARK: events

    /// A batch read from the source and handed to the sinks.
    func read(_ events: [ChangeEvent]) {
        health.withLock { $0.submitted(now: .now) }
        count(events) { $0.read }
    }

    /// A batch every sink acknowledged.
    func acknowledged(_ events: [ChangeEvent]) {
        health.withLock { $0.acknowledged(now: .now) }
        count(events) { $0.delivered }
        LatencyHistogram.forEachCommitLatency(of: events, acknowledgedAt: Date().timeIntervalSince1970) { latency, count in
            let nanoseconds = max(Int64(0), latency.components.seconds * 1_000_000_000 + latency.components.attoseconds / 1_000_000_000)
            for _ in 0..<count { commitToAck.recordNanoseconds(nanoseconds) }
        }
    }

    private func count(_ events: [ChangeEvent], _ counter: ((read: Counter, delivered: Counter)) -> Counter) {
        guard !events.isEmpty else { return }
        // Per run of events of one table and op (batches are mostly such runs): no key built, and no event
        // copied, per event.
        var counts: [TableOp: Int] = [:]
        var runStart = events.startIndex
        for index in events.indices.dropFirst() {
            if !events[index].hasSameTableAndOperation(as: events[runStart]) {
                counts[TableOp(table: "\(events[runStart].schema).\(events[runStart].table)", op: events[runStart].op), default: 0] += index - runStart
                runStart = index
            }
        }
        counts[TableOp(table: "\(events[runStart].schema).\(events[runStart].table)", op: events[runStart].op), default: 0] += events.endIndex - runStart
        let counters = tableCounters.withLock { cache in
            counts.map { key, value in
                if cache[key] == nil {
                    let dimensions = [("consumer", consumer), ("source", source), ("table", key.table), ("op", key.op.rawValue)]
                    cache[key] = (Counter(label: "spillway_events_read_total", dimensions: dimensions),
                                  Counter(label: "spillway_events_delivered_total", dimensions: dimensions))
                }
                return (cache[key]!, value)
            }
        }
        for (pair, value) in counters { counter(pair).increment(by: Int64(value)) }
    }

    // MARK: sinks

    func sinkAcknowledged(_ sink: String, events: Int, after duration: Duration) {
        health.withLock { $0.sinkSucceeded(sink, now: .now) }
        guard let metrics = sinkMetrics[sink] else { return }
        metrics.acknowledged.increment(by: Int64(events))
        metrics.duration.recordNanoseconds(duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    /// A failed attempt; `willRetry` when the same sink tries the batch again in place.
    func sinkFailed(_ sink: String, willRetry: Bool) {
        health.withLock { $0.sinkFailed(sink, now: .now) }
        guard let metrics = sinkMetrics[sink] else { return }
        metrics.failed.increment()
        if willRetry { metrics.retried.increment() }
    }
}

/// The version `spillway_build_info` reports.
public enum SpillwayVersion {
    public static let current = "0.1.0-dev"
}
