/// Exponential backoff with full jitter, capped. Pure: the caller sleeps, so tests need no clock.
public struct RetryPolicy: Sendable, Hashable {
    /// Delay before the first retry. Default: 200ms.
    public var initialDelay: Duration
    /// Upper bound of any one delay. Default: 30s.
    public var maximumDelay: Duration
    /// Growth per attempt. Default: 2.
    public var multiplier: Double

    public init(initialDelay: Duration = .milliseconds(200), maximumDelay: Duration = .seconds(30), multiplier: Double = 2) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.multiplier = multiplier
    }

    /// The ceiling for retry number `attempt` (1 = first retry), before jitter.
    public func ceiling(forAttempt attempt: Int) -> Duration {
        let exponent = Double(max(0, attempt - 1))
        let initial = Double(initialDelay.components.seconds) + Double(initialDelay.components.attoseconds) / 1e18
        let maximum = Double(maximumDelay.components.seconds) + Double(maximumDelay.components.attoseconds) / 1e18
        let seconds = min(maximum, initial * pow(multiplier, exponent))
        return .milliseconds(Int64(seconds * 1000))
    }

    /// The delay for retry `attempt`, `jitter` in [0, 1] drawn by the caller ("full jitter": spreads
    /// reconnecting workers so they do not hammer a recovering server in step). Never below 10ms.
    public func delay(forAttempt attempt: Int, jitter: Double) -> Duration {
        let ceiling = ceiling(forAttempt: attempt)
        let millis = Double(ceiling.components.seconds) * 1000 + Double(ceiling.components.attoseconds) / 1e15
        return .milliseconds(Int64(max(10, millis * min(1, max(0, jitter)))))
    }

    private func pow(_ base: Double, _ exponent: Double) -> Double {
        var result = 1.0
        for _ in 0..<Int(min(exponent, 64)) { result *= base }
        return result
    }
}
