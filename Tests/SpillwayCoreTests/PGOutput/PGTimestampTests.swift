@testable import SpillwayCore
import Testing

@Suite struct PGTimestampTests {
    @Test("ISO-8601 text", arguments: [
        (Int64(0), "2000-01-01T00:00:00.000000Z"),
        (767_882_096_123_456, "2024-05-01T12:34:56.123456Z"),
        (-1, "1999-12-31T23:59:59.999999Z"),
        (-946_684_800_000_000, "1970-01-01T00:00:00.000000Z"),
        (762_480_000_000_000, "2024-02-29T00:00:00.000000Z"),   // leap day
        (5_364_748_799_999_999, "2169-12-31T23:59:59.999999Z"),
        (-63_113_904_000_000_000, "0000-01-01T00:00:00.000000Z"),
        (252_424_080_000_000_000, "9999-01-01T00:00:00.000000Z"),
        (Int64.max, "infinity"), (Int64.min, "-infinity"),
    ])
    func iso8601(_ micros: Int64, _ text: String) {
        #expect(PGTimestamp(microsecondsSince2000: micros).iso8601 == text)
        #expect(PGTimestamp(rawValue: micros).description == text)
    }

    @Test("every day from 1899 to 2101 matches a naive calendar walk") func calendarWalk() {
        func isLeap(_ y: Int) -> Bool { y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) }
        var (year, month, day) = (1899, 1, 1)
        // 1899-01-01 is 36,889 days before 2000-01-01.
        for dayNumber in -36_889..<37_000 {
            let text = PGTimestamp(rawValue: Int64(dayNumber) * 86_400_000_000 + 3_723_000_004).iso8601
            let expected = "\(year)-\(month < 10 ? "0" : "")\(month)-\(day < 10 ? "0" : "")\(day)T01:02:03.000004Z"
            if text != expected {
                Issue.record("day \(dayNumber): \(text) != \(expected)")
                return
            }
            let monthLength = [31, isLeap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
            day += 1
            if day > monthLength { (day, month) = (1, month + 1) }
            if month > 12 { (month, year) = (1, year + 1) }
        }
    }

    @Test("extreme non-infinite values never trap") func extremes() {
        #expect(PGTimestamp(rawValue: Int64.max - 1).iso8601.hasSuffix("Z"))
        #expect(PGTimestamp(rawValue: Int64.min + 1).iso8601.hasPrefix("-"))
    }

    @Test("Unix epoch conversions") func unixConversions() {
        #expect(PGTimestamp(unixMicroseconds: 946_684_800_000_000)?.rawValue == 0)
        #expect(PGTimestamp(unixMicroseconds: 1_714_566_896_123_456)?.iso8601 == "2024-05-01T12:34:56.123456Z")
        #expect(PGTimestamp(rawValue: 0).unixMicroseconds == 946_684_800_000_000)
        #expect(PGTimestamp(unixMicroseconds: Int64.min) == nil)
        #expect(PGTimestamp(rawValue: Int64.max).unixMicroseconds == nil)
        #expect(PGTimestamp(rawValue: 1) > PGTimestamp(rawValue: -1))
    }
}
