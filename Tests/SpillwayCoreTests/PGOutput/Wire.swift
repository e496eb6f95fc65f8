@testable import SpillwayCore

/// One protocol field for hand-building messages, written independently of the decoder.
enum Field: Sendable {
    case char(Character)      // Byte1 from an ASCII letter
    case u8(UInt8)            // Int8
    case i16(Int16)
    case i32(Int32)
    case u32(UInt32)          // Int32 holding an OID or xid
    case i64(Int64)
    case u64(UInt64)          // Int64 holding an LSN
    case cstring(String)      // String, NUL-terminated
    case raw([UInt8])
    case text(String)         // tuple column 't' with Int32 length
    case binary([UInt8])      // tuple column 'b' with Int32 length
    case tuple([Field])       // TupleData: Int16 column count, then the columns
}

/// Concatenates fields big-endian, as the server sends them.
func wire(_ fields: Field...) -> [UInt8] { wire(fields) }

func wire(_ fields: [Field]) -> [UInt8] {
    func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<MemoryLayout<T>.size).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
    }
    return fields.flatMap { field -> [UInt8] in
        switch field {
        case .char(let c): [c.asciiValue!]
        case .u8(let v): [v]
        case .i16(let v): bigEndian(v)
        case .i32(let v): bigEndian(v)
        case .u32(let v): bigEndian(v)
        case .i64(let v): bigEndian(v)
        case .u64(let v): bigEndian(v)
        case .cstring(let s): Array(s.utf8) + [0]
        case .raw(let bytes): bytes
        case .text(let s): [UInt8(ascii: "t")] + bigEndian(Int32(s.utf8.count)) + Array(s.utf8)
        case .binary(let bytes): [UInt8(ascii: "b")] + bigEndian(Int32(bytes.count)) + bytes
        case .tuple(let columns): bigEndian(Int16(columns.count)) + wire(columns)
        }
    }
}

let null = Field.char("n")
let unchangedToast = Field.char("u")

/// Expected-value shorthands.
func text(_ s: String) -> TupleValue { .text(Array(s.utf8)) }
func row(_ values: TupleValue...) -> TupleData { TupleData(values) }

/// Decodes one message, failing the test with the error's description on failure.
func decode(_ bytes: [UInt8], inStreamBlock: Bool = false) throws -> PGOutputMessage {
    try PGOutputMessage(decoding: bytes, inStreamBlock: inStreamBlock)
}

/// The error decoding `bytes` throws, or `nil` if it decodes.
func decodingError(_ bytes: [UInt8], inStreamBlock: Bool = false) -> PGOutputDecodingError? {
    do {
        _ = try PGOutputMessage(decoding: bytes, inStreamBlock: inStreamBlock)
        return nil
    } catch {
        return error
    }
}
