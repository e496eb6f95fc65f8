/// What `/healthz` and `/readyz` answer, decided from what the pipeline reported, without I/O: the
/// pipeline tells it what happened (`sessionStarted`, `sinkFailed`, …) and the endpoint asks it at
/// `now`. Generic over the clock's instant so that it is tested with made-up instants.
public struct HealthState<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    public enum Session: Sendable, Equatable {
        /// No session yet: connecting for the first time.
        case starting
        /// Connected to the source, sinks validated, streaming.
        case streaming
        /// The last session failed; reconnecting with backoff.
        case reconnecting
        /// Another runner of the consumer is active; waiting to take over.
        case standby
        /// The pipeline ended (its service returned or threw).
        case stopped
    }

    public struct Answer: Sendable, Equatable {
        public var isOK: Bool
        /// Plain text, one fact a line; names sinks, never errors (they can carry hosts or values).
        public var body: String
    }

    public private(set) var session: Session = .starting
    private let stallAfter: Duration
    private let livenessTimeout: Duration
    private var lastTick: Instant
    /// Sinks whose last attempt failed, in configuration order, and the others.
    private var sinks: [(name: String, isFailing: Bool)]
    /// Batches handed to the sinks and not yet acknowledged.
    private var inFlight = 0
    /// Since when the oldest unacknowledged batch has waited (reset by every acknowledgement).
    private var waitingSince: Instant?

    public init(sinks: [String], stallAfter: Duration, livenessTimeout: Duration, now: Instant) {
        self.sinks = sinks.map { ($0, false) }
        self.stallAfter = stallAfter
        self.livenessTimeout = livenessTimeout
        self.lastTick = now
    }

    /// Any stage ran (a read, a retry, a reconnect attempt): the loop is turning.
    public mutating func tick(now: Instant) { lastTick = now }

    public mutating func sessionStarted(now: Instant) {
        session = .streaming
        inFlight = 0
        waitingSince = nil
        tick(now: now)
    }

    public mutating func sessionFailed(now: Instant) {
        session = .reconnecting
        inFlight = 0
        waitingSince = nil
        tick(now: now)
    }

    public mutating func stopped() { session = .stopped }

    /// Waiting for the consumer's lock (called at each wait, so it also ticks).
    public mutating func standby(now: Instant) {
        session = .standby
        inFlight = 0
        waitingSince = nil
        tick(now: now)
    }

    public mutating func submitted(now: Instant) {
        if inFlight == 0 { waitingSince = now }
        inFlight += 1
        tick(now: now)
    }

    public mutating func acknowledged(now: Instant) {
        inFlight = max(0, inFlight - 1)
        waitingSince = inFlight > 0 ? now : nil
        tick(now: now)
    }

    public mutating func sinkFailed(_ name: String, now: Instant) { setSink(name, isFailing: true); tick(now: now) }
    public mutating func sinkSucceeded(_ name: String, now: Instant) { setSink(name, isFailing: false); tick(now: now) }

    private mutating func setSink(_ name: String, isFailing: Bool) {
        if let index = sinks.firstIndex(where: { $0.name == name }) { sinks[index].isFailing = isFailing }
    }

    /// Stalled: a batch has waited longer than `stall_after` for the sinks.
    public func isStalled(now: Instant) -> Bool {
        guard let waitingSince else { return false }
        return waitingSince.duration(to: now) > stallAfter
    }

    /// `/healthz`: the process is alive and its pipeline loop turns.
    public func liveness(now: Instant) -> Answer {
        if session == .stopped { return Answer(isOK: false, body: "pipeline stopped\n") }
        let idle = lastTick.duration(to: now)
        if idle > livenessTimeout {
            return Answer(isOK: false, body: "pipeline loop has not turned for \(idle) (limit \(livenessTimeout))\n")
        }
        return Answer(isOK: true, body: "ok\n")
    }

    /// `/readyz`: connected to the source and every sink, and not stalled; says the role. A standby is
    /// ready: it is what it should be, and a rollout must be able to go on past it.
    public func readiness(now: Instant) -> Answer {
        if session == .standby {
            return Answer(isOK: true, body: "ready\nrole: standby\nsource: waiting to take over (another runner of the consumer is active)\n")
        }
        let stalled = isStalled(now: now)
        let failing = sinks.filter(\.isFailing).map(\.name)
        let isReady = session == .streaming && failing.isEmpty && !stalled
        var lines = [isReady ? "ready" : "not ready", "role: active"]
        switch session {
        case .standby: break
        case .starting: lines.append("source: connecting")
        case .streaming: lines.append("source: connected")
        case .reconnecting: lines.append("source: reconnecting")
        case .stopped: lines.append("source: stopped")
        }
        for sink in sinks { lines.append("sink \(sink.name): \(sink.isFailing ? "failing" : "ok")") }
        if stalled { lines.append("stalled: a batch has waited more than \(stallAfter) for its acknowledgement") }
        return Answer(isOK: isReady, body: lines.joined(separator: "\n") + "\n")
    }
}
