import Foundation
import SpillwayApp
import SpillwayCore
import SpillwayPostgres
import Testing

@Suite("sinks[].tenant_fallback through both sources", .enabled(if: TestEnvironment.canRun))
struct TenantFallbackTests {
    /// audit_log reads the tenant from `app.current_org_id`, replication from `source.tenant_column`: each
    /// write sets both, or neither.
    static func write(_ app: PostgresConnection, id: Int, tenant: String?, table: String = "products") async throws {
        let setting = tenant.map { "SET LOCAL app.current_org_id = \(SQLText.literal($0));" } ?? ""
        try await app.execute("BEGIN; \(setting) INSERT INTO \(table) VALUES (\(id), \(tenant.map(SQLText.literal) ?? "NULL")); COMMIT")
    }

    @Test("a sink with tenant_fallback: skip gets only tenanted events while another gets everything; the checkpoint passes the skipped ones; error stops its sink naming the event and the key",
          arguments: SourceKind.allCases)
    func skipAndError(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, org_id text); CREATE TABLE strict_products (id int PRIMARY KEY, org_id text)")
            let dir = URL(fileURLWithPath: tempPath("sinks")).deletingLastPathComponent().path
            let all = "\(dir)/all.jsonl", tenanted = "\(dir)/tenanted.jsonl", named = "\(dir)/named.jsonl"
            let tenantSource = kind == .replication ? "  tenant_column: org_id" : ""
            let config = try SpillwayConfig.parse(yaml: SinkFilterTests.yaml(db, kind: kind, consumer: "tenants", tables: ["public.products"],
                                                                             extraSource: tenantSource, sinks: """
                  - {name: all, kind: file, path: \(all)}
                  - {name: tenanted, kind: file, path: \(tenanted), tenant_fallback: skip}
                  - {name: named, kind: file, path: \(named), tenant_fallback: {default: shared}}
                """))
            _ = try await install(config, on: db)
            try await Self.write(app, id: 1, tenant: "acme")
            try await Self.write(app, id: 2, tenant: nil)
            try await Self.write(app, id: 3, tenant: "globex")
            try await Self.write(app, id: 4, tenant: nil)
            try await drainOnce(config)
            #expect(try readEvents(all).map { $0.key?["id"]?.plainText } == ["1", "2", "3", "4"])
            #expect(try readEvents(all).map(\.tenant) == ["acme", nil, "globex", nil])
            #expect(try readEvents(tenanted).map { $0.key?["id"]?.plainText } == ["1", "3"])
            // `default` renders templates only: a file sink has none, so it gets every event as it is.
            #expect(try readEvents(named).map(\.tenant) == ["acme", nil, "globex", nil])
            // The skipped events were acknowledged for the skipping sink: nothing comes again.
            let checkpoint = try await CheckpointRow.read(consumer: "tenants", on: app)
            #expect(checkpoint.eventsTotal == 4)
            try await drainOnce(config)
            #expect(try readEvents(all).count == 4)
            #expect(try readEvents(tenanted).count == 2)

            // `error`: the sink's delivery fails, naming the event, the sink and the key; the checkpoint holds. (A
            // table of its own: a new audit_log consumer would start with the rows above.)
            let strict = "\(dir)/strict.jsonl", configPath = "\(dir)/strict.yaml"
            try SinkFilterTests.yaml(db, kind: kind, consumer: "strict", tables: ["public.strict_products"], extraSource: tenantSource, sinks: """
                  - {name: others, kind: file, path: \(dir)/others.jsonl}
                  - {name: strict, kind: file, path: \(strict), tenant_fallback: error}
                """).write(toFile: configPath, atomically: true, encoding: .utf8)
            #expect(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            let runner = try SpillwayProcess(["run", "--config", configPath])
            try await runner.waitForLog(kind.streamingLog)
            try await Self.write(app, id: 5, tenant: "acme", table: "strict_products")
            _ = try await waitForEvents(strict, "the tenanted event") { $0.count == 1 }
            try await Self.write(app, id: 6, tenant: nil, table: "strict_products")
            let status = try await waitForStatus(configPath, "the missing tenant in status") {
                $0.lastError?.contains("tenant_fallback") == true
            }
            let message = status.lastError ?? ""
            #expect(message.contains("sink 'strict'") && message.contains("sinks[1].tenant_fallback") && message.contains("(public.strict_products)"), "\(message)")
            let missing = try #require(try readEvents("\(dir)/others.jsonl").last)
            #expect(message.contains("event \(missing.id) "), "names the event: \(message)")
            #expect(try await CheckpointRow.read(consumer: "strict", on: app).eventsTotal == 1, "the checkpoint holds at the refused event")
            #expect(runner.process.isRunning, "run keeps retrying")
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0, "\(runner.stderr.suffix(2000))")
            #expect(try readEvents(strict).count == 1)
        }
    }
}
