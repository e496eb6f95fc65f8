import Testing
@testable import SpillwayCore

@Suite("Retry backoff")
struct RetryPolicyTests {
    @Test func defaults() {
        let policy = RetryPolicy()
        #expect(policy.initialDelay == .milliseconds(200))
        #expect(policy.maximumDelay == .seconds(30))
        #expect(policy.multiplier == 2)
    }

    @Test func ceilingsDoubleUntilTheCap() {
        let policy = RetryPolicy()
        let ceilings = (1...11).map { policy.ceiling(forAttempt: $0) }
        #expect(ceilings == [
            .milliseconds(200), .milliseconds(400), .milliseconds(800), .milliseconds(1600), .milliseconds(3200),
            .milliseconds(6400), .milliseconds(12_800), .milliseconds(25_600), .seconds(30), .seconds(30), .seconds(30),
        ])
    }

    @Test(arguments: [0, -3, 1])
    func attemptsBeforeTheFirstRetryUseTheInitialDelay(attempt: Int) {
        #expect(RetryPolicy().ceiling(forAttempt: attempt) == .milliseconds(200))
    }

    @Test(arguments: [64, 65, 1_000, Int.max])
    func veryLateAttemptsStayAtTheCap(attempt: Int) {
        #expect(RetryPolicy().ceiling(forAttempt: attempt) == .seconds(30))
        #expect(RetryPolicy().delay(forAttempt: attempt, jitter: 1) == .seconds(30))
    }

    @Test func customPolicy() {
        let policy = RetryPolicy(initialDelay: .seconds(1), maximumDelay: .seconds(10), multiplier: 3)
        #expect((1...4).map { policy.ceiling(forAttempt: $0) } == [.seconds(1), .seconds(3), .seconds(9), .seconds(10)])
    }

    @Test func ceilingsNeverDecrease() {
        let policy = RetryPolicy()
        for attempt in 1..<100 {
            #expect(policy.ceiling(forAttempt: attempt) <= policy.ceiling(forAttempt: attempt + 1))
        }
    }

    @Test(arguments: [
        (1, 0.0, Duration.milliseconds(10)),
        (1, 1.0, .milliseconds(200)),
        (3, 0.5, .milliseconds(400)),
        (3, 0.25, .milliseconds(200)),
        (9, 1.0, .seconds(30)),
        (9, 0.5, .seconds(15)),
        (1, 0.01, .milliseconds(10)),
        // Out-of-range jitter is clamped to [0, 1].
        (3, 2.0, .milliseconds(800)),
        (3, -1.0, .milliseconds(10)),
    ])
    func jitteredDelay(attempt: Int, jitter: Double, delay: Duration) {
        #expect(RetryPolicy().delay(forAttempt: attempt, jitter: jitter) == delay)
    }

    @Test func delayIsNeverBelowTenMilliseconds() {
        let tiny = RetryPolicy(initialDelay: .milliseconds(1), maximumDelay: .milliseconds(5))
        for attempt in 1...10 {
            for jitter in stride(from: 0.0, through: 1.0, by: 0.125) {
                #expect(tiny.delay(forAttempt: attempt, jitter: jitter) == .milliseconds(10))
            }
        }
    }

    @Test func delayStaysWithinTheCeiling() {
        let policy = RetryPolicy()
        for attempt in 1...12 {
            let ceiling = policy.ceiling(forAttempt: attempt)
            for jitter in stride(from: 0.0, through: 1.0, by: 0.05) {
                let delay = policy.delay(forAttempt: attempt, jitter: jitter)
                #expect(delay >= .milliseconds(10))
                #expect(delay <= ceiling)
            }
        }
    }
}
