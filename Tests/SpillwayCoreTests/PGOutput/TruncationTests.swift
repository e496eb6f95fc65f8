@testable import SpillwayCore
import Testing

/// Cuts every valid message at every possible point: each prefix must throw a truncation
/// error that points inside the prefix, never trap and never decode.
@Suite struct TruncationTests {
    @Test("every proper prefix of a pgoutput message throws 'truncated'", arguments: Fixture.all)
    func everyPrefixThrows(_ fixture: Fixture) {
        for length in 0..<fixture.bytes.count {
            let prefix = Array(fixture.bytes.prefix(length))
            let error = decodingError(prefix, inStreamBlock: fixture.inStreamBlock)
            guard case .truncated(_, let needed, let remaining)? = error?.reason else {
                Issue.record("prefix of \(length) bytes: expected truncation, got \(String(describing: error))")
                continue
            }
            #expect(remaining < needed)
            #expect(error!.offset + remaining == length, "prefix of \(length) bytes: \(error!)")
            #expect(error!.description.contains("truncated"))
        }
    }

    @Test("the stateful decoder throws on every prefix and keeps its state", arguments: Fixture.all)
    func statefulDecoderPrefixes(_ fixture: Fixture) throws {
        var decoder = PGOutputDecoder()
        if fixture.inStreamBlock { _ = try decoder.decode(wire(.char("S"), .u32(IDs.xid), .u8(1))) }
        for length in 0..<fixture.bytes.count {
            #expect(throws: PGOutputDecodingError.self) { try decoder.decode(fixture.bytes[..<length]) }
            #expect(decoder.isInStreamBlock == fixture.inStreamBlock)
        }
        #expect(try decoder.decode(fixture.bytes) == fixture.expected)
    }

    @Test("every proper prefix of a keepalive and of an XLogData header throws")
    func envelopePrefixes() {
        let keepalive = wire(.char("k"), .u64(IDs.lsn), .i64(IDs.timestamp), .u8(1))
        let xLogHeader = wire(.char("w"), .u64(IDs.lsn), .u64(IDs.endLSN), .i64(IDs.timestamp))
        for message in [keepalive, xLogHeader] {
            for length in 0..<message.count {
                let error = #expect(throws: PGOutputDecodingError.self) {
                    try ReplicationStreamMessage(decoding: Array(message.prefix(length)))
                }
                guard case .truncated? = error?.reason else {
                    Issue.record("prefix of \(length) bytes: \(String(describing: error))")
                    continue
                }
            }
        }
    }
}
