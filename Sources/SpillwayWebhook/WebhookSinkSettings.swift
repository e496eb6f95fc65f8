import Foundation
import Logging
import SpillwayCore

/// `sinks[]` keys of `kind: webhook`.
public struct WebhookSinkSettings: Sendable {
    public enum Body: Sendable {
        /// One request per event; the body is the event JSON. The default.
        case event
        /// One request per up to `batchSize` events; the body is a JSON array of events.
        case batch
        /// One request per event; the body is the template rendered over the event.
        case template(EventTemplate)
    }

    public enum OnFailure: String, Sendable, CaseIterable {
        /// A rejected event (a 4xx other than 408 and 429) goes to `<schema>.dead_letters`; the stream moves on.
        case deadLetter = "dead_letter"
        /// A rejected event stops the sink: the pipeline retries it forever and the checkpoint holds.
        case block
    }

    public struct Header: Sendable, Hashable {
        public var name: String
        /// With `${VAR}` already expanded. Never logged.
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The endpoint; may hold placeholders (`https://api.example.com/hooks/{table}`), percent-encoded.
    public var url: EventTemplate
    /// Extra request headers, `${VAR}` expanded from the environment at start-up.
    public var headers: [Header]
    /// Default: `event`.
    public var body: Body
    /// Events per request for `body: batch`. Default: 100.
    public var batchSize: Int
    /// One attempt's limit, connecting included. Default: 10s.
    public var timeout: Duration
    /// Requests in flight at once; events of one key still go one after another. Default: 1.
    public var concurrency: Int
    /// Standard Webhooks signing keys, `whsec_<base64>`: one, or two while rotating. Default: none (unsigned).
    public var secrets: [String]
    /// Default: `dead_letter`.
    public var onFailure: OnFailure

    public init(url: EventTemplate, headers: [Header] = [], body: Body = .event, batchSize: Int = 100,
                timeout: Duration = .seconds(10), concurrency: Int = 1, secrets: [String] = [],
                onFailure: OnFailure = .deadLetter) {
        self.url = url
        self.headers = headers
        self.body = body
        self.batchSize = batchSize
        self.timeout = timeout
        self.concurrency = concurrency
        self.secrets = secrets
        self.onFailure = onFailure
    }

    /// The secrets' keys: the base64 part after `whsec_`, decoded.
    public var secretKeys: [[UInt8]] { secrets.compactMap(Self.decodeSecret) }


    public static func decodeSecret(_ secret: String) -> [UInt8]? {
        guard secret.hasPrefix("whsec_") else { return nil }
        var encoded = String(secret.dropFirst("whsec_".count))
        if encoded.count % 4 != 0 { encoded += String(repeating: "=", count: 4 - encoded.count % 4) }  // padding is optional
        return Data(base64Encoded: encoded).map(Array.init)
    }

    public static func parse(_ r: inout ConfigReader, context: SinkParseContext) throws(ConfigError) -> WebhookSinkSettings {
        let environment = context.environment
        let urlText = try r.string("url", fix: "set url to the endpoint, e.g. https://api.example.com/hooks/{table}")
        guard urlText.hasPrefix("http://") || urlText.hasPrefix("https://") else {
            throw ConfigError(key: r.keyPath("url"), problem: "'\(urlText)' is not an http:// or https:// URL",
                              fix: "write the full URL, e.g. https://api.example.com/hooks/{table}")
        }
        var settings = WebhookSinkSettings(url: try EventTemplate(parsing: urlText, key: r.keyPath("url"), use: .webhookURL))
        for (name, value) in try r.stringMap("headers") ?? [] {
            let key = r.keyPath("headers.\(name)")
            guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }) else {
                throw ConfigError(key: key, problem: "'\(name)' is not a header name", fix: "use a name like Authorization")
            }
            let expanded = try EnvironmentSubstitution.substitute(value, environment: environment, key: key)
            guard !expanded.contains("\r"), !expanded.contains("\n") else {
                throw ConfigError(key: key, problem: "the value contains a line break", fix: "remove the line break")
            }
            settings.headers.append(Header(name: name, value: expanded))
        }
        let bodyKind = try r.optionalString("body") ?? "event"
        let template = try r.optionalString("template")
        switch bodyKind {
        case "event": settings.body = .event
        case "batch": settings.body = .batch
        case "template":
            guard let template, !template.isEmpty else {
                throw ConfigError(key: r.keyPath("template"), problem: "is required with body: template",
                                  fix: #"set template, e.g. template: '{"slug": "{after.slug}"}'"#)
            }
            let parsed = try EventTemplate(parsing: template, key: r.keyPath("template"), use: .webhookBody)
            try validateJSON(parsed, key: r.keyPath("template"))
            settings.body = .template(parsed)
        default:
            throw ConfigError(key: r.keyPath("body"), problem: "'\(bodyKind)' is not one of event, batch, template",
                              fix: "use event, batch or template")
        }
        if template != nil, bodyKind != "template" {
            throw ConfigError(key: r.keyPath("template"), problem: "is only used with body: template",
                              fix: "add body: template, or remove template")
        }
        settings.batchSize = try r.int("batch_size", default: settings.batchSize, range: 1...10_000)
        settings.timeout = try r.duration("timeout", default: settings.timeout)
        guard settings.timeout >= .milliseconds(10) else {
            throw ConfigError(key: r.keyPath("timeout"), problem: "is below 10ms", fix: "use 10ms or more, e.g. 10s")
        }
        settings.concurrency = try r.int("concurrency", default: settings.concurrency, range: 1...256)
        if r.has("secret"), r.has("secrets") {
            throw ConfigError(key: r.keyPath("secrets"), problem: "secret and secrets are both set", fix: "use one of them")
        }
        let secretsKey = r.has("secrets") ? "secrets" : "secret"
        let secrets = try r.stringList(secretsKey) ?? []
        guard secrets.count <= 2 else {
            throw ConfigError(key: r.keyPath(secretsKey), problem: "more than two secrets",
                              fix: "list the new and the old secret while rotating, one otherwise")
        }
        for (index, secret) in secrets.enumerated() {
            // Never put the secret itself in the message.
            let expanded = try EnvironmentSubstitution.substitute(secret, environment: environment, key: r.keyPath(secretsKey))
            guard let key = decodeSecret(expanded), !key.isEmpty else {
                throw ConfigError(key: "\(r.keyPath(secretsKey))[\(index)]", problem: "is not a Standard Webhooks secret",
                                  fix: "write whsec_ followed by base64 (e.g. whsec_$(head -c 32 /dev/urandom | base64)), or ${VARIABLE}")
            }
            settings.secrets.append(expanded)
        }
        settings.onFailure = try r.choice("on_failure", default: settings.onFailure)
        return settings
    }

    /// Renders the template over a sample event whose every value is a string and checks the result parses.
    static func validateJSON(_ template: EventTemplate, key: String) throws(ConfigError) {
        var row = JSONObject()
        for case let column? in template.fields.map(\.column) {
            row[column] = .string("x\"\\y")
        }
        let sample = ChangeEvent(id: "1-1", op: .update, schema: "public", table: "t", key: row, before: row, after: row,
                                 position: "1/1", tenant: "x")
        let rendered = template.rendered(sample, as: .json)
        do {
            _ = try JSONParser.parse(rendered)
        } catch {
            throw ConfigError(key: key, problem: "does not render valid JSON (\(error.problem))",
                              fix: "write a JSON document; put placeholders inside quotes for strings")
        }
    }
}

extension WebhookSinkSettings: SinkSettings {

    /// `tenant_fallback: {default: VALUE}`: the URL and a body template write VALUE for a missing tenant.
    public func fillingMissingTenant(with value: String) -> WebhookSinkSettings {
        var settings = self
        settings.url = url.fillingMissingTenant(with: value)
        if case .template(let template) = body { settings.body = .template(template.fillingMissingTenant(with: value)) }
        return settings
    }

    public static let kind = "webhook"

    public func makeSink(_ context: SinkContext) async throws -> any ChangeSink {
        let webhook = WebhookSink(name: context.name, settings: self, databaseURL: context.databaseURL,
                                  schema: context.schema, encoder: context.encoder, logger: Logger(label: "spillway.webhook"))
        await webhook.start()
        return webhook
    }

    public func refusal(of format: EventFormat) -> (problem: String, fix: String)? {
        guard case .template = body else { return nil }
        return ("format: \(format.rawValue) does not go with a body template, which writes its own body",
                "use `body: event` (or batch) with format, or drop format")
    }
}
