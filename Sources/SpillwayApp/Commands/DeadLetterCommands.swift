import Logging
import SpillwayCore
import SpillwayPostgres
import SpillwayWebhook

/// `spillway dead-letters list|retry|drop`: what the webhook sinks gave up on.
public enum DeadLetterCommands {
    public static func list(_ config: SpillwayConfig, sink: String?, id: Int64?) async throws -> [DeadLetter] {
        try await withStore(config) { store, connection in try await store.list(sink: sink, id: id, on: connection) }
    }

    /// One line per dead letter: id, sink, event id, status, attempts, last attempt, response excerpt.
    public static func text(_ letters: [DeadLetter]) -> String {
        guard !letters.isEmpty else { return "no dead letters" }
        return letters.map { letter in
            let excerpt = letter.responseExcerpt.replacingOccurrences(of: "\n", with: " ").prefix(80)
            return "\(letter.id)\t\(letter.sink)\t\(letter.eventID)\tstatus \(letter.status.map(String.init) ?? "-")"
                + "\t\(letter.attempts) attempts\t\(letter.lastAttemptAt)\t\(excerpt)"
        }.joined(separator: "\n")
    }

    /// Sends each selected dead letter once more through its sink (as configured now); deletes the rows
    /// that are acknowledged, and records the new answer on the others.
    public static func retry(_ config: SpillwayConfig, sink: String?, id: Int64?, logger: Logger) async throws -> (delivered: Int, failed: [String]) {
        try await withStore(config) { store, connection in
            var sinks: [String: (WebhookSink, WebhookSinkSettings)] = [:]
            var delivered = 0
            var failed: [String] = []
            func closeSinks() async { for (sink, _) in sinks.values { try? await sink.close() } }
            do {
            for letter in try await store.list(sink: sink, id: id, on: connection) {
                guard let sinkConfig = config.sinks.first(where: { $0.name == letter.sink }),
                      let settings = sinkConfig.settings as? WebhookSinkSettings else {
                    failed.append("\(letter.id): sink '\(letter.sink)' is not a webhook sink of this config")
                    continue
                }
                let webhook: WebhookSink
                if let existing = sinks[letter.sink] {
                    webhook = existing.0
                } else {
                    webhook = WebhookSink(name: letter.sink, settings: settings, databaseURL: config.database.url,
                                          schema: config.schema, encoder: EventEncoding.encoder(for: sinkConfig, config: config),
                                          logger: logger)
                    sinks[letter.sink] = (webhook, settings)
                }
                let event = try ChangeEvent(json: JSONParser.parse(letter.event))
                switch await webhook.attempt(WebhookPlan.request(for: event, settings: settings, encoder: webhook.encoder)) {
                case .delivered:
                    try await store.delete(id: letter.id, on: connection)
                    delivered += 1
                case .rejected(let status, let response):
                    try await store.recordAttempt(id: letter.id, status: status, response: response, on: connection)
                    failed.append("\(letter.id): HTTP \(status)")
                case .retry(let status, let message, _):
                    try await store.recordAttempt(id: letter.id, status: status, response: message, on: connection)
                    failed.append("\(letter.id): \(message.prefix(200))")
                }
            }
            } catch {
                await closeSinks()
                throw error
            }
            await closeSinks()
            return (delivered, failed)
        }
    }

    public static func drop(_ config: SpillwayConfig, sink: String?, id: Int64?) async throws -> Int {
        try await withStore(config) { store, connection in try await store.delete(sink: sink, id: id, on: connection) }
    }

    private static func withStore<T>(_ config: SpillwayConfig,
                                     _ body: (DeadLetterStore, PostgresConnection) async throws -> T) async throws -> T {
        let store = DeadLetterStore(schema: config.schema)
        return try await PostgresConnection.withConnection(url: config.database.url, applicationName: "spillway-dead-letters") {
            connection in
            try await store.createTable(on: connection)
            return try await body(store, connection)
        }
    }
}
