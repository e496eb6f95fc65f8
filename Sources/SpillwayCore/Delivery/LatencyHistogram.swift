/// Commit-to-acknowledgement latencies in log-linear buckets (exact below 64µs, then 32 per power of two),
/// so percentiles over millions of events cost a fixed 15 KiB and stay within about 3% of the exact value.
public struct LatencyHistogram: Sendable, Equatable {
    private static let bucketCount = 64 + 58 * 32
    private var counts: [Int]
    public private(set) var count = 0
    /// The largest value recorded, exactly.
    public private(set) var maximum: Duration = .zero

    public init() {
        counts = Array(repeating: 0, count: Self.bucketCount)
    }

    /// Records one latency; negative ones (a clock step between the database's host and this one) count as
    /// zero.
    public mutating func record(_ latency: Duration, count times: Int = 1) {
        guard times > 0 else { return }
        let clamped = max(latency, .zero)
        counts[Self.bucket(for: clamped)] += times
        count += times
        maximum = max(maximum, clamped)
    }

    /// The latency at or below which `quantile` (0...1) of the recorded ones lie: the upper bound of its
    /// bucket, never above `maximum`. Nil when nothing was recorded.
    public func percentile(_ quantile: Double) -> Duration? {
        guard count > 0 else { return nil }
        let rank = max(1, Int((quantile * Double(count)).rounded(.up)))
        var seen = 0
        for (bucket, bucketCount) in counts.enumerated() where bucketCount > 0 {
            seen += bucketCount
            if seen >= rank { return min(Self.upperBound(of: bucket), maximum) }
        }
        return maximum
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

    static func bucket(for latency: Duration) -> Int {
        let value = microseconds(latency)
        guard value >= 64 else { return Int(value) }
        let exponent = UInt64.bitWidth - 1 - value.leadingZeroBitCount  // 6...63
        let sub = Int((value >> UInt64(exponent - 5)) & 31)
        return 64 + (exponent - 6) * 32 + sub
    }

    static func upperBound(of bucket: Int) -> Duration {
        guard bucket >= 64 else { return .microseconds(bucket) }
        let exponent = (bucket - 64) / 32 + 6
        let sub = UInt64((bucket - 64) % 32)
        let (bound, overflow) = (32 + sub + 1).multipliedReportingOverflow(by: 1 << UInt64(exponent - 5))
        return .microseconds(Int64(clamping: overflow ? .max : bound - 1))
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
