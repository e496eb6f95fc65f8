import Foundation
import SpillwayCore
import SpillwayTestSupport
import Testing

@Suite("format: debezium through Kafka (mock cluster, kcat) and the file sink", .serialized, .enabled(if: TestEnvironment.canRunKafka))
struct DebeziumFormatTests {
    @Test("insert/update/delete carry Debezium's op and rows, tombstones follow deletes, and a consumer written from Debezium's documentation reads them",
          arguments: SourceKind.allCases)
    func debeziumEnvelopeOnKafka(kind: SourceKind) async throws {
        let mock = try await KafkaMockProcess.start(["--brokers", "1", "--topic", "dbz.public.customers:1"])
        try await check(kind: kind, mock: mock)
        mock.stop()
    }

    func check(kind: SourceKind, mock: KafkaMockProcess) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("""
                CREATE TABLE customers (id int PRIMARY KEY, first_name text, email text);
                ALTER TABLE customers REPLICA IDENTITY FULL;
                """)
            let dir = URL(fileURLWithPath: tempPath("x")).deletingLastPathComponent().path
            let configPath = "\(dir)/dbz.yaml", file = "\(dir)/dbz.jsonl"
            try """
                database:
                  url: \(db.url)
                consumer: dbz
                source:
                  kind: \(kind.rawValue)
                  tables: [public.customers]
                  poll_interval: 100ms
                  slot: \(db.slotName(consumer: "dbz"))
                sinks:
                  - {name: bus, kind: kafka, brokers: '\(mock.bootstrapServers)', prefix: dbz, format: debezium, timeout: 30s}
                  - {name: archive, kind: file, path: \(file), format: debezium}
                """.write(toFile: configPath, atomically: true, encoding: .utf8)
            #expect(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            try await app.execute("INSERT INTO customers VALUES (1, 'Anne', 'annek@noanswer.org'), (2, 'Bob', 'b@x.io')")
            try await app.execute("UPDATE customers SET first_name = 'Anne Marie' WHERE id = 1")
            try await app.execute("DELETE FROM customers WHERE id = 1")
            let run = try await SpillwayProcess.run(["run", "--once", "--config", configPath])
            #expect(run.code == 0, "\(run.stderr)")

            let raw = try await runTool("kcat", ["-b", mock.bootstrapServers, "-C", "-t", "dbz.public.customers", "-o", "beginning", "-e", "-J", "-q"])
            let rawPath = "\(dir)/records.jsonl"
            try raw.write(toFile: rawPath, atomically: true, encoding: .utf8)
            let consumer = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Support/debezium_consumer.py").path
            let read = try await runTool("python3", [consumer, rawPath])
            #expect(read.split(separator: "\n") == [
                #"c public.customers {"id": 1}"#, #"c public.customers {"id": 2}"#, #"u public.customers {"id": 1}"#,
                #"d public.customers {"id": 1}"#, #"tombstone {"id": 1}"#,
            ])

            // The values as Debezium shapes them: before/after rows, source fields.
            let records = try await consumeWithKcat(topic: "dbz.public.customers", bootstrap: mock.bootstrapServers)
            let values = records.compactMap { $0.payload.flatMap { try? JSONParser.parse($0).objectValue } }
            try #require(values.count == 4)
            #expect(values[2]["before"]?.objectValue?["first_name"] == .string("Anne"))
            #expect(values[2]["after"]?.objectValue?["first_name"] == .string("Anne Marie"))
            let source = try #require(values[0]["source"]?.objectValue)
            #expect(source["name"] == .string("dbz") && source["db"] == .string(db.name) && source["table"] == .string("customers"))
            #expect(source["txId"] != .null && source["ts_ms"] != .null)
            #expect((source["lsn"] == .null) == (kind == .auditLog), "lsn only for the replication source")

            // The file sink writes the same envelopes, one per line (no tombstones: a file has no compaction).
            let lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n")
            #expect(lines.compactMap { try? JSONParser.parse(String($0)).objectValue?["op"]?.stringValue } == ["c", "c", "u", "d"])
        }
    }
}
