import SpillwayCore
import Testing

@Suite("table snapshot: chunk rule, emission, progress")
struct TableSnapshotTests {
    static let table = QualifiedName(schema: "public", name: "items")

    static func row(_ id: Int, v: Int = 0) -> SnapshotChunk.Row {
        let key: JSONObject = ["id": .number(String(id))]
        return SnapshotChunk.Row(
            event: ChangeEvent(id: "r\(id)", op: .read, schema: "public", table: "items", key: key,
                               after: ["id": .number(String(id)), "v": .number(String(v))], position: "p"),
            key: [String(id)])
    }

    static func change(_ op: ChangeEvent.Operation, id: Int, txid: UInt64, before: Int? = nil, table: String = "items") -> ChangeEvent {
        ChangeEvent(id: "c", op: op, schema: "public", table: table, key: op == .truncate ? nil : ["id": .number(String(id))],
                    before: before.map { ["id": .number(String($0))] }, after: nil, txid: txid, position: "x")
    }

    /// xmin 100, xmax 110, 105 running: 100–104 and 106–109 visible, 105 and 110+ not.
    static let visibility = PGSnapshot(xmin: 100, xmax: 110, running: [105])

    static func chunk(_ ids: ClosedRange<Int>) -> SnapshotChunk {
        SnapshotChunk(table: table, visibility: visibility, rows: ids.map { row($0) })
    }

    @Test func changesByTransactionsTheChunkSawKeepTheRow() {
        var chunk = Self.chunk(1...5)
        chunk.discardRows(changedIn: [Self.change(.update, id: 2, txid: 99), Self.change(.delete, id: 3, txid: 107)])
        #expect(chunk.rows.map(\.key) == [["1"], ["2"], ["3"], ["4"], ["5"]])
    }

    @Test func changesByTransactionsTheChunkDidNotSeeDropTheRow() {
        var chunk = Self.chunk(1...5)
        chunk.discardRows(changedIn: [Self.change(.update, id: 2, txid: 105), Self.change(.delete, id: 4, txid: 110),
                                      Self.change(.insert, id: 9, txid: 111)])
        #expect(chunk.rows.map(\.key) == [["1"], ["3"], ["5"]])
        #expect(chunk.rowsRead == 5 && chunk.lastKey == ["5"], "the next chunk still starts after the select's last row")
    }

    @Test func aKeyUpdateDropsTheOldKeyToo() {
        var chunk = Self.chunk(1...3)
        chunk.discardRows(changedIn: [Self.change(.update, id: 30, txid: 120, before: 1)])
        #expect(chunk.rows.map(\.key) == [["2"], ["3"]])
    }

    @Test func otherTablesAndUnseenTruncates() {
        var chunk = Self.chunk(1...3)
        chunk.discardRows(changedIn: [Self.change(.update, id: 1, txid: 120, table: "other")])
        #expect(chunk.rows.count == 3, "another table's change")
        chunk.discardRows(changedIn: [Self.change(.truncate, id: 0, txid: 104)])
        #expect(chunk.rows.count == 3, "a truncate the chunk saw (it read nothing it removed)")
        chunk.discardRows(changedIn: [Self.change(.truncate, id: 0, txid: 112)])
        #expect(chunk.rows.isEmpty, "a truncate after the chunk's snapshot empties it")
    }

    @Test("32-bit xids are compared to the snapshot across an epoch", arguments: [
        (UInt64(0x1_0000_0005), UInt64(0x0000_0003), true),   // same epoch, below xmin
        (UInt64(0x1_0000_0005), UInt64(0x0000_0007), false),  // at/after xmax
        (UInt64(0x1_0000_0005), UInt64(0xFFFF_FFF0), true),   // the previous epoch
        (UInt64(0x0_FFFF_FFF0), UInt64(0x0000_0002), false),  // the next epoch (wrapped): after xmax
    ])
    func shortXIDs(xmax: UInt64, xid: UInt64, visible: Bool) {
        let snapshot = PGSnapshot(xmin: xmax - 1, xmax: xmax, running: [])
        #expect(snapshot.isVisible(shortXID: xid) == visible)
    }

    @Test func aSnapshotThatStillRunsADeliveredTransactionIsDetected() {
        #expect(Self.visibility.showsAsRunning(anyOf: [UInt64(99), 105]))
        #expect(!Self.visibility.showsAsRunning(anyOf: [UInt64(99), 106]))
        #expect(PGSnapshot(xmin: 0x1_0000_0005, xmax: 0x1_0000_0009, running: [0x1_0000_0006]).showsAsRunning(anyOf: [UInt64(6)]))
    }

    @Test func emissionCutsPiecesAndMovesTheKeyWithThem() {
        var chunk = Self.chunk(1...5)
        chunk.discardRows(changedIn: [Self.change(.update, id: 5, txid: 105)])
        var emission = SnapshotEmission(taking: &chunk, progress: SnapshotProgress(tables: [Self.table]), chunkSize: 5)
        #expect(chunk.rows.isEmpty, "the emission took the rows over")
        let first = emission.next(maximum: 3)
        #expect(first?.events.map(\.id) == ["r1", "r2", "r3"])
        #expect(first?.progress.tables[0].lastKey == ["3"] && first?.progress.tables[0].rows == 3)
        #expect(first?.progress.tables[0].isDone == false)
        let second = emission.next(maximum: 3)
        #expect(second?.events.map(\.id) == ["r4"])
        #expect(second?.progress.tables[0].lastKey == ["5"], "the dropped last row is covered by the stream")
        #expect(second?.progress.tables[0].rows == 5)
        #expect(second?.progress.tables[0].isDone == false, "a full chunk: the table may have more rows")
        #expect(emission.next(maximum: 3) == nil)
    }

    @Test func aShortChunkEndsItsTableAndTheNextTableFollows() {
        let other = QualifiedName(schema: "public", name: "other")
        var progress = SnapshotProgress(tables: [Self.table, other])
        var short = Self.chunk(1...2)
        var emission = SnapshotEmission(taking: &short, progress: progress, chunkSize: 5)
        progress = emission.next(maximum: 10)!.progress
        #expect(progress.tables[0].isDone && progress.current?.name == other && !progress.isDone)
        var none = SnapshotChunk(table: other, visibility: Self.visibility, rows: [])
        var empty = SnapshotEmission(taking: &none, progress: progress, chunkSize: 5)
        let last = empty.next(maximum: 10)
        #expect(last?.events.isEmpty == true, "an empty table still gives its progress")
        #expect(last?.progress.isDone == true && last?.progress.tables[1].lastKey == nil)
        #expect(empty.next(maximum: 10) == nil)
    }

    @Test func progressRoundTripsThroughItsStoredJSON() throws {
        var progress = SnapshotProgress(generation: 3, tables: [Self.table, QualifiedName(schema: "Sales Data", name: "Größe \"Ä\"")])
        progress.tables[0] = .init(name: Self.table, lastKey: ["42", "a,b"], rows: 42, isDone: true)
        let stored = JSONEncoding.string(progress.json)
        #expect(SnapshotProgress(json: stored) == progress)
        #expect(SnapshotProgress(json: #"{"generation":1}"#) == nil)
        #expect(progress.eventID(table: Self.table, key: #"{"id":7}"#) == #"snapshot-3:public.items:{"id":7}"#)
    }
}

extension TableSnapshotTests {
    @Test func anUpdateWithoutItsToastedColumnsIsLaidOverTheRowInsteadOfDroppingIt() {
        var chunk = SnapshotChunk(table: Self.table, visibility: Self.visibility, rows: [
            SnapshotChunk.Row(event: ChangeEvent(id: "r1", op: .read, schema: "public", table: "items", key: ["id": .number("1")],
                                                 after: ["id": .number("1"), "v": .number("0"), "doc": .string("big")], position: "p"),
                              key: ["1"]),
        ])
        var update = ChangeEvent(id: "u", op: .update, schema: "public", table: "items", key: ["id": .number("1")],
                                 after: ["id": .number("1"), "v": .number("9")], txid: 120, position: "x")
        update.unchangedColumns = ["doc"]
        chunk.discardRows(changedIn: [update])
        #expect(chunk.rows.first?.event.after == ["id": .number("1"), "v": .number("9"), "doc": .string("big")])
        chunk.discardRows(changedIn: [Self.change(.delete, id: 1, txid: 121)])
        #expect(chunk.rows.isEmpty)
    }
}
