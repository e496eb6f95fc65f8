/// A PostgreSQL `timestamptz` as sent on the replication protocol: microseconds since
/// 2000-01-01 00:00:00 UTC (the PostgreSQL epoch).
public struct PGTimestamp: RawRepresentable, Comparable, Hashable, Sendable, CustomStringConvertible {
    /// Microseconds since 2000-01-01 00:00:00 UTC; negative before it.
    public var rawValue: Int64

    /// Seconds from the Unix epoch (1970-01-01) to the PostgreSQL epoch (2000-01-01).
    public static let postgresEpochUnixSeconds: Int64 = 946_684_800

    /// Wraps microseconds since 2000-01-01 00:00:00 UTC.
    public init(rawValue: Int64) { self.rawValue = rawValue }

    /// Wraps microseconds since 2000-01-01 00:00:00 UTC.
    public init(microsecondsSince2000: Int64) { self.rawValue = microsecondsSince2000 }

    /// Converts from microseconds since 1970-01-01 00:00:00 UTC, e.g. a client clock reading
    /// for a standby status update. Returns `nil` if the result does not fit in 64 bits.
    public init?(unixMicroseconds: Int64) {
        let (value, overflow) = unixMicroseconds
            .subtractingReportingOverflow(PGTimestamp.postgresEpochUnixSeconds * 1_000_000)
        guard !overflow else { return nil }
        self.rawValue = value
    }

    /// Microseconds since 2000-01-01 00:00:00 UTC.
    public var microsecondsSince2000: Int64 { rawValue }

    /// Microseconds since 1970-01-01 00:00:00 UTC, or `nil` if that does not fit in 64 bits.
    public var unixMicroseconds: Int64? {
        let (value, overflow) = rawValue
            .addingReportingOverflow(PGTimestamp.postgresEpochUnixSeconds * 1_000_000)
        return overflow ? nil : value
    }

    /// ISO-8601 UTC text with microseconds, e.g. `2024-05-01T12:34:56.123456Z`.
    ///
    /// PostgreSQL's `infinity` and `-infinity` (the extreme `Int64` values) print as those
    /// words. Years outside 0...9999 print with as many digits as they need and a leading
    /// `-` when negative (astronomical numbering, year 0 = 1 BC).
    public var iso8601: String {
        if rawValue == .max { return "infinity" }
        if rawValue == .min { return "-infinity" }
        // Floor division keeps the time of day positive for instants before the epoch.
        let (seconds, micros) = PGTimestamp.floorDivide(rawValue, 1_000_000)
        let (daysSince2000, secondOfDay) = PGTimestamp.floorDivide(seconds, 86_400)
        let (year, month, day) = PGTimestamp.civilDate(daysSince1970: daysSince2000 + 10_957)
        let yearText = year < 0 ? "-" + pad(-year, 4) : pad(year, 4)
        return "\(yearText)-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):"
            + "\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2)).\(pad(micros, 6))Z"
    }

    /// Same as ``iso8601``.
    public var description: String { iso8601 }

    public static func < (lhs: PGTimestamp, rhs: PGTimestamp) -> Bool { lhs.rawValue < rhs.rawValue }

    private func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    private static func floorDivide(_ value: Int64, _ divisor: Int64) -> (quotient: Int64, remainder: Int64) {
        let (quotient, remainder) = value.quotientAndRemainder(dividingBy: divisor)
        return remainder < 0 ? (quotient - 1, remainder + divisor) : (quotient, remainder)
    }

    /// Proleptic Gregorian date of a day count, after Howard Hinnant's `civil_from_days`:
    /// shifting the year to start in March puts the leap day last, so each 400-year era
    /// has a fixed layout.
    static func civilDate(daysSince1970: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let shifted = daysSince1970 + 719_468  // days since 0000-03-01
        let era = floorDivide(shifted, 146_097).quotient
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let marchBasedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * marchBasedMonth + 2) / 5 + 1
        let month = marchBasedMonth < 10 ? marchBasedMonth + 3 : marchBasedMonth - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
