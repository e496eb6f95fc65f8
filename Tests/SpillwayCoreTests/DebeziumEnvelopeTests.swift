import Testing
@testable import SpillwayCore

/// The examples of Debezium's PostgreSQL connector documentation ("Data change events": create, update,
/// delete of `public.customers`, JSON converter with schemas disabled), rebuilt as Spillway events; the
/// envelope must carry the documented fields with the documented values.
@Suite("Debezium envelope")
struct DebeziumEnvelopeTests {
    static let envelope = DebeziumEnvelope(serverName: "PostgreSQL_server", database: "postgres")
    static let anne: JSONObject = [
        "id": .integer(1), "first_name": .string("Anne"), "last_name": .string("Kretchmar"), "email": .string("annek@noanswer.org"),
    ]
    static var anneMarie: JSONObject {
        var row = anne
        row["first_name"] = .string("Anne Marie")
        return row
    }

    static func event(_ op: ChangeEvent.Operation, before: JSONObject?, after: JSONObject?, position: String = "0/16E9058:0") -> ChangeEvent {
        ChangeEvent(id: "x", op: op, schema: "public", table: "customers", key: ["id": .integer(1)], before: before, after: after,
                    txid: 555, commitTime: "2019-05-28T08:58:24.863Z", position: position)
    }

    func value(_ event: ChangeEvent) throws -> JSONObject {
        try #require(Self.envelope.value(event, nowMilliseconds: 1_559_033_904_900).objectValue)
    }

    @Test("create: op c, before null, after the row, source as documented")
    func create() throws {
        let value = try value(Self.event(.insert, before: nil, after: Self.anne))
        #expect(value.names == ["before", "after", "source", "op", "ts_ms", "transaction"])
        #expect(value["before"] == .null)
        #expect(value["after"] == .object(Self.anne))
        #expect(value["op"] == .string("c"))
        #expect(value["ts_ms"] == .number("1559033904900"))
        let source = try #require(value["source"]?.objectValue)
        #expect(source.names == ["version", "connector", "name", "ts_ms", "snapshot", "db", "sequence", "schema", "table", "txId", "lsn", "xmin"])
        #expect(source["connector"] == .string("postgresql"))
        #expect(source["name"] == .string("PostgreSQL_server"))
        #expect(source["ts_ms"] == .number("1559033904863"))
        #expect(source["snapshot"] == .string("false"))
        #expect(source["db"] == .string("postgres"))
        #expect(source["schema"] == .string("public"))
        #expect(source["table"] == .string("customers"))
        #expect(source["txId"] == .number("555"))
        #expect(source["lsn"] == .number("24023128"))  // 0/16E9058, the documentation's lsn
        #expect(source["xmin"] == .null)
        #expect(Self.envelope.key(Self.event(.insert, before: nil, after: Self.anne)) == .object(["id": .integer(1)]))
    }

    @Test("update: op u, before and after")
    func update() throws {
        let value = try value(Self.event(.update, before: Self.anne, after: Self.anneMarie))
        #expect(value["op"] == .string("u"))
        #expect(value["before"] == .object(Self.anne))
        #expect(value["after"]?.objectValue?["first_name"] == .string("Anne Marie"))
    }

    @Test("delete: op d, after null, followed by a tombstone; truncate: op t without key")
    func deleteAndTruncate() throws {
        let delete = Self.event(.delete, before: Self.anne, after: nil)
        let value = try value(delete)
        #expect(value["op"] == .string("d"))
        #expect(value["before"] == .object(Self.anne))
        #expect(value["after"] == .null)
        #expect(DebeziumEnvelope.isFollowedByTombstone(delete))
        var truncate = Self.event(.truncate, before: nil, after: nil)
        truncate.key = nil
        #expect(try self.value(truncate)["op"] == .string("t"))
        #expect(Self.envelope.key(truncate) == nil)
        #expect(!DebeziumEnvelope.isFollowedByTombstone(truncate))
        #expect(!DebeziumEnvelope.isFollowedByTombstone(Self.event(.update, before: Self.anne, after: Self.anne)))
    }

    @Test("audit_log positions carry no LSN; a missing commit time is null")
    func auditLogSource() throws {
        var event = Self.event(.insert, before: nil, after: Self.anne, position: "555/3")
        event.commitTime = nil
        let source = try #require(try value(event)["source"]?.objectValue)
        #expect(source["lsn"] == .null)
        #expect(source["ts_ms"] == .null)
    }

    @Test("a logical message: op m, content as base64, no before/after")
    func message() throws {
        var event = ChangeEvent(id: "m", op: .message, schema: "message", table: "orders", position: "0/10:0")
        event.message = ChangeEvent.LogicalMessage(prefix: "orders", content: #"{"id": 5}"#, isTransactional: true)
        let value = try value(event)
        #expect(value.names == ["source", "op", "ts_ms", "message", "transaction"])
        #expect(value["op"] == .string("m"))
        #expect(value["message"] == .object(["prefix": .string("orders"), "content": .string("eyJpZCI6IDV9")]))
    }

    @Test func base64() {
        #expect(Base64Encoding.encode([]) == "")
        #expect(Base64Encoding.encode(Array("f".utf8)) == "Zg==")
        #expect(Base64Encoding.encode(Array("fo".utf8)) == "Zm8=")
        #expect(Base64Encoding.encode(Array("foo".utf8)) == "Zm9v")
        #expect(Base64Encoding.encode(Array("foobar".utf8)) == "Zm9vYmFy")
    }

    @Test func encoderWritesTheChosenFormat() throws {
        let event = Self.event(.insert, before: nil, after: Self.anne)
        #expect(EventEncoder.spillway.bytes(event) == event.jsonBytes)
        let debezium = EventEncoder(format: .debezium, envelope: Self.envelope, now: { 7 })
        let parsed = try JSONParser.parse(String(decoding: debezium.bytes(event), as: UTF8.self))
        #expect(parsed == Self.envelope.value(event, nowMilliseconds: 7))
        #expect(debezium.alwaysSendsTombstones && !EventEncoder.spillway.alwaysSendsTombstones)
    }

    @Test func databaseNameFromTheConnection() {
        #expect(DebeziumEnvelope.databaseName(connection: "postgres://u:p@h:5432/shop?sslmode=require") == "shop")
        #expect(DebeziumEnvelope.databaseName(connection: "postgresql://h/my%20db") == "my db")
        #expect(DebeziumEnvelope.databaseName(connection: "postgres://h") == "")
        #expect(DebeziumEnvelope.databaseName(connection: "host=h dbname=orders user=x") == "orders")
        #expect(DebeziumEnvelope.databaseName(connection: "host=h dbname='orders' user=x") == "orders")
    }
}
