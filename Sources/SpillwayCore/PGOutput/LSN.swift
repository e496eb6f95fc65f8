/// A PostgreSQL write-ahead log position (`pg_lsn`), a byte offset into the WAL.
///
/// Its text form is PostgreSQL's: two upper-case hexadecimal halves without leading
/// zeros, separated by a slash, e.g. `0/16B3748`.
public struct LSN: RawRepresentable, Comparable, Hashable, Sendable, CustomStringConvertible {
    /// The position as PostgreSQL stores it (`XLogRecPtr`).
    public var rawValue: UInt64

    /// `0/0`, PostgreSQL's `InvalidXLogRecPtr`; the server sends it where no position applies.
    public static let zero = LSN(0)

    /// Wraps a raw 64-bit position.
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Wraps a raw 64-bit position.
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    /// Parses PostgreSQL's `XXXXXXXX/XXXXXXXX` form.
    ///
    /// Like the server's `pg_lsn_in`, each half must have 1 to 8 hexadecimal digits of either
    /// case and nothing may surround them. Returns `nil` for anything else.
    public init?(string: String) {
        let parts = string.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard parts.count == 2,
              let high = LSN.parseHalf(parts[0]),
              let low = LSN.parseHalf(parts[1])
        else { return nil }
        self.rawValue = UInt64(high) << 32 | UInt64(low)
    }

    /// The `XXXXXXXX/XXXXXXXX` form, e.g. `0/16B3748`.
    public var description: String {
        String(rawValue >> 32, radix: 16, uppercase: true) + "/"
            + String(rawValue & 0xFFFF_FFFF, radix: 16, uppercase: true)
    }

    public static func < (lhs: LSN, rhs: LSN) -> Bool { lhs.rawValue < rhs.rawValue }

    private static func parseHalf(_ digits: Substring.UTF8View) -> UInt32? {
        guard (1...8).contains(digits.count) else { return nil }
        var value: UInt32 = 0
        for digit in digits {
            let nibble: UInt8
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = digit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = digit - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = digit - UInt8(ascii: "A") + 10
            default: return nil
            }
            // Eight digits at most, so the shift never drops bits.
            value = value << 4 | UInt32(nibble)
        }
        return value
    }
}
