import Foundation
import SpillwayCore
import SpillwayWebhook
import Testing

@Suite("webhook signing, templates, Retry-After, planning and config (no server)")
struct WebhookUnitTests {
    // Computed independently with Python: base64(hmac.new(b64decode(key), b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{\"test\": 2432232314}", sha256)).
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    @Test("Standard Webhooks test vector; two secrets give two space-separated signatures")
    func signature() throws {
        let key = try #require(WebhookSinkSettings.decodeSecret(Self.secret))
        let body = Array(#"{"test": 2432232314}"#.utf8)
        let signature = WebhookSignature.sign(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: body, keys: [key])
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        let other = try #require(WebhookSinkSettings.decodeSecret("whsec_c2Vjb25kLXNlY3JldA=="))
        #expect(other == Array("second-secret".utf8))
        let both = WebhookSignature.sign(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: body, keys: [key, other])
        #expect(both.hasPrefix("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,"))
        #expect(both.split(separator: " ").count == 2)
    }

    static let event: ChangeEvent = {
        let row: JSONObject = ["id": .number("7"), "slug": .string("tea \"pot\"\\\n"), "price": .number("39.90"),
                               "tags": .array([.string("a")]), "gone": .null]
        return ChangeEvent(id: "727-4", op: .update, schema: "public", table: "products", key: ["id": .number("7")],
                           before: nil, after: row, txid: 727, position: "727/4")
    }()

    @Test("template: JSON-escaped inside quotes, JSON values outside, missing → empty string / null")
    func templateRendering() throws {
        let template = try EventTemplate(parsing: #"{"slug": "{after.slug}", "type": "product", "id": {key.id}, "price": {after.price}, "tags": {after.tags}, "q": "{after.missing}", "n": {after.missing}, "g": "{after.gone}", "t": "{schema}.{table}/{op}/{id}"}"#, key: "t", use: .webhookBody)
        let rendered = template.rendered(Self.event, as: .json)
        #expect(rendered == #"{"slug": "tea \"pot\"\\\n", "type": "product", "id": 7, "price": 39.90, "tags": ["a"], "q": "", "n": null, "g": "", "t": "public.products/update/727-4"}"#)
        #expect(try JSONParser.parse(rendered).objectValue?["slug"] == .string("tea \"pot\"\\\n"))
    }

    @Test("URL placeholders are percent-encoded; braces that are not placeholders are text")
    func urlTemplate() throws {
        let template = try EventTemplate(parsing: "https://h/x/{table}/{after.slug}?id={key.id}", key: "url", use: .webhookURL)
        #expect(template.rendered(Self.event, as: .url) == "https://h/x/products/tea%20%22pot%22%5C%0A?id=7")
        let literal = try EventTemplate(parsing: #"{"a": {}, "b": "{ x }"}"#, key: "t", use: .webhookBody)
        #expect(literal.placeholders.isEmpty)
        #expect(throws: ConfigError.self) { try EventTemplate(parsing: "{aftr.slug}", key: "t", use: .webhookBody) }
    }

    @Test("Retry-After: seconds, HTTP date, garbage, cap; status classification")
    func retryAfter() {
        let now = Date(timeIntervalSince1970: 784_111_767) // Sun, 06 Nov 1994 08:49:27 GMT
        #expect(RetryAfter.parse("1", now: now) == .seconds(1))
        #expect(RetryAfter.parse(" 120 ", now: now) == .seconds(120))
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:37 GMT", now: now) == .seconds(10))
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:00 GMT", now: now) == .zero)
        #expect(RetryAfter.parse("99999999", now: now) == RetryAfter.maximum)
        #expect(RetryAfter.parse("soon", now: now) == nil)
        #expect(RetryAfter.parse("-1", now: now) == nil)
        #expect(WebhookOutcome.classify(status: 204, retryAfter: nil) == .delivered)
        #expect(WebhookOutcome.classify(status: 503, retryAfter: "2") == .retry(after: .seconds(2)))
        #expect(WebhookOutcome.classify(status: 429, retryAfter: nil) == .retry(after: nil))
        #expect(WebhookOutcome.classify(status: 408, retryAfter: nil) == .retry(after: nil))
        #expect(WebhookOutcome.classify(status: 400, retryAfter: "1") == .reject)
        #expect(WebhookOutcome.classify(status: 410, retryAfter: nil) == .reject)
        #expect(WebhookOutcome.classify(status: 301, retryAfter: nil) == .reject)
    }

    static func settings(_ extra: String = "", environment: [String: String] = [:]) throws -> WebhookSinkSettings {
        let config = try SpillwayConfig.parse(yaml: """
            database: {url: "postgres://localhost/x"}
            source: {tables: [public.products]}
            sinks:
              - name: hook
                kind: webhook
                url: https://api.example.com/hooks/{table}
            \(extra.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
            """, environment: environment, sinkKinds: [WebhookSinkSettings.self])
        return try #require(config.sinks[0].settings as? WebhookSinkSettings)
    }

    @Test("plan: a key's events stay in one lane in order; batch ids are first id + count")
    func plan() throws {
        var settings = try Self.settings("concurrency: 3")
        let events = (0..<12).map { i in
            ChangeEvent(id: "1-\(i)", op: .update, schema: "public", table: "products", key: ["id": .integer(i % 4)], position: "1/\(i)")
        }
        let lanes = WebhookPlan.lanes(for: events, settings: settings)
        #expect(lanes.count == 3)
        for lane in lanes {
            #expect(lane.map(\.webhookID) == lane.map(\.webhookID).sorted { Int($0.dropFirst(2))! < Int($1.dropFirst(2))! })
        }
        for key in 0..<4 {
            #expect(lanes.filter { $0.contains { $0.events[0].key?["id"] == .integer(key) } }.count == 1)
        }
        settings.body = .batch
        settings.batchSize = 5
        let batches = WebhookPlan.lanes(for: events, settings: settings)
        #expect(batches.count == 1)
        #expect(batches[0].map(\.webhookID) == ["1-0+5", "1-5+5", "1-10+2"])
        #expect(try JSONParser.parse(String(decoding: batches[0][2].body, as: UTF8.self)) == .array(events.suffix(2).map(\.json)))
    }

    @Test("config: defaults, secrets, env expansion, and errors that name the key")
    func config() throws {
        let defaults = try Self.settings()
        #expect(defaults.timeout == .seconds(10) && defaults.concurrency == 1 && defaults.batchSize == 100)
        #expect(defaults.onFailure == .deadLetter && defaults.secrets.isEmpty)
        if case .event = defaults.body {} else { Issue.record("default body is event") }

        let full = try Self.settings("""
            headers: {Authorization: "Bearer ${TOKEN}", X-Static: plain}
            secrets: [\(Self.secret), whsec_c2Vjb25kLXNlY3JldA==]
            on_failure: block
            timeout: 2s
            """, environment: ["TOKEN": "t0k"])
        #expect(full.headers == [.init(name: "Authorization", value: "Bearer t0k"), .init(name: "X-Static", value: "plain")])
        #expect(full.secretKeys.count == 2 && full.onFailure == .block && full.timeout == .seconds(2))

        func error(_ extra: String, environment: [String: String] = [:]) -> ConfigError? {
            do { _ = try Self.settings(extra, environment: environment); return nil } catch { return error as? ConfigError }
        }
        let missing = error("headers: {Authorization: \"Bearer ${REVALIDATE_SECRET}\"}")
        #expect(missing?.key == "sinks[0].headers.Authorization")
        #expect(missing?.problem.contains("REVALIDATE_SECRET") == true)
        #expect(try Self.settings("secret: ${WEBHOOK_SECRET}", environment: ["WEBHOOK_SECRET": Self.secret]).secrets == [Self.secret])
        #expect(error("secret: ${WEBHOOK_SECRET}")?.problem == "reads ${WEBHOOK_SECRET}, which is not set in the environment")
        #expect(error("secret: not-a-secret")?.key == "sinks[0].secret[0]")
        #expect(error("secret: whsec_%%%")?.description.contains("whsec_%%%") == false, "a secret is never echoed")
        #expect(error("body: template")?.key == "sinks[0].template")
        #expect(error("body: template\ntemplate: '{\"a\": {after.x}'")?.key == "sinks[0].template")
        #expect(error("body: template\ntemplate: '{\"a\": \"{aftr.x}\"}'")?.problem.contains("{aftr.x}") == true)
        #expect(error("on_failure: drop")?.key == "sinks[0].on_failure")
        #expect(error("concurrency: 0")?.key == "sinks[0].concurrency")
        #expect(error("path: x")?.key == "sinks[0].path")
        #expect(error("secret: \(Self.secret)\nsecrets: [\(Self.secret)]")?.key == "sinks[0].secrets")
    }
}

@Suite("webhook bodies with format: debezium")
struct WebhookDebeziumBodyTests {
    static let encoder = EventEncoder(format: .debezium, envelope: DebeziumEnvelope(serverName: "shop", database: "db"), now: { 9 })
    static let event = ChangeEvent(id: "1-1", op: .delete, schema: "public", table: "products", key: ["id": .integer(1)],
                                   before: ["id": .integer(1)], position: "1/1")

    @Test func oneEnvelopePerRequestWithTheEventsID() throws {
        let settings = try WebhookUnitTests.settings()
        let request = WebhookPlan.request(for: Self.event, settings: settings, encoder: Self.encoder)
        let body = try #require(try JSONParser.parse(String(decoding: request.body, as: UTF8.self)).objectValue)
        #expect(body["op"] == .string("d"))
        #expect(body["before"] == .object(["id": .integer(1)]))
        #expect(body["ts_ms"] == .number("9"))
        #expect(request.webhookID == "1-1", "webhook-id stays the event id, stable across retries")
    }

    @Test func batchBodyIsAnArrayOfEnvelopes() throws {
        let settings = try WebhookUnitTests.settings("body: batch")
        let lanes = WebhookPlan.lanes(for: [Self.event, Self.event], settings: settings, encoder: Self.encoder)
        let body = try JSONParser.parse(String(decoding: try #require(lanes.first?.first).body, as: UTF8.self))
        guard case .array(let items) = body else { Issue.record("not an array"); return }
        #expect(items.count == 2)
        #expect(items.allSatisfy { $0.objectValue?["source"]?.objectValue?["connector"] == .string("postgresql") })
    }
}
