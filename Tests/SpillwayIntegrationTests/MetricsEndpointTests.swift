import Foundation
import SpillwayCore
import SpillwayPostgres
import Testing

/// What a scrape of `/healthz`, `/readyz` and `/metrics` returned, parsed by prometheus_client.
struct Scrape: Sendable {
    struct Sample: Sendable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    var healthz: (status: Int, body: String)
    var readyz: (status: Int, body: String)
    var contentType: String
    var samples: [Sample]

    /// Sum of the samples named `name` whose labels include `labels`.
    func sum(_ name: String, _ labels: [String: String] = [:]) -> Double {
        samples.filter { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }.reduce(0) { $0 + $1.value }
    }

    func has(_ name: String) -> Bool { samples.contains { $0.name == name } }

    /// Runs Support/scrape_metrics.py: an independent client and Prometheus text parser.
    static func take(port: Int) async throws -> Scrape {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Support/scrape_metrics.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, "http://127.0.0.1:\(port)"]
        let out = tempPath("scrape.json"), err = tempPath("scrape.err")
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        process.standardInput = FileHandle.nullDevice
        try process.run()
        while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        let stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        try #require(process.terminationStatus == 0, "scrape_metrics.py failed: \(stderr)")
        let data = try Data(contentsOf: URL(fileURLWithPath: out))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        func answer(_ key: String) throws -> (Int, String) {
            let pair = try #require(json[key] as? [Any])
            return ((pair[0] as? NSNumber)?.intValue ?? 0, pair[1] as? String ?? "")
        }
        let samples = (json["samples"] as? [[String: Any]] ?? []).map { sample in
            Sample(name: sample["name"] as? String ?? "", labels: sample["labels"] as? [String: String] ?? [:],
                   value: (sample["value"] as? NSNumber)?.doubleValue ?? .nan)
        }
        return Scrape(healthz: try answer("healthz"), readyz: try answer("readyz"),
                      contentType: json["content_type"] as? String ?? "", samples: samples)
    }
}

extension SpillwayProcess {
    /// The port of the status endpoint, from the `http listening` log line (tests listen on port 0).
    func httpPort() async throws -> Int {
        try await waitForLog("http listening")
        let line = try #require(stderr.split(separator: "\n").first { $0.contains("http listening") })
        let port = try #require(line.firstRange(of: /port=(\d+)/).map { Int(line[$0].dropFirst("port=".count)) } ?? nil,
                                "no port in: \(line)")
        return port
    }
}

@Suite("status endpoint: /healthz, /readyz, /metrics", .enabled(if: TestEnvironment.canRun))
struct MetricsEndpointTests {
    @Test("/metrics shows the initial snapshot's rows per table, then a backfill's, and the backfill requests per state",
          arguments: SourceKind.allCases)
    func snapshotAndBackfillProgress(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            try await app.execute("CREATE TABLE orders (id int PRIMARY KEY, total int)")
            try await app.execute("INSERT INTO products SELECT g, 'p' || g FROM generate_series(1, 1200) g")
            try await app.execute("INSERT INTO orders SELECT g, g FROM generate_series(1, 40) g")
            try await app.execute("ANALYZE products; ANALYZE orders")
            let (configPath, sink) = try db.writeConfig(tables: ["public.products", "public.orders"], kind: kind.rawValue,
                                                        extraSource: "  snapshot: initial\n  snapshot_chunk_size: 500")
            try #require(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            let runner = try SpillwayProcess(["run", "--config", configPath], environment: ["SPILLWAY_HTTP__SAMPLE_INTERVAL": "200ms"])
            defer { runner.signal(SIGKILL) }
            let port = try await runner.httpPort()
            try await waitUntil("the snapshot's 1240 rows at the sink", timeout: .seconds(60)) { try readEvents(sink).count >= 1240 }
            var scrape = try await Scrape.take(port: port)
            try await waitUntil("/metrics shows the snapshot done", timeout: .seconds(30)) {
                scrape = try await Scrape.take(port: port)
                return scrape.sum("spillway_snapshot_rows", ["table": "public.products"]) == 1200
                    && scrape.sum("spillway_snapshot_running") == 0
            }
            #expect(scrape.sum("spillway_snapshot_rows", ["table": "public.orders", "consumer": "tests"]) == 40)
            #expect(scrape.sum("spillway_snapshot_rows_estimated", ["table": "public.products"]) == 1200)
            #expect(scrape.sum("spillway_backfills", ["state": "queued"]) == 0 && scrape.sum("spillway_backfills", ["state": "done"]) == 0)

            let backfill = try await SpillwayProcess.run(["backfill", "--config", configPath, "--table", "public.orders", "--no-follow"])
            try #require(backfill.code == 0, "\(backfill.stderr)")
            try await waitUntil("/metrics shows the backfill done", timeout: .seconds(60)) {
                scrape = try await Scrape.take(port: port)
                return scrape.sum("spillway_backfills", ["state": "done"]) == 1
            }
            #expect(scrape.sum("spillway_backfills", ["state": "queued"]) == 0 && scrape.sum("spillway_backfills", ["state": "running"]) == 0)
            try await waitUntil("the backfill's rows on /metrics", timeout: .seconds(30)) {
                scrape = try await Scrape.take(port: port)
                return scrape.sum("spillway_backfill_rows", ["table": "public.orders"]) == 40
            }
            #expect(scrape.sum("spillway_backfill_rows_estimated", ["table": "public.orders"]) == 40)
            #expect(scrape.sum("spillway_backfill_rows", ["table": "public.products"]) == 0, "no backfill of products")
            #expect(scrape.sum("spillway_snapshot_running") == 0)
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0)
        }
    }

    @Test("/metrics parses as Prometheus text; its delivered-events counter equals the events the file sink wrote, per table and op",
          arguments: SourceKind.allCases)
    func deliveredCounterMatchesTheSink(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            try await app.execute("CREATE TABLE orders (id int PRIMARY KEY, total int)")
            let (configPath, sink) = try db.writeConfig(tables: ["public.products", "public.orders"], kind: kind.rawValue,
                                                        extraSource: "  batch_size: 50")
            let installed = try await SpillwayProcess.run(["install", "--config", configPath])
            try #require(installed.code == 0, "install failed: \(installed.stderr)")

            let runner = try SpillwayProcess(["run", "--config", configPath], environment: ["SPILLWAY_HTTP__SAMPLE_INTERVAL": "200ms"])
            let port = try await runner.httpPort()
            try await runner.waitForLog(kind.streamingLog)
            try await app.execute("INSERT INTO products SELECT g, 'p' || g FROM generate_series(1, 300) g")
            try await app.execute("UPDATE products SET name = 'q' WHERE id <= 120")
            try await app.execute("DELETE FROM products WHERE id > 280")
            try await app.execute("INSERT INTO orders SELECT g, g * 10 FROM generate_series(1, 75) g")
            let expected = 300 + 120 + 20 + 75
            try await waitUntil("the sink holds all \(expected) events", timeout: .seconds(60)) { try readEvents(sink).count >= expected }
            // The counter counts a batch once every sink acknowledged it: wait for the scrape to see the last one.
            var scrape = try await Scrape.take(port: port)
            try await waitUntil("/metrics counts every delivered event", timeout: .seconds(30)) {
                scrape = try await Scrape.take(port: port)
                return scrape.sum("spillway_events_delivered_total") >= Double(expected)
            }
            let events = try readEvents(sink)
            #expect(scrape.contentType.hasPrefix("text/plain"), "Prometheus text format: \(scrape.contentType)")
            #expect(scrape.sum("spillway_events_delivered_total") == Double(events.count), "delivered counter == events the file sink wrote")
            for (table, op) in [("public.products", "insert"), ("public.products", "update"), ("public.products", "delete"), ("public.orders", "insert")] {
                let atSink = events.filter { "\($0.schema).\($0.table)" == table && $0.op.rawValue == op }.count
                #expect(scrape.sum("spillway_events_delivered_total", ["table": table, "op": op, "source": kind.rawValue, "consumer": "tests"])
                        == Double(atSink), "\(table) \(op)")
                #expect(scrape.sum("spillway_events_read_total", ["table": table, "op": op]) >= Double(atSink))
            }
            #expect(scrape.sum("spillway_sink_acknowledged_total", ["sink": "out"]) == Double(events.count))
            #expect(scrape.sum("spillway_sink_failed_total", ["sink": "out"]) == 0)
            #expect(scrape.sum("spillway_commit_to_ack_seconds_count") == Double(events.count), "one latency per delivered event")
            #expect(scrape.sum("spillway_batch_delivery_duration_seconds_count", ["sink": "out"]) > 0)
            #expect(scrape.sum("spillway_build_info", ["consumer": "tests"]) == 1)
            #expect(scrape.sum("spillway_leader", ["consumer": "tests"]) == 1)
            try await waitUntil("the checkpoint age gauge is sampled") {
                scrape = try await Scrape.take(port: port)
                return scrape.has("spillway_checkpoint_age_seconds")
            }
            if kind == .auditLog {
                #expect(scrape.has("spillway_audit_log_lag_rows"))
            } else {
                #expect(scrape.sum("spillway_replication_slot_wal_status", ["status": "reserved"]) == 1)
            }
            #expect(scrape.healthz.status == 200, "\(scrape.healthz.body)")
            #expect(scrape.readyz.status == 200, "\(scrape.readyz.body)")
            #expect(scrape.readyz.body.contains("role: active") && scrape.readyz.body.contains("sink out: ok"), "\(scrape.readyz.body)")

            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0, "\(runner.stderr)")
        }
    }

    @Test("an http.address that is taken is a configuration error naming the key (exit 2)")
    func addressInUse() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let (first, _) = try db.writeConfig(consumer: "first")
            let (second, _) = try db.writeConfig(consumer: "second")
            for path in [first, second] { #expect(try await SpillwayProcess.run(["install", "--config", path]).code == 0) }
            let runner = try SpillwayProcess(["run", "--config", first])
            let port = try await runner.httpPort()
            let clash = try await SpillwayProcess.run(["run", "--config", second], environment: ["SPILLWAY_HTTP__ADDRESS": "127.0.0.1:\(port)"])
            #expect(clash.code == 2, "\(clash.stderr)")
            #expect(clash.stderr.contains("config key 'http.address': cannot listen on 127.0.0.1:\(port)"), "\(clash.stderr)")
            #expect(clash.stderr.contains("SPILLWAY_HTTP__ADDRESS"), "the error names the variable the address came from: \(clash.stderr)")
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0)
        }
    }

    @Test("audit_log: the lag gauge counts committed rows the consumer has not acknowledged, and falls to 0 once delivered")
    func auditLogLagMoves() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            // A sink that fails (no Redis listens on port 1) holds the lag; the file sink alone shows it fall.
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spillway-test-\(UUID().uuidString)")
            let (configPath, _) = try db.writeConfig(directory: dir)
            let installed = try await SpillwayProcess.run(["install", "--config", configPath])
            try #require(installed.code == 0, "install failed: \(installed.stderr)")
            try await app.execute("INSERT INTO products SELECT g, 'p' || g FROM generate_series(1, 40) g")
            let held = dir.appendingPathComponent("held.yaml").path
            let failing = [
                "  - name: cache", "    kind: redis", "    url: redis://127.0.0.1:1/0", "    keys:", "      public.products: [\"products:{key.id}\"]",
            ].joined(separator: "\n")
            try (try String(contentsOfFile: configPath, encoding: .utf8) + "\n" + failing + "\n")
                .write(toFile: held, atomically: true, encoding: .utf8)
            let runner = try SpillwayProcess(["run", "--config", held], environment: ["SPILLWAY_HTTP__SAMPLE_INTERVAL": "200ms",
                                                                                      "SPILLWAY_HTTP__STALL_AFTER": "1s"])
            let port = try await runner.httpPort()
            var scrape = try await Scrape.take(port: port)
            try await waitUntil("the lag gauge shows the 40 undelivered rows", timeout: .seconds(30)) {
                scrape = try await Scrape.take(port: port)
                return scrape.sum("spillway_audit_log_lag_rows") == 40
            }
            try await waitUntil("readiness names the failing sink", timeout: .seconds(30)) {
                scrape = try await Scrape.take(port: port)
                return scrape.readyz.status == 503 && scrape.readyz.body.contains("sink cache: failing")
            }
            #expect(scrape.healthz.status == 200, "a failing sink is not a dead process: \(scrape.healthz.body)")
            #expect(scrape.sum("spillway_sink_failed_total", ["sink": "cache"]) >= 1)
            #expect(scrape.sum("spillway_sink_retried_total", ["sink": "cache"]) >= 1)
            runner.signal(SIGTERM)
            _ = try await runner.wait()

            let healthy = try SpillwayProcess(["run", "--config", configPath], environment: ["SPILLWAY_HTTP__SAMPLE_INTERVAL": "200ms"])
            let healthyPort = try await healthy.httpPort()
            try await waitUntil("the lag gauge falls to 0 once delivered", timeout: .seconds(30)) {
                scrape = try await Scrape.take(port: healthyPort)
                return scrape.has("spillway_audit_log_lag_rows") && scrape.sum("spillway_audit_log_lag_rows") == 0
                    && scrape.sum("spillway_events_delivered_total") == 40
            }
            healthy.signal(SIGTERM)
            #expect(try await healthy.wait() == 0)
        }
    }

    @Test("replication: the retained-WAL gauge rises while a failing sink holds the slot back, and falls once the changes are delivered")
    func retainedWALMoves() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let (configPath, sinkPath) = try db.writeConfig(kind: "replication", extraSource: "  heartbeat: 200ms")
            let installed = try await SpillwayProcess.run(["install", "--config", configPath])
            try #require(installed.code == 0, "install failed: \(installed.stderr)")
            // The same consumer into a webhook nobody listens on: the batch is retried, the checkpoint holds, and so
            // does the slot. (Not an open transaction: that would make every other test's slot creation wait.)
            let failingPath = configPath + ".failing.yaml"
            let failing = try String(contentsOfFile: configPath, encoding: .utf8)
                .replacingOccurrences(of: "    kind: file\n    path: \(sinkPath)", with: "    kind: webhook\n    url: http://127.0.0.1:1/hook\n    timeout: 1s")
            try #require(failing.contains("kind: webhook"))
            try failing.write(toFile: failingPath, atomically: true, encoding: .utf8)
            let environment = ["SPILLWAY_HTTP__SAMPLE_INTERVAL": "200ms"]
            let blocked = try SpillwayProcess(["run", "--config", failingPath], environment: environment)
            let port = try await blocked.httpPort()
            try await blocked.waitForLog(SourceKind.replication.streamingLog)

            for round in 0..<8 {
                try await app.execute("INSERT INTO products SELECT g, repeat('x', 1000) FROM generate_series(\(round * 1000 + 1), \((round + 1) * 1000)) g")
            }
            let written = 8 * 1000 * 1000
            var scrape = try await Scrape.take(port: port)
            try await waitUntil("the gauge shows the WAL retained behind the undelivered changes", timeout: .seconds(60)) {
                scrape = try await Scrape.take(port: port)
                return scrape.sum("spillway_replication_retained_wal_bytes") >= Double(written)
            }
            let high = scrape.sum("spillway_replication_retained_wal_bytes")
            blocked.signal(SIGTERM)
            #expect(try await blocked.wait() == 0, "\(blocked.stderr)")

            let runner = try SpillwayProcess(["run", "--config", configPath], environment: environment)
            let livePort = try await runner.httpPort()
            try await waitForEvents(sinkPath, timeout: .seconds(60), "every change delivered") { $0.count == 8000 }
            try await waitUntil("the gauge falls once the changes are delivered and the slot moved on", timeout: .seconds(60)) {
                // A checkpoint logs the running transactions, which lets the slot's restart point move on.
                try await app.execute("CHECKPOINT")
                scrape = try await Scrape.take(port: livePort)
                return scrape.sum("spillway_replication_retained_wal_bytes") < high / 4
            }
            print("retained WAL gauge: \(Int(high)) bytes behind the undelivered changes, then \(Int(scrape.sum("spillway_replication_retained_wal_bytes")))")
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0, "\(runner.stderr)")
        }
    }
}
