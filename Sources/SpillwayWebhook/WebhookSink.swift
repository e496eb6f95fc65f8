import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import SpillwayCore
import SpillwayPostgres

/// Delivery was given up because Spillway is stopping; the batch is not checkpointed and replays on start.
public struct WebhookStopping: Error, CustomStringConvertible {
    public let sink: String
    public var description: String { "sink '\(sink)': stopping while a request still failed" }
}

/// The endpoint rejected an event and the sink is configured with `on_failure: block`.
public struct WebhookRejected: Error, CustomStringConvertible {
    public let sink: String
    public let eventID: String
    public let status: Int
    public let response: String
    public var description: String {
        "sink '\(sink)': endpoint answered \(status) for event \(eventID) (on_failure: block, retrying): \(response.prefix(200))"
    }
}

/// POSTs events to an HTTP endpoint, signed with Standard Webhooks headers.
///
/// `deliver` returns once every event was acknowledged (2xx) or dead-lettered. Retryable failures (408,
/// 429, 5xx, timeouts, connection errors) are retried inside the sink per request, with exponential
/// backoff and full jitter or the server's `Retry-After`, forever: an event already acknowledged is not
/// sent again because a later one failed. On graceful shutdown the retry loop throws, so the batch is not
/// checkpointed and is delivered again on the next start.
public final class WebhookSink: ChangeSink, Sendable {
    public let name: String
    let settings: WebhookSinkSettings
    let client: HTTPClient
    let deadLetters: DeadLetterWriter
    let retry: RetryPolicy
    let logger: Logger
    let metrics: WebhookMetrics
    private let keys: [[UInt8]]
    /// Each request's events as Spillway's event or another `format`.
    public let encoder: EventEncoder

    /// `databaseURL`/`schema` locate the dead-letter table.
    public init(name: String, settings: WebhookSinkSettings, databaseURL: String, schema: String,
                encoder: EventEncoder = .spillway, retry: RetryPolicy = RetryPolicy(), logger: Logger) {
        self.name = name
        self.settings = settings
        self.encoder = encoder
        self.retry = retry
        var logger = logger
        logger[metadataKey: "sink"] = "\(name)"
        self.logger = logger
        self.keys = settings.secretKeys
        self.metrics = WebhookMetrics(sink: name)
        self.deadLetters = DeadLetterWriter(databaseURL: databaseURL, store: DeadLetterStore(schema: schema))
        var configuration = HTTPClient.Configuration()
        // A webhook POST must not turn into a GET at another address; a redirect is an answer like any 3xx.
        configuration.redirectConfiguration = .disallow
        configuration.timeout.connect = .milliseconds(Self.milliseconds(settings.timeout))
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Creates the dead-letter table when it is missing. A database that is down now is not fatal: the
    /// table is created again before the first dead letter.
    public func start() async {
        guard settings.onFailure == .deadLetter else { return }
        do {
            try await deadLetters.ensureTable()
        } catch {
            logger.warning("cannot create the dead-letter table yet", metadata: ["error": "\(error)"])
        }
    }

    public func deliver(_ batch: [ChangeEvent]) async throws {
        let lanes = WebhookPlan.lanes(for: batch, settings: settings, encoder: encoder)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in lanes {
                group.addTask {
                    for request in lane { try await self.deliver(request) }
                }
            }
            try await group.waitForAll()
        }
    }

    public func close() async throws {
        try await client.shutdown()
        await deadLetters.close()
    }

    /// One attempt's result.
    public enum AttemptResult: Sendable {
        case delivered
        case retry(status: Int?, message: String, after: Duration?)
        case rejected(status: Int, response: String)
    }

    /// Sends until acknowledged or rejected; a rejection is dead-lettered (or thrown with `block`).
    func deliver(_ request: WebhookRequest) async throws {
        let firstAttemptAt = Date()
        var attempts = 0
        while true {
            if Task.isShuttingDownGracefully || Task.isCancelled { throw WebhookStopping(sink: name) }
            attempts += 1
            switch await attempt(request) {
            case .delivered:
                metrics.delivered.increment(by: Int64(request.events.count))
                if attempts > 1 {
                    logger.info("webhook delivered after retries", metadata: ["webhook_id": "\(request.webhookID)", "attempts": "\(attempts)"])
                }
                return
            case .rejected(let status, let response):
                if settings.onFailure == .block {
                    throw WebhookRejected(sink: name, eventID: request.webhookID, status: status, response: response)
                }
                logger.warning("webhook rejected, dead-lettered", metadata: [
                    "webhook_id": "\(request.webhookID)", "status": "\(status)", "attempts": "\(attempts)",
                ])
                for event in request.events {
                    try await deadLetters.insert(sink: name, event: event.jsonString, status: status, response: response,
                                                 attempts: attempts, firstAttemptAt: firstAttemptAt, lastAttemptAt: Date())
                }
                metrics.deadLettered.increment(by: Int64(request.events.count))
                metrics.sinkDeadLettered.increment(by: Int64(request.events.count))
                return
            case .retry(let status, let message, let after):
                metrics.retried.increment()
                let delay = after ?? retry.delay(forAttempt: attempts, jitter: Double.random(in: 0...1))
                logger.warning("webhook failed, retrying", metadata: [
                    "webhook_id": "\(request.webhookID)", "status": "\(status.map(String.init) ?? "none")",
                    "error": "\(message.prefix(200))", "attempts": "\(attempts)", "retry_in": "\(delay)",
                ])
                await SinkFailureReport.report("\(message.prefix(500)) (webhook-id \(request.webhookID), attempt \(attempts), retrying)")
                try await sleepUnlessStopping(delay)
            }
        }
    }

    /// One POST, classified. Never throws: every failure is an outcome.
    public func attempt(_ webhook: WebhookRequest) async -> AttemptResult {
        var request = HTTPClientRequest(url: webhook.url)
        request.method = .POST
        for header in settings.headers { request.headers.replaceOrAdd(name: header.name, value: header.value) }
        request.headers.replaceOrAdd(name: "content-type", value: webhook.contentType)
        let timestamp = Int64(Date().timeIntervalSince1970)
        request.headers.replaceOrAdd(name: "webhook-id", value: webhook.webhookID)
        request.headers.replaceOrAdd(name: "webhook-timestamp", value: String(timestamp))
        if !keys.isEmpty {
            request.headers.replaceOrAdd(name: "webhook-signature",
                                         value: WebhookSignature.sign(id: webhook.webhookID, timestamp: timestamp, body: webhook.body, keys: keys))
        }
        request.body = .bytes(ByteBuffer(bytes: webhook.body))
        let started = ContinuousClock.now
        do {
            let response = try await client.execute(request, timeout: .milliseconds(Self.milliseconds(settings.timeout)))
            // Keep the first 1 KB for the dead-letter row; read the rest so the connection can be reused.
            var excerpt: [UInt8] = []
            for try await chunk in response.body where excerpt.count < 1024 {
                excerpt.append(contentsOf: chunk.readableBytesView.prefix(1024 - excerpt.count))
            }
            metrics.latency.recordNanoseconds(Self.nanoseconds(ContinuousClock.now - started))
            let status = Int(response.status.code)
            let text = String(decoding: excerpt, as: UTF8.self)
            switch WebhookOutcome.classify(status: status, retryAfter: response.headers.first(name: "retry-after")) {
            case .delivered: return .delivered
            case .reject: return .rejected(status: status, response: text)
            case .retry(let after): return .retry(status: status, message: "HTTP \(status): \(text)", after: after)
            }
        } catch {
            return .retry(status: nil, message: "\(error)", after: nil)
        }
    }

    /// Sleeps `duration`; a graceful shutdown ends the sleep at once (swift-service-lifecycle's handler, not
    /// polling) and throws `WebhookStopping`.
    private func sleepUnlessStopping(_ duration: Duration) async throws {
        if Task.isShuttingDownGracefully { throw WebhookStopping(sink: name) }
        do {
            try await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
        } catch is CancellationError where !Task.isCancelled {
            throw WebhookStopping(sink: name)
        }
        if Task.isShuttingDownGracefully { throw WebhookStopping(sink: name) }
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
    }
}

/// Counters and a latency timer per sink. Labels are the contract; the only dimension is the sink name.
/// Nothing is exported until the application bootstraps a metrics backend (`MetricsSystem.bootstrap`).
struct WebhookMetrics: Sendable {
    let delivered: Counter
    let retried: Counter
    let deadLettered: Counter
    /// The same count under the name every sink with dead letters shares (README, Health and metrics).
    let sinkDeadLettered: Counter
    let latency: Metrics.Timer

    init(sink: String) {
        let dimensions = [("sink", sink)]
        delivered = Counter(label: "spillway_webhook_delivered_total", dimensions: dimensions)
        retried = Counter(label: "spillway_webhook_retried_total", dimensions: dimensions)
        deadLettered = Counter(label: "spillway_webhook_dead_lettered_total", dimensions: dimensions)
        sinkDeadLettered = Counter(label: "spillway_sink_dead_lettered_total", dimensions: dimensions)
        latency = Metrics.Timer(label: "spillway_webhook_request_duration_seconds", dimensions: dimensions,
                                preferredDisplayUnit: .seconds)
    }
}

/// Owns the sink's own database connection for dead letters, opened on first use and reopened after an
/// error (the pipeline's connection is busy with its read transaction).
actor DeadLetterWriter {
    let databaseURL: String
    let store: DeadLetterStore
    private var connection: PostgresConnection?
    private var hasTable = false

    init(databaseURL: String, store: DeadLetterStore) {
        self.databaseURL = databaseURL
        self.store = store
    }

    func ensureTable() async throws {
        guard !hasTable else { return }
        try await withConnection { try await self.store.createTable(on: $0) }
        hasTable = true
    }

    func insert(sink: String, event: String, status: Int?, response: String, attempts: Int,
                firstAttemptAt: Date, lastAttemptAt: Date) async throws {
        try await ensureTable()
        try await withConnection {
            try await self.store.insert(sink: sink, event: event, status: status, response: response, attempts: attempts,
                                        firstAttemptAt: firstAttemptAt, lastAttemptAt: lastAttemptAt, on: $0)
        }
    }

    private func withConnection(_ body: (PostgresConnection) async throws -> Void) async throws {
        let connection: PostgresConnection
        if let existing = self.connection {
            connection = existing
        } else {
            connection = try await PostgresConnection.connect(url: databaseURL, applicationName: "spillway-dead-letters")
            self.connection = connection
        }
        do {
            try await body(connection)
        } catch {
            await connection.close()
            self.connection = nil
            throw error
        }
    }

    func close() async {
        await connection?.close()
        connection = nil
    }
}
