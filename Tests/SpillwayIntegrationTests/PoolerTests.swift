import Foundation
import SpillwayCore
import Testing

/// Replication through a connection pooler: a real PgBouncer (transaction pooling) in front of the test
/// server refuses the replication connection; `run` says so, names database.url and the fix, and exits 2
/// instead of reconnecting forever.
@Suite("connection poolers", .enabled(if: TestEnvironment.canRun))
struct PoolerTests {
    static let pgbouncer = "/usr/sbin/pgbouncer"

    @Test("replication through PgBouncer: exit 2 naming database.url, the pooler and the fix")
    func replicationThroughPgBouncer() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.pgbouncer) || !TestEnvironment.isIntegrationRequired,
                     "pgbouncer is not installed (scripts/install-deps.sh installs it)")
        guard FileManager.default.isExecutableFile(atPath: Self.pgbouncer) else { return }
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY)")
            let (direct, _) = try db.writeConfig(consumer: "pooled", kind: "replication")
            #expect(try await SpillwayProcess.run(["install", "--config", direct]).code == 0)

            let server = try #require(URLComponents(string: db.url))
            let dir = tempPath("pgbouncer")
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let port = try freeTCPPort()
            try """
                [databases]
                * = host=\(server.host ?? "127.0.0.1") port=\(server.port ?? 5432)
                [pgbouncer]
                listen_addr = 127.0.0.1
                listen_port = \(port)
                auth_type = trust
                auth_file = \(dir)/users.txt
                pool_mode = transaction
                unix_socket_dir =
                logfile = \(dir)/log
                pidfile = \(dir)/pid
                ignore_startup_parameters = extra_float_digits,options
                """.write(toFile: "\(dir)/pgbouncer.ini", atomically: true, encoding: .utf8)
            try "\"postgres\" \"\"\n".write(toFile: "\(dir)/users.txt", atomically: true, encoding: .utf8)
            // PgBouncer refuses to run as root.
            let asOwner = getuid() == 0
            if asOwner {
                for path in [(dir as NSString).deletingLastPathComponent, dir] {
                    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
                }
                try FileManager.default.setAttributes([.ownerAccountName: "postgres"], ofItemAtPath: dir)
            }
            let started = asOwner
                ? try await spawnAndWait("/usr/sbin/runuser", ["-u", "postgres", "--", Self.pgbouncer, "-d", "\(dir)/pgbouncer.ini"])
                : try await spawnAndWait(Self.pgbouncer, ["-d", "\(dir)/pgbouncer.ini"])
            try #require(started == 0, "pgbouncer did not start: \((try? String(contentsOfFile: "\(dir)/log", encoding: .utf8)) ?? "")")
            TestScope.current?.onExit {
                if let pid = (try? String(contentsOfFile: "\(dir)/pid", encoding: .utf8)).flatMap({ Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) {
                    kill(pid, SIGTERM)
                }
            }

            let pooledURL = db.url.replacingOccurrences(of: "\(server.host ?? ""):\(server.port ?? 0)", with: "127.0.0.1:\(port)")
            #expect(pooledURL != db.url)
            let pooled = "\(dir)/pooled.yaml"
            try String(contentsOfFile: direct, encoding: .utf8).replacingOccurrences(of: db.url, with: pooledURL)
                .write(toFile: pooled, atomically: true, encoding: .utf8)
            // SQL goes through the pooler (install's connection would); the replication connection cannot.
            let run = try await SpillwayProcess.run(["run", "--once", "--config", pooled])
            #expect(run.code == 2, "stderr: \(run.stderr)")
            #expect(run.stderr.contains("config key 'database.url'") && run.stderr.contains("connection pooler")
                    && run.stderr.contains("unsupported startup parameter: replication") && run.stderr.contains("PostgreSQL server itself"),
                    "stderr: \(run.stderr)")
        }
    }
}
