import Foundation
import NIOCore
import NIOPosix
import SpillwayCore
import SpillwayKafka
import SpillwayPostgres
import SpillwayRedis
import SpillwaySinks
import SpillwayWebhook

/// `spillway check`: what would fail if `run` started now. First the config (every problem at once), then
/// the database (reachable, version, `wal_level`, privileges, tables, replica identity, installed) and
/// every sink's destination (a file's directory, Kafka brokers, Redis, a webhook's host). Changes nothing.
public enum ConfigCheck {
    public struct Finding: Sendable, CustomStringConvertible {
        public var isOK: Bool
        /// The config key the finding is about.
        public var key: String
        public var message: String
        public var fix: String?

        static func ok(_ key: String, _ message: String) -> Finding { Finding(isOK: true, key: key, message: message) }
        static func problem(_ key: String, _ message: String, fix: String) -> Finding {
            Finding(isOK: false, key: key, message: message, fix: fix)
        }
        init(isOK: Bool, key: String, message: String, fix: String? = nil) {
            self.isOK = isOK
            self.key = key
            self.message = message
            self.fix = fix
        }
        public init(_ error: ConfigError) { self.init(isOK: false, key: error.key, message: error.problem, fix: error.fix) }

        public var description: String {
            (isOK ? "ok     " : "error  ") + "\(key): \(message)" + (fix.map { ". Fix: \($0)" } ?? "")
        }
    }

    /// Every problem of the file (`SpillwayConfig.check` plus librdkafka's view of Kafka properties).
    public static func validate(path: String, environment: [String: String]) -> (SpillwayConfig?, [ConfigError]) {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            return (nil, [ConfigError(key: "--config", problem: "cannot read \(path) as UTF-8 text",
                                      fix: "pass the path of a YAML config, e.g. --config Config/spillway.example.yaml")])
        }
        let (config, problems) = SpillwayConfig.check(yaml: text, environment: environment, sinkKinds: SinkKinds.all)
        guard let config else { return (nil, problems) }
        var kafka: [ConfigError] = []
        for (index, sink) in config.sinks.enumerated() {
            do {
                try sink.settings.validateOffline(keyPath: "sinks[\(index)]")
            } catch {
                kafka.append(error)
            }
        }
        return (kafka.isEmpty ? config : nil, kafka)
    }

    /// Connects to the database and every sink's destination; one finding per check.
    public static func probe(_ config: SpillwayConfig) async -> [Finding] {
        var findings = await probeDatabase(config)
        for (index, sink) in config.sinks.enumerated() { findings += await probe(sink, key: "sinks[\(index)]") }
        return findings
    }

    // MARK: database

    private static func probeDatabase(_ config: SpillwayConfig) async -> [Finding] {
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(url: config.database.url, applicationName: "spillway-check")
        } catch {
            return [.problem("database.url", "cannot connect to \(config.database.redactedURL): \(error)",
                             fix: "check host, port, credentials and sslmode in database.url (or SPILLWAY_DATABASE_URL)")]
        }
        let findings: [Finding]
        do {
            findings = try await probeDatabase(config, on: connection)
        } catch {
            findings = [.problem("database.url", "a catalog query failed: \(error)", fix: "check the role's privileges")]
        }
        await connection.close()
        return findings
    }

    private static func probeDatabase(_ config: SpillwayConfig, on connection: PostgresConnection) async throws -> [Finding] {
        var findings: [Finding] = []
        let server = try await connection.query("""
            SELECT current_setting('server_version_num')::int, current_setting('server_version'), current_user,
                   current_setting('wal_level'), (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user),
                   current_setting('max_replication_slots')::int
            """)
        let row = server.first ?? []
        let versionNumber = Int(row[0] ?? "") ?? 0
        findings.append(.ok("database.url", "connected to PostgreSQL \(row[1] ?? "?") as \(row[2] ?? "?")"))
        if versionNumber < 130000 {
            findings.append(.problem("database.url", "PostgreSQL \(row[1] ?? "?") is too old", fix: "use PostgreSQL 13 or newer"))
        }

        let isReplication = config.source.kind == .replication
        if isReplication {
            if row[3] != "logical" {
                findings.append(.problem("source.kind", "replication needs wal_level = logical; the server has \(row[3] ?? "?")",
                                         fix: "set wal_level = logical in postgresql.conf and restart PostgreSQL, or use kind: audit_log"))
            } else {
                findings.append(.ok("source.kind", "wal_level = logical"))
            }
            if row[4] != "t" {
                findings.append(.problem("database.url", "role \(row[2] ?? "?") has no REPLICATION attribute",
                                         fix: "ALTER ROLE \(row[2] ?? "…") REPLICATION (see README, Roles and grants)"))
            }
            if (Int(row[5] ?? "") ?? 0) < 1 {
                findings.append(.problem("source.slot", "max_replication_slots is 0", fix: "raise max_replication_slots and restart PostgreSQL"))
            }
        }

        var outboxIsBroken = false
        do {
            try await OutboxCatalog.verify(config, on: connection, checkingGrants: true)
        } catch let error as ConfigError {
            findings.append(.problem(error.key, error.problem, fix: error.fix))
            outboxIsBroken = true
        }
        let outboxTables = Set(config.source.outbox.map(\.table))
        for (index, table) in config.source.tables.enumerated() {
            // An outbox table is in source.tables because source.outbox put it there: named by that key.
            if outboxIsBroken, outboxTables.contains(table) { continue }
            let key = outboxTables.contains(table) ? "source.outbox.table" : "source.tables[\(index)]"
            let found = try await connection.query("""
                SELECT c.relreplident, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
                       has_table_privilege(c.oid, 'SELECT'), c.relkind::text
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = $1 AND c.relname = $2
                """, [table.schema, table.name])
            guard let relation = found.first else {
                findings.append(.problem(key, "table \(table) does not exist", fix: "create it, or remove it from source.tables"))
                continue
            }
            guard ["r", "p"].contains(relation[3]) else {
                findings.append(.problem(key, "\(table) is not a table", fix: "capture tables (plain or partitioned) only"))
                continue
            }
            if relation[2] != "t" {
                findings.append(.problem(key, "the role cannot SELECT from \(table)",
                                         fix: "GRANT SELECT ON \(table.sql) TO the role (see README, Roles and grants)"))
            }
            if isReplication, relation[0] == "n" || (relation[0] == "d" && relation[1] != "t") {
                findings.append(.problem(key, "\(table) has no replica identity: PostgreSQL refuses UPDATE and DELETE on it once published",
                                         fix: "add a primary key, or ALTER TABLE \(table.sql) REPLICA IDENTITY FULL"))
            } else if relation[2] == "t" {
                findings.append(.ok(key, "\(table) exists" + (isReplication ? " and has a replica identity" : "")))
            }
        }

        let checkpoints = QualifiedName(schema: config.schema, name: "checkpoints")
        let isInstalled = try await PostgresCatalog.tableExists(checkpoints, on: connection)
        let record = isInstalled ? try await CheckpointStore(schema: config.schema).load(consumer: config.consumer, on: connection) : nil
        if record == nil {
            findings.append(.problem("consumer", "consumer '\(config.consumer)' is not installed in schema '\(config.schema)'",
                                     fix: "run `spillway install --config FILE`"))
        } else {
            findings.append(.ok("consumer", "consumer '\(config.consumer)' is installed"))
        }
        if isReplication {
            let settings = config.source.replication
            let slot = try await connection.query("SELECT plugin, database = current_database() FROM pg_replication_slots WHERE slot_name = $1",
                                                  [settings.slot])
            if let slot = slot.first {
                if slot[0] != "pgoutput" || slot[1] != "t" {
                    findings.append(.problem("source.slot", "slot \(settings.slot) belongs to another database or plugin",
                                             fix: "name a slot of your own in source.slot"))
                } else {
                    findings.append(.ok("source.slot", "slot \(settings.slot) exists"))
                }
            } else if record != nil {
                findings.append(.problem("source.slot", "slot \(settings.slot) does not exist", fix: "run `spillway install --config FILE`"))
            }
        } else if record != nil {
            let audit = AuditLogSchema(config: config).auditTable
            if try await PostgresCatalog.tableExists(audit, on: connection) {
                findings.append(.ok("source.audit_table", "audit table \(audit) exists"))
            } else {
                findings.append(.problem("source.audit_table", "audit table \(audit) does not exist", fix: "run `spillway install --config FILE`"))
            }
        }
        return findings
    }

    // MARK: sinks

    private static func probe(_ sink: SinkConfig, key: String) async -> [Finding] {
        switch sink.settings {
        case let settings as FileSinkSettings:
            guard !settings.isStandardOutput else { return [.ok(key, "sink '\(sink.name)' writes to standard output")] }
            let directory = URL(fileURLWithPath: settings.path).deletingLastPathComponent().path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                return [.problem("\(key).path", "directory \(directory) does not exist", fix: "create it, or point path elsewhere")]
            }
            let target = FileManager.default.fileExists(atPath: settings.path) ? settings.path : directory
            guard access(target, W_OK) == 0 else {
                return [.problem("\(key).path", "\(target) is not writable by this user", fix: "fix its permissions, or point path elsewhere")]
            }
            return [.ok("\(key).path", "\(settings.path) is writable")]
        case let settings as KafkaSinkSettings:
            var findings: [Finding] = []
            for broker in settings.brokers {
                guard let address = HostAndPort(parsing: broker) ?? HostAndPort(parsing: broker + ":9092") else {
                    findings.append(.problem("\(key).brokers", "'\(broker)' is not host:port", fix: "write brokers as host:port"))
                    continue
                }
                findings.append(await reach(address, key: "\(key).brokers", what: "Kafka broker \(broker)"))
            }
            return findings
        case let settings as RedisSinkSettings:
            return [await reach(HostAndPort(host: settings.url.host, port: settings.url.port), key: "\(key).url",
                                what: "Redis \(settings.url.host):\(settings.url.port)")]
        case let settings as WebhookSinkSettings:
            let template = settings.url.description
            guard let address = webhookAddress(template) else {
                return [.ok("\(key).url", "the webhook's host comes from event fields: not checked")]
            }
            return [await reach(address, key: "\(key).url", what: "webhook host \(address)")]
        case is NotifySinkSettings, is RefreshSinkSettings:
            return [.ok(key, "sink '\(sink.name)' works in the database")]
        default:
            return [.ok(key, "sink '\(sink.name)' (\(sink.kind)): nothing to probe")]
        }
    }

    /// The host and port of a webhook URL template; nil when the host itself has a placeholder.
    static func webhookAddress(_ url: String) -> HostAndPort? {
        guard let scheme = url.range(of: "://") else { return nil }
        let isTLS = url.lowercased().hasPrefix("https")
        var authority = String(url[scheme.upperBound...].prefix { $0 != "/" && $0 != "?" && $0 != "#" })
        if let at = authority.lastIndex(of: "@") { authority = String(authority[authority.index(after: at)...]) }
        guard !authority.isEmpty, !authority.contains("{") else { return nil }
        return HostAndPort(parsing: authority) ?? HostAndPort(parsing: authority + (isTLS ? ":443" : ":80"))
    }

    /// A TCP connection to `address` within 5 seconds.
    static func reach(_ address: HostAndPort, key: String, what: String) async -> Finding {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(5))
                .connect(host: address.host, port: address.port).get()
            try? await channel.close()
            return .ok(key, "\(what) is reachable")
        } catch {
            return .problem(key, "cannot reach \(what): \(error)", fix: "check the host and port, and that it is up and reachable from here")
        }
    }
}
