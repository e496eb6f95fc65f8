import Foundation
import SpillwayApp
import SpillwayCore
import SpillwayPostgres
import SpillwayRedis
import Testing

/// products(id, category_id, name): rows 1...6 in categories 1, 1, 2, 3, 5, 6.
private func makeProducts(_ app: PostgresConnection) async throws {
    try await app.execute("""
        CREATE TABLE products (id int PRIMARY KEY, category_id int, name text);
        INSERT INTO products VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 2, 'c'), (4, 3, 'd'), (5, 5, 'e'), (6, 6, 'f');
        """)
}

@Suite("redis sink against a real Redis and PostgreSQL", .enabled(if: TestEnvironment.canRunRedis))
struct RedisSinkTests {
    @Test("changed rows' keys and both categories of a moved row are invalidated; untouched keys stay; patterns via SCAN")
    func invalidatesChangedRows() async throws {
        let redisURL = try TestEnvironment.redis()
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await makeProducts(app)
            let p = redisPrefix()
            // scan_count 50 against 1500 filler keys: every pattern takes several SCAN rounds.
            let config = try db.cacheConfig(tables: ["public.products"], sinks: """
                  - name: cache
                    kind: redis
                    url: \(redisURL)
                    scan_count: 50
                    keys:
                      public.products: ["\(p)product:{key.id}:v1", "\(p)products:{after.category_id}:*"]
                """)
            _ = try await install(config, on: db)

            let redis = RedisConnection(url: redisURL)
            let products = (1...6).map { "\(p)product:\($0):v1" }
            let lists = (1...6).flatMap { c in ["\(p)products:\(c):page1", "\(p)products:\(c):page2"] }
            let fillers = (1...1500).map { "\(p)other:\($0)" }
            try await redis.seed(products + lists + fillers)

            try await app.execute("UPDATE products SET name = 'renamed' WHERE id = 1")        // category 1
            try await app.execute("UPDATE products SET category_id = 4 WHERE id = 4")        // moves 3 → 4
            try await app.execute("DELETE FROM products WHERE id = 6")                       // category 6
            try await drainOnce(config)

            let left = try await redis.keys("\(p)*")
            for id in [1, 4, 6] { #expect(!left.contains("\(p)product:\(id):v1"), "product \(id) was changed") }
            for id in [2, 3, 5] { #expect(left.contains("\(p)product:\(id):v1"), "product \(id) was not changed") }
            for c in [1, 3, 4, 6] {
                #expect(!left.contains("\(p)products:\(c):page1") && !left.contains("\(p)products:\(c):page2"), "category \(c)")
            }
            for c in [2, 5] {
                #expect(left.contains("\(p)products:\(c):page1") && left.contains("\(p)products:\(c):page2"), "category \(c)")
            }
            #expect(left.filter { $0.hasPrefix("\(p)other:") }.count == 1500)
            await redis.close()
        }
    }

    @Test("replication source: with REPLICA IDENTITY FULL a moved row invalidates both categories; validation runs too")
    func replicationSource() async throws {
        let redisURL = try TestEnvironment.redis()
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await makeProducts(app)
            try await app.execute("ALTER TABLE products REPLICA IDENTITY FULL")
            let p = redisPrefix()
            let sinks = """
                  - name: cache
                    kind: redis
                    url: \(redisURL)
                    keys:
                      public.products: ["\(p)product:{key.id}", "\(p)products:{after.category_id}:*"]
                """
            let config = try db.cacheConfig(kind: "replication", tables: ["public.products"], sinks: sinks)
            _ = try await install(config, on: db)
            let redis = RedisConnection(url: redisURL)
            try await redis.seed((1...6).map { "\(p)product:\($0)" } + (1...6).map { "\(p)products:\($0):page1" })

            try await app.execute("UPDATE products SET category_id = 4 WHERE id = 4")  // moves 3 → 4
            try await app.execute("DELETE FROM products WHERE id = 6")
            try await drainOnce(config)
            let left = try await redis.keys("\(p)*")
            #expect(left == Set([1, 2, 3, 5].map { "\(p)product:\($0)" } + [1, 2, 5].map { "\(p)products:\($0):page1" }))

            let broken = try db.cacheConfig(kind: "replication", tables: ["public.products"],
                                            sinks: sinks.replacingOccurrences(of: "{after.category_id}", with: "{after.nope}"))
            await #expect(throws: ConfigError.self) { try await drainOnce(broken) }
            await redis.close()
        }
    }

    @Test("publish: a subscriber receives every event, as event JSON or as key JSON", arguments: SourceKind.allCases)
    func publishReachesASubscriber(kind: SourceKind) async throws {
        let redisURL = try TestEnvironment.redis()
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await makeProducts(app)
            let p = redisPrefix()
            let config = try db.cacheConfig(kind: kind.rawValue, tables: ["public.products"], sinks: """
                  - {name: events, kind: redis, url: "\(redisURL)", action: publish, channel: "\(p)events:{table}"}
                  - {name: keys, kind: redis, url: "\(redisURL)", action: publish, channel: "\(p)keys:{table}", payload: key}
                """)
            _ = try await install(config, on: db)

            let subscriber = RedisConnection(url: redisURL, timeout: .seconds(10))
            for channel in ["\(p)events:products", "\(p)keys:products"] {
                let reply = try await subscriber.command("SUBSCRIBE", channel)
                #expect(reply == .array([.bulk(Array("subscribe".utf8)), .bulk(Array(channel.utf8)), .integer(channel.hasSuffix("events:products") ? 1 : 2)]))
            }
            try await app.execute("UPDATE products SET name = 'x' WHERE id IN (1, 2)")
            try await app.execute("DELETE FROM products WHERE id = 3")
            try await drainOnce(config)

            var received: [String: [String]] = [:]
            for _ in 0..<6 {
                guard case .array(let parts) = try await subscriber.receive(), parts.count == 3,
                      parts[0].text == "message", let channel = parts[1].text, let payload = parts[2].text else {
                    Issue.record("expected a pub/sub message")
                    break
                }
                received[channel, default: []].append(payload)
            }
            let events = try (received["\(p)events:products"] ?? []).map { try ChangeEvent(json: JSONParser.parse($0)) }
            #expect(events.map(\.op) == [.update, .update, .delete])
            #expect(events.compactMap { $0.key?["id"]?.plainText } == ["1", "2", "3"])
            #expect(received["\(p)keys:products"] == [#"{"id":1}"#, #"{"id":2}"#, #"{"id":3}"#])
            await subscriber.close()
        }
    }

    @Test("a key template naming a missing column stops `run` at start-up with exit code 2")
    func unknownColumnIsAStartUpError() async throws {
        let redisURL = try TestEnvironment.redis()
        try await withTestDatabase { db in
            let app = try await db.connect()
            try await makeProducts(app)
            let path = try db.writeConfig(consumer: "tests", tables: ["public.products"], sinks: """
                  - name: cache
                    kind: redis
                    url: "redis://:topsecret@\(redisURL.host):\(redisURL.port)/0"
                    keys:
                      public.products: ["product:{key.id}", "products:{after.categry_id}:*"]
                """)
            #expect(try await SpillwayProcess.run(["install", "--config", path]).code == 0)
            let run = try await SpillwayProcess.run(["run", "--once", "--config", path])
            #expect(run.code == 2, "stderr: \(run.stderr)")
            #expect(run.stderr.contains("sinks[0].keys.public.products[1]"))
            #expect(run.stderr.contains("names column 'categry_id', which public.products does not have"))
            #expect(!run.stderr.contains("topsecret"))
        }
    }

    @Test("Redis stopped mid-stream and restarted, runner killed -9 once: afterwards no key of a changed row survives",
          arguments: SourceKind.allCases)
    func redisOutageAndKill(kind: SourceKind) async throws {
        let server = try OwnRedisServer()
        try await server.start()
        try await withTestDatabase { db in
            let app = try await db.connect()
            // 200 products; category = (id - 1) / 20, so rows 1...20 are category 0, ..., 181...200 category 9.
            try await app.execute("""
                CREATE TABLE products (id int PRIMARY KEY, category_id int, name text);
                INSERT INTO products SELECT g, (g - 1) / 20, 'p' || g FROM generate_series(1, 200) g;
                ALTER TABLE products REPLICA IDENTITY FULL;  -- the replication source then sends a moved row's old category
                """)
            let path = try db.writeConfig(consumer: "tests", kind: kind.rawValue, tables: ["public.products"], sinks: """
                  - name: cache
                    kind: redis
                    url: "\(server.url)"
                    timeout: 1s
                    keys:
                      public.products: ["product:{key.id}", "products:{after.category_id}:*"]
                """)
            #expect(try await SpillwayProcess.run(["install", "--config", path]).code == 0)
            let redis = RedisConnection(url: server.url, timeout: .seconds(2))
            try await redis.seed((1...200).map { "product:\($0)" } + (0...9).map { "products:\($0):page1" })

            var runner = try SpillwayProcess(["run", "--config", path])
            // While Redis is up.
            for id in 1...20 { try await app.execute("UPDATE products SET name = 'v2' WHERE id = \(id)") }
            try await waitUntil("the first changes are invalidated") { try await redis.keys("product:*").count == 180 }
            try await waitForStatus(path, "the first 20 changes to be acknowledged") { $0["events_total"]?.plainText == "20" }

            // Redis goes away; changes keep coming; the sink fails and the checkpoint holds.
            try await server.stop()
            for id in 21...40 { try await app.execute("UPDATE products SET name = 'v2' WHERE id = \(id)") }
            try await app.execute("UPDATE products SET category_id = 9 WHERE id BETWEEN 41 AND 45")  // 2 → 9
            try await waitUntil("the sink reports the outage") {
                let error = try await app.query("SELECT coalesce(last_error, '') FROM spillway.checkpoints WHERE consumer = 'tests'")
                return error.first?[0]?.contains("Redis") == true
            }
            runner.signal(SIGKILL)
            _ = try await runner.wait()
            let held = try await CheckpointRow.read(consumer: "tests", on: app)
            #expect(held.eventsTotal == 20, "nothing was acknowledged while Redis was down: \(held)")
            runner = try SpillwayProcess(["run", "--config", path])
            for id in 46...60 { try await app.execute("UPDATE products SET name = 'v2' WHERE id = \(id)") }
            let restarted = runner
            try await waitUntil("the new runner meets the outage too") { restarted.stderr.contains("delivery failed") }

            // Redis comes back with every key it had, including those of rows changed while it was down.
            // (Rows 61...200 keep their keys across the restart below, which shows the keys of 21...60 came back too.)
            try await server.start()
            // Delivered means checkpointed: a batch is acknowledged only after its exact keys and its patterns are
            // gone (the key count alone drops before the batch's pattern SCANs finish).
            _ = try await waitForStatus(path, timeout: .seconds(40), "the held batches are delivered") {
                $0.lagRows == 0 && $0["events_total"]?.plainText == "60"
            }
            _ = try? await redis.keys("*")  // the first call after Redis restarted fails (the old connection is gone); the next reconnects
            let left = try await redis.keys("*")
            for id in 1...60 { #expect(!left.contains("product:\(id)"), "product \(id) changed") }
            for id in 61...200 { #expect(left.contains("product:\(id)"), "product \(id) did not change") }
            for c in [0, 1, 2, 9] { #expect(!left.contains("products:\(c):page1"), "category \(c) changed") }
            for c in 3...8 { #expect(left.contains("products:\(c):page1"), "category \(c) did not change") }

            runner.signal(SIGTERM)
            #expect(try await runner.wait() == 0, "stderr: \(runner.stderr)")
            #expect(runner.stderr.contains("sink recovered"))
            await redis.close()
            try await server.stop()
        }
    }
}

@Suite("the hiredis wrapper against a real Redis", .enabled(if: TestEnvironment.canRunRedis))
struct RedisConnectionTests {
    @Test("pipelined replies of every type, binary-safe arguments, error replies returned in place")
    func repliesAndArguments() async throws {
        let redis = RedisConnection(url: try TestEnvironment.redis())
        let p = redisPrefix()
        let odd = "\(p)key with spaces\r\n{and} ключ"
        let replies = try await redis.pipeline([
            ["SET", "\(p)empty", ""], ["GET", "\(p)empty"], ["GET", "\(p)missing"], ["SET", odd, "v\u{0}1"], ["GET", odd],
            ["INCR", "\(p)n"], ["RPUSH", "\(p)list", "a", "b"], ["LRANGE", "\(p)list", "0", "-1"], ["GET", "\(p)list"],
            ["UNLINK", odd, "\(p)empty", "\(p)missing"],
        ])
        #expect(replies[0] == .status("OK"))
        #expect(replies[1] == .bulk([]))
        #expect(replies[2] == .null)
        #expect(replies[4] == .bulk(Array("v\u{0}1".utf8)))
        #expect(replies[5] == .integer(1))
        #expect(replies[7] == .array([.bulk([97]), .bulk([98])]))
        guard case .error(let message) = replies[8] else { Issue.record("expected WRONGTYPE, got \(replies[8])"); return }
        #expect(message.hasPrefix("WRONGTYPE"))
        #expect(replies[9] == .integer(2))
        await #expect(throws: RedisError.self) { try await redis.command("NOSUCHCOMMAND") }
        #expect(try await redis.command("PING") == .status("PONG"), "an error reply leaves the connection usable")
        await redis.close()
    }

    @Test("after the server drops the connection, one call fails and the next reconnects")
    func reconnects() async throws {
        let url = try TestEnvironment.redis()
        let redis = RedisConnection(url: url)
        let admin = RedisConnection(url: url)
        guard case .integer(let id) = try await redis.command("CLIENT", "ID") else { Issue.record("CLIENT ID"); return }
        #expect(try await admin.command("CLIENT", "KILL", "ID", "\(id)") == .integer(1))
        await #expect(throws: RedisError.self) { try await redis.command("PING") }
        #expect(try await redis.command("PING") == .status("PONG"))
        await redis.close()
        await admin.close()
    }

    @Test("an unreachable server is a connection failure naming host and port, never the password")
    func unreachable() async throws {
        let port = try freeTCPPort()
        let redis = RedisConnection(url: RedisURL(host: "127.0.0.1", port: port, password: "hunter2"), timeout: .seconds(1))
        do {
            try await redis.command("PING")
            Issue.record("PING to a closed port succeeded")
        } catch let error as RedisError {
            #expect(error.isConnectionFailure)
            #expect(error.description.contains("127.0.0.1:\(port)"))
            #expect(!error.description.contains("hunter2"))
        }
        await redis.close()
    }
}

/// Polls `condition` every 100ms until it holds; records a failure after `timeout`.
func waitUntil(_ what: String, timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    Issue.record("timed out after \(timeout) waiting until \(what)")
}
