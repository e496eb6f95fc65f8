/// Why a replication message could not be decoded: which message, where in it, and what
/// the decoder expected to find there.
///
/// Decoding never traps; every malformed or truncated input surfaces as this error.
public struct PGOutputDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The problem found.
    public enum Reason: Hashable, Sendable {
        /// The input ended early; `needed` bytes were required for `expected` but only
        /// `remaining` were left.
        case truncated(expected: String, needed: Int, remaining: Int)
        /// The first byte names no message type known to this decoder.
        case unknownMessageType
        /// A byte with a fixed set of meanings (tuple column kind, tuple marker, replica
        /// identity) held none of them.
        case invalidByte(UInt8, field: String, allowed: String)
        /// A length or count field was negative.
        case negativeLength(Int64, field: String)
        /// The message was longer than its fields; the count of left-over bytes.
        case trailingBytes(count: Int)
        /// The message is well formed but not allowed here, e.g. a Stream Start inside a
        /// stream block.
        case unexpectedMessage(String)
    }

    /// The message's first byte, e.g. `UInt8(ascii: "I")`; `nil` if the input was empty.
    public var messageType: UInt8?
    /// A readable name for the message, e.g. `Insert` or `XLogData`; `pgoutput` or
    /// `replication stream` while the type is unknown.
    public var messageName: String
    /// Offset of the offending field from the message's first byte.
    public var offset: Int
    /// What went wrong.
    public var reason: Reason

    /// Creates an error; decoders normally build it through ``ByteReader``.
    public init(messageType: UInt8?, messageName: String, offset: Int, reason: Reason) {
        self.messageType = messageType
        self.messageName = messageName
        self.offset = offset
        self.reason = reason
    }

    /// One line naming the message, the offset and the problem; contains no row data.
    public var description: String {
        let type = messageType.map { " (\(Self.show($0)))" } ?? ""
        return "\(messageName) message\(type) at byte \(offset): " + {
            switch reason {
            case let .truncated(expected, needed, remaining):
                return "truncated: expected \(expected) (\(needed) bytes), only \(remaining) left"
            case .unknownMessageType:
                return "unknown message type byte"
            case let .invalidByte(byte, field, allowed):
                return "invalid \(field) \(Self.show(byte)); expected \(allowed)"
            case let .negativeLength(value, field):
                return "negative length: \(field) is \(value)"
            case let .trailingBytes(count):
                return "\(count) unexpected trailing bytes after the last field"
            case let .unexpectedMessage(why):
                return "unexpected message: \(why)"
            }
        }()
    }

    /// `'I'` for printable ASCII, `0x07` otherwise, so descriptions stay one clean line.
    static func show(_ byte: UInt8) -> String {
        let hex = "0x" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
        return (0x21...0x7E).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))' \(hex)" : hex
    }
}
