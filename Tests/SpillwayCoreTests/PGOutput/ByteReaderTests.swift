@testable import SpillwayCore
import Testing

@Suite struct ByteReaderTests {
    @Test("big-endian integers of every width") func integers() throws {
        var reader = ByteReader([0xFF, 0x80, 0x01, 0xFF, 0xFF, 0xFF, 0xFE, 0x01, 0x02, 0x03, 0x04,
                                 0x80, 0, 0, 0, 0, 0, 0, 1])
        #expect(try reader.readUInt8("a") == 0xFF)
        #expect(try reader.readInt16("b") == Int16(bitPattern: 0x8001))
        #expect(try reader.readInt32("c") == -2)
        #expect(try reader.readUInt32("d") == 0x0102_0304)
        #expect(try reader.readInt64("e") == Int64.min + 1)
        #expect(reader.isAtEnd)
        #expect(reader.offset == 19)
    }

    @Test("offsets count from the slice's first byte") func sliceOffsets() throws {
        let storage: [UInt8] = [9, 9, 9, 0x00, 0x2A, UInt8(ascii: "h"), UInt8(ascii: "i"), 0, 7]
        var reader = ByteReader(storage[3...], messageName: "test")
        #expect(try reader.readInt16("n") == 42)
        #expect(try reader.readCString("s") == "hi")
        #expect(reader.offset == 5)
        #expect(reader.readRemainingBytes() == [7])
        #expect(reader.isAtEnd)
        let error = #expect(throws: PGOutputDecodingError.self) { try reader.readUInt8("x") }
        #expect(error?.offset == 6)
    }

    @Test("truncation names the field, the need and what is left") func truncation() {
        var reader = ByteReader([1, 2, 3], messageName: "Widget")
        reader.messageType = UInt8(ascii: "W")
        let error = #expect(throws: PGOutputDecodingError.self) { try reader.readInt64("widget LSN") }
        #expect(error == PGOutputDecodingError(messageType: UInt8(ascii: "W"), messageName: "Widget", offset: 0,
                                               reason: .truncated(expected: "widget LSN", needed: 8, remaining: 3)))
        #expect(error?.description == "Widget message ('W' 0x57) at byte 0: truncated: expected widget LSN (8 bytes), only 3 left")
        #expect(reader.offset == 0)  // a failed read consumes nothing
    }

    @Test("byte runs and length prefixes") func byteRuns() throws {
        var reader = ByteReader([0, 0, 0, 2, 0xAA, 0xBB, 0xCC])
        #expect(try reader.readLengthPrefixedBytes("blob") == [0xAA, 0xBB])
        #expect(try reader.readBytes(count: 0, "nothing") == [])
        #expect(throws: PGOutputDecodingError.self) { try reader.readBytes(count: -1, "minus") }
        #expect(throws: PGOutputDecodingError.self) { try reader.readBytes(count: 2, "too many") }
        #expect(try reader.readBytes(count: 1, "last") == [0xCC])
        #expect(throws: Never.self) { try reader.expectEnd() }
    }

    @Test("strings: empty, invalid UTF-8 repaired, missing NUL") func strings() throws {
        var reader = ByteReader([0, 0xFF, 0x41, 0, 0x42])
        #expect(try reader.readCString("empty") == "")
        #expect(try reader.readCString("bad") == "\u{FFFD}A")
        let error = #expect(throws: PGOutputDecodingError.self) { try reader.readCString("name") }
        #expect(error?.reason == .truncated(expected: "NUL-terminated name", needed: 2, remaining: 1))
    }

    @Test("field names are not built on the success path") func lazyFieldNames() throws {
        var built = 0
        func name() -> String { built += 1; return "field" }
        var reader = ByteReader([1, 2])
        _ = try reader.readInt16(name())
        #expect(built == 0)
        _ = try? reader.readInt16(name())
        #expect(built == 1)
    }
}
