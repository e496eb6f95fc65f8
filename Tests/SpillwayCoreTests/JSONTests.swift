import Testing
@testable import SpillwayCore

/// Parses `text`, returning the error the parser threw, or nil when it parsed.
private func parseError(_ text: String) -> JSONParser.Error? {
    do {
        _ = try JSONParser.parse(text)
        return nil
    } catch {
        return error
    }
}

@Suite("JSON parsing and encoding")
struct JSONTests {
    // MARK: Round trips

    @Test func nestedDocumentRoundTripsByteForByte() throws {
        let text = #"{"z":1,"a":{"y":[1,2.50,-0.0,1e400,12.50],"b":null,"x":{}},"m":true,"f":false,"s":"x","e":[]}"#
        let value = try JSONParser.parse(text)
        #expect(JSONEncoding.string(value) == text)
    }

    @Test func objectKeysKeepDocumentOrder() throws {
        let value = try JSONParser.parse(#"{"zeta":1,"alpha":2,"mid":{"b":1,"a":2}}"#)
        let object = try #require(value.objectValue)
        #expect(object.names == ["zeta", "alpha", "mid"])
        #expect(object["mid"]?.objectValue?.names == ["b", "a"])
    }

    @Test(arguments: [
        "12.50", "1e400", "-1e400", "-0", "0", "-0.0", "0.000001", "1E+2", "-3e-5", "2.5E-07",
        "123456789012345678901234567890", "9223372036854775807", "18446744073709551616",
        "3.141592653589793238462643383279",
    ])
    func numberLiteralsAreKeptVerbatim(literal: String) throws {
        #expect(try JSONParser.parse(literal) == .number(literal))
        #expect(try JSONParser.parse("[\(literal)]") == .array([.number(literal)]))
        #expect(JSONEncoding.string(.number(literal)) == literal)
    }

    @Test func whitespaceIsDroppedOnEncoding() throws {
        let value = try JSONParser.parse(" {\n\t\"a\" : [ 1 , 2 ] ,\r\n \"b\" : \"c d\" } ")
        #expect(JSONEncoding.string(value) == #"{"a":[1,2],"b":"c d"}"#)
    }

    @Test func literalsParse() throws {
        #expect(try JSONParser.parse("true") == .bool(true))
        #expect(try JSONParser.parse("false") == .bool(false))
        #expect(try JSONParser.parse("null") == .null)
        #expect(try JSONParser.parse(#""""#) == .string(""))
        #expect(try JSONParser.parse("[]") == .array([]))
        #expect(try JSONParser.parse("{}") == .object(JSONObject()))
    }

    @Test func parsingBytesMatchesParsingText() throws {
        let text = #"{"k":["v",1.0]}"#
        #expect(try JSONParser.parse(Array(text.utf8)) == JSONParser.parse(text))
    }

    // MARK: Strings

    @Test func stringEscapesAreDecoded() throws {
        let value = try JSONParser.parse(#""q\"b\\s\/b\bf\fn\nr\rt\tA\u0041e\u00e9E\u00C9""#)
        #expect(value == .string("q\"b\\s/b\u{08}f\u{0C}n\nr\rt\tAAe\u{E9}E\u{C9}"))
    }

    @Test("a string's plain run before, between and after escapes is kept; a control character after a plain run is still rejected (offset: the byte after it, as before)")
    func escapesAfterAPlainRun() throws {
        #expect(try JSONParser.parse(#"{"k":"plain text then \"quoted\" and é\u00e9 then plain"}"#)
                == .object(["k": .string("plain text then \"quoted\" and é\u{E9} then plain")]))
        #expect(try JSONParser.parse(#"["abc","","\\","x\ny"]"#) == .array([.string("abc"), .string(""), .string("\\"), .string("x\ny")]))
        #expect(throws: JSONParser.Error(offset: 6, problem: "control character in string")) {
            try JSONParser.parse("\"abcd\u{01}\"")
        }
        #expect(throws: JSONParser.Error(offset: 6, problem: "unterminated string")) { try JSONParser.parse("\"abc\\n") }
    }

    @Test("the word-at-a-time escape check finds every byte that needs escaping, at every offset, and nothing else")
    func escapeCheckAgreesWithTheByteRule() {
        for byte in 0...255 {
            for length in 1...19 {
                for offset in [0, length / 2, length - 1] {
                    var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    bytes[offset] = UInt8(byte)
                    let expected = byte < 0x20 || byte == 0x22 || byte == 0x5C
                    #expect(bytes.withUnsafeBufferPointer { JSONEncoding.needsEscaping($0) } == expected, "byte \(byte) at \(offset) of \(length)")
                    // And the encoder's output for it parses back to the same string.
                    let text = String(decoding: bytes, as: UTF8.self)
                    #expect((try? JSONParser.parse(JSONEncoding.string(.string(text)))) == .string(text))
                }
            }
        }
        #expect([UInt8]().withUnsafeBufferPointer { JSONEncoding.needsEscaping($0) } == false)
        #expect(Array("é 日本 \u{7F}".utf8).withUnsafeBufferPointer { JSONEncoding.needsEscaping($0) } == false, "UTF-8 and DEL stay as they are")
    }

    @Test func surrogatePairsDecodeToOneScalar() throws {
        let value = try JSONParser.parse(#""smile \ud83d\ude00 end""#)
        #expect(value == .string("smile \u{1F600} end"))
        #expect(JSONEncoding.string(value) == "\"smile \u{1F600} end\"")
    }

    @Test func rawUnicodeInInputIsKept() throws {
        let text = "\"Zürich 東京 \u{1F600}\""
        let value = try JSONParser.parse(text)
        #expect(value == .string("Zürich 東京 \u{1F600}"))
        #expect(JSONEncoding.string(value) == text)
    }

    @Test func encodingEscapesQuotesBackslashesAndControlCharacters() {
        let value = JSONValue.string("say \"hi\" \\ path\n\r\t\u{00}\u{01}\u{08}\u{0C}\u{1B}\u{1F} /\u{7F}é")
        #expect(JSONEncoding.string(value) == "\"say \\\"hi\\\" \\\\ path\\n\\r\\t\\u0000\\u0001\\u0008\\u000c\\u001b\\u001f /\u{7F}é\"")
    }

    @Test(arguments: [("", #""""#), ("\"", #""\"""#), ("\n", #""\n""#), ("a\\", #""a\\""#), ("\tb", #""\tb""#),
                      ("\"\"", #""\"\"""#), ("plain text", #""plain text""#)])
    func escapesAtEitherEndAndBetweenRuns(raw: String, encoded: String) {
        #expect(JSONEncoding.string(.string(raw)) == encoded)
    }

    @Test func escapedStringsRoundTrip() throws {
        let original = JSONValue.string("tab\tquote\"nul\u{00}esc\u{1B}emoji\u{1F600}")
        let encoded = JSONEncoding.string(original)
        #expect(try JSONParser.parse(encoded) == original)
    }

    @Test func objectKeysAreEscaped() {
        let object: JSONObject = ["a\"b": .null, "c\nd": .bool(true)]
        #expect(JSONEncoding.string(.object(object)) == #"{"a\"b":null,"c\nd":true}"#)
    }

    // MARK: Errors

    @Test(arguments: [
        (#"{"a":1} x"#, 8, "unexpected trailing characters"),
        ("[1] [2]", 4, "unexpected trailing characters"),
        (#""abc"#, 4, "unterminated string"),
        (#""abc\"#, 5, "unterminated escape"),
        (#""a\qb""#, 4, "invalid escape"),
        ("01", 1, "unexpected trailing characters"),
        ("[01]", 2, "expected ',' or ']'"),
        ("-01", 2, "unexpected trailing characters"),
        ("", 0, "unexpected end of input"),
        ("   ", 3, "unexpected end of input"),
        ("[1,]", 3, "unexpected character"),
        (#"{"a":1,}"#, 7, "expected a key"),
        ("{a:1}", 1, "expected a key"),
        (#"{"a" 1}"#, 5, "expected ':'"),
        (#"{"a":1"#, 6, "unterminated object"),
        (#"{"a":1]"#, 6, "expected ',' or '}'"),
        ("[1,2", 4, "unterminated array"),
        ("[1 2]", 3, "expected ',' or ']'"),
        ("tru", 3, "expected 'true'"),
        ("nul", 3, "expected 'null'"),
        ("fals", 4, "expected 'false'"),
        ("NaN", 0, "unexpected character"),
        ("+1", 0, "unexpected character"),
        ("'a'", 0, "unexpected character"),
        ("-", 1, "expected a digit"),
        ("1.", 2, "expected a digit after '.'"),
        (".5", 0, "unexpected character"),
        ("1e", 2, "expected an exponent"),
        ("1e+", 3, "expected an exponent"),
        (#""\ud83d""#, 7, "unpaired surrogate"),
        (#""\ud83d\u0041""#, 13, "invalid low surrogate"),
        (#""\ude00""#, 7, "invalid unicode escape"),
        (#""\u12""#, 3, "truncated unicode escape"),
        (#""\u12G4""#, 5, "invalid hex digit"),
        ("\"a\u{01}b\"", 3, "control character in string"),
        ("\"line\nbreak\"", 6, "control character in string"),
    ])
    func malformedInputIsRejectedWithOffset(input: String, offset: Int, problem: String) throws {
        let error = try #require(parseError(input))
        #expect(error == JSONParser.Error(offset: offset, problem: problem))
    }

    @Test func errorDescriptionNamesTheByteOffset() throws {
        let error = try #require(parseError(#"{"a":1} x"#))
        #expect(error.description == "invalid JSON at byte 8: unexpected trailing characters")
    }

    @Test func nestingUpTo512LevelsIsAccepted() throws {
        let arrays = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        #expect(JSONEncoding.string(try JSONParser.parse(arrays)) == arrays)
        let objects = String(repeating: #"{"a":"#, count: 511) + "{}" + String(repeating: "}", count: 511)
        #expect(JSONEncoding.string(try JSONParser.parse(objects)) == objects)
    }

    @Test func nestingBeyond512LevelsIsRejected() throws {
        let arrays = String(repeating: "[", count: 513) + String(repeating: "]", count: 513)
        #expect(parseError(arrays) == JSONParser.Error(offset: 512, problem: "nesting deeper than 512"))
        // Mixed objects and arrays count alike; the 513th opener sits at byte 6 * 256 + 0.
        let mixed = String(repeating: #"{"a":["#, count: 257) + String(repeating: "]}", count: 257)
        #expect(parseError(mixed) == JSONParser.Error(offset: 6 * 256, problem: "nesting deeper than 512"))
    }

    @Test func extremelyDeepInputFailsWithoutCrashing() throws {
        let deep = String(repeating: "[", count: 100_000)
        #expect(parseError(deep) == JSONParser.Error(offset: 512, problem: "nesting deeper than 512"))
    }

    // MARK: Encoding

    @Test func encodingIsCompactAndDeterministic() {
        let value = JSONValue.object([
            "b": .array([.number("1"), .null, .bool(false)]),
            "a": .object(["nested": .string("x")]),
            "n": .number("12.50"),
        ])
        let first = JSONEncoding.string(value)
        #expect(first == #"{"b":[1,null,false],"a":{"nested":"x"},"n":12.50}"#)
        #expect(JSONEncoding.string(value) == first)
        #expect(JSONEncoding.bytes(value) == Array(first.utf8))
        var appended: [UInt8] = Array("prefix ".utf8)
        JSONEncoding.write(value, into: &appended)
        #expect(String(decoding: appended, as: UTF8.self) == "prefix " + first)
    }

    @Test func integerFactoryKeepsFullPrecision() {
        #expect(JSONValue.integer(UInt64.max) == .number("18446744073709551615"))
        #expect(JSONValue.integer(Int64.min) == .number("-9223372036854775808"))
    }

    @Test func plainTextShowsStringsUnquoted() {
        #expect(JSONValue.string("a \"b\"").plainText == "a \"b\"")
        #expect(JSONValue.number("12.50").plainText == "12.50")
        #expect(JSONValue.bool(true).plainText == "true")
        #expect(JSONValue.null.plainText == "null")
        #expect(JSONValue.array([.string("x"), .number("1")]).plainText == #"["x",1]"#)
        #expect(JSONValue.object(["k": .string("v")]).plainText == #"{"k":"v"}"#)
    }

    // MARK: JSONObject

    @Test func subscriptSetKeepsPositionAppendsAndRemoves() {
        var object: JSONObject = ["a": .number("1"), "b": .number("2"), "c": .number("3")]
        object["b"] = .string("two")
        object["d"] = .null
        object["a"] = nil
        object["missing"] = nil
        #expect(object.names == ["b", "c", "d"])
        #expect(JSONEncoding.string(.object(object)) == #"{"b":"two","c":3,"d":null}"#)
        #expect(object.count == 3)
        #expect(!object.isEmpty)
        #expect(JSONObject().isEmpty)
    }

    @Test func equalityIsOrderSensitiveButSameContentIsNot() {
        let ab: JSONObject = ["a": .number("1"), "b": .number("2")]
        let ba: JSONObject = ["b": .number("2"), "a": .number("1")]
        #expect(ab != ba)
        #expect(ab.hasSameContent(as: ba))
        #expect(!ab.hasSameContent(as: ["a": .number("1")]))
        #expect(!ab.hasSameContent(as: ["a": .number("1"), "b": .number("2.0")]))
    }
}
