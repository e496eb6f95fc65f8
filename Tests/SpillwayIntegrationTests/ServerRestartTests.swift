import Foundation
import SpillwayCore
import SpillwayPostgres
import Testing

/// The database crashes and recovers (`pg_ctl restart -m immediate`) under a running `spillway run`, on a
/// cluster of the test's own: `run` reconnects by itself, every row that survived the crash reaches the sink
/// (as an insert, at least once), and nothing the crash took back (a phantom) ever does.
@Suite("PostgreSQL crash-restarted under run", .enabled(if: TestEnvironment.canRun))
struct ServerRestartTests {
    @Test("pg_ctl restart -m immediate mid-stream: both sources reconnect, nothing lost, no phantom")
    func crashRestartMidStream() async throws {
        try await withTestScope { scope in
            let dir = tempPath("restart")
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: (dir as NSString).deletingLastPathComponent)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir)
            let dataDir = "\(dir)/pg"
            let port = try freeTCPPort()
            let started = try await spawnAndWait("bash", ["scripts/pg-cluster.sh", "start", dataDir, "\(port)"])
            scope.onExit { _ = try? await spawnAndWait("bash", ["scripts/pg-cluster.sh", "stop", dataDir]) }
            try #require(started == 0, "the cluster did not start: \((try? String(contentsOfFile: "\(dataDir)/log", encoding: .utf8)) ?? "")")
            let url = "postgres://postgres@127.0.0.1:\(port)/postgres"

            let setup = try await PostgresConnection.connect(url: url, applicationName: "spillway-tests")
            try await setup.execute("CREATE TABLE products (id int PRIMARY KEY)")
            await setup.close()
            var runners: [(kind: SourceKind, process: SpillwayProcess, sink: String)] = []
            for kind in SourceKind.allCases {
                let (config, sink) = try TLSTests.writeConfig(url: url, consumer: kind == .replication ? "r" : "a", kind: kind.rawValue, in: dir)
                let installed = try await SpillwayProcess.run(["install", "--config", config])
                try #require(installed.code == 0, "\(kind) install: \(installed.stderr)")
                runners.append((kind, try SpillwayProcess(["run", "--config", config]), sink))
            }
            for runner in runners {
                try await runner.process.waitForLog(runner.kind == .replication ? "replication started" : "reading")
            }

            // Rows before the crash, one transaction each; the crash lands while they stream.
            var writer = try await PostgresConnection.connect(url: url, applicationName: "spillway-tests")
            for id in 1...300 { try await writer.execute("INSERT INTO products VALUES (\(id))") }
            await writer.close()
            let restarted = try await spawnAndWait("bash", ["scripts/pg-cluster.sh", "crash-restart", dataDir])
            try #require(restarted == 0, "crash-restart failed: \((try? String(contentsOfFile: "\(dataDir)/log", encoding: .utf8)) ?? "")")
            writer = try await PostgresConnection.connect(url: url, applicationName: "spillway-tests")
            for id in 301...400 { try await writer.execute("INSERT INTO products VALUES (\(id))") }
            // The truth: what the table holds after recovery (the cluster runs with synchronous_commit=off, so
            // the crash may take back the last commits before it).
            let surviving = Set(try await writer.query("SELECT id FROM products").rows.compactMap { $0[0].flatMap { Int($0) } })
            await writer.close()
            #expect(surviving.isSuperset(of: 301...400))

            for runner in runners {
                let events = try await waitForEvents(runner.sink, timeout: .seconds(90), "\(runner.kind): every surviving row") { events in
                    Set(events.filter { $0.op == .insert }.compactMap { $0.after?["id"]?.plainText }.compactMap { Int($0) })
                        .isSuperset(of: surviving)
                }
                let delivered = Set(events.compactMap { $0.after?["id"]?.plainText }.compactMap { Int($0) })
                #expect(delivered.subtracting(surviving).isEmpty,
                        "\(runner.kind): delivered rows the crash took back: \(delivered.subtracting(surviving).sorted())")
                #expect(runner.process.process.isRunning, "\(runner.kind): `run` reconnected instead of exiting")
                runner.process.signal(SIGTERM)
                #expect(try await runner.process.wait() == 0, "\(runner.kind): \(runner.process.stderr)")
                #expect(runner.process.stderr.contains("reconnecting"), "\(runner.kind) logs the reconnect: \(runner.process.stderr)")
            }
        }
    }
}
