@testable import SpillwayCore
import Testing

@Suite("replication event builder")
struct ReplicationEventBuilderTests {
    typealias Message = PGOutputMessage
    let lsn = LSN(0x16B_3748)
    let timestamp = PGTimestamp(rawValue: 767_882_096_123_456)  // 2024-05-01T12:34:56.123456Z

    func begin(xid: UInt32 = 900) -> Message { .begin(.init(finalLSN: lsn, commitTimestamp: timestamp, xid: xid)) }
    func commit() -> Message {
        .commit(.init(flags: 0, commitLSN: lsn, endLSN: LSN(lsn.rawValue + 48), commitTimestamp: timestamp))
    }
    func relation(identity: Message.Relation.ReplicaIdentity = .default, allKeys: Bool = false) -> Message {
        .relation(.init(streamXID: nil, id: 7, namespace: "public", name: "products", replicaIdentity: identity,
                        columns: [.init(flags: .key, name: "id", typeOID: 23, typeModifier: -1),
                                  .init(flags: allKeys ? .key : [], name: "price", typeOID: 1700, typeModifier: -1),
                                  .init(flags: allKeys ? .key : [], name: "org", typeOID: 25, typeModifier: -1),
                                  .init(flags: allKeys ? .key : [], name: "doc", typeOID: 25, typeModifier: -1)]))
    }
    func tuple(_ id: String, _ price: TupleValue, org: TupleValue = text("acme"), doc: TupleValue = .null) -> TupleData {
        row(text(id), price, org, doc)
    }

    func events(_ outputs: [ReplicationEventBuilder.Output]) -> [ChangeEvent] {
        outputs.compactMap { if case .event(let event, _) = $0 { return event } else { return nil } }
    }

    @Test("a transaction's changes get ids and positions from the commit LSN and their index, then a commit")
    func transactionShape() throws {
        var builder = ReplicationEventBuilder(options: .init(defaultTenantColumn: "org"))
        var outputs: [ReplicationEventBuilder.Output] = []
        for message in [begin(), relation(),
                        .insert(.init(streamXID: nil, relationID: 7, newTuple: tuple("1", text("9.90")))),
                        .update(.init(streamXID: nil, relationID: 7, oldTuple: nil, newTuple: tuple("1", text("8.00"), doc: .unchangedToast))),
                        .delete(.init(streamXID: nil, relationID: 7, oldTuple: .key(tuple("1", .null, org: .null)))),
                        commit()] {
            outputs += try builder.handle(message)
        }
        let changes = events(outputs)
        #expect(changes.map(\.op) == [.insert, .update, .delete])
        #expect(changes.map(\.id) == ["0/16B3748-0", "0/16B3748-1", "0/16B3748-2"])
        #expect(changes.map(\.position) == ["0/16B3748:0", "0/16B3748:1", "0/16B3748:2"])
        #expect(changes[0].after == ["id": .number("1"), "price": .string("9.90"), "org": .string("acme"), "doc": .null])
        #expect(changes[0].tenant == "acme" && changes[0].txid == 900 && changes[0].commitTime == "2024-05-01T12:34:56.123456Z")
        #expect(changes[1].after?["doc"] == nil && changes[1].unchangedColumns == ["doc"])
        #expect(changes[2].before == ["id": .number("1")], "a key-only old tuple carries only the key")
        #expect(changes[2].key == ["id": .number("1")])
        #expect(outputs.last == .commit(commitLSN: lsn, endLSN: LSN(lsn.rawValue + 48)))
        #expect(!builder.isInTransaction)
    }

    @Test("FULL identity takes the key from the registered primary key; heartbeats are progress, not events")
    func fullIdentityAndHeartbeat() throws {
        var builder = ReplicationEventBuilder()
        _ = try builder.handle(relation(identity: .full, allKeys: true))
        builder.register(primaryKey: ["id"], for: 7)
        _ = try builder.handle(begin())
        let update = try builder.handle(.update(.init(streamXID: nil, relationID: 7, oldTuple: .full(tuple("1", text("1"))),
                                                      newTuple: tuple("1", text("2")))))
        #expect(events(update).first?.key == ["id": .number("1")])
        #expect(events(update).first?.before?["price"] == .string("1"))
        _ = try builder.handle(commit())
        let heartbeat = try builder.handle(.logicalMessage(.init(streamXID: nil, isTransactional: false, lsn: LSN(0x20000),
                                                                  prefix: "spillway-heartbeat", content: [])))
        #expect(heartbeat == [.progress(lsn: LSN(0x1FFFF))], "just before the message's end, where a commit may start")
        let outbox = try builder.handle(.logicalMessage(.init(streamXID: nil, isTransactional: false, lsn: LSN(0x30000),
                                                               prefix: "orders", content: Array("{\"id\":1}".utf8))))
        #expect(events(outbox).first?.message == .init(prefix: "orders", content: "{\"id\":1}", isTransactional: false))
        #expect(events(outbox).first?.table == "orders")
    }

    @Test("a non-transactional message ending where a transaction's commit starts: distinct ids, and its position covers none of that transaction")
    func messageAtCommitLSN() throws {
        var builder = ReplicationEventBuilder()
        // pgoutput gives the message the LSN its record ends at; the next record is the transaction's commit.
        let message = events(try builder.handle(.logicalMessage(.init(streamXID: nil, isTransactional: false, lsn: lsn,
                                                                       prefix: "orders", content: []))))
        _ = try builder.handle(relation())
        _ = try builder.handle(begin())
        let insert = events(try builder.handle(.insert(.init(streamXID: nil, relationID: 7, newTuple: tuple("1", text("1"))))))
        let first = try #require(message.first), change = try #require(insert.first)
        #expect(first.id != change.id)
        #expect(first.id == "\(LSN(lsn.rawValue - 1))-0")
        let messagePosition = ReplicationPosition(commitLSN: LSN(lsn.rawValue - 1))
        #expect(!messagePosition.covers(commitLSN: lsn, index: 0), "a checkpoint at the message keeps the transaction")
    }

    @Test("a delete under REPLICA IDENTITY USING INDEX without the primary key is an error, not a null key")
    func identityIndexWithoutKey() throws {
        var builder = ReplicationEventBuilder()
        let relation = Message.Relation(streamXID: nil, id: 7, namespace: "public", name: "products", replicaIdentity: .index,
                                        columns: [.init(flags: [], name: "id", typeOID: 23, typeModifier: -1),
                                                  .init(flags: .key, name: "sku", typeOID: 25, typeModifier: -1)])
        _ = try builder.handle(.relation(relation))
        builder.register(primaryKey: ["id"], for: 7)
        #expect(builder.identityLacksPrimaryKey(relation) == ["id"])
        _ = try builder.handle(begin())
        let insert = events(try builder.handle(.insert(.init(streamXID: nil, relationID: 7, newTuple: row(text("1"), text("a"))))))
        #expect(insert.first?.key == ["id": .number("1")], "inserts carry the whole row")
        #expect(throws: ReplicationEventBuilder.Error.self) {
            _ = try builder.handle(.delete(.init(streamXID: nil, relationID: 7, oldTuple: .key(row(.null, text("a"))))))
        }
    }

    @Test("a change for an unknown relation is a clear error")
    func unknownRelation() {
        var builder = ReplicationEventBuilder()
        #expect(throws: ReplicationEventBuilder.Error.self) {
            _ = try builder.handle(.insert(.init(streamXID: nil, relationID: 99, newTuple: row(text("1")))))
        }
    }

    @Test("positions say what a restart skips: earlier transactions, and the acknowledged part of this one")
    func positionCovers() {
        let partial = ReplicationPosition(commitLSN: LSN(100), index: 2)
        #expect(partial.covers(commitLSN: LSN(99), index: 7))
        #expect(partial.covers(commitLSN: LSN(100), index: 2))
        #expect(!partial.covers(commitLSN: LSN(100), index: 3), "the second change sharing the LSN is not dropped")
        #expect(!partial.covers(commitLSN: LSN(101), index: 0))
        #expect(ReplicationPosition(commitLSN: LSN(100)).covers(commitLSN: LSN(100), index: 50))
        #expect(partial.description == "0/64:2")
    }
}
