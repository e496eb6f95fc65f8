@testable import SpillwayCore
import Testing

/// A valid message, its wire bytes and the value it must decode to.
struct Fixture: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let inStreamBlock: Bool
    let expected: PGOutputMessage
    var testDescription: String { name }
}

enum IDs {
    static let users: OID = 16384
    static let orders: OID = 16390
    static let xid: TransactionID = 3_000_000_000  // above 2^31: must stay unsigned
    static let subXID: TransactionID = 3_000_000_007
    static let lsn: UInt64 = 0x0000_0001_16B3_7480
    static let endLSN: UInt64 = 0x0000_0001_16B3_74B0
    /// 2024-05-01T12:34:56.123456Z
    static let timestamp: Int64 = 767_882_096_123_456
}

/// Update/Delete tuples shared by several fixtures: (id int4, name varchar, avatar bytea).
enum Rows {
    static let oldKey: [Field] = [.text("41"), null, null]
    static let oldFull: [Field] = [.text("42"), .text("alice"), .binary([1, 2, 0, 255])]
    static let new: [Field] = [.text("42"), .text("bob"), unchangedToast]
    static let oldKeyValue = row(text("41"), .null, .null)
    static let oldFullValue = row(text("42"), text("alice"), .binary([1, 2, 0, 255]))
    static let newValue = row(text("42"), text("bob"), .unchangedToast)
}

extension Fixture {
    typealias Message = PGOutputMessage

    static let usersRelation = Message.Relation(
        streamXID: nil, id: IDs.users, namespace: "public", name: "users", replicaIdentity: .default,
        columns: [.init(flags: .key, name: "id", typeOID: 23, typeModifier: -1),
                  .init(flags: [], name: "name", typeOID: 1043, typeModifier: 68),
                  .init(flags: [], name: "avatar", typeOID: 17, typeModifier: -1)])
    static let usersRelationFields: [Field] = [
        .u32(IDs.users), .cstring("public"), .cstring("users"), .char("d"), .i16(3),
        .u8(1), .cstring("id"), .u32(23), .i32(-1),
        .u8(0), .cstring("name"), .u32(1043), .i32(68),
        .u8(0), .cstring("avatar"), .u32(17), .i32(-1),
    ]

    /// Every message type of protocol v1, outside stream blocks.
    static let version1: [Fixture] = [
        Fixture(name: "Begin", bytes: wire(.char("B"), .u64(IDs.lsn), .i64(IDs.timestamp), .u32(IDs.xid)),
                inStreamBlock: false,
                expected: .begin(.init(finalLSN: LSN(IDs.lsn), commitTimestamp: PGTimestamp(rawValue: IDs.timestamp),
                                       xid: IDs.xid))),
        Fixture(name: "Commit", bytes: wire(.char("C"), .u8(0), .u64(IDs.lsn), .u64(IDs.endLSN), .i64(IDs.timestamp)),
                inStreamBlock: false,
                expected: .commit(.init(flags: 0, commitLSN: LSN(IDs.lsn), endLSN: LSN(IDs.endLSN),
                                        commitTimestamp: PGTimestamp(rawValue: IDs.timestamp)))),
        Fixture(name: "Origin", bytes: wire(.char("O"), .u64(IDs.lsn), .cstring("node_a")),
                inStreamBlock: false, expected: .origin(.init(commitLSN: LSN(IDs.lsn), name: "node_a"))),
        Fixture(name: "Relation", bytes: wire([.char("R")] + usersRelationFields),
                inStreamBlock: false, expected: .relation(usersRelation)),
        Fixture(name: "Relation without columns in pg_catalog, replica identity full",
                bytes: wire(.char("R"), .u32(1259), .cstring(""), .cstring("empty"), .char("f"), .i16(0)),
                inStreamBlock: false,
                expected: .relation(.init(streamXID: nil, id: 1259, namespace: "", name: "empty",
                                          replicaIdentity: .full, columns: []))),
        Fixture(name: "Type", bytes: wire(.char("Y"), .u32(16500), .cstring("public"), .cstring("mood")),
                inStreamBlock: false,
                expected: .type(.init(streamXID: nil, id: 16500, namespace: "public", name: "mood"))),
        Fixture(name: "Insert with text, null and binary",
                bytes: wire(.char("I"), .u32(IDs.users), .char("N"),
                            .tuple([.text("42"), null, .binary([0xDE, 0xAD, 0x00])])),
                inStreamBlock: false,
                expected: .insert(.init(streamXID: nil, relationID: IDs.users,
                                        newTuple: row(text("42"), .null, .binary([0xDE, 0xAD, 0x00]))))),
        Fixture(name: "Insert with empty text and UTF-8",
                bytes: wire(.char("I"), .u32(IDs.users), .char("N"), .tuple([.text(""), .text("héllo ✓"), null])),
                inStreamBlock: false,
                expected: .insert(.init(streamXID: nil, relationID: IDs.users,
                                        newTuple: row(text(""), text("héllo ✓"), .null)))),
        Fixture(name: "Update without old tuple",
                bytes: wire(.char("U"), .u32(IDs.users), .char("N"), .tuple(Rows.new)),
                inStreamBlock: false,
                expected: .update(.init(streamXID: nil, relationID: IDs.users, oldTuple: nil,
                                        newTuple: Rows.newValue))),
        Fixture(name: "Update with old key 'K'",
                bytes: wire(.char("U"), .u32(IDs.users), .char("K"), .tuple(Rows.oldKey), .char("N"), .tuple(Rows.new)),
                inStreamBlock: false,
                expected: .update(.init(streamXID: nil, relationID: IDs.users, oldTuple: .key(Rows.oldKeyValue),
                                        newTuple: Rows.newValue))),
        Fixture(name: "Update with old full tuple 'O'",
                bytes: wire(.char("U"), .u32(IDs.users), .char("O"), .tuple(Rows.oldFull), .char("N"), .tuple(Rows.new)),
                inStreamBlock: false,
                expected: .update(.init(streamXID: nil, relationID: IDs.users, oldTuple: .full(Rows.oldFullValue),
                                        newTuple: Rows.newValue))),
        Fixture(name: "Delete with old key 'K'",
                bytes: wire(.char("D"), .u32(IDs.users), .char("K"), .tuple(Rows.oldKey)),
                inStreamBlock: false,
                expected: .delete(.init(streamXID: nil, relationID: IDs.users, oldTuple: .key(Rows.oldKeyValue)))),
        Fixture(name: "Delete with old full tuple 'O'",
                bytes: wire(.char("D"), .u32(IDs.users), .char("O"), .tuple(Rows.oldFull)),
                inStreamBlock: false,
                expected: .delete(.init(streamXID: nil, relationID: IDs.users, oldTuple: .full(Rows.oldFullValue)))),
        Fixture(name: "Truncate cascade restart identity",
                bytes: wire(.char("T"), .i32(2), .u8(3), .u32(IDs.users), .u32(IDs.orders)),
                inStreamBlock: false,
                expected: .truncate(.init(streamXID: nil, options: [.cascade, .restartIdentity],
                                          relationIDs: [IDs.users, IDs.orders]))),
        Fixture(name: "Truncate without options",
                bytes: wire(.char("T"), .i32(1), .u8(0), .u32(IDs.orders)),
                inStreamBlock: false,
                expected: .truncate(.init(streamXID: nil, options: [], relationIDs: [IDs.orders]))),
        Fixture(name: "Message transactional",
                bytes: wire(.char("M"), .u8(1), .u64(IDs.lsn), .cstring("spillway"), .i32(5), .raw(Array("hello".utf8))),
                inStreamBlock: false,
                expected: .logicalMessage(.init(streamXID: nil, isTransactional: true, lsn: LSN(IDs.lsn),
                                                prefix: "spillway", content: Array("hello".utf8)))),
        Fixture(name: "Message non-transactional, empty content",
                bytes: wire(.char("M"), .u8(0), .u64(IDs.lsn), .cstring("p"), .i32(0)),
                inStreamBlock: false,
                expected: .logicalMessage(.init(streamXID: nil, isTransactional: false, lsn: LSN(IDs.lsn),
                                                prefix: "p", content: []))),
    ]

    /// The v2 streaming messages and the data messages with their leading xid.
    static let version2: [Fixture] = [
        Fixture(name: "Stream Start first segment", bytes: wire(.char("S"), .u32(IDs.xid), .u8(1)),
                inStreamBlock: false, expected: .streamStart(.init(xid: IDs.xid, isFirstSegment: true))),
        Fixture(name: "Stream Start later segment", bytes: wire(.char("S"), .u32(IDs.xid), .u8(0)),
                inStreamBlock: false, expected: .streamStart(.init(xid: IDs.xid, isFirstSegment: false))),
        Fixture(name: "Stream Stop", bytes: wire(.char("E")), inStreamBlock: true, expected: .streamStop),
        Fixture(name: "Stream Commit",
                bytes: wire(.char("c"), .u32(IDs.xid), .u8(0), .u64(IDs.lsn), .u64(IDs.endLSN), .i64(IDs.timestamp)),
                inStreamBlock: false,
                expected: .streamCommit(.init(xid: IDs.xid, flags: 0, commitLSN: LSN(IDs.lsn), endLSN: LSN(IDs.endLSN),
                                              commitTimestamp: PGTimestamp(rawValue: IDs.timestamp)))),
        Fixture(name: "Stream Abort of a subtransaction", bytes: wire(.char("A"), .u32(IDs.xid), .u32(IDs.subXID)),
                inStreamBlock: false, expected: .streamAbort(.init(xid: IDs.xid, subtransactionXID: IDs.subXID))),
        Fixture(name: "streamed Relation", bytes: wire([.char("R"), .u32(IDs.xid)] + usersRelationFields),
                inStreamBlock: true, expected: .relation(streamed(usersRelation))),
        Fixture(name: "streamed Type",
                bytes: wire(.char("Y"), .u32(IDs.xid), .u32(16500), .cstring("public"), .cstring("mood")),
                inStreamBlock: true,
                expected: .type(.init(streamXID: IDs.xid, id: 16500, namespace: "public", name: "mood"))),
        Fixture(name: "streamed Insert",
                bytes: wire(.char("I"), .u32(IDs.subXID), .u32(IDs.users), .char("N"), .tuple(Rows.new)),
                inStreamBlock: true,
                expected: .insert(.init(streamXID: IDs.subXID, relationID: IDs.users, newTuple: Rows.newValue))),
        Fixture(name: "streamed Update with old key",
                bytes: wire(.char("U"), .u32(IDs.xid), .u32(IDs.users), .char("K"), .tuple(Rows.oldKey),
                            .char("N"), .tuple(Rows.new)),
                inStreamBlock: true,
                expected: .update(.init(streamXID: IDs.xid, relationID: IDs.users, oldTuple: .key(Rows.oldKeyValue),
                                        newTuple: Rows.newValue))),
        Fixture(name: "streamed Update without old tuple",
                bytes: wire(.char("U"), .u32(IDs.xid), .u32(IDs.users), .char("N"), .tuple(Rows.new)),
                inStreamBlock: true,
                expected: .update(.init(streamXID: IDs.xid, relationID: IDs.users, oldTuple: nil,
                                        newTuple: Rows.newValue))),
        Fixture(name: "streamed Delete with old full tuple",
                bytes: wire(.char("D"), .u32(IDs.xid), .u32(IDs.users), .char("O"), .tuple(Rows.oldFull)),
                inStreamBlock: true,
                expected: .delete(.init(streamXID: IDs.xid, relationID: IDs.users, oldTuple: .full(Rows.oldFullValue)))),
        Fixture(name: "streamed Truncate",
                bytes: wire(.char("T"), .u32(IDs.xid), .i32(1), .u8(1), .u32(IDs.users)),
                inStreamBlock: true,
                expected: .truncate(.init(streamXID: IDs.xid, options: .cascade, relationIDs: [IDs.users]))),
        Fixture(name: "streamed Message",
                bytes: wire(.char("M"), .u32(IDs.xid), .u8(1), .u64(IDs.lsn), .cstring("spillway"), .i32(2),
                            .raw([0, 1])),
                inStreamBlock: true,
                expected: .logicalMessage(.init(streamXID: IDs.xid, isTransactional: true, lsn: LSN(IDs.lsn),
                                                prefix: "spillway", content: [0, 1]))),
    ]

    static let all = version1 + version2

    private static func streamed(_ relation: Message.Relation) -> Message.Relation {
        var relation = relation
        relation.streamXID = IDs.xid
        return relation
    }
}
