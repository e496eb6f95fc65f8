import Foundation
import SpillwayCore
import SpillwayPostgres
import Testing

/// TLS to PostgreSQL: a cluster of its own with `ssl=on` and a certificate from a CA the test makes.
/// `sslmode=verify-full` with `sslrootcert=` works for `install` and `run --once` through both sources; a
/// wrong CA or a wrong host name fails at once, with libpq's reason and a non-zero exit.
@Suite("TLS to PostgreSQL", .enabled(if: TestEnvironment.canRun))
struct TLSTests {
    @Test("verify-full against a test CA works; a wrong CA or host name fails clearly")
    func verifyFull() async throws {
        try await withTestScope { scope in
            let dir = tempPath("tls")
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: (dir as NSString).deletingLastPathComponent)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir)
            func openssl(_ arguments: String...) async throws {
                let code = try await spawnAndWait("openssl", arguments)
                try #require(code == 0, "openssl \(arguments.joined(separator: " ")) failed")
            }
            let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
            func path(_ name: String) -> String { "\(dir)/\(name)" }
            for ca in ["ca", "other-ca"] {
                let arguments = ["req", "-x509"] + ec + ["-keyout", path("\(ca).key"), "-out", path("\(ca).crt"),
                                                      "-days", "2", "-subj", "/CN=spillway test \(ca)"]
                try #require(try await spawnAndWait("openssl", arguments) == 0)
            }
            let csr = ["req"] + ec + ["-keyout", path("server.key"), "-out", path("server.csr"), "-subj", "/CN=localhost"]
            try #require(try await spawnAndWait("openssl", csr) == 0)
            try "subjectAltName=DNS:localhost\n".write(toFile: path("san.ext"), atomically: true, encoding: .utf8)
            try await openssl("x509", "-req", "-in", path("server.csr"), "-CA", path("ca.crt"), "-CAkey", path("ca.key"),
                              "-CAcreateserial", "-out", path("server.crt"), "-days", "2", "-extfile", path("san.ext"))
            // The server reads its key only if no one else may (0600, owned by the cluster's user).
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path("server.key"))
            if getuid() == 0 { try FileManager.default.setAttributes([.ownerAccountName: "postgres"], ofItemAtPath: path("server.key")) }

            let port = try freeTCPPort()
            let started = try await spawnAndWait("bash", ["scripts/pg-cluster.sh", "start", path("pg"), "\(port)", "-c", "ssl=on",
                                                          "-c", "ssl_cert_file=\(path("server.crt"))", "-c", "ssl_key_file=\(path("server.key"))"])
            let dataDir = path("pg")
            scope.onExit { _ = try? await spawnAndWait("bash", ["scripts/pg-cluster.sh", "stop", dataDir]) }
            try #require(started == 0, "the TLS cluster did not start: \((try? String(contentsOfFile: path("pg/log"), encoding: .utf8)) ?? "")")

            let base = "postgresql://postgres@localhost:\(port)/postgres?sslmode=verify-full&sslrootcert="
            let good = base + path("ca.crt")
            let setup = try await PostgresConnection.connect(url: good, applicationName: "spillway-tests")
            scope.onExit { await setup.close() }
            #expect(try await setup.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").first?[0] == "t")
            try await setup.execute("CREATE TABLE products (id int PRIMARY KEY)")

            for kind in SourceKind.allCases {
                let consumer = kind == .replication ? "r" : "a"
                let (configPath, sink) = try TLSTests.writeConfig(url: good, consumer: consumer, kind: kind.rawValue, in: dir)
                let installed = try await SpillwayProcess.run(["install", "--config", configPath])
                try #require(installed.code == 0, "\(kind) install over TLS: \(installed.stderr)")
                try await setup.execute("INSERT INTO products VALUES (\(consumer == "r" ? 1 : 2))")
                let ran = try await SpillwayProcess.run(["run", "--once", "--config", configPath])
                #expect(ran.code == 0, "\(kind) run over TLS: \(ran.stderr)")
                #expect(try readEvents(sink).map(\.op).last == .insert, "\(kind) delivered over TLS")
                if kind == .replication {
                    let walsender = try await setup.query("SELECT s.ssl FROM pg_stat_ssl s JOIN pg_replication_slots r ON r.active_pid = s.pid")
                    #expect(walsender.rows.isEmpty, "the slot is released after --once")
                }
            }

            let wrong: [(String, String, String)] = [
                ("wrong CA", base + path("other-ca.crt"), "certificate verify failed"),
                ("wrong host name", good.replacingOccurrences(of: "@localhost:", with: "@127.0.0.1:"), #"does not match host name "127.0.0.1""#),
            ]
            for (label, url, reason) in wrong {
                let (configPath, _) = try TLSTests.writeConfig(url: url, consumer: "a", kind: "audit_log", in: dir)
                for command in [["install"], ["run", "--once"], ["status"]] {
                    let result = try await SpillwayProcess.run(command + ["--config", configPath], timeout: .seconds(30))
                    #expect(result.code == 2, "\(label), \(command): exit \(result.code)")
                    #expect(result.stderr.contains(reason), "\(label), \(command): \(result.stderr)")
                }
            }
        }
    }

    static func writeConfig(url: String, consumer: String, kind: String, in dir: String) throws -> (String, String) {
        let config = "\(dir)/\(consumer)-\(UUID().uuidString).yaml", sink = "\(dir)/\(consumer).jsonl"
        try """
            database:
              url: "\(url)"
            consumer: \(consumer)
            source:
              kind: \(kind)
              tables: [public.products]
              poll_interval: 100ms
            sinks:
              - name: out
                kind: file
                path: \(sink)
            """.write(toFile: config, atomically: true, encoding: .utf8)
        return (config, sink)
    }
}
