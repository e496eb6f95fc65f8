/// Timestamp text conversions by plain calendar arithmetic: no Foundation formatter, no locale, no time zone
/// database, so the result never depends on the machine Spillway runs on.
public enum ISOTimestamp {
    /// `2026-01-02 03:04:05.123+01` or `2026-01-02T03:04:05.123+01:00` → `2026-01-02T02:04:05.123Z`. Years past
    /// 9999 keep their digits (`10000-01-01T00:00:00Z`); BC timestamps keep PostgreSQL's suffix, which it reads
    /// back (`0044-03-15 12:00:00+00 BC` → `0044-03-15T12:00:00Z BC`). Nil for text it does not understand
    /// (`infinity`): callers keep PostgreSQL's text then.
    public static func utc(fromPostgres text: String) -> String? {
        if let fast = utcWithoutOffset(text) { return fast }
        var b = Array(text.utf8)
        var isBC = false
        if b.count > 3, b[(b.count - 3)...].elementsEqual(" BC".utf8) {
            isBC = true
            b.removeLast(3)
        }
        var y = 0
        while y < b.count, isDigit(b[y]) { y += 1 }
        guard y >= 4, let year = number(b, 0, y), b.count >= y + 15, b[y] == UInt8(ascii: "-"),
              let month = number(b, y + 1, 2), b[y + 3] == UInt8(ascii: "-"), let day = number(b, y + 4, 2),
              b[y + 6] == UInt8(ascii: " ") || b[y + 6] == UInt8(ascii: "T"),
              let hour = number(b, y + 7, 2), b[y + 9] == UInt8(ascii: ":"), let minute = number(b, y + 10, 2),
              b[y + 12] == UInt8(ascii: ":"), let second = number(b, y + 13, 2)
        else { return nil }
        var i = y + 15
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
        // 1 BC is astronomical year 0, 2 BC is -1: the calendar arithmetic runs on astronomical years.
        var days = daysFromCivil(year: isBC ? 1 - year : year, month: month, day: day)
        var secondsOfDay = hour * 3600 + minute * 60 + second - offsetSeconds
        while secondsOfDay < 0 { secondsOfDay += 86_400; days -= 1 }
        while secondsOfDay >= 86_400 { secondsOfDay -= 86_400; days += 1 }
        let (astronomicalYear, m, d) = civilFromDays(days)
        let resultIsBC = astronomicalYear <= 0
        var out = "\(pad(resultIsBC ? 1 - astronomicalYear : astronomicalYear, 4))-\(pad(m, 2))-\(pad(d, 2))T"
        out += "\(pad(secondsOfDay / 3600, 2)):\(pad(secondsOfDay % 3600 / 60, 2)):\(pad(secondsOfDay % 60, 2))"
        if !fraction.isEmpty { out += "." + String(decoding: fraction, as: UTF8.self) }
        return out + (resultIsBC ? "Z BC" : "Z")
    }

    /// The common case, once every connection and the audit trigger pin TimeZone to UTC: a 4-digit AD year
    /// and a zero offset (`2026-01-02 03:04:05.123+00`, `2026-01-02T03:04:05.123+00:00`) need no calendar
    /// arithmetic, only the `T` and the `Z`. This runs for every timestamptz value of every row.
    private static func utcWithoutOffset(_ text: String) -> String? {
        var text = text
        return text.withUTF8 { utcWithoutOffset($0) }
    }

    /// The same, from the bytes where libpq holds them: the result is the one string made.
    static func utcWithoutOffset(_ b: UnsafeBufferPointer<UInt8>) -> String? {
        guard let end = utcEndWithoutOffset(b) else { return nil }
        return String(unsafeUninitializedCapacity: end + 1) { out in
            for i in 0..<end { out[i] = b[i] }
            out[10] = UInt8(ascii: "T")
            out[end] = UInt8(ascii: "Z")
            return end + 1
        }
    }

    /// An audit row's commit time as its events carry it, always with six fraction digits
    /// (`2026-01-02T03:04:05.120000Z`, what `to_char(t, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')` gives), from a
    /// timestamptz's text on a connection pinned to UTC: the reader selects the plain value, since to_char for
    /// every row cost the server more than a tenth of a batch. A form the fast path does not know (a year past
    /// 9999, BC) goes through `utc(fromPostgres:)` and gets the same six digits; `infinity` stays as it is.
    public static func utcMicroseconds(fromPostgres b: UnsafeBufferPointer<UInt8>) -> String {
        guard let end = utcEndWithoutOffset(b), end - 20 <= 6 else {
            let text = String(decoding: b, as: UTF8.self)
            guard let utc = utc(fromPostgres: text), let z = utc.firstIndex(of: "Z") else { return text }
            let seconds = utc[..<z], suffix = utc[z...]
            let dot = seconds.firstIndex(of: ".")
            let fraction = dot.map { String(seconds[seconds.index(after: $0)...]) } ?? ""
            let whole = dot.map { seconds[..<$0] } ?? seconds
            return whole + "." + (fraction + "000000").prefix(6) + suffix
        }
        return String(unsafeUninitializedCapacity: 27) { out in
            for i in 0..<end { out[i] = b[i] }
            out[10] = UInt8(ascii: "T")
            out[19] = UInt8(ascii: ".")
            for i in max(end, 20)..<26 { out[i] = UInt8(ascii: "0") }
            out[26] = UInt8(ascii: "Z")
            return 27
        }
    }

    /// Where `YYYY-MM-DD HH:MM:SS[.fraction]` ends in `b` when it is followed by a zero offset (`+00`,
    /// `+00:00`) and nothing else; nil for any other form.
    private static func utcEndWithoutOffset(_ b: UnsafeBufferPointer<UInt8>) -> Int? {
        let count = b.count
        guard count >= 22, count <= 35 else { return nil }
        var end = count
        if b[end - 6] == UInt8(ascii: "+"), b[end - 5] == 0x30, b[end - 4] == 0x30, b[end - 3] == UInt8(ascii: ":"),
           b[end - 2] == 0x30, b[end - 1] == 0x30 {
            end -= 6
        } else if b[end - 3] == UInt8(ascii: "+"), b[end - 2] == 0x30, b[end - 1] == 0x30 {
            end -= 3
        } else {
            return nil
        }
        guard end >= 19, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
              b[10] == UInt8(ascii: " ") || b[10] == UInt8(ascii: "T"), b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":")
        else { return nil }
        // Digit positions of `YYYY-MM-DD HH:MM:SS`: every one but the separators checked above.
        for i in 0..<19 where i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && !isDigit(b[i]) { return nil }
        if end > 19 {
            guard b[19] == UInt8(ascii: "."), end > 20 else { return nil }
            for i in 20..<end where !isDigit(b[i]) { return nil }
        }
        return end
    }

    /// `2026-01-02T03:04:05.123456Z` (an event's `commit_time`) → seconds since 1970-01-01 UTC. Nil for any
    /// other form.
    public static func secondsSince1970(utc text: String) -> Double? {
        // Read in place: this runs for every acknowledged run of events that share a commit time (the latency
        // metrics), which is every event when transactions are single rows.
        var text = text
        return text.withUTF8 { secondsSince1970(utc: $0) }
    }

    private static func secondsSince1970(utc b: UnsafeBufferPointer<UInt8>) -> Double? {
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

    /// `2026-01-02 03:04:05` → `2026-01-02T03:04:05` (a timestamp without time zone stays zone-less; a year
    /// past 9999 and a ` BC` suffix stay as they are, as `to_jsonb` writes them).
    public static func local(fromPostgres text: String) -> String {
        var b = Array(text.utf8)
        var y = 0
        while y < b.count, isDigit(b[y]) { y += 1 }
        if y >= 4, b.count >= y + 15, b[y] == UInt8(ascii: "-"), b[y + 6] == UInt8(ascii: " "), number(b, y + 7, 2) != nil {
            b[y + 6] = UInt8(ascii: "T")
        }
        return String(decoding: b, as: UTF8.self)
    }

    /// Microseconds since 2000-01-01 00:00:00 UTC (PostgreSQL's epoch, as in pgoutput) → ISO 8601 UTC.
    public static func utc(postgresMicroseconds micros: Int64) -> String {
        PGTimestamp(microsecondsSince2000: micros).iso8601
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    private static func number(_ b: [UInt8], _ start: Int, _ length: Int) -> Int? {
        b.withUnsafeBufferPointer { number($0, start, length) }
    }

    private static func number(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ length: Int) -> Int? {
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
