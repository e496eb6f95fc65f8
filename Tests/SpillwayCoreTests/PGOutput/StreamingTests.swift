@testable import SpillwayCore
import Testing

@Suite struct StreamingTests {
    let start = wire(.char("S"), .u32(IDs.xid), .u8(1))
    let stop = wire(.char("E"))
    let streamedInsert = wire(.char("I"), .u32(IDs.xid), .u32(IDs.users), .char("N"), .tuple([.text("1")]))
    let plainInsert = wire(.char("I"), .u32(IDs.users), .char("N"), .tuple([.text("1")]))

    @Test("the stateful decoder reads the xid only between Stream Start and Stream Stop")
    func decoderTracksStreamBlock() throws {
        var decoder = PGOutputDecoder()
        #expect(!decoder.isInStreamBlock)
        #expect(try decoder.decode(plainInsert) == .insert(.init(streamXID: nil, relationID: IDs.users,
                                                                  newTuple: row(text("1")))))
        #expect(try decoder.decode(start) == .streamStart(.init(xid: IDs.xid, isFirstSegment: true)))
        #expect(decoder.isInStreamBlock)
        #expect(decoder.openStreamXID == IDs.xid)
        #expect(try decoder.decode(streamedInsert) == .insert(.init(streamXID: IDs.xid, relationID: IDs.users,
                                                                     newTuple: row(text("1")))))
        #expect(try decoder.decode(stop) == .streamStop)
        #expect(!decoder.isInStreamBlock)
        let commit = wire(.char("c"), .u32(IDs.xid), .u8(0), .u64(IDs.lsn), .u64(IDs.endLSN), .i64(IDs.timestamp))
        guard case .streamCommit(let streamCommit) = try decoder.decode(commit) else {
            Issue.record("not a Stream Commit")
            return
        }
        #expect(streamCommit.endLSN == LSN(IDs.endLSN))
    }

    @Test("a full streamed session: blocks of two transactions interleaved with a normal one")
    func interleavedSession() throws {
        let otherXID: TransactionID = 900
        let session: [[UInt8]] = [
            wire(.char("S"), .u32(IDs.xid), .u8(1)),
            wire([.char("R"), .u32(IDs.xid)] + Fixture.usersRelationFields),
            wire(.char("I"), .u32(IDs.xid), .u32(IDs.users), .char("N"), .tuple(Rows.new)),
            wire(.char("E")),
            wire(.char("B"), .u64(IDs.lsn), .i64(IDs.timestamp), .u32(otherXID)),
            wire(.char("D"), .u32(IDs.users), .char("K"), .tuple(Rows.oldKey)),
            wire(.char("C"), .u8(0), .u64(IDs.lsn), .u64(IDs.endLSN), .i64(IDs.timestamp)),
            wire(.char("S"), .u32(IDs.xid), .u8(0)),
            wire(.char("U"), .u32(IDs.subXID), .u32(IDs.users), .char("N"), .tuple(Rows.new)),
            wire(.char("E")),
            wire(.char("A"), .u32(IDs.xid), .u32(IDs.subXID)),
            wire(.char("c"), .u32(IDs.xid), .u8(0), .u64(IDs.lsn), .u64(IDs.endLSN), .i64(IDs.timestamp)),
        ]
        var decoder = PGOutputDecoder()
        var cache = RelationCache()
        var streamXIDs: [TransactionID?] = []
        for bytes in session {
            let message = try decoder.decode(bytes)
            cache.observe(message)
            _ = try cache.relations(referencedBy: message)
            switch message {
            case .insert(let m): streamXIDs.append(m.streamXID)
            case .update(let m): streamXIDs.append(m.streamXID)
            case .delete(let m): streamXIDs.append(m.streamXID)
            default: break
            }
        }
        #expect(streamXIDs == [IDs.xid, nil, IDs.subXID])
        #expect(!decoder.isInStreamBlock)
    }

    @Test("Stream Start inside an open block is rejected and leaves the state alone")
    func nestedStreamStart() throws {
        var decoder = PGOutputDecoder()
        _ = try decoder.decode(start)
        let error = #expect(throws: PGOutputDecodingError.self) {
            try decoder.decode(wire(.char("S"), .u32(7), .u8(0)))
        }
        #expect(error?.reason == .unexpectedMessage(
            "Stream Start for transaction 7 while the block of transaction \(IDs.xid) is still open"))
        #expect(error?.description.contains("Stream Start") == true)
        #expect(decoder.openStreamXID == IDs.xid)
    }

    @Test("Stream Stop without an open block is rejected")
    func strayStreamStop() {
        var decoder = PGOutputDecoder()
        let error = #expect(throws: PGOutputDecodingError.self) { try decoder.decode(stop) }
        #expect(error?.description.contains("without an open stream block") == true)
    }

    @Test("reset forgets an open block") func reset() throws {
        var decoder = PGOutputDecoder()
        _ = try decoder.decode(start)
        decoder.reset()
        #expect(!decoder.isInStreamBlock)
        #expect(throws: Never.self) { try decoder.decode(plainInsert) }
    }

    @Test("a streamed data message read without the flag fails instead of misparsing")
    func streamedMessageWithoutFlag() {
        // The xid is taken for the relation id, so the marker lands on a relation id byte.
        let error = decodingError(streamedInsert, inStreamBlock: false)
        #expect(error?.reason == .invalidByte(0x00, field: "new tuple marker", allowed: "'N'"))
        #expect(error?.offset == 5)
    }

    @Test("a plain data message read with the flag fails", arguments: [
        wire(.char("I"), .u32(IDs.users), .char("N"), .tuple([.text("1")])),
        wire(.char("T"), .i32(1), .u8(0), .u32(IDs.users)),
        wire(.char("D"), .u32(IDs.users), .char("K"), .tuple([.text("1")])),
    ])
    func plainMessageWithFlag(_ bytes: [UInt8]) {
        #expect(decodingError(bytes, inStreamBlock: true) != nil)
    }

    @Test("messages without a stream xid decode the same inside a block", arguments: Fixture.version1.filter {
        ["Begin", "Commit", "Origin"].contains($0.name)
    } + Fixture.version2.filter { !$0.inStreamBlock })
    func xidlessMessagesIgnoreFlag(_ fixture: Fixture) throws {
        #expect(try decode(fixture.bytes, inStreamBlock: true) == fixture.expected)
        #expect(try decode(fixture.bytes, inStreamBlock: false) == fixture.expected)
    }
}
