import Yams

/// The whole configuration, read from YAML once and then passed around as a value.
public struct SpillwayConfig: Sendable {
    public var database: DatabaseConfig
    /// The schema holding Spillway's tables and functions. Default: `spillway`.
    public var schema: String
    /// The consumer name: the checkpoint's key. Default: `spillway`.
    public var consumer: String
    public var source: SourceConfig
    public var sinks: [SinkConfig]
    public var log: LogConfig
    /// The health and metrics endpoint of `run`.
    public var http: HTTPConfig
    /// Standbys of the consumer.
    public var ha: HAConfig = HAConfig()

    public init(database: DatabaseConfig, schema: String = "spillway", consumer: String = "spillway",
                source: SourceConfig, sinks: [SinkConfig], log: LogConfig = LogConfig(), http: HTTPConfig = HTTPConfig()) {
        self.database = database
        self.schema = schema
        self.consumer = consumer
        self.source = source
        self.sinks = sinks
        self.log = log
        self.http = http
    }
}

public struct DatabaseConfig: Sendable {
    /// A libpq connection string or `postgres://` URL. `SPILLWAY_DATABASE_URL` overrides it.
    public var url: String

    public init(url: String) { self.url = url }

    /// The URL with any password replaced by `***`, for logs and errors.
    public var redactedURL: String { ConnectionString.redacting(url) }
}

public struct SourceConfig: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case auditLog = "audit_log"
        case replication
    }

    /// `source.snapshot`: whether a new consumer first emits the rows its tables already hold.
    public enum Snapshot: String, Sendable, CaseIterable {
        /// Only changes made after `install` (the default).
        case never
        /// Every existing row once, as `op: read` events, chunk by chunk while changes stream.
        case initial
    }

    public enum History: String, Sendable, CaseIterable {
        /// Deliver rows an adopted audit table held before Spillway adopted it.
        case include
        case skip
    }

    public var kind: Kind
    /// The captured tables. Required.
    public var tables: [QualifiedName]
    /// The audit table: Spillway's own (`<schema>.audit_log`, default) or an existing one to adopt.
    public var auditTable: QualifiedName?
    /// How often the poller looks for newly committed transactions when no NOTIFY woke it. Default: 1s.
    public var pollInterval: Duration
    /// Events per delivery batch. Default: 1000.
    public var batchSize: Int
    /// Batches read ahead of the checkpoint: several can be in flight to pipelined sinks (Kafka) at once,
    /// which hides their round trip. 1 delivers strictly one batch at a time. Default: 4.
    public var maxInFlightBatches: Int = 4
    /// Default: include.
    public var history: History
    /// Delete audit rows that every registered consumer has passed. Default: false.
    public var prune: Bool
    /// audit_log: keep audit rows at least this long (for `spillway replay`), then delete those every
    /// registered consumer has passed. Default: none (rows stay unless `prune`).
    public var retention: Duration?
    /// audit_log, `source.retention: 10GB`: keep about this many bytes of the newest audit rows for replay,
    /// then delete older rows every registered consumer has passed. Default: none.
    public var retentionSize: Int64?
    /// Whether `run` deletes delivered audit rows at all (so a replay may find them gone).
    public var deletesDeliveredRows: Bool { prune || retention != nil || retentionSize != nil }
    /// Wake the poller by LISTEN/NOTIFY as soon as a transaction commits. Default: true.
    public var notify: Bool
    /// Replication settings; used when `kind` is `replication`.
    public var replication: ReplicationSettings = ReplicationSettings()
    /// audit_log only, off by default: an idle poller lets go of every connection, so a database that
    /// suspends when idle (serverless) can suspend.
    public var idleBackoff: IdleBackoff?
    /// Default: never.
    public var snapshot: Snapshot = .never
    /// Rows per snapshot chunk (one short transaction each). Default: 5000.
    public var snapshotChunkSize: Int = 5000

    /// How many events the pipeline holds read but not yet acknowledged: `max_in_flight_batches` full
    /// batches, plus one snapshot chunk when a snapshot is configured. Then a chunk's rows are all with the sinks
    /// while the next chunk is read; with the defaults a 5,000-row chunk did not fit in 4 × 1,000 events, and
    /// its last piece waited with the reader idle (7 % of a 1M-row snapshot's time).
    public var inFlightEventLimit: Int {
        batchSize * maxInFlightBatches + (snapshot == .initial ? snapshotChunkSize : 0)
    }
    /// Per table: the columns it sends and how they are masked (`source.tables[]` written as objects).
    /// Tables without an entry send every column as it is.
    public var columnPolicies: [QualifiedName: ColumnPolicy] = [:]
    /// `source.mask_key`: the HMAC key for `mask: {col: hash}` (`${NAME}` read from the environment).
    /// Required when any column is hashed. A secret: never logged.
    public var maskKey: String?
    /// `source.outbox`: outbox tables. Each is captured as if listed in `tables` (it is appended there when
    /// not), so both sources' installers and readers treat it like any captured table. Default: none.
    public var outbox: [OutboxTable] = []

    public init(kind: Kind = .auditLog, tables: [QualifiedName], auditTable: QualifiedName? = nil,
                pollInterval: Duration = .seconds(1), batchSize: Int = 1000, history: History = .include,
                prune: Bool = false, notify: Bool = true) {
        self.kind = kind
        self.tables = tables
        self.auditTable = auditTable
        self.pollInterval = pollInterval
        self.batchSize = batchSize
        self.history = history
        self.prune = prune
        self.notify = notify
    }
}

/// Which events a sink takes. Empty sets (and no condition) mean all.
public struct EventFilter: Sendable, Hashable {
    /// `sinks[].tables`: names and globs (`public.order_*`).
    public var tables: TableSelection
    public var operations: Set<ChangeEvent.Operation>
    /// `sinks[].where`. Default: none.
    public var condition: FilterExpression?
    /// `sinks[].tenant_fallback: skip`: events without a tenant are not taken. Default: false.
    public var skipsEventsWithoutTenant = false

    public init(tables: TableSelection = [], operations: Set<ChangeEvent.Operation> = [], condition: FilterExpression? = nil) {
        self.tables = tables
        self.operations = operations
        self.condition = condition
    }

    /// Takes every event: the fan-out then hands the batch over without copying it.
    public var acceptsEverything: Bool { tables.isEmpty && operations.isEmpty && condition == nil && !skipsEventsWithoutTenant }

    public func accepts(_ event: ChangeEvent) -> Bool {
        (operations.isEmpty || operations.contains(event.op))
            && !(skipsEventsWithoutTenant && TenantFallback.lacksTenant(event))
            && (tables.isEmpty || tables.contains(QualifiedName(schema: event.schema, name: event.table)))
            && (condition?.matches(event) ?? true)
    }
}

public struct SinkConfig: Sendable {
    /// Unique among the sinks; names the sink in logs, metrics and status.
    public var name: String
    public var filter: EventFilter
    /// `sinks[].format`: what the sink writes per event (file, kafka, webhook). Default: spillway.
    public var format: EventFormat = .spillway
    /// `sinks[].tenant_fallback`. Default: nil, a missing tenant renders as each rendering writes a missing
    /// value. `skip` is applied by `filter`, `default` by the settings' templates; `error` by the fan-out.
    public var tenantFallback: TenantFallback?
    /// The kind's own settings, a type of the sink's module (`KafkaSinkSettings`, ...).
    public var settings: any SinkSettings

    public init(name: String, filter: EventFilter = EventFilter(), settings: any SinkSettings) {
        self.name = name
        self.filter = filter
        self.settings = settings
    }

    public var kind: String { type(of: settings).kind }
}

public struct LogConfig: Sendable {
    public enum Level: String, Sendable, CaseIterable {
        case trace, debug, info, notice, warning, error, critical
    }

    public enum Format: String, Sendable, CaseIterable {
        case text, json
    }

    public var level: Level
    public var format: Format

    public init(level: Level = .info, format: Format = .text) {
        self.level = level
        self.format = format
    }
}

extension SpillwayConfig {
    /// Parses and validates YAML. `environment` supplies `SPILLWAY_DATABASE_URL`, the `SPILLWAY_SECTION__KEY`
    /// overrides (`EnvironmentOverrides`) and the `${NAME}` variables of secrets. Throws the first problem.
    /// `sinkKinds` are the sink kinds `kind:` may name (SpillwayApp's `SinkKinds.all`).
    public static func parse(yaml: String, environment: [String: String] = [:],
                             sinkKinds: [any SinkSettings.Type]) throws(ConfigError) -> SpillwayConfig {
        let (config, problems) = check(yaml: yaml, environment: environment, sinkKinds: sinkKinds)
        if let first = problems.first { throw first }
        guard let config else { throw ConfigError(key: "(document)", problem: "could not be read", fix: "see Config/spillway.example.yaml") }
        return config
    }

    /// Every problem of the YAML, in document order (`spillway check`): independent sections — database,
    /// schema, consumer, source, each sink, log, http — are each checked even when another failed; within a
    /// section, the first problem. The config when there is none.
    public static func check(yaml: String, environment: [String: String] = [:],
                             sinkKinds: [any SinkSettings.Type]) -> (SpillwayConfig?, [ConfigError]) {
        let parsed: Node?
        do {
            parsed = try Yams.compose(yaml: yaml)
        } catch {
            return (nil, [ConfigError(key: "(document)", problem: "not valid YAML: \(error)", fix: "correct the YAML syntax")])
        }
        let overrides: [EnvironmentOverrides.Override]
        let node: Node
        do {
            overrides = try EnvironmentOverrides.overrides(in: environment)
            guard let parsed else {
                return (nil, [ConfigError(key: "(document)", problem: "the file is empty", fix: "see Config/spillway.example.yaml")])
            }
            node = try EnvironmentOverrides.apply(overrides, to: parsed)
        } catch {
            return (nil, [error])
        }
        var problems = Problems()
        let config = parse(node: node, environment: environment, sinkKinds: sinkKinds, problems: &problems)
        return (problems.all.isEmpty ? config : nil, problems.all.map { EnvironmentOverrides.attribute($0, to: overrides) })
    }

    /// Collects the problems of independent sections.
    struct Problems {
        private(set) var all: [ConfigError] = []

        mutating func add(_ error: ConfigError) { all.append(error) }

        /// `body`'s value, or nil after recording its problem.
        mutating func attempt<T>(_ body: () throws -> T) -> T? {
            do {
                return try body()
            } catch let error as ConfigError {
                all.append(error)
            } catch {
                all.append(ConfigError(key: "(document)", problem: "\(error)", fix: "correct the YAML"))
            }
            return nil
        }
    }

    private static func parse(node: Node, environment: [String: String], sinkKinds: [any SinkSettings.Type],
                              problems: inout Problems) -> SpillwayConfig? {
        guard var root = problems.attempt({ try ConfigReader(node: node, path: "") }) else { return nil }
        for error in root.unknownKeyErrors(known: ["database", "schema", "consumer", "source", "sinks", "log", "http", "ha"]) { problems.add(error) }

        let url: String? = problems.attempt {
            var databaseURL: String?
            if var database = try root.child("database") {
                databaseURL = try database.optionalString("url")
                try database.rejectUnknownKeys()
            }
            if let override = environment["SPILLWAY_DATABASE_URL"], !override.isEmpty { databaseURL = override }
            guard let url = databaseURL, !url.isEmpty else {
                throw ConfigError(key: "database.url", problem: "is required",
                                  fix: "set database.url to a postgres:// URL, or export SPILLWAY_DATABASE_URL")
            }
            return url
        }

        let schema: String? = problems.attempt {
            let schema = try root.optionalString("schema") ?? "spillway"
            guard isPlainIdentifier(schema) else {
                throw ConfigError(key: "schema", problem: "'\(schema)' is not a plain identifier",
                                  fix: "use lower-case letters, digits and _")
            }
            return schema
        }
        let consumer: String? = problems.attempt {
            let consumer = try root.optionalString("consumer") ?? "spillway"
            guard !consumer.isEmpty, consumer.count <= 200 else {
                throw ConfigError(key: "consumer", problem: "must be 1 to 200 characters", fix: "name the consumer, e.g. search-sync")
            }
            return consumer
        }

        let source: SourceConfig? = problems.attempt {
            guard var sourceReader = try root.child("source") else {
                throw ConfigError(key: "source", problem: "is required",
                                  fix: "add `source: {kind: audit_log, tables: [public.products]}`")
            }
            try sourceReader.rejectUnknownKeys(known: Set(["kind", "tables", "audit_table", "poll_interval", "batch_size", "max_in_flight_batches",
                                                           "history", "prune", "retention", "notify", "mask_key", "idle_backoff", "snapshot", "snapshot_chunk_size", "outbox"] + ReplicationSettings.keys))
            var source = try parseSource(&sourceReader, environment: environment)
            if source.kind == .replication, let url, ConnectionString.namesPooledHost(url) {
                throw ConfigError(key: "database.url", problem: "names a pooled endpoint (a -pooler host); logical replication needs a direct connection",
                                  fix: "use the direct host (without -pooler, e.g. Neon's ep-name.region.aws.neon.tech), or source.kind: audit_log")
            }
            source.replication.applyDefaults(consumer: consumer ?? "spillway")
            try sourceReader.rejectUnknownKeys()
            return source
        }

        var sinks: [SinkConfig]? = []
        if let sinkReaders = problems.attempt({ () throws -> [ConfigReader] in
            guard let readers = try root.children("sinks"), !readers.isEmpty else {
                throw ConfigError(key: "sinks", problem: "needs at least one sink",
                                  fix: "add `sinks: [{name: out, kind: file, path: \"-\"}]`")
            }
            return readers
        }) {
            // Without a valid source, sinks are still read (against no tables) but not checked against it.
            let sinkSource = source ?? SourceConfig(tables: [])
            for reader in sinkReaders {
                var reader = reader
                let sink: SinkConfig? = problems.attempt {
                    var sink = try parseSink(&reader, consumer: consumer ?? "spillway", source: sinkSource, environment: environment,
                                             sinkKinds: sinkKinds)
                    sink.format = try parseFormat(&reader, sink: sink)
                    try reader.rejectUnknownKeys()
                    if sinks?.contains(where: { $0.name == sink.name }) == true {
                        throw ConfigError(key: reader.keyPath("name"), problem: "sink name '\(sink.name)' is used twice",
                                          fix: "give every sink its own name")
                    }
                    return sink
                }
                if let sink { sinks?.append(sink) } else { sinks = nil }
            }
            // Checked once all are read, so that a later sink's syntax error comes first, as before.
            if let source, let parsed = sinks {
                for (index, sink) in parsed.enumerated() {
                    if problems.attempt({ try sink.settings.validate(source: source, filter: sink.filter, keyPath: "sinks[\(index)]") }) == nil {
                        sinks = nil
                    }
                }
            }
        } else {
            sinks = nil
        }

        let log: LogConfig? = problems.attempt {
            var log = LogConfig()
            if var logReader = try root.child("log") {
                log.level = try logReader.choice("level", default: log.level)
                log.format = try logReader.choice("format", default: log.format)
                try logReader.rejectUnknownKeys()
            }
            return log
        }
        let http: HTTPConfig? = problems.attempt {
            var http = HTTPConfig()
            if var httpReader = try root.child("http") {
                http = try HTTPConfig.parse(&httpReader)
                try httpReader.rejectUnknownKeys()
            }
            return http
        }
        let ha: HAConfig? = problems.attempt {
            var ha = HAConfig()
            if var haReader = try root.child("ha") {
                ha = try HAConfig.parse(&haReader)
                try haReader.rejectUnknownKeys()
            }
            return ha
        }
        guard let url, let schema, let consumer, let source, let sinks, let log, let http, let ha else { return nil }
        var config = SpillwayConfig(database: DatabaseConfig(url: url), schema: schema, consumer: consumer,
                                    source: source, sinks: sinks, log: log, http: http)
        config.ha = ha
        return config
    }

    static func isPlainIdentifier(_ text: String) -> Bool {
        guard let first = text.first, first.isLetter || first == "_" else { return false }
        return text.allSatisfy { ($0.isLetter && $0.isLowercase) || $0.isNumber || $0 == "_" } && text.count <= 63
    }

    private static func parseTable(_ text: String, key: String) throws(ConfigError) -> QualifiedName {
        guard let name = QualifiedName(parsing: text) else {
            throw ConfigError(key: key, problem: "'\(text)' is not a table name", fix: "write schema.table, e.g. public.products")
        }
        return name
    }

    private static func parseSource(_ r: inout ConfigReader, environment: [String: String]) throws(ConfigError) -> SourceConfig {
        let kind: SourceConfig.Kind = try r.choice("kind", default: .auditLog)
        guard let entries = try r.list("tables"), !entries.isEmpty else {
            throw ConfigError(key: r.keyPath("tables"), problem: "needs at least one table",
                              fix: "list the tables to capture, e.g. `tables: [public.products]`")
        }
        var tables: [QualifiedName] = []
        var policies: [QualifiedName: ColumnPolicy] = [:]
        var hashedColumn: String?
        for (index, entry) in entries.enumerated() {
            let key = "\(r.keyPath("tables"))[\(index)]"
            let table: QualifiedName
            if let scalar = entry.scalar {
                table = try parseTable(scalar.string, key: key)
            } else if entry.mapping != nil {
                var t = try ConfigReader(node: entry, path: key)
                try t.rejectUnknownKeys(known: ["name", "columns", "mask"])
                table = try parseTable(try t.string("name", fix: "name the table, e.g. `{name: public.users, columns: {exclude: [ssn]}}`"),
                                       key: t.keyPath("name"))
                let policy = try ColumnPolicy.parse(&t)
                try t.rejectUnknownKeys()
                if policies[table] != nil {
                    throw ConfigError(key: key, problem: "table \(table) has columns or masks listed twice",
                                      fix: "merge its entries into one")
                }
                if !policy.isEmpty { policies[table] = policy }
                if hashedColumn == nil, let column = policy.masks.first(where: { $0.value == .hash })?.key {
                    hashedColumn = "\(t.keyPath("mask")).\(column)"
                }
            } else {
                throw ConfigError(key: key, problem: "expected a table name or `{name: ..., columns: ..., mask: ...}`",
                                  fix: "write `public.users` or `{name: public.users, columns: {exclude: [ssn]}}`")
            }
            if !tables.contains(table) { tables.append(table) }
        }
        var source = SourceConfig(kind: kind, tables: tables)
        source.columnPolicies = policies
        if let text = try r.optionalString("mask_key") {
            let value = try EnvironmentSubstitution.substitute(text, environment: environment, key: r.keyPath("mask_key"))
            // A short key makes hashes of low-entropy values (phone numbers) cheap to guess by brute force.
            guard value.utf8.count >= 16 else {
                throw ConfigError(key: r.keyPath("mask_key"), problem: "is shorter than 16 bytes",
                                  fix: "use a long random secret, e.g. `openssl rand -hex 32`, passed as ${SPILLWAY_MASK_KEY}")
            }
            source.maskKey = value
        }
        if let hashedColumn, source.maskKey == nil {
            throw ConfigError(key: r.keyPath("mask_key"), problem: "is required: \(hashedColumn) is hashed",
                              fix: "set `mask_key: ${SPILLWAY_MASK_KEY}` and export a long random secret in SPILLWAY_MASK_KEY")
        }
        if let audit = try r.optionalString("audit_table") {
            source.auditTable = try parseTable(audit, key: r.keyPath("audit_table"))
        }
        source.pollInterval = try r.duration("poll_interval", default: source.pollInterval)
        guard source.pollInterval >= .milliseconds(10) else {
            throw ConfigError(key: r.keyPath("poll_interval"), problem: "is below 10ms", fix: "use 10ms or more")
        }
        source.batchSize = try r.int("batch_size", default: source.batchSize, range: 1...100_000)
        source.maxInFlightBatches = try r.int("max_in_flight_batches", default: source.maxInFlightBatches, range: 1...64)
        source.history = try r.choice("history", default: source.history)
        source.prune = try r.bool("prune", default: source.prune)
        if let text = try r.optionalString("retention") {
            // Days too (`7d`), which no other duration here needs; or a size (`10GB`).
            let days = text.hasSuffix("d") ? Double(text.dropLast()).map { Duration.seconds(Int64($0 * 86_400)) } : nil
            let size = text.last?.isLetter == true && text.uppercased().hasSuffix("B") ? ByteSize.parse(text) : nil
            guard let retention = days ?? DurationText.parse(text) ?? (size != nil ? .zero : nil) else {
                throw ConfigError(key: r.keyPath("retention"), problem: "'\(text)' is neither a duration nor a size",
                                  fix: "write a duration such as 7d, 12h or 90m, or a size such as 10GB or 512MB")
            }
            guard kind == .auditLog else {
                throw ConfigError(key: r.keyPath("retention"), problem: "is for the audit_log source only",
                                  fix: "remove it: the replication source keeps its log for replay in an archive sink (`kind: archive, retention: 7d`)")
            }
            guard !source.prune else {
                throw ConfigError(key: r.keyPath("retention"), problem: "and source.prune disagree: prune deletes rows as soon as every consumer "
                                    + "passed them, retention keeps them for replay", fix: "keep one: remove source.prune, or source.retention")
            }
            if let size {
                guard size >= 1 << 20 else {
                    throw ConfigError(key: r.keyPath("retention"), problem: "\(text) is below 1MB", fix: "use a size such as 10GB or 512MB")
                }
                source.retentionSize = size
            } else {
                guard retention >= .seconds(60) else {
                    throw ConfigError(key: r.keyPath("retention"), problem: "is below 1m", fix: "use a duration such as 7d or 12h")
                }
                source.retention = retention
            }
        }
        source.notify = try r.bool("notify", default: source.notify)
        source.idleBackoff = try IdleBackoff.parse(&r, kind: kind, pollInterval: source.pollInterval)
        source.snapshot = try r.choice("snapshot", default: source.snapshot)
        source.snapshotChunkSize = try r.int("snapshot_chunk_size", default: source.snapshotChunkSize, range: 1...1_000_000)
        source.outbox = try OutboxTable.parse(&r)
        // Captured implicitly: the installers (trigger, publication) and readers need nothing else.
        for outbox in source.outbox where !tables.contains(outbox.table) { tables.append(outbox.table) }
        source.tables = tables
        source.replication = try ReplicationSettings.parse(&r, tables: tables)
        return source
    }

    /// `format`, a key every sink has (next to `tables`, `ops` and `where`); only sinks that write whole
    /// events can write another envelope (`SinkSettings.refusal(of:)`).
    private static func parseFormat(_ r: inout ConfigReader, sink: SinkConfig) throws(ConfigError) -> EventFormat {
        let format: EventFormat = try r.choice("format", default: .spillway)
        guard format != .spillway else { return format }
        if let refusal = sink.settings.refusal(of: format) {
            throw ConfigError(key: r.keyPath("format"), problem: refusal.problem, fix: refusal.fix)
        }
        return format
    }

    private static func parseSink(_ r: inout ConfigReader, consumer: String, source: SourceConfig,
                                  environment: [String: String], sinkKinds: [any SinkSettings.Type]) throws(ConfigError) -> SinkConfig {
        let names = sinkKinds.map { $0.kind }
        let kindNames = names.count > 1 ? names.dropLast().joined(separator: ", ") + " or " + names[names.count - 1] : names.joined()
        let name = try r.string("name", fix: "give the sink a name, e.g. `name: out`")
        let kind = try r.string("kind", fix: "set kind: \(kindNames)")
        var filter = EventFilter()
        if let tables = try r.stringList("tables") {
            for (index, text) in tables.enumerated() {
                if let pattern = TablePattern(parsing: text) {
                    filter.tables.insert(pattern)
                } else {
                    filter.tables.insert(try parseTable(text, key: "\(r.keyPath("tables"))[\(index)]"))
                }
            }
        }
        if let ops = try r.stringList("ops") {
            for (index, text) in ops.enumerated() {
                guard let op = ChangeEvent.Operation(rawValue: text) else {
                    throw ConfigError(key: "\(r.keyPath("ops"))[\(index)]", problem: "'\(text)' is not an operation",
                                      fix: "use insert, update, delete, truncate or message")
                }
                filter.operations.insert(op)
            }
        }
        if let text = try r.optionalString("where") {
            do {
                filter.condition = try FilterExpression(parsing: text)
            } catch {
                throw ConfigError(key: r.keyPath("where"), problem: "column \(error.column): \(error.problem)", fix: error.fix)
            }
        }
        let tenantFallback = try TenantFallback.parse(&r)
        filter.skipsEventsWithoutTenant = tenantFallback == .skip
        guard let settingsType = sinkKinds.first(where: { $0.kind == kind }) else {
            throw ConfigError(key: r.keyPath("kind"), problem: "unknown sink kind '\(kind)'", fix: "use kind: \(kindNames)")
        }
        let context = SinkParseContext(consumer: consumer, source: source, filter: filter, environment: environment)
        var settings: any SinkSettings = try settingsType.parse(&r, context: context)
        if case .default(let value) = tenantFallback { settings = settings.fillingMissingTenant(with: value) }
        var sink = SinkConfig(name: name, filter: filter, settings: settings)
        sink.tenantFallback = tenantFallback
        return sink
    }
}

/// `source.idle_backoff`: after `after` without a change, the audit_log poller ends its session (every
/// connection, the consumer's lock included) and polls again from a new one after `poll_interval`, then
/// twice that, up to `maximum`, for as long as polls find nothing; a poll that finds changes keeps its session
/// and starts the count again. Written `idle_backoff: 5m` (the maximum; `after` 1m) or
/// `idle_backoff: {after: 30s, max: 5m}`.
public struct IdleBackoff: Sendable, Hashable {
    public var after: Duration
    public var maximum: Duration

    public init(after: Duration = .seconds(60), maximum: Duration) {
        self.after = after
        self.maximum = maximum
    }

    static func parse(_ r: inout ConfigReader, kind: SourceConfig.Kind, pollInterval: Duration) throws(ConfigError) -> IdleBackoff? {
        guard r.has("idle_backoff") else { return nil }
        let key = r.keyPath("idle_backoff")
        var backoff: IdleBackoff
        if r.node("idle_backoff")?.mapping != nil, var mapping = try r.child("idle_backoff") {
            backoff = IdleBackoff(after: try mapping.duration("after", default: .seconds(60)),
                                  maximum: try mapping.duration("max", default: .seconds(300)))
            try mapping.rejectUnknownKeys()
        } else {
            backoff = IdleBackoff(maximum: try r.duration("idle_backoff", default: .seconds(300)))
        }
        guard kind == .auditLog else {
            throw ConfigError(key: key, problem: "applies to the audit_log source only: a replication slot is read through a walsender that must stay connected",
                              fix: "remove idle_backoff, or use source.kind: audit_log")
        }
        guard backoff.maximum >= pollInterval, backoff.after >= pollInterval else {
            throw ConfigError(key: key, problem: "after and max must be at least source.poll_interval (\(pollInterval))",
                              fix: "e.g. idle_backoff: {after: 1m, max: 5m}")
        }
        return backoff
    }
}
