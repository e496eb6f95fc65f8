@testable import SpillwayCore
import Testing

@Suite struct MessageDecodingTests {
    @Test("every valid message decodes to its expected value", arguments: Fixture.all)
    func decodesFixture(_ fixture: Fixture) throws {
        #expect(try decode(fixture.bytes, inStreamBlock: fixture.inStreamBlock) == fixture.expected)
    }

    @Test("a slice with a non-zero start index decodes like an array", arguments: Fixture.all)
    func decodesSlice(_ fixture: Fixture) throws {
        let padded = [0xEE, 0xEE, 0xEE] + fixture.bytes + [0xEE]
        let slice = padded[3..<(padded.count - 1)]
        #expect(try PGOutputMessage(decoding: slice, inStreamBlock: fixture.inStreamBlock) == fixture.expected)
    }

    @Test("Begin from literal bytes, independent of the test builder")
    func beginFromLiteralBytes() throws {
        let bytes: [UInt8] = [
            0x42,                                            // 'B'
            0x00, 0x00, 0x00, 0x00, 0x01, 0x6B, 0x37, 0x48,  // final LSN 0/16B3748
            0x00, 0x02, 0xBA, 0x62, 0x7B, 0x91, 0x9E, 0x40,  // 767882096123456 µs
            0xB2, 0xD0, 0x5E, 0x00,                          // xid 3000000000
        ]
        guard case .begin(let begin) = try decode(bytes) else {
            Issue.record("not a Begin")
            return
        }
        #expect(begin.finalLSN.description == "0/16B3748")
        #expect(begin.commitTimestamp.iso8601 == "2024-05-01T12:34:56.123456Z")
        #expect(begin.xid == 3_000_000_000)
    }

    @Test func relationColumnsAndNames() throws {
        guard case .relation(let relation) = try decode(wire([.char("R")] + Fixture.usersRelationFields)) else {
            Issue.record("not a Relation")
            return
        }
        #expect(relation.columns.map(\.isKey) == [true, false, false])
        #expect(relation.columns.map(\.name) == ["id", "name", "avatar"])
        #expect(relation.qualifiedName == "public.users")
        #expect(relation.replicaIdentity == .default)
    }

    @Test("every replica identity byte", arguments: [
        ("d", PGOutputMessage.Relation.ReplicaIdentity.default), ("n", .nothing), ("f", .full), ("i", .index),
    ] as [(Character, PGOutputMessage.Relation.ReplicaIdentity)])
    func replicaIdentity(_ byte: Character, _ expected: PGOutputMessage.Relation.ReplicaIdentity) throws {
        let bytes = wire(.char("R"), .u32(1), .cstring("s"), .cstring("t"), .char(byte), .i16(0))
        guard case .relation(let relation) = try decode(bytes) else {
            Issue.record("not a Relation")
            return
        }
        #expect(relation.replicaIdentity == expected)
    }

    @Test("unknown column flag bits are kept") func unknownColumnFlags() throws {
        let bytes = wire(.char("R"), .u32(1), .cstring("s"), .cstring("t"), .char("d"), .i16(1),
                         .u8(0b101), .cstring("c"), .u32(25), .i32(-1))
        guard case .relation(let relation) = try decode(bytes) else {
            Issue.record("not a Relation")
            return
        }
        #expect(relation.columns[0].isKey)
        #expect(relation.columns[0].flags.rawValue == 0b101)
    }

    @Test func tupleValueAccessors() {
        #expect(text("héllo").string == "héllo")
        #expect(TupleValue.text([0xFF, 0xFE]).string == nil)  // not UTF-8
        #expect(TupleValue.binary([0x41]).string == nil)
        #expect(TupleValue.null.string == nil)
        #expect(OldTuple.key(Rows.oldKeyValue).tuple == Rows.oldKeyValue)
        #expect(OldTuple.full(Rows.oldFullValue).tuple == Rows.oldFullValue)
    }

    @Test("large text values keep every byte") func largeText() throws {
        let big = String(repeating: "x", count: 100_000)
        let bytes = wire(.char("I"), .u32(1), .char("N"), .tuple([.text(big)]))
        #expect(try decode(bytes) == .insert(.init(streamXID: nil, relationID: 1, newTuple: row(text(big)))))
    }

    @Test("unknown truncate option bits are kept") func truncateOptionBits() throws {
        let bytes = wire(.char("T"), .i32(0), .u8(0x83))
        guard case .truncate(let truncate) = try decode(bytes) else {
            Issue.record("not a Truncate")
            return
        }
        #expect(truncate.options.contains([.cascade, .restartIdentity]))
        #expect(truncate.options.rawValue == 0x83)
        #expect(truncate.relationIDs.isEmpty)
    }

    @Test func messageNames() {
        #expect(PGOutputMessage.name(ofType: UInt8(ascii: "c")) == "Stream Commit")
        #expect(PGOutputMessage.name(ofType: UInt8(ascii: "Y")) == "Type")
        #expect(PGOutputMessage.name(ofType: UInt8(ascii: "x")) == nil)
    }
}
