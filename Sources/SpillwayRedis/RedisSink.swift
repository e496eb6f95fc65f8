import Foundation
import Logging
import SpillwayCore

/// `kind: redis`. With `action: del`, UNLINKs every cache key a batch's changes make stale (both the keys
/// rendered from a row's new values and from its old ones) and, for key patterns, SCANs for matching keys
/// and UNLINKs them. With `action: publish`, PUBLISHes each event. All commands of a batch are pipelined;
/// the batch is acknowledged only after Redis replied to every one of them, and any error throws, so the
/// pipeline retries the batch with backoff and the checkpoint holds until Redis is back.
public final class RedisSink: ChangeSinkValidating, @unchecked Sendable {
    // @unchecked Sendable: immutable apart from `warned`, which is guarded by `lock`; the connection
    // serialises its own I/O.
    public let name: String
    private let settings: RedisSinkSettings
    private let connection: RedisConnection
    private let logger: Logger
    private let lock = NSLock()
    private var warned: Set<String> = []
    /// Commands per round trip: bounds the memory of one pipeline, on both sides.
    private static let pipelineDepth = 1000

    public struct Error: Swift.Error, CustomStringConvertible {
        public let description: String
    }

    public init(name: String, settings: RedisSinkSettings, logger: Logger) {
        self.name = name
        self.settings = settings
        self.connection = RedisConnection(url: settings.url, timeout: settings.timeout, label: name)
        var logger = logger
        logger[metadataKey: "sink"] = "\(name)"
        self.logger = logger
    }

    public func validate(tables: [TableInfo]) async throws {
        switch settings.action {
        case .del:
            for entry in settings.keys {
                // Parsing made sure the table is captured; a sink filter may still leave it out.
                let infos = tables.filter { $0.schema == entry.table.schema && $0.name == entry.table.name }
                for (index, template) in entry.templates.enumerated() {
                    try template.validate(against: infos, key: "\(entry.configKey)[\(index)]")
                }
            }
            let patterns = settings.keys.flatMap(\.templates).filter(\.isPattern)
            if !patterns.isEmpty {
                logger.notice("key patterns are invalidated by SCAN over the whole keyspace of the database, which costs O(keys in Redis) per pattern and batch", metadata: ["patterns": "\(patterns.map(\.text))"])
            }
        case .publish:
            try settings.channel.validate(against: tables, key: "\(settings.configKey).channel")
        }
        logger.debug("redis sink ready", metadata: ["redis": "\(settings.url)", "action": "\(settings.action.rawValue)"])
    }

    public func deliver(_ batch: [ChangeEvent]) async throws {
        guard !batch.isEmpty else { return }
        do {
            switch settings.action {
            case .del: try await invalidate(batch)
            case .publish: try await publish(batch)
            }
        } catch let error as RedisError {
            throw Error(description: "sink '\(name)': \(error)")
        }
    }

    public func close() async throws {
        await connection.close()
    }

    // MARK: del

    private func invalidate(_ batch: [ChangeEvent]) async throws {
        let plan = CacheInvalidation(events: batch) { settings.templates(schema: $0.schema, table: $0.table) }
        warnAboutUnrenderedKeys(batch)
        var commands: [[String]] = []
        var start = 0
        while start < plan.keys.count {
            let end = min(start + settings.scanCount, plan.keys.count)
            commands.append(["UNLINK"] + plan.keys[start..<end])
            start = end
        }
        try await run(commands, expecting: "UNLINK")
        if !plan.patterns.isEmpty {
            try await unlinkMatching(plan.patterns)
        }
        logger.debug("invalidated", metadata: ["keys": "\(plan.keys.count)", "patterns": "\(plan.patterns.count)",
                                                "events": "\(batch.count)"])
    }

    /// SCANs every pattern to its end, the SCANs of all patterns pipelined together round by round, and
    /// UNLINKs each round's matches. SCAN guarantees every key present for the whole scan is returned
    /// (some perhaps twice, which UNLINK shrugs off).
    private func unlinkMatching(_ patterns: [String]) async throws {
        var cursors = patterns.map { (pattern: $0, cursor: "0") }
        var removed = 0
        while !cursors.isEmpty {
            let replies = try await connection.pipeline(cursors.map {
                ["SCAN", $0.cursor, "MATCH", $0.pattern, "COUNT", String(settings.scanCount)]
            })
            var found: [String] = []
            var next: [(pattern: String, cursor: String)] = []
            for (scan, reply) in zip(cursors, replies) {
                guard case .array(let parts) = reply, parts.count == 2, let cursor = parts[0].text,
                      case .array(let keys) = parts[1] else {
                    throw Error(description: "sink '\(name)': SCAN MATCH \(scan.pattern) answered \(Self.describe(reply))")
                }
                found += keys.compactMap(\.text)
                if cursor != "0" { next.append((scan.pattern, cursor)) }
            }
            var commands: [[String]] = []
            var start = 0
            while start < found.count {
                let end = min(start + settings.scanCount, found.count)
                commands.append(["UNLINK"] + found[start..<end])
                start = end
            }
            try await run(commands, expecting: "UNLINK")
            removed += found.count
            cursors = next
        }
        logger.debug("pattern keys unlinked", metadata: ["keys": "\(removed)"])
    }

    /// A template that cannot be filled from the old row (the replication source sends no `before`, or only
    /// the key, without REPLICA IDENTITY FULL) leaves the old values' keys cached; say so once per table and
    /// template. Templates that read only key columns lose nothing: `before` holds the old key when it changed.
    private func warnAboutUnrenderedKeys(_ batch: [ChangeEvent]) {
        for event in batch where event.op == .update || event.op == .delete {
            let keyColumns = Set(event.key?.names ?? [])
            for template in settings.templates(schema: event.schema, table: event.table) where template.readsRow {
                let readsNonKeyColumn = template.fields.contains { $0.column.map { !keyColumns.contains($0) } ?? false }
                if readsNonKeyColumn, template.render(event, as: .plain, image: .previous) == nil {
                    let marker = "\(event.qualifiedTable) \(template.text)"
                    let isNew = lock.withLock { warned.insert(marker).inserted }
                    if isNew {
                        logger.warning("a key template could not be rendered from the row's old values (the event's before image lacks a column; with the replication source set REPLICA IDENTITY FULL); keys of the old values stay cached", metadata: ["table": "\(event.qualifiedTable)", "template": "\(template.text)"])
                    }
                }
            }
        }
    }

    // MARK: publish

    private func publish(_ batch: [ChangeEvent]) async throws {
        let commands = batch.map { event -> [String] in
            let payload: String
            switch settings.payload {
            case .event: payload = event.jsonString
            case .key: payload = JSONEncoding.string(event.key.map { .object($0) } ?? .null)
            }
            return ["PUBLISH", settings.channel.channel(for: event), payload]
        }
        try await run(commands, expecting: "PUBLISH")
    }

    // MARK: Replies

    /// Pipelines `commands` in rounds of `pipelineDepth`; every reply must be an integer (UNLINK's count,
    /// PUBLISH's receivers). The first error reply throws after all replies of its round were read, which
    /// keeps the connection in step.
    private func run(_ commands: [[String]], expecting command: String) async throws {
        var start = 0
        while start < commands.count {
            let end = min(start + Self.pipelineDepth, commands.count)
            let replies = try await connection.pipeline(Array(commands[start..<end]))
            for reply in replies {
                guard case .integer = reply else {
                    throw Error(description: "sink '\(name)': \(command) answered \(Self.describe(reply))")
                }
            }
            start = end
        }
    }

    private static func describe(_ reply: RedisReply) -> String {
        switch reply {
        case .error(let message): return "an error: \(message)"
        case .status(let s): return "status \(s)"
        case .integer(let n): return "integer \(n)"
        case .bulk: return "a string"
        case .array(let items): return "an array of \(items.count)"
        case .null: return "nil"
        }
    }
}
