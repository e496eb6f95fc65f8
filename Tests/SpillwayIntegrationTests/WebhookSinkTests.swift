import Foundation
import SpillwayCore
import SpillwayPostgres
import SpillwayTestSupport
import Testing

@Suite("webhook sink against a real HTTP receiver", .enabled(if: TestEnvironment.canRun))
struct WebhookSinkTests {
    /// A config whose only sink is a webhook to `receiver`; `extraSink` adds keys to the sink.
    static func yaml(_ db: TestDatabase, _ receiver: WebhookReceiver, kind: SourceKind, path: String = "/hooks/{table}/{key.id}",
                     extraSink: String = "") -> String {
        """
        database:
          url: \(db.url)
        consumer: tests
        source:
          kind: \(kind.rawValue)
          tables: [public.products]
          poll_interval: 100ms
          slot: \(db.slotName(consumer: "tests"))
        sinks:
          - name: hook
            kind: webhook
            url: \(receiver.url)\(path)
            secret: \(WebhookReceiver.secret)
            timeout: 2s
        \(extraSink.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
        """
    }

    static func writeConfig(_ yaml: String) throws -> String {
        let path = tempPath("webhook.yaml")
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("events arrive signed (verified by the receiver), in per-key order with concurrency 4, ids = event ids", arguments: SourceKind.allCases)
    func signedAndOrdered(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let receiver = try await WebhookReceiver()
            let config = try SpillwayConfig.parse(yaml: Self.yaml(db, receiver, kind: kind, extraSink: "concurrency: 4"))
            _ = try await install(config, on: db)
            try await app.execute("INSERT INTO products SELECT g, 'p' || g FROM generate_series(1, 8) g")
            for round in 1...3 { try await app.execute("UPDATE products SET name = 'r\(round)-' || id") }
            try await drainOnce(config)

            // A request that outlives `timeout` on a loaded machine is sent again with the same webhook-id and
            // body (at-least-once; receivers de-duplicate by webhook-id): a repeat must be exactly that.
            var requests: [WebhookReceiver.Received] = []
            for request in receiver.requests {
                if let first = requests.first(where: { $0.headers["webhook-id"] == request.headers["webhook-id"] }) {
                    #expect(first.body == request.body && first.path == request.path, "a repeated webhook-id is a retry of the same request")
                } else {
                    requests.append(request)
                }
            }
            #expect(requests.count == 32, "one webhook-id per event")
            #expect(receiver.requests.allSatisfy { $0.isVerified }, "every signature verifies with the receiver's own HMAC")
            #expect(receiver.requests.allSatisfy { $0.headers["content-type"] == "application/json" })
            let events = requests.compactMap { try? ChangeEvent(json: JSONParser.parse($0.body)) }
            #expect(zip(requests, events).allSatisfy { $0.headers["webhook-id"] == $1.id })
            #expect(zip(requests, events).allSatisfy { $0.path == "/hooks/products/\($1.key?["id"]?.plainText ?? "")" })
            for id in 1...8 {
                let names = events.filter { $0.key?["id"]?.plainText == "\(id)" }.map { $0.after?["name"]?.plainText ?? "" }
                #expect(names == ["p\(id)", "r1-\(id)", "r2-\(id)", "r3-\(id)"])
            }
        }
    }

    @Test("format: cloudevents: structured and batched CloudEvents the CloudEvents SDK reads, id = event id, type = consumer.schema.table.op",
          arguments: SourceKind.allCases)
    func cloudEvents(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let single = try await WebhookReceiver()
            let batched = try await WebhookReceiver()
            var yaml = Self.yaml(db, single, kind: kind, extraSink: "format: cloudevents")
            yaml += """

                  - {name: batched, kind: webhook, url: '\(batched.url)/batch', body: batch, format: cloudevents, timeout: 2s}
                """
            let config = try SpillwayConfig.parse(yaml: yaml)
            _ = try await install(config, on: db)
            try await app.execute("INSERT INTO products VALUES (1, 'kettle'), (2, 'teapot')")
            try await app.execute("UPDATE products SET name = 'jug' WHERE id = 1")
            try await app.execute("DELETE FROM products WHERE id = 2")
            try await drainOnce(config)

            #expect(single.requests.allSatisfy { $0.headers["content-type"] == "application/cloudevents+json" })
            #expect(batched.requests.allSatisfy { $0.headers["content-type"] == "application/cloudevents-batch+json" })
            let consumer = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Support/cloudevents_consumer.py").path
            let expected = ["tests.public.products.insert {\"id\":1} insert", "tests.public.products.insert {\"id\":2} insert",
                            "tests.public.products.update {\"id\":1} update", "tests.public.products.delete {\"id\":2} delete"]
            for receiver in [single, batched] {
                let lines = try await runTool("python3", [consumer, receiver.logPath]).split(separator: "\n").map(String.init)
                // `type id subject op`; ids compared with the events' own below, so drop them here.
                let shown = lines.map { line -> String in
                    let parts = line.split(separator: " ", maxSplits: 2).map(String.init)
                    return parts.count == 3 ? parts[0] + " " + parts[2] : line
                }
                var seen = Set<String>()
                #expect(shown.filter { seen.insert($0).inserted } == expected, "\(lines)")
                let ids = lines.compactMap { $0.split(separator: " ").dropFirst().first.map(String.init) }
                let dataIDs = receiver.requests.flatMap { request -> [String] in
                    guard let parsed = try? JSONParser.parse(request.body) else { return [] }
                    let items: [JSONValue]
                    if case .array(let array) = parsed { items = array } else { items = [parsed] }
                    return items.compactMap { $0.objectValue?["data"]?.objectValue?["id"]?.stringValue }
                }
                #expect(ids == dataIDs && !ids.isEmpty, "each CloudEvent's id is its change event's id")
            }
        }
    }

    @Test("503 with Retry-After: 1 three times, then 200: each event accepted once, in order, same webhook-id", arguments: SourceKind.allCases)
    func retryAfter(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let receiver = try await WebhookReceiver()
            try receiver.control(#"{"fail_503": 3, "retry_after": "1"}"#)
            let config = try SpillwayConfig.parse(yaml: Self.yaml(db, receiver, kind: kind))
            _ = try await install(config, on: db)
            try await app.execute("INSERT INTO products SELECT g, 'p' || g FROM generate_series(1, 3) g")
            let started = ContinuousClock.now
            try await drainOnce(config)
            let elapsed = ContinuousClock.now - started

            let requests = receiver.requests
            #expect(requests.map(\.status) == [503, 503, 503, 200, 200, 200])
            #expect(Set(requests.prefix(4).map { $0.headers["webhook-id"] ?? "" }).count == 1, "the id is stable across retries")
            #expect(Set(requests.prefix(4).map { $0.headers["webhook-timestamp"] ?? "" }).count == 4,
                    "each attempt has its own timestamp (a second or more apart)")
            #expect(requests.allSatisfy { $0.isVerified })
            #expect(receiver.acceptedEvents.map { $0.key?["id"]?.plainText ?? "" } == ["1", "2", "3"])
            #expect(elapsed >= .seconds(3), "Retry-After: 1 was honoured three times")
        }
    }

    @Test("400 for one event: dead-lettered with its answer, later events flow, `dead-letters retry` redelivers it", arguments: SourceKind.allCases)
    func deadLetterAndRetry(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let receiver = try await WebhookReceiver()
            try receiver.control(#"{"reject_if_contains": "\"name\":\"bad\""}"#)
            let yaml = Self.yaml(db, receiver, kind: kind)
            let configPath = try Self.writeConfig(yaml)
            let config = try SpillwayConfig.parse(yaml: yaml)
            #expect(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            try await app.execute("INSERT INTO products VALUES (1, 'good'), (2, 'bad'), (3, 'fine')")
            try await drainOnce(config)
            try await app.execute("INSERT INTO products VALUES (4, 'later')")
            try await drainOnce(config)

            #expect(receiver.acceptedEvents.compactMap { $0.key?["id"]?.plainText } == ["1", "3", "4"])
            let rows = try await app.query(
                "SELECT sink, event->'after'->>'name', status, response_excerpt, attempts, first_attempt_at <= last_attempt_at FROM spillway.dead_letters")
            #expect(rows.rows.count == 1)
            #expect(rows.rows.first == ["hook", "bad", "400", #"{"error": "rejected by test receiver"}"#, "1", "t"])

            let listed = try await SpillwayProcess.run(["dead-letters", "list", "--config", configPath])
            #expect(listed.code == 0)
            #expect(listed.stdout.contains("hook") && listed.stdout.contains("status 400"), "\(listed.stdout)")
            let json = try await SpillwayProcess.run(["dead-letters", "list", "--json", "--sink", "hook", "--config", configPath])
            guard case .array(let items)? = try? JSONParser.parse(json.stdout) else {
                Issue.record("list --json is not a JSON array: \(json.stdout) \(json.stderr)")
                return
            }
            #expect(items.count == 1)

            // Still rejected: the row stays, with one more attempt.
            let refused = try await SpillwayProcess.run(["dead-letters", "retry", "--config", configPath])
            #expect(refused.code == 1)
            #expect(try await app.query("SELECT attempts FROM spillway.dead_letters").first == ["2"])

            try receiver.control("{}")
            let retried = try await SpillwayProcess.run(["dead-letters", "retry", "--config", configPath])
            #expect(retried.code == 0, "\(retried.stdout) \(retried.stderr)")
            #expect(retried.stdout.contains("redelivered 1"))
            #expect(receiver.acceptedEvents.compactMap { $0.key?["id"]?.plainText } == ["1", "3", "4", "2"])
            #expect(receiver.requests.last?.isVerified == true)
            #expect(try await app.query("SELECT count(*) FROM spillway.dead_letters").first == ["0"])

            try await app.execute("INSERT INTO spillway.dead_letters (sink, event, attempts, first_attempt_at, last_attempt_at) "
                + "VALUES ('hook', '{}', 1, now(), now())")
            let dropped = try await SpillwayProcess.run(["dead-letters", "drop", "--sink", "hook", "--config", configPath])
            #expect(dropped.stdout.contains("dropped 1"))
        }
    }

    @Test("receiver down, `spillway run` killed -9 while it retries: the checkpoint held, nothing acknowledged is resent, nothing is missing",
          arguments: SourceKind.allCases)
    func outageAndKill(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let receiver = try await WebhookReceiver()
            let configPath = try Self.writeConfig(Self.yaml(db, receiver, kind: kind, extraSink: "concurrency: 2"))
            let installed = try await SpillwayProcess.run(["install", "--config", configPath])
            try #require(installed.code == 0, "install failed: \(installed.stderr)")

            // Rows are inserted in id order, 10 per transaction, so commit order is id order.
            func insert(_ batches: Range<Int>) async throws {
                for batch in batches {
                    try await app.execute("INSERT INTO products SELECT g, 'p' || g FROM generate_series(\(batch * 10 + 1), \(batch * 10 + 10)) g")
                }
            }
            let runner = try SpillwayProcess(["run", "--config", configPath])
            try await insert(0..<5)
            try await waitForStatus(configPath, "the first 50 changes to be acknowledged") { $0["events_total"]?.plainText == "50" }
            #expect(Set(receiver.acceptedEvents.compactMap { $0.key?["id"]?.plainText }) == Set((1...50).map(String.init)))

            receiver.stop()
            try await insert(5..<20)
            try await waitUntil("the runner meets the outage") { runner.stderr.contains("webhook failed, retrying") }
            let held = try await CheckpointRow.read(consumer: "tests", on: app)
            runner.signal(SIGKILL)
            _ = try await runner.wait()
            // A request that timed out on a loaded machine may have been accepted and sent again (same
            // webhook-id) before the kill: at-least-once. What must not happen is a resend after the restart.
            let acceptedBeforeRestart = receiver.acceptedEvents.count
            let afterKill = try await CheckpointRow.read(consumer: "tests", on: app)
            #expect(afterKill.eventsTotal == 50 && held.eventsTotal == 50, "the checkpoint held during the outage: \(afterKill)")
            let lastAcknowledged = receiver.acceptedEvents.first { $0.key == ["id": .number("50")] }
            #expect(afterKill.position != nil && afterKill.position == lastAcknowledged?.position, "at row 50's change: \(afterKill)")

            // The restarted runner meets the outage too, and says so in `status`.
            let restarted = try SpillwayProcess(["run", "--config", configPath])
            try await waitUntil("the restarted runner meets the outage") { restarted.stderr.contains("webhook failed, retrying") }
            let status = try await statusJSON(configPath)
            #expect(status.lastError?.contains("sink 'hook'") == true && status.lastError?.contains("retrying") == true,
                    "status shows the outage: \(status)")
            try await receiver.start()
            try await waitForStatus(configPath, timeout: .seconds(40), "all 200 changes to be acknowledged") {
                $0["events_total"]?.plainText == "200"
            }
            restarted.signal(SIGTERM)
            #expect(try await restarted.wait() == 0, "\(restarted.stderr.suffix(2000))")

            let accepted = receiver.acceptedEvents.compactMap { $0.key?["id"]?.plainText }
            #expect(Set(accepted) == Set((1...200).map(String.init)), "missing: \(Set((1...200).map(String.init)).subtracting(accepted).sorted())")
            let resent = Set(accepted.dropFirst(acceptedBeforeRestart)).intersection((1...50).map(String.init))
            #expect(resent.isEmpty, "changes acknowledged before the kill are never sent again: \(resent.sorted())")
            #expect(receiver.requests.allSatisfy { $0.isVerified })
        }
    }

    @Test("graceful stop while the endpoint answers 503 (Retry-After: 120): exits promptly, the batch comes again on start", arguments: SourceKind.allCases)
    func gracefulStopWhileRetrying(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let receiver = try await WebhookReceiver()
            // A long Retry-After against a bound a sixth of it: a loaded CI machine (the whole suite at once) once
            // took 5.8 s to stop a debug binary, so the margin is in the ratio, not in seconds.
            try receiver.control(#"{"fail_503": 1000, "retry_after": "120"}"#)
            let configPath = try Self.writeConfig(Self.yaml(db, receiver, kind: kind))
            #expect(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            try await app.execute("INSERT INTO products SELECT g, 'p' || g FROM generate_series(1, 3) g")
            let runner = try SpillwayProcess(["run", "--config", configPath])
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(20)
            while !runner.stderr.contains("webhook failed, retrying"), clock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(runner.stderr.contains("webhook failed, retrying"), "the runner met the 503s before the stop")
            #expect(receiver.requests.map(\.status) == [503], "one attempt, then the 120 s Retry-After wait")
            let stopped = clock.now
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0, "\(runner.stderr.suffix(2000))")
            #expect(clock.now - stopped < .seconds(20), "the 120 s Retry-After wait ends at the stop")
            #expect(receiver.acceptedEvents.isEmpty)

            try receiver.control("{}")
            #expect(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
            #expect(receiver.acceptedEvents.compactMap { $0.key?["id"]?.plainText } == ["1", "2", "3"])
        }
    }

    @Test("body: batch sends JSON arrays of up to batch_size events, webhook-id = first id + count, signed", arguments: SourceKind.allCases)
    func batchBody(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let receiver = try await WebhookReceiver()
            let config = try SpillwayConfig.parse(yaml: Self.yaml(db, receiver, kind: kind, path: "/hooks/{table}", extraSink: "body: batch\nbatch_size: 3"))
            _ = try await install(config, on: db)
            try await app.execute("INSERT INTO products SELECT g, 'p' || g FROM generate_series(1, 7) g")
            try await drainOnce(config)

            let requests = receiver.requests
            var ids: [String] = []
            for request in requests {
                guard case .array(let items)? = try? JSONParser.parse(request.body) else {
                    Issue.record("not a JSON array: \(request.body)")
                    continue
                }
                let events = try items.map { try ChangeEvent(json: $0) }
                let first = try #require(events.first, "an empty batch request")
                #expect(request.headers["webhook-id"] == "\(first.id)+\(events.count)")
                ids += events.compactMap { $0.key?["id"]?.plainText }
            }
            #expect(requests.count == 3)
            #expect(ids == (1...7).map(String.init))
            #expect(requests.allSatisfy { $0.isVerified && $0.path == "/hooks/products" })
        }
    }

    @Test("on_failure: block: a 400 holds the stream (no dead letter, status shows it) until the endpoint accepts", arguments: SourceKind.allCases)
    func blockOnFailure(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let receiver = try await WebhookReceiver()
            try receiver.control(#"{"reject_if_contains": "\"name\":\"bad\""}"#)
            let configPath = try Self.writeConfig(Self.yaml(db, receiver, kind: kind, extraSink: "on_failure: block"))
            #expect(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
            try await app.execute("INSERT INTO products VALUES (1, 'bad'), (2, 'good')")
            let runner = try SpillwayProcess(["run", "--config", configPath])
            let clock = ContinuousClock()
            var deadline = clock.now + .seconds(20)
            while receiver.requests.filter({ $0.status == 400 }).count < 2, clock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(receiver.requests.filter { $0.status == 400 }.count >= 2, "event 1 was tried again after its 400")
            #expect(try await CheckpointRow.read(consumer: "tests", on: app).eventsTotal == 0, "the checkpoint holds")
            let status = try await SpillwayProcess.run(["status", "--json", "--config", configPath])
            #expect(status.stdout.contains("answered 400"), "\(status.stdout)")
            #expect(try await app.query("SELECT count(*) FROM spillway.dead_letters").first == ["0"])
            #expect(!receiver.acceptedEvents.contains { $0.key?["id"]?.plainText == "2" }, "event 2 waits behind event 1")

            try receiver.control("{}")
            deadline = clock.now + .seconds(20)
            while receiver.acceptedEvents.count < 2, clock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            try await waitForStatus(configPath, "both changes to be acknowledged") { $0["events_total"]?.plainText == "2" }
            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0)
            #expect(receiver.acceptedEvents.compactMap { $0.key?["id"]?.plainText } == ["1", "2"])
        }
    }

    @Test("revalidation template: exactly the rendered body and the Authorization header from the environment", arguments: SourceKind.allCases)
    func revalidationTemplate(kind: SourceKind) async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, slug text)")
            let receiver = try await WebhookReceiver()
            let yaml = Self.yaml(db, receiver, kind: kind, extraSink: #"""
                body: template
                template: '{"slug": "{after.slug}", "type": "product"}'
                headers:
                  Authorization: Bearer ${REVALIDATE_SECRET}
                ops: [insert, update]
                """#)
            let config = try SpillwayConfig.parse(yaml: yaml, environment: ["REVALIDATE_SECRET": "s3cr3t"])
            _ = try await install(config, on: db)
            try await app.execute(#"INSERT INTO products VALUES (1, 'kettle'), (2, 'tea "pot"\')"#)
            try await app.execute("DELETE FROM products WHERE id = 1")
            try await drainOnce(config)

            let requests = receiver.requests
            #expect(requests.map(\.body) == [#"{"slug": "kettle", "type": "product"}"#, #"{"slug": "tea \"pot\"\\", "type": "product"}"#])
            #expect(requests.allSatisfy { $0.headers["authorization"] == "Bearer s3cr3t" })
            #expect(requests.allSatisfy { $0.isVerified })
        }
    }
}
