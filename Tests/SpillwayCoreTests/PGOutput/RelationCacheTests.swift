@testable import SpillwayCore
import Testing

@Suite struct RelationCacheTests {
    let insert = PGOutputMessage.insert(.init(streamXID: nil, relationID: IDs.users, newTuple: Rows.newValue))

    @Test("a Relation message is stored and resolves data messages") func storeAndResolve() throws {
        var cache = RelationCache()
        #expect(cache.observe(.relation(Fixture.usersRelation)) == nil)
        #expect(try cache.relation(id: IDs.users) == Fixture.usersRelation)
        #expect(try cache.relations(referencedBy: insert) == [Fixture.usersRelation])
        #expect(try cache.relations(referencedBy: .streamStop) == [])
        #expect(cache.relations.count == 1)
    }

    @Test("a newer Relation replaces the older one and returns it") func schemaChange() throws {
        var cache = RelationCache()
        cache.store(Fixture.usersRelation)
        var altered = Fixture.usersRelation
        altered.columns.append(.init(flags: [], name: "email", typeOID: 25, typeModifier: -1))
        #expect(cache.observe(.relation(altered)) == Fixture.usersRelation)
        #expect(try cache.relation(id: IDs.users).columns.count == 4)
        // The old three-column row no longer fits the schema.
        #expect(throws: RelationCacheError.self) { try cache.relations(referencedBy: insert) }
    }

    @Test("unknown relation ids throw a clear error", arguments: [
        PGOutputMessage.insert(.init(streamXID: nil, relationID: 77, newTuple: row())),
        .update(.init(streamXID: nil, relationID: 77, oldTuple: nil, newTuple: row())),
        .delete(.init(streamXID: nil, relationID: 77, oldTuple: .key(row()))),
        .truncate(.init(streamXID: nil, options: [], relationIDs: [IDs.users, 77])),
    ])
    func unknownRelation(_ message: PGOutputMessage) {
        var cache = RelationCache()
        cache.store(Fixture.usersRelation)
        let error = #expect(throws: RelationCacheError.self) { try cache.relations(referencedBy: message) }
        #expect(error == .unknownRelation(id: 77))
        #expect(error?.description == "unknown relation id 77: no Relation message for it was received in this session")
    }

    @Test("Truncate resolves every relation in order") func truncate() throws {
        var cache = RelationCache()
        var orders = Fixture.usersRelation
        orders.id = IDs.orders
        orders.name = "orders"
        cache.store(Fixture.usersRelation)
        cache.store(orders)
        let truncate = PGOutputMessage.truncate(.init(streamXID: nil, options: [], relationIDs: [IDs.orders, IDs.users]))
        #expect(try cache.relations(referencedBy: truncate).map(\.name) == ["orders", "users"])
    }

    @Test("removeAll forgets everything; non-Relation messages are ignored") func removeAll() {
        var cache = RelationCache()
        cache.observe(.relation(Fixture.usersRelation))
        cache.observe(insert)
        #expect(cache.relations.count == 1)
        cache.removeAll()
        #expect(throws: RelationCacheError.unknownRelation(id: IDs.users)) { try cache.relation(id: IDs.users) }
    }

    @Test func qualifiedName() {
        var relation = Fixture.usersRelation
        #expect(relation.qualifiedName == "public.users")
        relation.namespace = ""
        #expect(relation.qualifiedName == "users")
    }
}
