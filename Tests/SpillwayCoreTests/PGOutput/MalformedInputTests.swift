@testable import SpillwayCore
import Testing

@Suite struct MalformedInputTests {
    @Test("empty input") func emptyInput() {
        let error = decodingError([])
        #expect(error?.reason == .truncated(expected: "message type byte", needed: 1, remaining: 0))
        #expect(error?.messageType == nil)
        #expect(error?.description == "pgoutput message at byte 0: truncated: expected message type byte (1 bytes), only 0 left")
    }

    @Test("unknown message type byte", arguments: [UInt8(ascii: "x"), UInt8(ascii: "w"), 0x00, 0xFF,
                                                   UInt8(ascii: "b"), UInt8(ascii: "P")])
    func unknownMessageType(_ type: UInt8) {
        let error = decodingError([type, 0, 0, 0, 1])
        #expect(error?.reason == .unknownMessageType)
        #expect(error?.offset == 0)
        #expect(error?.messageType == type)
        #expect(error?.description.contains("unknown message type") == true)
    }

    @Test func unknownMessageTypeDescription() {
        #expect(decodingError([UInt8(ascii: "x")])?.description
                == "pgoutput message ('x' 0x78) at byte 0: unknown message type byte")
        #expect(decodingError([0x07])?.description == "pgoutput message (0x07) at byte 0: unknown message type byte")
    }

    @Test("bad tuple column kind byte") func badTupleKind() {
        let bytes = wire(.char("I"), .u32(IDs.users), .char("N"), .tuple([.text("1"), .char("x")]))
        let error = decodingError(bytes)
        #expect(error?.reason == .invalidByte(UInt8(ascii: "x"), field: "tuple column kind of column 2",
                                              allowed: "'n', 'u', 't' or 'b'"))
        #expect(error?.offset == 14)  // after 'I', relid(4), 'N', count(2), 't', len(4), '1'
        #expect(error?.description ==
                "Insert message ('I' 0x49) at byte 14: invalid tuple column kind of column 2 'x' 0x78; expected 'n', 'u', 't' or 'b'")
    }

    @Test("negative text length") func negativeTextLength() {
        let bytes = wire(.char("I"), .u32(IDs.users), .char("N"), .i16(1), .char("t"), .i32(-1))
        let error = decodingError(bytes)
        #expect(error?.reason == .negativeLength(-1, field: "length of text of column 1"))
        #expect(error?.offset == 9)
        #expect(error?.description.contains("negative length") == true)
    }

    @Test("negative binary length") func negativeBinaryLength() {
        let bytes = wire(.char("U"), .u32(IDs.users), .char("N"), .i16(1), .char("b"), .i32(Int32.min))
        #expect(decodingError(bytes)?.reason == .negativeLength(Int64(Int32.min), field: "length of binary of column 1"))
    }

    @Test("negative message content length") func negativeContentLength() {
        let bytes = wire(.char("M"), .u8(1), .u64(IDs.lsn), .cstring("p"), .i32(-5))
        #expect(decodingError(bytes)?.reason == .negativeLength(-5, field: "length of content"))
    }

    @Test("negative counts", arguments: [
        (wire(.char("I"), .u32(1), .char("N"), .i16(-1)), "tuple column count"),
        (wire(.char("R"), .u32(1), .cstring("s"), .cstring("t"), .char("d"), .i16(-3)), "column count"),
        (wire(.char("T"), .i32(-2), .u8(0)), "relation count"),
    ])
    func negativeCount(_ bytes: [UInt8], _ field: String) {
        let error = decodingError(bytes)
        guard case .negativeLength(_, let reported) = error?.reason else {
            Issue.record("expected a negative length error, got \(String(describing: error))")
            return
        }
        #expect(reported == field)
        #expect(error?.description.contains("negative length: \(field)") == true)
    }

    @Test("a huge truncate count fails on the missing bytes instead of allocating") func hugeTruncateCount() {
        let error = decodingError(wire(.char("T"), .i32(Int32.max), .u8(0), .u32(1)))
        #expect(error?.reason == .truncated(expected: "relation id 2 of 2147483647", needed: 4, remaining: 0))
    }

    @Test("a huge text length fails as truncated") func hugeTextLength() {
        let bytes = wire(.char("I"), .u32(1), .char("N"), .i16(1), .char("t"), .i32(Int32.max), .raw([1, 2]))
        #expect(decodingError(bytes)?.reason == .truncated(expected: "text of column 1", needed: Int(Int32.max), remaining: 2))
    }

    @Test("invalid replica identity") func invalidReplicaIdentity() {
        let bytes = wire(.char("R"), .u32(1), .cstring("s"), .cstring("t"), .char("z"), .i16(0))
        let error = decodingError(bytes)
        #expect(error?.reason == .invalidByte(UInt8(ascii: "z"), field: "replica identity", allowed: "'d', 'n', 'f' or 'i'"))
        #expect(error?.offset == 9)
    }

    @Test("invalid tuple markers", arguments: [
        (wire(.char("I"), .u32(1), .char("K"), .tuple([])), "new tuple marker"),
        (wire(.char("U"), .u32(1), .char("X"), .tuple([])), "tuple marker"),
        (wire(.char("U"), .u32(1), .char("K"), .tuple([]), .char("K"), .tuple([])), "new tuple marker"),
        (wire(.char("D"), .u32(1), .char("N"), .tuple([])), "old tuple marker"),
    ])
    func invalidMarker(_ bytes: [UInt8], _ field: String) {
        let error = decodingError(bytes)
        guard case .invalidByte(_, let reported, _) = error?.reason else {
            Issue.record("expected an invalid byte error, got \(String(describing: error))")
            return
        }
        #expect(reported == field)
    }

    @Test("trailing bytes after a valid message", arguments: Fixture.all)
    func trailingBytes(_ fixture: Fixture) {
        let error = decodingError(fixture.bytes + [0], inStreamBlock: fixture.inStreamBlock)
        #expect(error?.reason == .trailingBytes(count: 1))
        #expect(error?.offset == fixture.bytes.count)
        #expect(error?.description.contains("trailing") == true)
    }

    @Test("column count mismatch against the cached Relation") func columnCountMismatch() throws {
        var cache = RelationCache()
        cache.store(Fixture.usersRelation)
        let insert = try decode(wire(.char("I"), .u32(IDs.users), .char("N"), .tuple([.text("1"), null])))
        let error = #expect(throws: RelationCacheError.self) { try cache.relations(referencedBy: insert) }
        #expect(error == .columnCountMismatch(relationID: IDs.users, relationName: "public.users", expected: 3, actual: 2))
        #expect(error?.description ==
                "column count mismatch for relation 16384 (public.users): the tuple has 2 columns but the Relation message declared 3")
    }

    @Test("an old tuple with the wrong column count is caught too") func oldTupleMismatch() throws {
        var cache = RelationCache()
        cache.store(Fixture.usersRelation)
        let update = try decode(wire(.char("U"), .u32(IDs.users), .char("K"), .tuple([.text("1")]),
                                     .char("N"), .tuple(Rows.new)))
        #expect(throws: RelationCacheError.columnCountMismatch(relationID: IDs.users, relationName: "public.users",
                                                               expected: 3, actual: 1)) {
            try cache.relations(referencedBy: update)
        }
    }

    @Test("a missing NUL terminator reads as truncated") func missingNul() {
        let error = decodingError(wire(.char("O"), .u64(1), .raw(Array("node".utf8))))
        #expect(error?.reason == .truncated(expected: "NUL-terminated origin name", needed: 5, remaining: 4))
    }
}
