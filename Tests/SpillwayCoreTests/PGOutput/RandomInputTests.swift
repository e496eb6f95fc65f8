@testable import SpillwayCore
import Testing

/// A deterministic stand-in for the libFuzzer target: the decoders must only ever return
/// or throw, whatever they are fed.
@Suite struct RandomInputTests {
    /// xorshift64: fixed seed, so failures reproduce.
    struct XorShift {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
        mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
    }

    static let typeBytes = Array("BCORYIUDTMSEcAwk".utf8)

    struct Outcome {
        var decoded = 0
        var failed = 0
    }

    /// Runs every decoder entry point over `bytes` and checks what errors report.
    static func exercise(_ bytes: [UInt8], _ outcome: inout Outcome) {
        for inStreamBlock in [false, true] {
            do {
                _ = try PGOutputMessage(decoding: bytes, inStreamBlock: inStreamBlock)
                outcome.decoded += 1
            } catch {
                outcome.failed += 1
                #expect((0...bytes.count).contains(error.offset), "\(error) for \(bytes)")
                #expect(!error.description.isEmpty)
            }
        }
        do {
            if case .xLogData(let data) = try ReplicationStreamMessage(decoding: bytes) {
                _ = try? PGOutputMessage(decoding: data.payload, inStreamBlock: false)
            }
        } catch {
            #expect((0...bytes.count).contains(error.offset))
        }
        // The same bytes as a session of records, each a length byte and that many bytes.
        var decoder = PGOutputDecoder()
        var cache = RelationCache()
        var rest = bytes[...]
        while let length = rest.popFirst() {
            let record = rest.prefix(Int(length))
            rest = rest.dropFirst(Int(length))
            guard let message = try? decoder.decode(record) else { continue }
            cache.observe(message)
            _ = try? cache.relations(referencedBy: message)
            _ = "\(message)"
        }
    }

    @Test("20,000 pseudo-random byte arrays") func randomBytes() {
        var random = XorShift(state: 0x5EED_CAFE_F00D_0001)
        var outcome = Outcome()
        for _ in 0..<20_000 {
            var bytes = (0..<random.below(48)).map { _ in random.byte() }
            // Half start with a real type byte so the decoders get past the first switch.
            if !bytes.isEmpty, random.below(2) == 0 {
                bytes[0] = Self.typeBytes[random.below(Self.typeBytes.count)]
            }
            Self.exercise(bytes, &outcome)
        }
        #expect(outcome.decoded > 0)
        #expect(outcome.failed > 0)
    }

    @Test("mutated valid messages", arguments: Fixture.all)
    func mutatedMessages(_ fixture: Fixture) {
        var random = XorShift(state: 0x5EED_0000_0000_0000 | UInt64(fixture.bytes.count) << 8 | 1)
        var outcome = Outcome()
        for _ in 0..<400 {
            var bytes = fixture.bytes
            for _ in 0...random.below(3) {
                let position = bytes.isEmpty ? 0 : random.below(bytes.count)
                switch random.below(6) {
                case 0 where !bytes.isEmpty: bytes[position] = random.byte()
                case 1 where !bytes.isEmpty: bytes[position] ^= 1 << UInt8(random.below(8))
                case 2: bytes.insert(random.byte(), at: position)
                case 3 where !bytes.isEmpty: bytes.remove(at: position)
                case 4 where bytes.count >= 4:
                    // Lengths and counts near the limits.
                    let window = random.below(bytes.count - 3)
                    let values: [[UInt8]] = [[0x7F, 0xFF, 0xFF, 0xFF], [0xFF, 0xFF, 0xFF, 0xFF], [0x80, 0, 0, 0], [0, 0, 0, 0]]
                    bytes.replaceSubrange(window..<window + 4, with: values[random.below(values.count)])
                default: bytes = Array(bytes.prefix(position)) + (0..<random.below(8)).map { _ in random.byte() }
                }
            }
            Self.exercise(bytes, &outcome)
        }
        #expect(outcome.decoded + outcome.failed == 800)
    }
}
