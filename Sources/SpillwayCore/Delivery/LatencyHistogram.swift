import Histogram

/// Commit-to-acknowledgement latencies, in microseconds, on HdrHistogram (hdrhistogram-swift): percentiles
/// over millions of events in fixed memory, within 1% (two significant digits) above the exact value. This
/// wrapper keeps the exact maximum (a percentile is never above it), counts negative latencies (a clock
/// step between the database's host and this one) as zero, and clamps what is over a year.
public struct LatencyHistogram: Sendable, Equatable {
    private static let highestTrackable: UInt64 = 366 * 86_400 * 1_000_000
    private var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: highestTrackable,
                                              numberOfSignificantValueDigits: .two)
    public private(set) var count = 0
    /// The largest value recorded, exactly.
    public private(set) var maximum: Duration = .zero

    public init() {}

    public mutating func record(_ latency: Duration, count times: Int = 1) {
        guard times > 0 else { return }
        let clamped = max(latency, .zero)
        histogram.record(min(Self.microseconds(clamped), Self.highestTrackable), count: UInt64(times))
        count += times
        maximum = max(maximum, clamped)
    }

    /// The latency at or below which `quantile` (0...1) of the recorded ones lie (the upper end of its
    /// HdrHistogram bucket), never above `maximum`. Nil when nothing was recorded.
    public func percentile(_ quantile: Double) -> Duration? {
        guard count > 0 else { return nil }
        let value = histogram.valueAtPercentile(min(max(quantile, 0), 1) * 100)
        return min(.microseconds(Int64(clamping: value)), maximum)
    }

    /// `p50 12ms, p99 48ms, max 61ms over 12000 events`.
    public var summary: String {
        guard let p50 = percentile(0.5), let p99 = percentile(0.99) else { return "no events" }
        return "p50 \(Self.milliseconds(p50)), p99 \(Self.milliseconds(p99)), max \(Self.milliseconds(maximum)) over \(count) events"
    }

    static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let ms = Double(seconds) * 1000 + Double(attoseconds) / 1e15
        return ms < 10 ? "\((ms * 10).rounded() / 10)ms" : "\(Int(ms.rounded()))ms"
    }

    private static func microseconds(_ latency: Duration) -> UInt64 {
        let (seconds, attoseconds) = latency.components
        let (scaled, overflow) = UInt64(clamping: seconds).multipliedReportingOverflow(by: 1_000_000)
        return overflow ? .max : scaled &+ UInt64(clamping: attoseconds / 1_000_000_000_000)
    }
}

extension LatencyHistogram {
    /// Records, for each event with a `commit_time`, the time from that commit to `acknowledgedAt` (seconds
    /// since 1970). A transaction's events share one commit time, which is parsed once per run of them.
    public mutating func recordCommitLatencies(of events: [ChangeEvent], acknowledgedAt now: Double) {
        Self.forEachCommitLatency(of: events, acknowledgedAt: now) { latency, count in record(latency, count: count) }
    }

    /// Calls `body` once per run of events sharing a `commit_time` with that run's latency and length
    /// (the metrics' histogram and this one see the same figures).
    public static func forEachCommitLatency(of events: [ChangeEvent], acknowledgedAt now: Double,
                                            _ body: (_ latency: Duration, _ count: Int) -> Void) {
        var index = 0
        while index < events.count {
            let commitTime = events[index].commitTime
            var end = index + 1
            while end < events.count, events[end].commitTime == commitTime { end += 1 }
            if let commitTime, let committed = ISOTimestamp.secondsSince1970(utc: commitTime) {
                body(.microseconds(Int64(((now - committed) * 1e6).rounded())), end - index)
            }
            index = end
        }
    }
}
