/// A server message inside the CopyBoth stream that `START_REPLICATION` opens (PostgreSQL
/// docs, "Streaming Replication Protocol"). The CopyData framing is already removed.
public enum ReplicationStreamMessage: Hashable, Sendable {
    case xLogData(XLogData)                  // 'w'
    case primaryKeepalive(PrimaryKeepalive)  // 'k'

    /// Decodes one CopyData payload from the server.
    ///
    /// - Throws: ``PGOutputDecodingError`` for truncated, overlong or unknown messages.
    public init(decoding bytes: ArraySlice<UInt8>) throws(PGOutputDecodingError) {
        var reader = ByteReader(bytes, messageName: "replication stream")
        let type = try reader.readUInt8("message type byte")
        reader.messageType = type
        switch type {
        case UInt8(ascii: "w"):
            reader.messageName = "XLogData"
            self = try .xLogData(XLogData(walStart: reader.readLSN("WAL start"),
                                          walEnd: reader.readLSN("WAL end"),
                                          serverClock: reader.readTimestamp("server clock"),
                                          payload: reader.readRemainingBytes()))
        case UInt8(ascii: "k"):
            reader.messageName = "Primary keepalive"
            self = try .primaryKeepalive(PrimaryKeepalive(
                walEnd: reader.readLSN("WAL end"),
                serverClock: reader.readTimestamp("server clock"),
                isReplyRequested: reader.readUInt8("reply requested flag") != 0))
            try reader.expectEnd()
        default:
            throw reader.error(.unknownMessageType, at: 0)
        }
    }

    /// Decodes one CopyData payload from the server.
    public init(decoding bytes: [UInt8]) throws(PGOutputDecodingError) {
        try self.init(decoding: bytes[...])
    }

    /// WAL data; the payload is one pgoutput message for ``PGOutputDecoder``.
    public struct XLogData: Hashable, Sendable {
        /// Where the payload starts in the WAL; 0/0 for pgoutput's non-WAL messages.
        public var walStart: LSN
        /// The server's current end of WAL.
        public var walEnd: LSN
        /// The server's clock when it sent the message.
        public var serverClock: PGTimestamp
        /// The pgoutput message.
        public var payload: [UInt8]
    }

    /// A heartbeat; answer with a ``StandbyStatusUpdate`` soon if `isReplyRequested`, or
    /// the server drops the connection after `wal_sender_timeout`.
    public struct PrimaryKeepalive: Hashable, Sendable {
        /// The server's current end of WAL.
        public var walEnd: LSN
        /// The server's clock when it sent the message.
        public var serverClock: PGTimestamp
        /// Whether the server wants a status update at once.
        public var isReplyRequested: Bool
    }
}

/// The client's progress report ('r'), sent as CopyData to let the server recycle WAL.
public struct StandbyStatusUpdate: Hashable, Sendable {
    /// One past the last WAL byte received and written.
    public var writeLSN: LSN
    /// One past the last WAL byte durably stored; the slot may discard WAL before it.
    public var flushLSN: LSN
    /// One past the last WAL byte applied.
    public var applyLSN: LSN
    /// The client's clock when sending.
    public var clientClock: PGTimestamp
    /// Asks the server to answer at once with a keepalive. Default: `false`.
    public var isReplyRequested: Bool

    /// The encoded size: type byte, four `Int64`s and the flag.
    public static let encodedCount = 34

    /// Describes progress; a logical replication client usually reports the same LSN thrice.
    public init(writeLSN: LSN, flushLSN: LSN, applyLSN: LSN, clientClock: PGTimestamp,
                isReplyRequested: Bool = false) {
        self.writeLSN = writeLSN
        self.flushLSN = flushLSN
        self.applyLSN = applyLSN
        self.clientClock = clientClock
        self.isReplyRequested = isReplyRequested
    }

    /// The CopyData payload, big-endian as the server expects.
    public var encoded: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.encodedCount)
        bytes.append(UInt8(ascii: "r"))
        for value in [writeLSN.rawValue, flushLSN.rawValue, applyLSN.rawValue,
                      UInt64(bitPattern: clientClock.rawValue)] {
            for shift in stride(from: 56, through: 0, by: -8) {
                bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
            }
        }
        bytes.append(isReplyRequested ? 1 : 0)
        return bytes
    }
}
