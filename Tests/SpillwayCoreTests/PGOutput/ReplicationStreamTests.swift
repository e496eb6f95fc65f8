@testable import SpillwayCore
import Testing

@Suite struct ReplicationStreamTests {
    @Test("XLogData carries the pgoutput payload") func xLogData() throws {
        let payload = wire(.char("B"), .u64(IDs.lsn), .i64(IDs.timestamp), .u32(IDs.xid))
        let bytes = wire(.char("w"), .u64(IDs.lsn), .u64(IDs.endLSN), .i64(IDs.timestamp), .raw(payload))
        guard case .xLogData(let data) = try ReplicationStreamMessage(decoding: bytes) else {
            Issue.record("not XLogData")
            return
        }
        #expect(data.walStart == LSN(IDs.lsn))
        #expect(data.walEnd == LSN(IDs.endLSN))
        #expect(data.serverClock.iso8601 == "2024-05-01T12:34:56.123456Z")
        #expect(data.payload == payload)
        var decoder = PGOutputDecoder()
        #expect(try decoder.decode(data.payload) == Fixture.version1[0].expected)
    }

    @Test("XLogData with an empty payload decodes; the payload is the pgoutput decoder's to reject")
    func emptyXLogData() throws {
        let bytes = wire(.char("w"), .u64(0), .u64(0), .i64(0))
        #expect(try ReplicationStreamMessage(decoding: bytes)
                == .xLogData(.init(walStart: .zero, walEnd: .zero, serverClock: PGTimestamp(rawValue: 0), payload: [])))
    }

    @Test("Primary keepalive", arguments: [(UInt8(0), false), (1, true)])
    func keepalive(_ flag: UInt8, _ isReplyRequested: Bool) throws {
        let bytes = wire(.char("k"), .u64(IDs.endLSN), .i64(IDs.timestamp), .u8(flag))
        #expect(try ReplicationStreamMessage(decoding: bytes) == .primaryKeepalive(.init(
            walEnd: LSN(IDs.endLSN), serverClock: PGTimestamp(rawValue: IDs.timestamp),
            isReplyRequested: isReplyRequested)))
    }

    @Test("a keepalive with trailing bytes is rejected") func keepaliveTrailing() {
        let bytes = wire(.char("k"), .u64(1), .i64(2), .u8(0), .u8(0))
        let error = #expect(throws: PGOutputDecodingError.self) { try ReplicationStreamMessage(decoding: bytes) }
        #expect(error?.reason == .trailingBytes(count: 1))
        #expect(error?.messageName == "Primary keepalive")
    }

    @Test("unknown envelope type") func unknownEnvelope() {
        let error = #expect(throws: PGOutputDecodingError.self) {
            try ReplicationStreamMessage(decoding: wire(.char("B"), .u64(1)))
        }
        #expect(error?.reason == .unknownMessageType)
        #expect(error?.description == "replication stream message ('B' 0x42) at byte 0: unknown message type byte")
    }

    @Test("truncated XLogData names the missing field") func truncatedXLogData() {
        let error = #expect(throws: PGOutputDecodingError.self) {
            try ReplicationStreamMessage(decoding: wire(.char("w"), .u64(1), .u32(0)))
        }
        #expect(error?.description == "XLogData message ('w' 0x77) at byte 9: truncated: expected WAL end (8 bytes), only 4 left")
    }

    @Test("Standby status update byte layout") func standbyStatusUpdate() {
        let update = StandbyStatusUpdate(writeLSN: LSN(0x0000_0001_0000_00FF), flushLSN: LSN(0x16B3748),
                                         applyLSN: LSN(0x0102_0304_0506_0708),
                                         clientClock: PGTimestamp(rawValue: IDs.timestamp), isReplyRequested: true)
        let expected: [UInt8] = [
            0x72,                                            // 'r'
            0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xFF,  // write
            0x00, 0x00, 0x00, 0x00, 0x01, 0x6B, 0x37, 0x48,  // flush
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // apply
            0x00, 0x02, 0xBA, 0x62, 0x7B, 0x91, 0x9E, 0x40,  // clock
            0x01,                                            // reply requested
        ]
        #expect(update.encoded == expected)
        #expect(update.encoded.count == StandbyStatusUpdate.encodedCount)
    }

    @Test("Standby status update defaults and negative clocks") func standbyStatusDefaults() {
        let update = StandbyStatusUpdate(writeLSN: .zero, flushLSN: .zero, applyLSN: .zero,
                                         clientClock: PGTimestamp(rawValue: -1))
        #expect(update.encoded == [0x72] + [UInt8](repeating: 0, count: 24) + [UInt8](repeating: 0xFF, count: 8) + [0])
    }
}
