import Foundation
import SpillwayCore
import SpillwayPostgres
import Testing

/// `install` as a role that owns the captured tables (no superuser), `run` and `status` as a role with
/// exactly the grants README lists, and an application role that writes the tables but cannot read the
/// audit table, which holds every tenant's old and new rows.
@Suite("least privilege: install, run and the application as roles of their own", .enabled(if: TestEnvironment.canRun))
struct LeastPrivilegeTests {
    @Test("install as the table owner, run as a non-superuser with README's grants; the application cannot read the audit table",
          arguments: SourceKind.allCases.map(\.rawValue))
    func leastPrivilege(kind: String) async throws {
        try await withTestDatabase("privilege_\(kind)") { db in
            // Roles are cluster-wide: named after the test database, dropped (with what they own) at the end.
            let prefix = db.name
            let owner = "\(prefix)_owner", installer = "\(prefix)_install", runner = "\(prefix)_run", app = "\(prefix)_app"
            let superuser = try await db.connect()
            TestScope.current?.onExit {
                guard let admin = try? await PostgresConnection.connect(url: db.url, applicationName: "spillway-tests") else { return }
                _ = try? await admin.execute("DROP OWNED BY \([owner, installer, runner, app].map(SQLText.identifier).joined(separator: ", ")) CASCADE")
                await admin.close()
                guard let base = TestEnvironment.databaseURL,
                      let cluster = try? await PostgresConnection.connect(url: base, applicationName: "spillway-tests") else { return }
                for role in [app, runner, installer, owner] {
                    _ = try? await cluster.execute("DROP ROLE IF EXISTS \(SQLText.identifier(role))")
                }
                await cluster.close()
            }
            let replication = kind == "replication" ? " REPLICATION" : ""
            let database = SQLText.identifier(db.name)
            try await superuser.execute("""
                CREATE ROLE \(SQLText.identifier(owner)) NOLOGIN;
                CREATE ROLE \(SQLText.identifier(installer)) LOGIN\(replication) IN ROLE \(SQLText.identifier(owner));
                CREATE ROLE \(SQLText.identifier(runner)) LOGIN\(replication);
                CREATE ROLE \(SQLText.identifier(app)) LOGIN;
                GRANT CREATE ON DATABASE \(database) TO \(SQLText.identifier(installer));
                CREATE TABLE products (id int PRIMARY KEY, name text, tenant_id text);
                ALTER TABLE products OWNER TO \(SQLText.identifier(owner));
                GRANT SELECT, INSERT, UPDATE, DELETE ON products TO \(SQLText.identifier(app));
                """)
            let (configPath, sink) = try db.writeConfig(consumer: "c", kind: kind)
            func url(_ role: String) -> String { db.url.replacingOccurrences(of: "://postgres@", with: "://\(role)@") }

            let installed = try await SpillwayProcess.run(["install", "--config", configPath], environment: ["SPILLWAY_DATABASE_URL": url(installer)])
            try #require(installed.code == 0, "install as \(installer): \(installed.stderr)")
            // README's grants for the running role, run by the installing role (which owns what install created).
            let asInstaller = try await PostgresConnection.connect(url: url(installer), applicationName: "spillway-tests")
            TestScope.current?.onExit { await asInstaller.close() }
            let run = SQLText.identifier(runner)
            try await asInstaller.execute("""
                GRANT USAGE ON SCHEMA spillway TO \(run);
                GRANT SELECT, UPDATE ON spillway.checkpoints, spillway.backfills TO \(run);
                """)
            if kind == "replication" {
                try await superuser.execute("GRANT SELECT ON products TO \(run)")
            } else {
                try await asInstaller.execute("GRANT SELECT ON spillway.audit_log TO \(run)")
            }

            let writer = try await PostgresConnection.connect(url: url(app), applicationName: "spillway-tests")
            TestScope.current?.onExit { await writer.close() }
            try await writer.execute("INSERT INTO products VALUES (1, 'a', 'acme'), (2, 'b', 'initech'); UPDATE products SET name = 'c' WHERE id = 1")
            let environment = ["SPILLWAY_DATABASE_URL": url(runner)]
            let ran = try await SpillwayProcess.run(["run", "--once", "--config", configPath], environment: environment)
            try #require(ran.code == 0, "run as \(runner): \(ran.stderr)")
            #expect(try readEvents(sink).map(\.op) == [.insert, .insert, .update])
            let status = try await SpillwayProcess.run(["status", "--json", "--config", configPath], environment: environment)
            #expect(status.code == 0, "status as \(runner): \(status.stderr)")
            #expect(status.stdout.contains(#""events_total":3,"#), "\(status.stdout)")
            #expect(try await superuser.query("SELECT events_total FROM spillway.checkpoints WHERE consumer = 'c'").first?[0] == "3")

            // The application writes the tables, and can neither read nor forge the audit trail or the checkpoints.
            for statement in ["SELECT * FROM spillway.checkpoints", "UPDATE spillway.checkpoints SET position = NULL"]
                + (kind == "audit_log" ? ["SELECT * FROM spillway.audit_log", "INSERT INTO spillway.audit_log (table_name, operation) VALUES ('products', 'INSERT')"] : []) {
                do {
                    try await writer.execute(statement)
                    Issue.record("\(app) may run \(statement)")
                } catch let error as PostgresError {
                    #expect(error.sqlState == "42501", "\(statement): \(error)")
                }
            }
            // Neither can the running role change what it reads.
            if kind == "audit_log" {
                let asRunner = try await PostgresConnection.connect(url: url(runner), applicationName: "spillway-tests")
                TestScope.current?.onExit { await asRunner.close() }
                do {
                    try await asRunner.execute("DELETE FROM spillway.audit_log")
                    Issue.record("\(runner) may delete audit rows without source.prune")
                } catch let error as PostgresError {
                    #expect(error.sqlState == "42501", "\(error)")
                }
            }
        }
    }
}
