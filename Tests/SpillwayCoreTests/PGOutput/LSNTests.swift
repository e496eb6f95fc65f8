@testable import SpillwayCore
import Testing

@Suite struct LSNTests {
    @Test("PostgreSQL text form", arguments: [
        (UInt64(0x16B3748), "0/16B3748"), (0, "0/0"), (0x1_0000_0000, "1/0"),
        (0xFFFF_FFFF_FFFF_FFFF, "FFFFFFFF/FFFFFFFF"), (0x0000_00AB_0000_000C, "AB/C"),
    ])
    func description(_ raw: UInt64, _ text: String) {
        #expect(LSN(raw).description == text)
        #expect(LSN(string: text) == LSN(raw))
    }

    @Test("parsing accepts lower case and leading zeros like pg_lsn_in") func lenientParsing() {
        #expect(LSN(string: "0/16b3748") == LSN(0x16B3748))
        #expect(LSN(string: "00000000/016B3748") == LSN(0x16B3748))
        #expect(LSN(string: "aB/cD") == LSN(0xAB_0000_00CD))
    }

    @Test("parsing rejects malformed text", arguments: [
        "", "/", "0/", "/0", "0/0/0", "123456789/0", "0/123456789", "g/0", "0/x", " 0/0", "0/0 ", "+1/0",
        "-1/0", "0x1/0", "0\\0", "٣/0", "0/0\0",
    ])
    func rejects(_ text: String) {
        #expect(LSN(string: text) == nil)
    }

    @Test("round trip of pseudo-random positions") func roundTrip() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<1_000 {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            let lsn = LSN(state >> (state % 64))  // vary the magnitude
            #expect(LSN(string: lsn.description) == lsn)
        }
    }

    @Test func ordering() {
        #expect(LSN(string: "0/FFFFFFFF")! < LSN(string: "1/0")!)
        #expect([LSN(3), LSN(1), LSN(2)].sorted() == [LSN(1), LSN(2), LSN(3)])
        #expect(LSN(rawValue: 5) == LSN(5))
        #expect(LSN.zero.rawValue == 0)
    }
}
