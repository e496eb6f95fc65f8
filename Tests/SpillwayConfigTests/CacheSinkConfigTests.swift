import Testing
import SpillwayApp
@testable import SpillwayCore
import SpillwayKafka
import SpillwayRedis
import SpillwaySinks
import SpillwayWebhook

/// A config with the given sinks, capturing public.products and public.events.
private func yaml(sinks: String) -> String {
    """
    database:
      url: postgres://localhost/shop
    source:
      tables: [public.products, public.events]
    sinks:
    \(sinks)
    """
}

private func parse(_ sinks: String, environment: [String: String] = [:]) throws -> SinkConfig {
    try #require(try SpillwayConfig.parse(yaml: yaml(sinks: sinks), environment: environment).sinks.first)
}

private func configError(_ sinks: String, environment: [String: String] = [:]) -> ConfigError? {
    do {
        _ = try SpillwayConfig.parse(yaml: yaml(sinks: sinks), environment: environment)
        return nil
    } catch {
        return error
    }
}

@Suite("Cache sink configuration")
struct CacheSinkConfigTests {
    @Test func redisDelWithDefaults() throws {
        let sink = try parse("""
              - name: cache
                kind: redis
                url: redis://cache.internal
                keys:
                  public.products: ["product:{key.id}:v1", "products:{after.category_id}:*"]
                  events: "event:{key.id}"
            """)
        #expect(sink.kind == "redis")
        guard let redis = sink.settings as? RedisSinkSettings else { Issue.record("expected redis"); return }
        #expect(redis.url == RedisURL(host: "cache.internal", port: 6379, database: 0))
        #expect(redis.action == .del)
        #expect(redis.timeout == .seconds(5))
        #expect(redis.scanCount == 1000)
        #expect(redis.keys.map(\.table.description) == ["public.products", "public.events"])
        #expect(redis.keys[0].configKey == "sinks[0].keys.public.products")
        #expect(redis.templates(schema: "public", table: "products").map(\.text) == ["product:{key.id}:v1", "products:{after.category_id}:*"])
        #expect(redis.templates(schema: "public", table: "products").map(\.isPattern) == [false, true])
        #expect(redis.templates(schema: "public", table: "other").isEmpty)
    }

    @Test func redisPublish() throws {
        let sink = try parse("""
              - {name: bus, kind: redis, url: "redis://h:7000/2", action: publish, channel: "inv:{table}", payload: key, timeout: 250ms}
            """)
        guard let redis = sink.settings as? RedisSinkSettings else { Issue.record("expected redis"); return }
        #expect(redis.action == .publish)
        #expect(redis.channel.text == "inv:{table}")
        #expect(redis.payload == .key)
        #expect(redis.timeout == .milliseconds(250))
        #expect(redis.url.port == 7000 && redis.url.database == 2)
        let defaults = try parse("  - {name: bus, kind: redis, url: \"redis://h\", action: publish}")
        guard let plain = defaults.settings as? RedisSinkSettings else { Issue.record("expected redis"); return }
        #expect(plain.channel.text == "spillway:{schema}.{table}")
        #expect(plain.payload == .event)
    }

    @Test func redisURLs() throws {
        let url = try RedisURL(parsing: "redis://:s%40cret@10.0.0.1:6380/3", key: "k")
        #expect(url == RedisURL(host: "10.0.0.1", port: 6380, database: 3, password: "s@cret"))
        #expect(url.description == "redis://:***@10.0.0.1:6380/3")
        let acl = try RedisURL(parsing: "redis://app:pw@[::1]:7000", key: "k")
        #expect(acl == RedisURL(host: "::1", port: 7000, username: "app", password: "pw"))
        #expect(acl.description == "redis://app:***@[::1]:7000/0")
        #expect(try RedisURL(parsing: "redis://pw@h", key: "k").password == "pw")
        for bad in ["rediss://h", "http://h", "h:6379", "redis://h:0", "redis://h/x", "redis://h?db=1", "redis://:pw@"] {
            #expect(throws: ConfigError.self, "\(bad)") { try RedisURL(parsing: bad, key: "k") }
        }
    }

    @Test func thePasswordMayComeFromTheEnvironmentAndIsNeverShown() throws {
        let sink = try parse("""
              - {name: cache, kind: redis, url: "redis://:${REDIS_PASSWORD}@h:6379/0", keys: {public.products: "p:{key.id}"}}
            """, environment: ["REDIS_PASSWORD": "p@ss/w:rd"])
        guard let redis = sink.settings as? RedisSinkSettings else { Issue.record("expected redis"); return }
        #expect(redis.url.password == "p@ss/w:rd")
        #expect(redis.url.host == "h")
        #expect(!redis.url.description.contains("p@ss"))

        let missing = try #require(configError("""
              - {name: cache, kind: redis, url: "redis://:${REDIS_PASSWORD}@h", keys: {public.products: "p:{key.id}"}}
            """))
        #expect(missing.key == "sinks[0].url")
        #expect(missing.problem == "reads ${REDIS_PASSWORD}, which is not set in the environment")
        #expect(missing.fix == "export REDIS_PASSWORD before starting Spillway")
        let wrongPassword = try #require(configError("""
              - {name: cache, kind: redis, url: "rediss://:hunter2@h", keys: {public.products: "p:{key.id}"}}
            """))
        #expect(!wrongPassword.description.contains("hunter2"))
    }

    @Test func redisConfigErrors() throws {
        let cases: [(sinks: String, key: String, problem: String)] = [
            ("  - {name: c, kind: redis, keys: {public.products: \"p:{key.id}\"}}", "sinks[0].url", "is required"),
            ("  - {name: c, kind: redis, url: \"redis://h\", action: drop, keys: {public.products: \"p\"}}", "sinks[0].action",
             "'drop' is not one of del, publish"),
            ("  - {name: c, kind: redis, url: \"redis://h\"}", "sinks[0].keys", "is required with action: del"),
            ("  - {name: c, kind: redis, url: \"redis://h\", keys: {public.products: \"p:{id}\"}}", "sinks[0].keys.public.products[0]",
             "'p:{id}' uses {id}, the change event's id, which never names a cached row"),
            ("  - {name: c, kind: redis, url: \"redis://h\", keys: {public.products: [\"a\", \"p:{new.id}\"]}}", "sinks[0].keys.public.products[1]",
             "'p:{new.id}' uses an unknown placeholder '{new.id}' (column 3)"),
            ("  - {name: c, kind: redis, url: \"redis://h\", keys: {public.nope: \"p:{key.id}\"}}", "sinks[0].keys.public.nope",
             "table public.nope is not captured (not in source.tables)"),
            ("  - {name: c, kind: redis, url: \"redis://h\", tables: [public.events], keys: {public.products: \"p\"}}", "sinks[0].keys.public.products",
             "table public.products is not in sinks[0].tables, so this sink never sees it"),
            ("  - {name: c, kind: redis, url: \"redis://h\", action: publish, keys: {public.products: \"p\"}}", "sinks[0].keys",
             "is only used with action: del"),
            ("  - {name: c, kind: redis, url: \"redis://h\", channel: x, keys: {public.products: \"p\"}}", "sinks[0].channel",
             "is only used with action: publish"),
            ("  - {name: c, kind: redis, url: \"redis://h\", keys: {public.products: \"p\"}, chanel: x}", "sinks[0].chanel", "unknown key"),
            ("  - {name: c, kind: redis, url: \"redis://h\", keys: {public.products: []}}", "sinks[0].keys.public.products",
             "lists no key template"),
        ]
        for c in cases {
            let error = try #require(configError(c.sinks), "\(c.sinks)")
            #expect(error.key == c.key, "\(c.sinks)")
            #expect(error.problem == c.problem, "\(c.sinks)")
        }
    }

    @Test func notifyDefaultsAndErrors() throws {
        let sink = try parse("  - {name: n, kind: notify}")
        guard let notify = sink.settings as? NotifySinkSettings else { Issue.record("expected notify"); return }
        #expect(notify.url == nil)
        #expect(notify.channel.text == "spillway_{table}")
        let custom = try parse("  - {name: n, kind: notify, url: \"postgres://other/db\", channel: \"changes_{schema}\"}")
        guard let other = custom.settings as? NotifySinkSettings else { Issue.record("expected notify"); return }
        #expect(other.url == "postgres://other/db")
        #expect(other.channel.text == "changes_{schema}")
        #expect(configError("  - {name: n, kind: notify, channel: \"c_{row}\"}")?.key == "sinks[0].channel")
        #expect(configError("  - {name: n, kind: notify, channel: \(String(repeating: "c", count: 64))}")?.problem
            == "is longer than 63 bytes, PostgreSQL's limit for a channel")
    }

    @Test func refreshDefaultsAndErrors() throws {
        let sink = try parse("""
              - name: views
                kind: refresh
                views:
                  public.events: [public.event_counts, public.event_totals]
                  public.products: [public.event_counts]
            """)
        guard let refresh = sink.settings as? RefreshSinkSettings else { Issue.record("expected refresh"); return }
        #expect(refresh.minInterval == .seconds(1))
        #expect(refresh.url == nil)
        #expect(refresh.allViews.map(\.description) == ["public.event_counts", "public.event_totals"])
        let change = ChangeEvent(id: "1", op: .insert, schema: "public", table: "products", position: "1")
        #expect(refresh.views(affectedBy: [change, change]).map(\.description) == ["public.event_counts"])
        let other = ChangeEvent(id: "1", op: .insert, schema: "public", table: "other", position: "1")
        #expect(refresh.views(affectedBy: [other]).isEmpty)

        let fast = try parse("  - {name: v, kind: refresh, min_interval: 250ms, views: {public.events: public.mv}}")
        guard let quick = fast.settings as? RefreshSinkSettings else { Issue.record("expected refresh"); return }
        #expect(quick.minInterval == .milliseconds(250))
        #expect(!quick.views[0].discoversViews)
        let auto = try parse("  - {name: v, kind: refresh, views: {public.events: [auto, public.extra]}}")
        guard let discovering = auto.settings as? RefreshSinkSettings else { Issue.record("expected refresh"); return }
        #expect(discovering.views[0].discoversViews)
        #expect(discovering.views[0].views.map(\.description) == ["public.extra"])

        #expect(configError("  - {name: v, kind: refresh}")?.key == "sinks[0].views")
        #expect(configError("  - {name: v, kind: refresh, views: {public.nope: [public.mv]}}")?.problem
            == "table public.nope is not captured (not in source.tables)")
        #expect(configError("  - {name: v, kind: refresh, views: {public.events: [\"a.b.c\"]}}")?.key == "sinks[0].views.public.events[0]")
        #expect(configError("  - {name: v, kind: refresh, min_interval: soon, views: {public.events: [public.mv]}}")?.key
            == "sinks[0].min_interval")
    }
}
