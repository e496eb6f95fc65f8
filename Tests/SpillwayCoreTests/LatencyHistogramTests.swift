import SpillwayCore
import Testing

@Suite struct LatencyHistogramTests {
    @Test func emptyHasNoPercentiles() {
        let histogram = LatencyHistogram()
        #expect(histogram.percentile(0.5) == nil)
        #expect(histogram.summary == "no events")
    }

    @Test func percentilesStayWithinOnePercentOfTheExactValue() {
        var histogram = LatencyHistogram()
        // 1ms, 2ms, ..., 1000ms: the exact p50 is 500ms, p99 990ms.
        for ms in 1...1000 { histogram.record(.milliseconds(ms)) }
        #expect(histogram.count == 1000)
        #expect(histogram.maximum == .milliseconds(1000))
        for (quantile, exact) in [(0.5, 500.0), (0.99, 990.0), (0.01, 10.0)] {
            let value = try! #require(histogram.percentile(quantile))
            let ms = Double(value.components.seconds) * 1000 + Double(value.components.attoseconds) / 1e15
            #expect(ms >= exact && ms <= exact * 1.01, "p\(quantile * 100): \(ms)ms for \(exact)ms")
        }
        #expect(histogram.percentile(1) == .milliseconds(1000), "never above the exact maximum")
    }

    @Test func smallValuesAreExactAndNegativeOnesCountAsZero() {
        var histogram = LatencyHistogram()
        histogram.record(.microseconds(-500))  // the database host's clock is ahead
        histogram.record(.microseconds(37), count: 3)
        #expect(histogram.count == 4)
        #expect(histogram.percentile(0.25) == .zero)
        #expect(histogram.percentile(0.5) == .microseconds(37))
    }

    @Test func hugeValuesDoNotTrap() {
        var histogram = LatencyHistogram()
        histogram.record(.seconds(Int64.max / 2))
        histogram.record(.seconds(86_400 * 365))
        #expect(histogram.count == 2)
        #expect(histogram.percentile(0.5)! <= .seconds(86_400 * 365 * 105 / 100))
    }

    @Test func summaryNamesPercentilesAndCount() {
        var histogram = LatencyHistogram()
        for _ in 0..<99 { histogram.record(.milliseconds(12)) }
        histogram.record(.milliseconds(480))
        #expect(histogram.summary.hasPrefix("p50 12ms, p99 12ms, max 480ms over 100 events"), "\(histogram.summary)")
    }

    @Test func commitLatenciesUseEachEventsCommitTime() {
        func event(_ id: String, _ commitTime: String?) -> ChangeEvent {
            ChangeEvent(id: id, op: .insert, schema: "public", table: "t", commitTime: commitTime, position: id)
        }
        let committed = ISOTimestamp.secondsSince1970(utc: "2026-11-25T10:00:00.000000Z")!
        var histogram = LatencyHistogram()
        histogram.recordCommitLatencies(of: [
            event("a", "2026-11-25T10:00:00.000000Z"), event("b", "2026-11-25T10:00:00.000000Z"),
            event("c", "2026-11-25T10:00:00.250000Z"), event("d", nil),
        ], acknowledgedAt: committed + 0.5)
        #expect(histogram.count == 3, "an event without commit_time is left out")
        #expect(histogram.maximum == .milliseconds(500))
        let p = histogram.percentile(0.33)!  // the lowest of three: c, 250ms after its commit
        #expect(p >= .milliseconds(250) && p < .milliseconds(259), "\(p)")
    }
}

@Suite struct CommitTimeParsingTests {
    @Test(arguments: [
        ("1970-01-01T00:00:00Z", 0.0),
        ("2000-01-01T00:00:00Z", 946_684_800.0),
        ("2026-11-25T10:00:00.5Z", 1_795_600_800.5),
        ("2024-02-29T23:59:59.000001Z", 1_709_251_199.000001),
    ])
    func parsesEventCommitTimes(text: String, seconds: Double) throws {
        let parsed = try #require(ISOTimestamp.secondsSince1970(utc: text))
        #expect(abs(parsed - seconds) < 1e-6, "\(text): \(parsed)")
    }

    @Test(arguments: ["", "2026-11-25 10:00:00Z", "2026-11-25T10:00:00+01:00", "2026-11-25T10:00:00.Z", "2026-11-25T10:00:0xZ", "infinity"])
    func refusesOtherForms(text: String) {
        #expect(ISOTimestamp.secondsSince1970(utc: text) == nil)
    }
}
