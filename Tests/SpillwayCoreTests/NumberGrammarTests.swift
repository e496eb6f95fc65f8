@testable import SpillwayCore
import Testing

@Suite("JSON number grammar used for integer and float columns")
struct NumberGrammarTests {
    @Test("accepted as JSON numbers", arguments: ["0", "-0", "7", "-12", "3.25", "1e10", "1E-7", "-2.5e+3", "9223372036854775807"])
    func accepted(_ text: String) {
        #expect(PGValueMapper.isJSONNumber(text))
        #expect(PGValueMapper.json(fromText: text, kind: .float) == .number(text))
        #expect(Array(text.utf8).withUnsafeBufferPointer { PGValueMapper.json(fromText: $0, kind: .integer) } == .number(text))
    }

    @Test("rejected, so they stay strings", arguments: ["", "-", "01", "1.", ".5", "1e", "+1", " 1", "1 ", "NaN", "Infinity", "-Infinity", "0x10", "1..2"])
    func rejected(_ text: String) {
        #expect(!PGValueMapper.isJSONNumber(text))
        #expect(PGValueMapper.json(fromText: text, kind: .float) == .string(text))
        #expect(Array(text.utf8).withUnsafeBufferPointer { PGValueMapper.json(fromText: $0, kind: .integer) } == .string(text))
    }
}
