/// Decodes one replication session's pgoutput messages in order, tracking the v2 stream
/// block so that data messages inside it are read with their leading transaction id.
///
/// A pure value: feed it each XLogData payload in arrival order. Start a fresh decoder (or
/// call ``reset()``) on reconnect, since the server starts a new session in a clean state.
public struct PGOutputDecoder: Sendable {
    /// The transaction whose stream block is open (after Stream Start, before Stream Stop);
    /// `nil` outside stream blocks.
    public private(set) var openStreamXID: TransactionID?

    /// Whether a stream block is open.
    public var isInStreamBlock: Bool { openStreamXID != nil }

    /// A decoder outside any stream block.
    public init() {}

    /// Decodes the next message and updates the stream-block state.
    ///
    /// - Throws: ``PGOutputDecodingError`` for malformed input, a Stream Start while a block
    ///   is open, or a Stream Stop while none is. The state is unchanged when it throws.
    public mutating func decode(_ bytes: ArraySlice<UInt8>) throws(PGOutputDecodingError) -> PGOutputMessage {
        let message = try PGOutputMessage(decoding: bytes, inStreamBlock: isInStreamBlock)
        switch message {
        case .streamStart(let start):
            if let openStreamXID {
                throw Self.stateError(.init(ascii: "S"), "Stream Start for transaction \(start.xid) "
                                      + "while the block of transaction \(openStreamXID) is still open")
            }
            openStreamXID = start.xid
        case .streamStop:
            guard isInStreamBlock else {
                throw Self.stateError(.init(ascii: "E"), "Stream Stop without an open stream block")
            }
            openStreamXID = nil
        default:
            break
        }
        return message
    }

    /// Decodes the next message; like the `ArraySlice` overload.
    public mutating func decode(_ bytes: [UInt8]) throws(PGOutputDecodingError) -> PGOutputMessage {
        try decode(bytes[...])
    }

    /// Forgets any open stream block, e.g. after reconnecting.
    public mutating func reset() { openStreamXID = nil }

    private static func stateError(_ type: UInt8, _ why: String) -> PGOutputDecodingError {
        PGOutputDecodingError(messageType: type, messageName: PGOutputMessage.name(ofType: type) ?? "pgoutput",
                              offset: 0, reason: .unexpectedMessage(why))
    }
}
