import Testing
import SpillwayApp
@testable import SpillwayCore
import SpillwayKafka
import SpillwayRedis
import SpillwaySinks
import SpillwayWebhook

private let minimalYAML = """
    database:
      url: postgres://spillway:secret@localhost:5432/shop
    consumer: search-sync
    source:
      kind: audit_log
      tables: [public.products]
    sinks:
      - name: out
        kind: file
        path: changes.jsonl
    """

/// The minimal configuration with `source` and `sinks` replaced.
private func yaml(source: String = "  tables: [public.products]", sinks: String = """
      - name: out
        kind: file
        path: changes.jsonl
    """, extra: String = "") -> String {
    """
    database:
      url: postgres://localhost/shop
    source:
    \(source)
    sinks:
    \(sinks)
    \(extra)
    """
}

/// The error `SpillwayConfig.parse` throws for `text`, or nil when it parsed.
private func configError(_ text: String, environment: [String: String] = [:]) -> ConfigError? {
    do {
        _ = try SpillwayConfig.parse(yaml: text, environment: environment)
        return nil
    } catch {
        return error
    }
}

@Suite("Configuration")
struct ConfigTests {
    @Test func minimalConfigurationGetsTheDocumentedDefaults() throws {
        let config = try SpillwayConfig.parse(yaml: minimalYAML)
        #expect(config.database.url == "postgres://spillway:secret@localhost:5432/shop")
        #expect(config.database.redactedURL == "postgres://spillway:***@localhost:5432/shop")
        #expect(config.schema == "spillway")
        #expect(config.consumer == "search-sync")
        #expect(config.source.kind == .auditLog)
        #expect(config.source.tables == [QualifiedName(schema: "public", name: "products")])
        #expect(config.source.auditTable == nil)
        #expect(config.source.pollInterval == .seconds(1))
        #expect(config.source.batchSize == 1000)
        #expect(config.source.history == .include)
        #expect(config.source.prune == false)
        #expect(config.source.notify == true)
        #expect(config.log.level == .info)
        #expect(config.log.format == .text)
        #expect(config.sinks.count == 1)
        let sink = try #require(config.sinks.first)
        #expect(sink.name == "out")
        #expect(sink.kind == "file")
        #expect(sink.filter == EventFilter())
        guard let file = sink.settings as? FileSinkSettings else { Issue.record("expected a file sink"); return }
        #expect(file.path == "changes.jsonl")
        #expect(file.fsync == true)
        #expect(!file.isStandardOutput)
    }

    @Test func consumerDefaultsToSpillway() throws {
        #expect(try SpillwayConfig.parse(yaml: yaml()).consumer == "spillway")
    }

    @Test func everySettingCanBeSet() throws {
        let config = try SpillwayConfig.parse(yaml: yaml(
            source: """
                  kind: audit_log
                  tables: [products, '"Sales"."Order Items"', public.products]
                  audit_table: app.audit_trail
                  poll_interval: 250ms
                  batch_size: 500
                  max_in_flight_batches: 16
                  history: skip
                  prune: true
                  notify: off
                """,
            sinks: """
                  - name: stdout
                    kind: file
                    path: "-"
                    fsync: false
                    tables: [public.products]
                    ops: [insert, delete]
                  - name: archive
                    kind: file
                    path: /var/lib/spillway/archive.jsonl
                """,
            extra: """
                schema: cdc
                consumer: search-sync
                log:
                  level: debug
                  format: json
                """))
        #expect(config.schema == "cdc")
        #expect(config.consumer == "search-sync")
        #expect(config.source.tables == [
            QualifiedName(schema: "public", name: "products"), QualifiedName(schema: "Sales", name: "Order Items"),
        ])
        #expect(config.source.auditTable == QualifiedName(schema: "app", name: "audit_trail"))
        #expect(config.source.pollInterval == .milliseconds(250))
        #expect(config.source.batchSize == 500)
        #expect(config.source.maxInFlightBatches == 16)
        #expect(config.source.history == .skip)
        #expect(config.source.prune == true)
        #expect(config.source.notify == false)
        #expect(config.log.level == .debug)
        #expect(config.log.format == .json)
        #expect(config.sinks.map(\.name) == ["stdout", "archive"])
        #expect(config.sinks[0].filter == EventFilter(
            tables: [QualifiedName(schema: "public", name: "products")], operations: [.insert, .delete]))
        guard let stdout = config.sinks[0].settings as? FileSinkSettings else { Issue.record("expected a file sink"); return }
        #expect(stdout.isStandardOutput)
        #expect(stdout.fsync == false)
    }

    @Test func singleTableMayBeWrittenWithoutAList() throws {
        let config = try SpillwayConfig.parse(yaml: yaml(source: "  tables: products"))
        #expect(config.source.tables == [QualifiedName(schema: "public", name: "products")])
    }

    @Test func tildeAndEmptyValuesMeanTheDefault() throws {
        let config = try SpillwayConfig.parse(yaml: yaml(
            source: "  tables: [products]\n  poll_interval: ~\n  batch_size:\n  notify: ~",
            extra: "consumer:"))
        #expect(config.consumer == "spillway")
        #expect(config.source.pollInterval == .seconds(1))
        #expect(config.source.batchSize == 1000)
        #expect(config.source.notify == true)
    }

    /// YAML's `null` (also `Null`, `NULL`) is the same as `~`: no value, so the default applies.
    @Test(arguments: ["null", "Null", "NULL"])
    func yamlNullMeansTheDefault(null: String) throws {
        let withConsumer = try SpillwayConfig.parse(yaml: yaml(extra: "consumer: \(null)"))
        #expect(withConsumer.consumer == "spillway")
        let withAuditTable = try SpillwayConfig.parse(yaml: yaml(source: "  tables: [products]\n  audit_table: \(null)"))
        #expect(withAuditTable.source.auditTable == nil)
        #expect(configError(yaml(source: "  tables: [products]\n  notify: \(null)")) == nil)
    }

    @Test func quotedNullIsAString() throws {
        let config = try SpillwayConfig.parse(yaml: yaml(extra: "consumer: \"null\""))
        #expect(config.consumer == "null")
    }

    // MARK: Environment

    @Test func environmentOverridesDatabaseURL() throws {
        let config = try SpillwayConfig.parse(
            yaml: minimalYAML, environment: ["SPILLWAY_DATABASE_URL": "postgres://other:pw@db.internal/prod"])
        #expect(config.database.url == "postgres://other:pw@db.internal/prod")
    }

    @Test func environmentSuppliesAMissingDatabaseURL() throws {
        let text = """
            source: {kind: audit_log, tables: [public.products]}
            sinks: [{name: out, kind: file, path: changes.jsonl}]
            """
        let config = try SpillwayConfig.parse(yaml: text, environment: ["SPILLWAY_DATABASE_URL": "postgres://h/db"])
        #expect(config.database.url == "postgres://h/db")
    }

    @Test func emptyEnvironmentValueDoesNotOverride() throws {
        let config = try SpillwayConfig.parse(yaml: minimalYAML, environment: ["SPILLWAY_DATABASE_URL": ""])
        #expect(config.database.url == "postgres://spillway:secret@localhost:5432/shop")
    }

    // MARK: Errors

    @Test func unknownTopLevelKeySuggestsTheNearestKey() throws {
        let error = try #require(configError(minimalYAML + "\nconsumr: other\n"))
        #expect(error.key == "consumr")
        #expect(error.problem == "unknown key")
        #expect(error.fix == "did you mean 'consumer'? known keys here: consumer, database, ha, http, log, schema, sinks, source")
        #expect(error.description
            == "config key 'consumr': unknown key. Fix: did you mean 'consumer'? known keys here: consumer, database, ha, http, log, schema, sinks, source")
    }

    @Test func unknownKeyFarFromAnyKnownKeyGetsNoSuggestion() throws {
        let error = try #require(configError(minimalYAML + "\ncolour: blue\n"))
        #expect(error.key == "colour")
        #expect(error.fix == "known keys here: consumer, database, ha, http, log, schema, sinks, source")
    }

    @Test func unknownNestedKeySuggestsTheNearestKey() throws {
        let error = try #require(configError(yaml(source: "  tables: [public.products]\n  pol_interval: 5s")))
        #expect(error.key == "source.pol_interval")
        #expect(error.problem == "unknown key")
        #expect(error.fix == """
            did you mean 'poll_interval'? known keys here: audit_table, batch_size, heartbeat, history, idle_backoff, kind, mask_key, \
            max_in_flight_batches, max_retained_wal, messages, notify, outbox, poll_interval, prune, publication, retention, slot, snapshot, snapshot_chunk_size, tables, tenant_column, tenant_columns
            """)
    }

    @Test func unknownKeysInOtherSectionsNameTheirPath() throws {
        #expect(configError(yaml(extra: "log:\n  levl: debug"))?.key == "log.levl")
        #expect(configError(yaml(sinks: "  - name: out\n    kind: file\n    path: x\n    fsynk: false"))?.key
            == "sinks[0].fsynk")
        let database = try #require(configError("""
            database:
              url: postgres://h/db
              password: x
            source: {tables: [products]}
            sinks: [{name: out, kind: file, path: x}]
            """))
        #expect(database.key == "database.password")
    }

    @Test func missingDatabaseURL() throws {
        let text = """
            source: {tables: [public.products]}
            sinks: [{name: out, kind: file, path: changes.jsonl}]
            """
        let error = try #require(configError(text))
        #expect(error.key == "database.url")
        #expect(error.problem == "is required")
        #expect(error.fix.contains("SPILLWAY_DATABASE_URL"))
        #expect(error.fix.contains("database.url"))
        #expect(configError("database:\n  url: \"\"\n" + text)?.key == "database.url")
    }

    @Test func missingSource() throws {
        let error = try #require(configError("""
            database: {url: postgres://h/db}
            sinks: [{name: out, kind: file, path: changes.jsonl}]
            """))
        #expect(error.key == "source")
        #expect(error.problem == "is required")
        #expect(error.fix.contains("tables"))
    }

    @Test(arguments: ["  tables: []", "  kind: audit_log"])
    func sourceNeedsTables(source: String) throws {
        let error = try #require(configError(yaml(source: source)))
        #expect(error.key == "source.tables")
        #expect(error.problem == "needs at least one table")
        #expect(error.fix.contains("tables: [public.products]"))
    }

    @Test(arguments: [
        ("[public.products, a.b.c]", "source.tables[1]", "'a.b.c' is not a table name"),
        ("[\"bad name\"]", "source.tables[0]", "'bad name' is not a table name"),
        ("[public.]", "source.tables[0]", "'public.' is not a table name"),
    ])
    func badTableName(tables: String, key: String, problem: String) throws {
        let error = try #require(configError(yaml(source: "  tables: \(tables)")))
        #expect(error.key == key)
        #expect(error.problem == problem)
        #expect(error.fix.contains("schema.table"))
    }

    @Test func badAuditTableName() throws {
        let error = try #require(configError(yaml(source: "  tables: [products]\n  audit_table: a.b.c")))
        #expect(error.key == "source.audit_table")
    }

    @Test(arguments: ["soon", "5 minutes", "-1s", "1d", "ms"])
    func badDuration(text: String) throws {
        let error = try #require(configError(yaml(source: "  tables: [products]\n  poll_interval: \(text)")))
        #expect(error.key == "source.poll_interval")
        #expect(error.problem == "'\(text)' is not a duration")
        #expect(error.fix.contains("500ms"))
    }

    @Test func pollIntervalBelowTenMilliseconds() throws {
        let error = try #require(configError(yaml(source: "  tables: [products]\n  poll_interval: 5ms")))
        #expect(error.key == "source.poll_interval")
        #expect(error.problem == "is below 10ms")
    }

    /// A duration too large for `Duration.milliseconds(Int64)` must be a config error, not a crash.
    @Test func hugeDurationIsAnErrorNotACrash() async {
        await #expect(processExitsWith: .success) {
            let error = configError("""
                database: {url: postgres://h/db}
                source: {tables: [products], poll_interval: 1e300s}
                sinks: [{name: out, kind: file, path: x}]
                """)
            precondition(error?.key == "source.poll_interval", "a 1e300s poll interval was accepted")
        }
    }

    @Test(arguments: ["0", "100001", "-5", "ten", "1.5"])
    func batchSizeOutOfRange(text: String) throws {
        let error = try #require(configError(yaml(source: "  tables: [products]\n  batch_size: \(text)")))
        #expect(error.key == "source.batch_size")
        #expect(error.problem == "'\(text)' is not a whole number in 1...100000")
        #expect(error.fix == "set it to a number such as 1000")
    }

    @Test func batchesInFlightDefaultToFourAndStayWithinOneToSixtyFour() throws {
        #expect(try SpillwayConfig.parse(yaml: yaml(source: "  tables: [products]")).source.maxInFlightBatches == 4)
        // Events in flight: the batches, plus one whole snapshot chunk while a snapshot is configured.
        #expect(try SpillwayConfig.parse(yaml: yaml(source: "  tables: [products]\n  batch_size: 100")).source.inFlightEventLimit == 400)
        #expect(try SpillwayConfig.parse(yaml: yaml(source: "  tables: [products]\n  batch_size: 100\n  snapshot: initial\n  snapshot_chunk_size: 700"))
            .source.inFlightEventLimit == 1100)
        #expect(try SpillwayConfig.parse(yaml: yaml(source: "  tables: [products]\n  max_in_flight_batches: 1")).source.maxInFlightBatches == 1)
        for text in ["0", "65"] {
            let error = try #require(configError(yaml(source: "  tables: [products]\n  max_in_flight_batches: \(text)")))
            #expect(error.key == "source.max_in_flight_batches")
            #expect(error.problem == "'\(text)' is not a whole number in 1...64")
        }
    }

    @Test(arguments: [1, 100_000])
    func batchSizeBounds(size: Int) throws {
        let config = try SpillwayConfig.parse(yaml: yaml(source: "  tables: [products]\n  batch_size: \(size)"))
        #expect(config.source.batchSize == size)
    }

    @Test func badBoolean() throws {
        let error = try #require(configError(yaml(source: "  tables: [products]\n  prune: maybe")))
        #expect(error.key == "source.prune")
        #expect(error.problem == "'maybe' is not true or false")
    }

    @Test func badHistoryChoice() throws {
        let error = try #require(configError(yaml(source: "  tables: [products]\n  history: all")))
        #expect(error.key == "source.history")
        #expect(error.problem == "'all' is not one of include, skip")
        #expect(error.fix == "use one of include, skip")
    }

    @Test func badLogLevel() throws {
        let error = try #require(configError(yaml(extra: "log: {level: verbose}")))
        #expect(error.key == "log.level")
        #expect(error.problem == "'verbose' is not one of trace, debug, info, notice, warning, error, critical")
    }

    @Test func badSchemaName() throws {
        let error = try #require(configError(yaml(extra: "schema: My-Schema")))
        #expect(error.key == "schema")
        #expect(error.problem == "'My-Schema' is not a plain identifier")
    }

    @Test func duplicateSinkNames() throws {
        let error = try #require(configError(yaml(sinks: """
              - {name: out, kind: file, path: a.jsonl}
              - {name: other, kind: file, path: b.jsonl}
              - {name: out, kind: file, path: c.jsonl}
            """)))
        #expect(error.key == "sinks[2].name")
        #expect(error.problem == "sink name 'out' is used twice")
        #expect(error.fix == "give every sink its own name")
    }

    @Test func unknownSinkKind() throws {
        let error = try #require(configError(yaml(sinks: "  - {name: out, kind: pigeon, topic: changes}")))
        #expect(error.key == "sinks[0].kind")
        #expect(error.problem == "unknown sink kind 'pigeon'")
        #expect(error.fix == "use kind: file, kafka, webhook, redis, notify, refresh or archive")
    }

    @Test func missingSinkPath() throws {
        let error = try #require(configError(yaml(sinks: "  - {name: out, kind: file}")))
        #expect(error.key == "sinks[0].path")
        #expect(error.problem == "is required")
        #expect(error.fix.contains("\"-\" for standard output"))
    }

    @Test func missingSinkNameAndKind() throws {
        #expect(configError(yaml(sinks: "  - {kind: file, path: x}"))?.key == "sinks[0].name")
        #expect(configError(yaml(sinks: "  - {name: out, path: x}"))?.key == "sinks[0].kind")
    }

    @Test func sinksAreRequired() throws {
        let error = try #require(configError("database: {url: postgres://h/db}\nsource: {tables: [products]}\n"))
        #expect(error.key == "sinks")
        #expect(error.problem == "needs at least one sink")
        #expect(configError("database: {url: postgres://h/db}\nsource: {tables: [products]}\nsinks: []\n")?.key
            == "sinks")
    }

    @Test func badOperationFilter() throws {
        let error = try #require(configError(yaml(sinks: "  - {name: out, kind: file, path: x, ops: [insert, upsert]}")))
        #expect(error.key == "sinks[0].ops[1]")
        #expect(error.problem == "'upsert' is not an operation")
        #expect(error.fix == "use insert, update, delete, truncate or message")
    }

    @Test func badSinkTableFilter() throws {
        let error = try #require(configError(yaml(sinks: "  - {name: out, kind: file, path: x, tables: [a.b.c]}")))
        #expect(error.key == "sinks[0].tables[0]")
    }

    @Test func replicationSourceDefaultsNameSlotAndPublicationAfterTheConsumer() throws {
        let config = try SpillwayConfig.parse(yaml: yaml(source: "  kind: replication\n  tables: [products]"))
        #expect(config.source.kind == .replication)
        #expect(config.source.replication.slot == "spillway_\(config.consumer.replacingOccurrences(of: "-", with: "_"))")
        #expect(config.source.replication.publication == config.source.replication.slot)
        #expect(config.source.replication.heartbeat == .seconds(10))
        #expect(config.source.replication.maxRetainedWALBytes == 1 << 30)
        #expect(config.source.replication.messages)
    }

    @Test func replicationSettingsParseAndValidate() throws {
        let config = try SpillwayConfig.parse(yaml: yaml(source: """
              kind: replication
              tables: [public.products]
              slot: my_slot
              publication: my_pub
              heartbeat: 250ms
              max_retained_wal: 512MB
              tenant_column: org_id
              tenant_columns: {public.products: tenant}
            """))
        #expect(config.source.replication.slot == "my_slot")
        #expect(config.source.replication.publication == "my_pub")
        #expect(config.source.replication.heartbeat == .milliseconds(250))
        #expect(config.source.replication.maxRetainedWALBytes == 512 << 20)
        #expect(config.source.replication.tenantColumn == "org_id")
        #expect(config.source.replication.tenantColumns == ["public.products": "tenant"])
        #expect(configError(yaml(source: "  kind: replication\n  tables: [products]\n  slot: Bad-Slot"))?.key == "source.slot")
        #expect(configError(yaml(source: "  kind: replication\n  tables: [products]\n  max_retained_wal: lots"))?.key
            == "source.max_retained_wal")
        #expect(configError(yaml(source: "  kind: replication\n  tables: [products]\n  tenant_columns: {public.other: t}"))?.key
            == "source.tenant_columns.public.other")
    }

    @Test func unknownSourceKind() throws {
        let error = try #require(configError(yaml(source: "  kind: triggers\n  tables: [products]")))
        #expect(error.key == "source.kind")
        #expect(error.problem == "'triggers' is not one of audit_log, replication")
    }

    @Test func invalidYAML() throws {
        let error = try #require(configError("database: {url: postgres://h/db\nsource: [unclosed\n"))
        #expect(error.key == "(document)")
        #expect(error.problem.hasPrefix("not valid YAML: "))
        #expect(error.fix == "correct the YAML syntax")
    }

    @Test(arguments: ["", "\n\n", "# only a comment\n"])
    func emptyDocument(text: String) throws {
        let error = try #require(configError(text))
        #expect(error.key == "(document)")
        #expect(error.problem == "the file is empty")
    }

    @Test func documentThatIsNotAMapping() throws {
        let error = try #require(configError("- just\n- a list\n"))
        #expect(error.key == "(document)")
        #expect(error.problem == "expected a mapping of keys to values")
    }

    @Test func sectionThatIsNotAMapping() throws {
        let error = try #require(configError("""
            database: postgres://h/db
            source: {tables: [products]}
            sinks: [{name: out, kind: file, path: x}]
            """))
        #expect(error.key == "database")
        #expect(error.problem == "expected a mapping of keys to values")
    }
}

@Suite("Durations")
struct DurationTextTests {
    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)),
        ("2s", .seconds(2)),
        ("1.5s", .milliseconds(1500)),
        ("5m", .seconds(300)),
        ("1h", .seconds(3600)),
        ("10", .seconds(10)),
        ("0.25", .milliseconds(250)),
        (" 2s ", .seconds(2)),
        ("0", .zero),
        ("0ms", .zero),
    ])
    func parses(text: String, duration: Duration) {
        #expect(DurationText.parse(text) == duration)
    }

    @Test(arguments: ["", "soon", "-1s", "-1", "1d", "ms", "s", "1 s", "nan", "infs", "inf", "1.2.3s"])
    func rejects(text: String) {
        #expect(DurationText.parse(text) == nil)
    }

    /// `Duration.milliseconds(Int64(...))` traps for values past Int64: the parser must reject them instead.
    @Test func hugeValuesAreRejectedNotACrash() async {
        await #expect(processExitsWith: .success) {
            precondition(DurationText.parse("1e300s") == nil, "1e300s was accepted")
            precondition(DurationText.parse("9999999999999999h") == nil, "9999999999999999h was accepted")
        }
    }
}

@Suite("Pooled endpoints")
struct PooledEndpointTests {
    static func yaml(kind: String, url: String) -> String {
        """
        database: {url: "\(url)"}
        source: {kind: \(kind), tables: [public.products]}
        sinks: [{name: out, kind: file, path: "-"}]
        """
    }

    @Test func replicationRefusesANeonPoolerHost() {
        for url in ["postgres://u:p@ep-cool-dawn-123-pooler.us-east-2.aws.neon.tech/db?sslmode=require",
                    "host=ep-x-POOLER.eu-central-1.aws.neon.tech dbname=db"] {
            #expect {
                _ = try SpillwayConfig.parse(yaml: Self.yaml(kind: "replication", url: url))
            } throws: { error in
                guard let error = error as? ConfigError else { return false }
                return error.key == "database.url" && error.problem.contains("pooled endpoint") && error.fix.contains("without -pooler")
            }
        }
    }

    @Test func auditLogAndDirectHostsAreFine() throws {
        _ = try SpillwayConfig.parse(yaml: Self.yaml(kind: "audit_log", url: "postgres://u@ep-x-pooler.us-east-2.aws.neon.tech/db"))
        _ = try SpillwayConfig.parse(yaml: Self.yaml(kind: "replication", url: "postgres://u@ep-x.us-east-2.aws.neon.tech/db"))
    }
}

@Suite("source.idle_backoff")
struct IdleBackoffConfigTests {
    static func yaml(kind: String = "audit_log", _ backoff: String) -> String {
        """
        database: {url: "postgres://h/db"}
        source: {kind: \(kind), tables: [public.products], poll_interval: 200ms, idle_backoff: \(backoff)}
        sinks: [{name: out, kind: file, path: "-"}]
        """
    }

    @Test func bothSpellings() throws {
        #expect(try SpillwayConfig.parse(yaml: Self.yaml("5m")).source.idleBackoff == IdleBackoff(after: .seconds(60), maximum: .seconds(300)))
        #expect(try SpillwayConfig.parse(yaml: Self.yaml("{after: 30s, max: 2m}")).source.idleBackoff
                == IdleBackoff(after: .seconds(30), maximum: .seconds(120)))
        let plain = try SpillwayConfig.parse(yaml: Self.yaml("5m").replacingOccurrences(of: ", idle_backoff: 5m", with: ""))
        #expect(plain.source.idleBackoff == nil, "off by default")
    }

    @Test(arguments: [
        ("audit_log", "{after: 30s, mx: 2m}", "source.idle_backoff.mx", "unknown key"),
        ("audit_log", "100ms", "source.idle_backoff", "at least source.poll_interval"),
        ("audit_log", "{after: 50ms}", "source.idle_backoff", "at least source.poll_interval"),
        ("replication", "5m", "source.idle_backoff", "audit_log source only"),
    ])
    func errorsNameTheKey(kind: String, backoff: String, key: String, problem: String) {
        #expect {
            _ = try SpillwayConfig.parse(yaml: Self.yaml(kind: kind, backoff))
        } throws: { error in
            guard let error = error as? ConfigError else { return false }
            return error.key == key && error.problem.contains(problem)
        }
    }
}

@Suite("source.retention and source.snapshot")
struct RetentionAndSnapshotConfigTests {
    @Test func retentionParsesDaysAndIsAuditLogOnly() throws {
        let config = try SpillwayConfig.parse(yaml: yaml(source: "  tables: [public.products]\n  retention: 7d"))
        #expect(config.source.retention == .seconds(7 * 86_400))
        #expect(try SpillwayConfig.parse(yaml: yaml()).source.retention == nil)
        #expect(config.source.retentionSize == nil && config.source.deletesDeliveredRows)
        #expect(!(try SpillwayConfig.parse(yaml: yaml()).source.deletesDeliveredRows))
    }

    @Test func retentionTakesASize() throws {
        let config = try SpillwayConfig.parse(yaml: yaml(source: "  tables: [public.products]\n  retention: 10GB"))
        #expect(config.source.retentionSize == 10 << 30)
        #expect(config.source.retention == nil, "a size bound is not an age")
        #expect(config.source.deletesDeliveredRows)
        #expect(try SpillwayConfig.parse(yaml: yaml(source: "  tables: [public.products]\n  retention: 512MB")).source.retentionSize == 512 << 20)
    }

    @Test("bad retention settings name the key", arguments: [
        ("  kind: replication\n  tables: [public.products]\n  retention: 7d", "for the audit_log source only"),
        ("  tables: [public.products]\n  prune: true\n  retention: 7d", "source.prune disagree"),
        ("  tables: [public.products]\n  retention: 30s", "is below 1m"),
        ("  tables: [public.products]\n  retention: a week", "is neither a duration nor a size"),
        ("  tables: [public.products]\n  retention: 512KB", "is below 1MB"),
        ("  kind: replication\n  tables: [public.products]\n  retention: 10GB", "for the audit_log source only"),
    ])
    func badRetention(source: String, problem: String) throws {
        let error = try #require(configError(yaml(source: source)))
        #expect(error.key == "source.retention")
        #expect(error.problem.contains(problem), "\(error)")
    }

    @Test func snapshotSettings() throws {
        let config = try SpillwayConfig.parse(yaml: yaml(source: "  tables: [public.products]\n  snapshot: initial\n  snapshot_chunk_size: 200"))
        #expect(config.source.snapshot == .initial && config.source.snapshotChunkSize == 200)
        #expect(try SpillwayConfig.parse(yaml: yaml()).source.snapshot == .never)
        let bad = try #require(configError(yaml(source: "  tables: [public.products]\n  snapshot: always")))
        #expect(bad.key == "source.snapshot")
        let size = try #require(configError(yaml(source: "  tables: [public.products]\n  snapshot_chunk_size: 0")))
        #expect(size.key == "source.snapshot_chunk_size")
    }
}
