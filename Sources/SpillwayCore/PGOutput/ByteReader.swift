/// Reads big-endian protocol fields from the front of a byte buffer.
///
/// Every read checks the remaining length first and throws ``PGOutputDecodingError`` naming
/// the field, so no input can make it trap. Offsets count from the buffer's first byte,
/// whatever the slice's `startIndex`. Field names are autoclosures so that the success path
/// builds no strings.
public struct ByteReader: Sendable {
    /// A field's name for error messages, e.g. `"relation id"`.
    public typealias FieldName = () -> String

    private let bytes: ArraySlice<UInt8>
    /// Bytes consumed so far.
    public private(set) var offset = 0
    /// The message type byte, reported in errors once known.
    public var messageType: UInt8?
    /// The message name reported in errors, e.g. `"Insert"`. Default: `"protocol"`.
    public var messageName: String

    /// Starts reading at the first byte of `bytes`.
    public init(_ bytes: ArraySlice<UInt8>, messageName: String = "protocol") {
        self.bytes = bytes
        self.messageName = messageName
    }

    /// Starts reading at the first byte of `bytes`.
    public init(_ bytes: [UInt8], messageName: String = "protocol") {
        self.init(bytes[...], messageName: messageName)
    }

    /// Bytes not yet consumed.
    public var remainingCount: Int { bytes.count - offset }

    /// Whether every byte has been consumed.
    public var isAtEnd: Bool { remainingCount == 0 }

    /// An error at `offset` (default: the current offset), for checks the reader cannot
    /// make itself.
    public func error(_ reason: PGOutputDecodingError.Reason, at offset: Int? = nil) -> PGOutputDecodingError {
        PGOutputDecodingError(messageType: messageType, messageName: messageName,
                              offset: offset ?? self.offset, reason: reason)
    }

    /// Reads a big-endian integer of `T`'s width; signed types reinterpret the bit pattern.
    public mutating func readInteger<T: FixedWidthInteger>(
        as type: T.Type = T.self, _ field: @autoclosure FieldName
    ) throws(PGOutputDecodingError) -> T {
        let size = MemoryLayout<T>.size
        let start = try reserve(size, field)
        var value: UInt64 = 0
        for byte in bytes[start..<start + size] { value = value << 8 | UInt64(byte) }
        return T(truncatingIfNeeded: value)
    }

    /// Reads one byte.
    public mutating func readUInt8(_ field: @autoclosure FieldName) throws(PGOutputDecodingError) -> UInt8 {
        try readInteger(field())
    }

    /// Reads a protocol `Int16`.
    public mutating func readInt16(_ field: @autoclosure FieldName) throws(PGOutputDecodingError) -> Int16 {
        try readInteger(field())
    }

    /// Reads a protocol `Int32`.
    public mutating func readInt32(_ field: @autoclosure FieldName) throws(PGOutputDecodingError) -> Int32 {
        try readInteger(field())
    }

    /// Reads a protocol `Int32` that PostgreSQL treats as unsigned (OIDs, transaction ids).
    public mutating func readUInt32(_ field: @autoclosure FieldName) throws(PGOutputDecodingError) -> UInt32 {
        try readInteger(field())
    }

    /// Reads a protocol `Int64`.
    public mutating func readInt64(_ field: @autoclosure FieldName) throws(PGOutputDecodingError) -> Int64 {
        try readInteger(field())
    }

    /// Reads a WAL position (`Int64` on the wire).
    public mutating func readLSN(_ field: @autoclosure FieldName) throws(PGOutputDecodingError) -> LSN {
        LSN(try readInteger(as: UInt64.self, field()))
    }

    /// Reads a timestamp (`Int64` microseconds since 2000-01-01 on the wire).
    public mutating func readTimestamp(_ field: @autoclosure FieldName) throws(PGOutputDecodingError) -> PGTimestamp {
        PGTimestamp(rawValue: try readInt64(field()))
    }

    /// Reads a NUL-terminated string and consumes the NUL.
    ///
    /// PostgreSQL sends names in the server encoding; invalid UTF-8 is repaired with U+FFFD
    /// rather than rejected, because names here are identifiers, not row data.
    public mutating func readCString(_ field: @autoclosure FieldName) throws(PGOutputDecodingError) -> String {
        let rest = bytes.dropFirst(offset)
        guard let nul = rest.firstIndex(of: 0) else {
            throw error(.truncated(expected: "NUL-terminated \(field())", needed: remainingCount + 1,
                                   remaining: remainingCount))
        }
        offset += rest.distance(from: rest.startIndex, to: nul) + 1
        return String(decoding: rest[..<nul], as: UTF8.self)
    }

    /// Reads `count` raw bytes; a negative `count` is reported as a negative length.
    public mutating func readBytes(
        count: Int, _ field: @autoclosure FieldName
    ) throws(PGOutputDecodingError) -> [UInt8] {
        guard count >= 0 else { throw error(.negativeLength(Int64(count), field: "length of \(field())")) }
        let start = try reserve(count, field)
        return Array(bytes[start..<start + count])
    }

    /// Reads an `Int32` length followed by that many bytes.
    public mutating func readLengthPrefixedBytes(
        _ field: @autoclosure FieldName
    ) throws(PGOutputDecodingError) -> [UInt8] {
        let lengthOffset = offset
        let count = try readInt32("length of \(field())")
        guard count >= 0 else {
            throw error(.negativeLength(Int64(count), field: "length of \(field())"), at: lengthOffset)
        }
        return try readBytes(count: Int(count), field())
    }

    /// Consumes and returns everything left.
    public mutating func readRemainingBytes() -> [UInt8] {
        defer { offset = bytes.count }
        return Array(bytes.dropFirst(offset))
    }

    /// Throws unless every byte has been consumed.
    public func expectEnd() throws(PGOutputDecodingError) {
        guard isAtEnd else { throw error(.trailingBytes(count: remainingCount)) }
    }

    /// Checks that `count` bytes remain, consumes them and returns their start index.
    private mutating func reserve(_ count: Int, _ field: FieldName) throws(PGOutputDecodingError) -> Int {
        guard count <= remainingCount else {
            throw error(.truncated(expected: field(), needed: count, remaining: remainingCount))
        }
        defer { offset += count }
        return bytes.startIndex + offset
    }
}
