import Testing
@testable import SpillwayCore

@Suite("ISO 8601 timestamps")
struct TimestampTests {
    @Test(arguments: [
        ("2026-01-02 03:04:05.123456+00", "2026-01-02T03:04:05.123456Z"),
        ("2026-01-02 03:04:05+00", "2026-01-02T03:04:05Z"),
        ("2026-01-02 03:04:05.5+05:30", "2026-01-01T21:34:05.5Z"),
        ("2026-01-02 03:04:05-08", "2026-01-02T11:04:05Z"),
        ("2026-01-02 03:04:05-03:30", "2026-01-02T06:34:05Z"),
        ("2026-01-02T03:04:05.123+01:00", "2026-01-02T02:04:05.123Z"),
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"),
        ("2026-01-02T03:04:05.000001Z", "2026-01-02T03:04:05.000001Z"),
        // Historic local mean time: PostgreSQL prints offsets with seconds.
        ("1900-01-01 00:00:00+00:19:32", "1899-12-31T23:40:28Z"),
        // Day, month and year roll over in both directions.
        ("2026-01-01 20:00:00-08", "2026-01-02T04:00:00Z"),
        ("2026-01-02 01:00:00+02", "2026-01-01T23:00:00Z"),
        ("2026-01-31 23:30:00-01", "2026-02-01T00:30:00Z"),
        ("2026-03-01 00:30:00+01", "2026-02-28T23:30:00Z"),
        ("2025-12-31 23:59:59.999999-08", "2026-01-01T07:59:59.999999Z"),
        ("2026-01-01 00:15:00+05:30", "2025-12-31T18:45:00Z"),
        // Leap days: 2024 and 2000 have one, 2100 does not.
        ("2024-02-28 23:00:00-02", "2024-02-29T01:00:00Z"),
        ("2024-02-29 23:00:00-02", "2024-03-01T01:00:00Z"),
        ("2024-03-01 01:00:00+02", "2024-02-29T23:00:00Z"),
        ("2000-03-01 00:00:00+00:00:01", "2000-02-29T23:59:59Z"),
        ("2100-03-01 01:00:00+02", "2100-02-28T23:00:00Z"),
        // BC keeps PostgreSQL's suffix (which it reads back); 1 BC is followed by 1 AD, there is no year 0.
        ("0044-03-15 12:00:00+00 BC", "0044-03-15T12:00:00Z BC"),
        ("0044-03-15T17:53:28+05:53:28 BC", "0044-03-15T12:00:00Z BC"),
        ("0001-01-01 01:00:00+02 BC", "0002-12-31T23:00:00Z BC"),
        ("0001-12-31 23:00:00-02 BC", "0001-01-01T01:00:00Z"),
        ("0001-01-01 01:00:00+02", "0001-12-31T23:00:00Z BC"),
        // Years past 9999 keep all their digits.
        ("10000-01-01 00:00:00+00", "10000-01-01T00:00:00Z"),
        ("10000-01-01T01:00:00.5+02:00", "9999-12-31T23:00:00.5Z"),
    ])
    func postgresTimestamptzToUTC(text: String, utc: String) {
        #expect(ISOTimestamp.utc(fromPostgres: text) == utc)
        // A snapshot maps the bytes libpq holds: the same result.
        let fromBytes = Array(text.utf8).withUnsafeBufferPointer { PGValueMapper.json(fromText: $0, kind: .timestampWithTimeZone) }
        #expect(fromBytes == .string(utc))
    }

    @Test(arguments: [
        "infinity", "-infinity", "0044-03-15 12:00:00+00 AD", "0044-03-15 12:00:00+00BC", "not a timestamp", "2026-01-02",
        "2026-01-02 03:04:05+0x", "2026-01-02 03:04:05 +00", "2026/01/02 03:04:05+00",
    ])
    func textItDoesNotUnderstandIsNil(text: String) {
        #expect(ISOTimestamp.utc(fromPostgres: text) == nil)
        let fromBytes = Array(text.utf8).withUnsafeBufferPointer { PGValueMapper.json(fromText: $0, kind: .timestampWithTimeZone) }
        #expect(fromBytes == .string(text), "kept as PostgreSQL's text")
    }

    @Test(arguments: [
        (0, "2000-01-01T00:00:00.000000Z"),
        (1, "2000-01-01T00:00:00.000001Z"),
        (-1, "1999-12-31T23:59:59.999999Z"),
        (-86_400_000_000, "1999-12-31T00:00:00.000000Z"),
        (-946_684_800_000_000, "1970-01-01T00:00:00.000000Z"),
        (820_638_245_123_456, "2026-01-02T03:04:05.123456Z"),
        (762_523_200_000_001, "2024-02-29T12:00:00.000001Z"),
    ] as [(Int64, String)])
    func postgresMicroseconds(micros: Int64, utc: String) {
        #expect(ISOTimestamp.utc(postgresMicroseconds: micros) == utc)
    }

    @Test(arguments: [
        ("2026-01-02 03:04:05", "2026-01-02T03:04:05"),
        ("2026-01-02 03:04:05.123456", "2026-01-02T03:04:05.123456"),
        ("2026-01-02T03:04:05", "2026-01-02T03:04:05"),
        ("infinity", "infinity"),
        ("-infinity", "-infinity"),
    ])
    func timestampWithoutZoneGetsATOnly(text: String, iso: String) {
        #expect(ISOTimestamp.local(fromPostgres: text) == iso)
    }

    @Test func calendarArithmeticAgreesBothWays() {
        for days in stride(from: -800_000, through: 2_932_896, by: 997) {
            let (y, m, d) = ISOTimestamp.civilFromDays(days)
            #expect(ISOTimestamp.daysFromCivil(year: y, month: m, day: d) == days)
        }
        #expect(ISOTimestamp.daysFromCivil(year: 1970, month: 1, day: 1) == 0)
        #expect(ISOTimestamp.daysFromCivil(year: 2000, month: 1, day: 1) == 10_957)
    }
}

extension TimestampTests {
    // An audit row's commit_time: always six fraction digits, as to_char(t, '...SS.US"Z"') wrote it before the
    // reader read the timestamptz's own text.
    @Test(arguments: [
        ("2026-01-02 03:04:05.123456+00", "2026-01-02T03:04:05.123456Z"),
        ("2026-01-02 03:04:05+00", "2026-01-02T03:04:05.000000Z"),
        ("2026-01-02 03:04:05.5+00", "2026-01-02T03:04:05.500000Z"),
        ("2026-01-02 03:04:05.00001+00:00", "2026-01-02T03:04:05.000010Z"),
        // Not what a connection pinned to UTC prints, but handled: the offset is applied.
        ("2026-01-02 03:04:05.12+05:30", "2026-01-01T21:34:05.120000Z"),
        ("10000-01-01 00:00:00+00", "10000-01-01T00:00:00.000000Z"),
        ("0044-03-15 12:00:00.25+00 BC", "0044-03-15T12:00:00.250000Z BC"),
        ("infinity", "infinity"),
        ("-infinity", "-infinity"),
    ])
    func commitTimeHasSixFractionDigits(text: String, utc: String) {
        #expect(Array(text.utf8).withUnsafeBufferPointer { ISOTimestamp.utcMicroseconds(fromPostgres: $0) } == utc)
    }
}
