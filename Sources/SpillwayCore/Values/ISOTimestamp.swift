/// Timestamp text conversions by plain calendar arithmetic: no Foundation formatter, no locale, no time zone
/// database, so the result never depends on the machine Spillway runs on.
public enum ISOTimestamp {
    /// `2026-01-02 03:04:05.123+01` or `2026-01-02T03:04:05.123+01:00` → `2026-01-02T02:04:05.123Z`.
    /// Nil for text it does not understand (`infinity`, BC dates): callers keep PostgreSQL's text then.
    public static func utc(fromPostgres text: String) -> String? {
        let b = Array(text.utf8)
        guard b.count >= 19, let year = number(b, 0, 4), b[4] == UInt8(ascii: "-"),
              let month = number(b, 5, 2), b[7] == UInt8(ascii: "-"), let day = number(b, 8, 2),
              b[10] == UInt8(ascii: " ") || b[10] == UInt8(ascii: "T"),
              let hour = number(b, 11, 2), b[13] == UInt8(ascii: ":"), let minute = number(b, 14, 2),
              b[16] == UInt8(ascii: ":"), let second = number(b, 17, 2)
        else { return nil }
        var i = 19
        var fraction: ArraySlice<UInt8> = []
        if i < b.count, b[i] == UInt8(ascii: ".") {
            let start = i + 1
            i = start
            while i < b.count, isDigit(b[i]) { i += 1 }
            fraction = b[start..<i]
        }
        var offsetSeconds = 0
        if i < b.count {
            let sign: Int
            switch b[i] {
            case UInt8(ascii: "+"): sign = 1
            case UInt8(ascii: "-"): sign = -1
            case UInt8(ascii: "Z") where i == b.count - 1: sign = 0
            default: return nil
            }
            if sign != 0 {
                i += 1
                guard let oh = number(b, i, 2) else { return nil }
                i += 2
                var om = 0, os = 0
                if i < b.count, b[i] == UInt8(ascii: ":") { i += 1 }
                if i + 2 <= b.count, let m = number(b, i, 2) { om = m; i += 2 }
                if i < b.count, b[i] == UInt8(ascii: ":") { i += 1 }
                if i + 2 <= b.count, let s = number(b, i, 2) { os = s; i += 2 }
                guard i == b.count else { return nil }
                offsetSeconds = sign * (oh * 3600 + om * 60 + os)
            }
        }
        var days = daysFromCivil(year: year, month: month, day: day)
        var secondsOfDay = hour * 3600 + minute * 60 + second - offsetSeconds
        while secondsOfDay < 0 { secondsOfDay += 86_400; days -= 1 }
        while secondsOfDay >= 86_400 { secondsOfDay -= 86_400; days += 1 }
        let (y, m, d) = civilFromDays(days)
        guard y >= 0, y <= 9999 else { return nil }
        var out = "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T"
        out += "\(pad(secondsOfDay / 3600, 2)):\(pad(secondsOfDay % 3600 / 60, 2)):\(pad(secondsOfDay % 60, 2))"
        if !fraction.isEmpty { out += "." + String(decoding: fraction, as: UTF8.self) }
        return out + "Z"
    }

    /// `2026-01-02T03:04:05.123456Z` (an event's `commit_time`) → seconds since 1970-01-01 UTC. Nil for any
    /// other form.
    public static func secondsSince1970(utc text: String) -> Double? {
        let b = Array(text.utf8)
        guard b.count >= 20, b.last == UInt8(ascii: "Z"), let year = number(b, 0, 4), b[4] == UInt8(ascii: "-"),
              let month = number(b, 5, 2), b[7] == UInt8(ascii: "-"), let day = number(b, 8, 2), b[10] == UInt8(ascii: "T"),
              let hour = number(b, 11, 2), b[13] == UInt8(ascii: ":"), let minute = number(b, 14, 2),
              b[16] == UInt8(ascii: ":"), let second = number(b, 17, 2)
        else { return nil }
        var fraction = 0.0
        if b.count > 20 {
            guard b[19] == UInt8(ascii: "."), b.count > 21 else { return nil }
            var scale = 0.1
            for byte in b[20..<b.count - 1] {
                guard isDigit(byte) else { return nil }
                fraction += Double(byte - 0x30) * scale
                scale /= 10
            }
        }
        let days = daysFromCivil(year: year, month: month, day: day)
        return Double(days * 86_400 + hour * 3600 + minute * 60 + second) + fraction
    }

    /// `2026-01-02 03:04:05` → `2026-01-02T03:04:05` (a timestamp without time zone stays zone-less).
    public static func local(fromPostgres text: String) -> String {
        var b = Array(text.utf8)
        if b.count >= 19, b[10] == UInt8(ascii: " "), number(b, 0, 4) != nil, number(b, 11, 2) != nil {
            b[10] = UInt8(ascii: "T")
        }
        return String(decoding: b, as: UTF8.self)
    }

    /// Microseconds since 2000-01-01 00:00:00 UTC (PostgreSQL's epoch, as in pgoutput) → ISO 8601 UTC.
    public static func utc(postgresMicroseconds micros: Int64) -> String {
        PGTimestamp(microsecondsSince2000: micros).iso8601
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    private static func number(_ b: [UInt8], _ start: Int, _ length: Int) -> Int? {
        guard start + length <= b.count else { return nil }
        var value = 0
        for byte in b[start..<start + length] {
            guard isDigit(byte) else { return nil }
            value = value * 10 + Int(byte - 0x30)
        }
        return value
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let s = String(value)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// Days since 1970-01-01 in the proleptic Gregorian calendar (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ days: Int) -> (Int, Int, Int) {
        let date = PGTimestamp.civilDate(daysSince1970: Int64(days))
        return (Int(date.year), Int(date.month), Int(date.day))
    }
}
