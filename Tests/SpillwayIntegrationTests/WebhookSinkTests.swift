import Foundation
import SpillwayCore
import SpillwayPostgres
import Testing

@Suite("webhook sink against a real HTTP receiver", .enabled(if: TestEnvironment.canRun))
struct WebhookSinkTests {
    /// A config whose only sink is a webhook to `receiver`; `extraSink` adds keys to the sink.
    static func yaml(_ db: TestDatabase, _ receiver: WebhookReceiver, path: String = "/hooks/{table}/{key.id}",
                     extraSink: String = "") -> String {
        """
        database:
          url: \(db.url)
        consumer: tests
        source:
          kind: audit_log
          tables: [public.products]
          poll_interval: 100ms
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

    @Test("events arrive signed (verified by the receiver), in per-key order with concurrency 4, ids = event ids")
    func signedAndOrdered() async throws {
        let db = try await TestDatabase.create()
        let app = try await db.connect()
        try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
        let receiver = try await WebhookReceiver()
        let config = try SpillwayConfig.parse(yaml: Self.yaml(db, receiver, extraSink: "concurrency: 4"))
        _ = try await install(config, on: db)
        try await app.execute("INSERT INTO products SELECT g, 'p' || g FROM generate_series(1, 8) g")
        for round in 1...3 { try await app.execute("UPDATE products SET name = 'r\(round)-' || id") }
        try await drainOnce(config)

        let requests = receiver.requests
        #expect(requests.count == 32)
        #expect(requests.allSatisfy { $0.isVerified }, "every signature verifies with the receiver's own HMAC")
        #expect(requests.allSatisfy { $0.headers["content-type"] == "application/json" })
        let events = receiver.acceptedEvents
        #expect(zip(requests, events).allSatisfy { $0.headers["webhook-id"] == $1.id })
        #expect(zip(requests, events).allSatisfy { $0.path == "/hooks/products/\($1.key?["id"]?.plainText ?? "")" })
        for id in 1...8 {
            let names = events.filter { $0.key?["id"]?.plainText == "\(id)" }.map { $0.after?["name"]?.plainText ?? "" }
            #expect(names == ["p\(id)", "r1-\(id)", "r2-\(id)", "r3-\(id)"])
        }
        receiver.stop()
        await app.close()
        await db.drop()
    }

    @Test("503 with Retry-After: 1 three times, then 200: each event accepted once, in order, same webhook-id")
    func retryAfter() async throws {
        let db = try await TestDatabase.create()
        let app = try await db.connect()
        try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
        let receiver = try await WebhookReceiver()
        try receiver.control(#"{"fail_503": 3, "retry_after": "1"}"#)
        let config = try SpillwayConfig.parse(yaml: Self.yaml(db, receiver))
        _ = try await install(config, on: db)
        try await app.execute("INSERT INTO products SELECT g, 'p' || g FROM generate_series(1, 3) g")
        let started = ContinuousClock.now
        try await drainOnce(config)
        let elapsed = ContinuousClock.now - started

        let requests = receiver.requests
        #expect(requests.map(\.status) == [503, 503, 503, 200, 200, 200])
        #expect(Set(requests.prefix(4).map { $0.headers["webhook-id"] ?? "" }).count == 1, "the id is stable across retries")
        #expect(Set(requests.prefix(4).map { $0.headers["webhook-timestamp"] ?? "" }).count >= 2, "each attempt has its own timestamp")
        #expect(requests.allSatisfy { $0.isVerified })
        #expect(receiver.acceptedEvents.map { $0.key?["id"]?.plainText ?? "" } == ["1", "2", "3"])
        #expect(elapsed >= .seconds(3), "Retry-After: 1 was honoured three times")
        receiver.stop()
        await app.close()
        await db.drop()
    }

    @Test("400 for one event: dead-lettered with its answer, later events flow, `dead-letters retry` redelivers it")
    func deadLetterAndRetry() async throws {
        let db = try await TestDatabase.create()
        let app = try await db.connect()
        try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
        let receiver = try await WebhookReceiver()
        try receiver.control(#"{"reject_if_contains": "\"name\":\"bad\""}"#)
        let yaml = Self.yaml(db, receiver)
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
        receiver.stop()
        await app.close()
        await db.drop()
    }

    @Test("receiver down while `spillway run` is killed -9: after both recover, nothing is missing")
    func outageAndKill() async throws {
        let db = try await TestDatabase.create()
        let app = try await db.connect()
        try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
        let receiver = try await WebhookReceiver()
        let configPath = try Self.writeConfig(Self.yaml(db, receiver, extraSink: "concurrency: 2"))
        #expect(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)

        var runner = try SpillwayProcess(["run", "--config", configPath])
        for batch in 0..<20 {
            try await app.execute("INSERT INTO products SELECT g, 'p' || g FROM generate_series(\(batch * 10 + 1), \(batch * 10 + 10)) g")
            if batch == 5 { receiver.stop() }
            if batch == 12 {
                runner.signal(SIGKILL)
                _ = try await runner.wait()
                runner = try SpillwayProcess(["run", "--config", configPath])
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        // Keep the receiver down until the restarted runner has met the outage too.
        let clock = ContinuousClock()
        let outageDeadline = clock.now + .seconds(20)
        while !runner.stderr.contains("webhook failed, retrying"), clock.now < outageDeadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(runner.stderr.contains("webhook failed, retrying"), "the restarted runner met the outage")
        let status = try await SpillwayProcess.run(["status", "--json", "--config", configPath])
        let lastError = (try? JSONParser.parse(status.stdout))?.objectValue?["last_error"]?.stringValue ?? ""
        #expect(lastError.contains("sink 'hook'") && lastError.contains("retrying"), "status shows the outage: \(status.stdout)")
        try await receiver.start()
        let expected = Set((1...200).map(String.init))
        let deadline = clock.now + .seconds(40)
        var accepted: Set<String> = []
        while clock.now < deadline {
            accepted = Set(receiver.acceptedEvents.compactMap { $0.key?["id"]?.plainText })
            if accepted.isSuperset(of: expected) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        runner.signal(SIGTERM)
        #expect(try await runner.wait() == 0, "\(runner.stderr.suffix(2000))")
        #expect(accepted == expected, "missing: \(expected.subtracting(accepted).sorted())")
        #expect(receiver.requests.allSatisfy { $0.isVerified })
        receiver.stop()
        await app.close()
        await db.drop()
    }

    @Test("graceful stop while the endpoint answers 503 (Retry-After: 30): exits promptly, the batch comes again on start")
    func gracefulStopWhileRetrying() async throws {
        let db = try await TestDatabase.create()
        let app = try await db.connect()
        try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
        let receiver = try await WebhookReceiver()
        try receiver.control(#"{"fail_503": 1000, "retry_after": "30"}"#)
        let configPath = try Self.writeConfig(Self.yaml(db, receiver))
        #expect(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
        try await app.execute("INSERT INTO products SELECT g, 'p' || g FROM generate_series(1, 3) g")
        let runner = try SpillwayProcess(["run", "--config", configPath])
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while !runner.stderr.contains("webhook failed, retrying"), clock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        let stopped = clock.now
        runner.signal(SIGTERM)
        #expect(try await runner.wait() == 0, "\(runner.stderr.suffix(2000))")
        #expect(clock.now - stopped < .seconds(5), "the 30 s Retry-After wait ends at the stop")
        #expect(receiver.acceptedEvents.isEmpty)

        try receiver.control("{}")
        #expect(try await SpillwayProcess.run(["run", "--once", "--config", configPath]).code == 0)
        #expect(receiver.acceptedEvents.compactMap { $0.key?["id"]?.plainText } == ["1", "2", "3"])
        receiver.stop()
        await app.close()
        await db.drop()
    }

    @Test("body: batch sends JSON arrays of up to batch_size events, webhook-id = first id + count, signed")
    func batchBody() async throws {
        let db = try await TestDatabase.create()
        let app = try await db.connect()
        try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
        let receiver = try await WebhookReceiver()
        let config = try SpillwayConfig.parse(yaml: Self.yaml(db, receiver, path: "/hooks/{table}", extraSink: "body: batch\nbatch_size: 3"))
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
            #expect(request.headers["webhook-id"] == "\(events[0].id)+\(events.count)")
            ids += events.compactMap { $0.key?["id"]?.plainText }
        }
        #expect(requests.count == 3)
        #expect(ids == (1...7).map(String.init))
        #expect(requests.allSatisfy { $0.isVerified && $0.path == "/hooks/products" })
        receiver.stop()
        await app.close()
        await db.drop()
    }

    @Test("on_failure: block: a 400 holds the stream (no dead letter, status shows it) until the endpoint accepts")
    func blockOnFailure() async throws {
        let db = try await TestDatabase.create()
        let app = try await db.connect()
        try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
        let receiver = try await WebhookReceiver()
        try receiver.control(#"{"reject_if_contains": "\"name\":\"bad\""}"#)
        let configPath = try Self.writeConfig(Self.yaml(db, receiver, extraSink: "on_failure: block"))
        #expect(try await SpillwayProcess.run(["install", "--config", configPath]).code == 0)
        try await app.execute("INSERT INTO products VALUES (1, 'bad'), (2, 'good')")
        let runner = try SpillwayProcess(["run", "--config", configPath])
        let clock = ContinuousClock()
        var deadline = clock.now + .seconds(20)
        while receiver.requests.filter({ $0.status == 400 }).count < 2, clock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        let status = try await SpillwayProcess.run(["status", "--json", "--config", configPath])
        #expect(status.stdout.contains("answered 400"), "\(status.stdout)")
        #expect(try await app.query("SELECT count(*) FROM spillway.dead_letters").first == ["0"])
        #expect(!receiver.acceptedEvents.contains { $0.key?["id"]?.plainText == "2" }, "event 2 waits behind event 1")

        try receiver.control("{}")
        deadline = clock.now + .seconds(20)
        while receiver.acceptedEvents.count < 2, clock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        runner.signal(SIGTERM)
        #expect(try await runner.wait() == 0)
        #expect(receiver.acceptedEvents.compactMap { $0.key?["id"]?.plainText } == ["1", "2"])
        receiver.stop()
        await app.close()
        await db.drop()
    }

    @Test("revalidation template: exactly the rendered body and the Authorization header from the environment")
    func revalidationTemplate() async throws {
        let db = try await TestDatabase.create()
        let app = try await db.connect()
        try await app.execute("CREATE TABLE products (id int PRIMARY KEY, slug text)")
        let receiver = try await WebhookReceiver()
        let yaml = Self.yaml(db, receiver, extraSink: #"""
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
        receiver.stop()
        await app.close()
        await db.drop()
    }
}
