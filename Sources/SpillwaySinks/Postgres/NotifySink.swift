import Logging
import SpillwayCore
import SpillwayPostgres

/// `kind: notify`: `pg_notify(channel, payload)` for each event, a whole batch in one transaction. NOTIFY
/// is delivered to listeners when that transaction commits, so the batch is acknowledged after COMMIT
/// returned, and a failed batch notifies nobody (its retry sends it whole).
public actor NotifySink: ChangeSinkValidating {
    public nonisolated let name: String
    private let settings: NotifySinkSettings
    private let url: String
    private let logger: Logger
    private var connection: PostgresConnection?
    /// Events per statement: each sends two text arrays of at most this many elements.
    private static let chunkSize = 1000

    public struct Error: Swift.Error, CustomStringConvertible {
        public let description: String
    }

    /// `url` is `settings.url`, or `database.url` when the sink names none.
    public init(name: String, settings: NotifySinkSettings, url: String, logger: Logger) {
        self.name = name
        self.settings = settings
        self.url = url
        var logger = logger
        logger[metadataKey: "sink"] = "\(name)"
        self.logger = logger
    }

    public func validate(tables: [TableInfo]) async throws {
        try settings.channel.validate(against: tables, key: "\(settings.configKey).channel")
    }

    public func deliver(_ batch: [ChangeEvent]) async throws {
        guard !batch.isEmpty else { return }
        var channels: [String] = []
        var payloads: [String] = []
        channels.reserveCapacity(batch.count)
        payloads.reserveCapacity(batch.count)
        for event in batch {
            let channel = settings.channel.channel(for: event)
            guard !channel.isEmpty, channel.utf8.count <= 63 else {
                throw Error(description: "sink '\(name)': channel '\(channel)' (event \(event.id)) is empty or longer than 63 bytes, "
                    + "PostgreSQL's limit. Fix: shorten \(settings.configKey).channel")
            }
            channels.append(channel)
            payloads.append(NotifyPayload.text(for: event))
        }
        let connection = try await connected()
        do {
            try await connection.execute("BEGIN")
            var start = 0
            while start < batch.count {
                let end = min(start + Self.chunkSize, batch.count)
                try await connection.query(
                    "SELECT pg_notify(n.channel, n.payload) FROM unnest($1::text[], $2::text[]) AS n(channel, payload)",
                    [PostgresArray.text(channels[start..<end]), PostgresArray.text(payloads[start..<end])])
                start = end
            }
            try await connection.execute("COMMIT")
        } catch {
            if let error = error as? PostgresError, !error.isConnectionFailure, connection.isHealthy {
                try? await connection.execute("ROLLBACK")
            } else {
                await connection.close()
                self.connection = nil
            }
            throw Error(description: "sink '\(name)': \(error)")
        }
        logger.debug("notified", metadata: ["events": "\(batch.count)"])
    }

    public func close() async throws {
        await connection?.close()
        connection = nil
    }

    private func connected() async throws -> PostgresConnection {
        if let connection, connection.isHealthy { return connection }
        await connection?.close()
        connection = nil
        do {
            let fresh = try await PostgresConnection.connect(url: url, applicationName: "spillway-notify")
            connection = fresh
            return fresh
        } catch {
            throw Error(description: "sink '\(name)': \(error)")
        }
    }
}

/// PostgreSQL's text form of a `text[]`, for passing a list as one parameter; nil elements are NULL.
enum PostgresArray {
    static func text(_ items: some Collection<String?>) -> String {
        var out = "{"
        for (index, item) in items.enumerated() {
            if index > 0 { out += "," }
            guard let item else {
                out += "NULL"
                continue
            }
            out += "\""
            for c in item {
                if c == "\"" || c == "\\" { out += "\\" }
                out.append(c)
            }
            out += "\""
        }
        return out + "}"
    }

    static func text(_ items: some Collection<String>) -> String {
        text(items.lazy.map { Optional($0) })
    }
}
