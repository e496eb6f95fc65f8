import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SpillwayApp
import SpillwayCore
import SpillwayHTTP
import SpillwayPostgres

@main
struct Spillway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spillway",
        abstract: "Change data capture for PostgreSQL: every committed change, to every sink, at least once.",
        subcommands: [Install.self, Run.self, Check.self, Status.self, Backfill.self, Replay.self, Checkpoint.self, Reset.self, Uninstall.self, DeadLetters.self, Demo.self]
    )
}

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "The YAML configuration file.")
    var config: String = "spillway.yaml"

    func load() throws -> SpillwayConfig {
        try ConfigLoader.load(path: config)
    }
}

/// Runs a command body and turns errors into a message on standard error and an exit code: 2 for
/// configuration problems, 1 for everything else.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ConfigError {
        // Errors found after parsing (http.address taken) name the variable an override came from, too.
        let overrides = (try? EnvironmentOverrides.overrides(in: ProcessInfo.processInfo.environment)) ?? []
        FileHandle.standardError.write(Data("spillway: \(EnvironmentOverrides.attribute(error, to: overrides))\n".utf8))
        throw ExitCode(2)
    } catch let error as ExitCode {
        throw error
    } catch {
        FileHandle.standardError.write(Data("spillway: \(error)\n".utf8))
        throw ExitCode(1)
    }
}

func makeLogger(_ config: LogConfig) -> Logger {
    LoggingSetup.bootstrap(config)
    return Logger(label: "spillway")
}

struct Install: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create (idempotently) Spillway's schema, audit table or adoption, triggers and checkpoint row.")
    @OptionGroup var options: ConfigOption

    func run() async throws {
        try await reportingErrors {
            let config = try options.load()
            let logger = makeLogger(config.log)
            // Fail fast: an installer that retries hides a wrong URL.
            let report = try await PostgresConnection.withConnection(url: config.database.url, applicationName: "spillway-install") {
                connection in
                switch config.source.kind {
                case .auditLog: try await AuditLogInstaller(config: config, logger: logger).install(on: connection)
                case .replication: try await ReplicationInstaller(config: config, logger: logger).install(on: connection)
                }
            }
            let audit = AuditLogSchema(config: config).auditTable
            if config.source.kind == .replication {
                let settings = config.source.replication
                print("publication \(settings.publication) for \(config.source.tables.map(\.description).joined(separator: ", ")); slot \(settings.slot)")
            } else {
                print(report.adoptedAuditTable
                      ? "adopted audit table \(audit) (\(report.historyRows) history rows kept)"
                      : "audit table \(audit) \(report.createdAuditTable ? "created" : "already installed")")
            }
            if !report.triggeredTables.isEmpty {
                print("capture triggers on: \(report.triggeredTables.map(\.description).joined(separator: ", "))")
            }
            if !report.tablesWithOwnTrigger.isEmpty {
                print("already audited by their own trigger: \(report.tablesWithOwnTrigger.map(\.description).joined(separator: ", "))")
            }
            for warning in report.warnings { print("warning: \(warning)") }
            print("consumer '\(config.consumer)' registered in \(config.schema).checkpoints")
        }
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stream changes to the sinks until SIGINT/SIGTERM; then finish the batch in flight, checkpoint and exit 0.")
    @OptionGroup var options: ConfigOption
    @Flag(help: "Deliver what has committed so far, then exit.")
    var once = false

    func run() async throws {
        try await reportingErrors {
            // Past a file-size limit (`ulimit -f`) the kernel would kill the process mid-write; ignored, the write
            // fails with EFBIG instead, and the file sink reports it and retries like any other failure.
            signal(SIGXFSZ, SIG_IGN)
            let config = try options.load()
            let logger = makeLogger(config.log)
            let routes = try await SinkFactory.makeRoutes(config)
            // `--once` is a batch job: nothing to probe or scrape, and many may run at once on one host.
            let address = once ? nil : config.http.address
            let registry = address.map { _ in
                MetricsExport.bootstrap(durationBuckets: [PipelineMonitor.commitToAckLabel: PipelineMonitor.commitToAckBuckets])
            }
            let monitor = PipelineMonitor(config: config)
            let pipeline = PipelineFactory.make(config, fanout: Fanout(routes: routes, logger: logger, monitor: monitor),
                                                options: .init(once: once), logger: logger)
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
            if let address, let registry {
                let server = StatusServer(address: address, isRequired: config.http.isAddressExplicit, logger: logger) { path in
                    switch path {
                    case "/healthz":
                        let answer = monitor.liveness()
                        return StatusResponse(status: answer.isOK ? .ok : .serviceUnavailable, body: answer.body)
                    case "/readyz":
                        let answer = monitor.readiness()
                        return StatusResponse(status: answer.isOK ? .ok : .serviceUnavailable, body: answer.body)
                    case "/metrics":
                        return StatusResponse(status: .ok, contentType: MetricsExport.contentType, body: MetricsExport.render(registry))
                    default:
                        return StatusResponse(status: .notFound, body: "not found: try /healthz, /readyz or /metrics\n")
                    }
                }
                // Started first, so stopped last: probes and scrapes see the pipeline to its end.
                services.append(.init(service: server, failureTerminationBehavior: .gracefullyShutdownGroup))
                services.append(.init(service: DatabaseGauges(config: config, logger: logger),
                                      failureTerminationBehavior: .gracefullyShutdownGroup))
            }
            // The sinks are services too, closed by the group after the pipeline drained (SinkService).
            services += ServiceGroupConfiguration.ServiceConfiguration.consumer(pipeline: pipeline, routes: routes)
            let group = ServiceGroup(configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
            do {
                try await group.run()
            } catch {
                throw Self.unwrap(error)
            }
        }
    }

    /// ServiceGroup wraps a service's error; the user wants the service's own message.
    static func unwrap(_ error: any Error) -> any Error {
        if let error = error as? ServiceGroupError, let cause = Mirror(reflecting: error).descendant("underlyingError") as? any Error {
            return cause
        }
        return error
    }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate the config (every problem at once), then connect to the database and every sink and report what would fail.",
        discussion: "Changes nothing. Exit 0 when all is well, 2 when the config itself has problems, 1 when a check against the database or a sink fails.")
    @OptionGroup var options: ConfigOption

    func run() async throws {
        let (parsed, problems) = ConfigCheck.validate(path: options.config, environment: ProcessInfo.processInfo.environment)
        guard let config = parsed, problems.isEmpty else {
            for problem in problems { print(ConfigCheck.Finding(problem)) }
            print("\(problems.count) configuration problem\(problems.count == 1 ? "" : "s") in \(options.config); nothing was checked against servers")
            throw ExitCode(2)
        }
        print("ok     config: \(options.config) is valid (\(config.source.kind.rawValue), \(config.sinks.count) sink\(config.sinks.count == 1 ? "" : "s"))")
        let findings = await ConfigCheck.probe(config)
        for finding in findings { print(finding) }
        let failed = findings.filter { !$0.isOK }.count
        guard failed == 0 else {
            print("\(failed) check\(failed == 1 ? "" : "s") failed")
            throw ExitCode(1)
        }
        print("all checks passed")
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the consumer's position, lag and last error.")
    @OptionGroup var options: ConfigOption
    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        try await reportingErrors {
            let config = try options.load()
            let report = try await PostgresConnection.withConnection(url: config.database.url, applicationName: "spillway-status") {
                try await StatusReport.load(config: config, on: $0)
            }
            print(json ? JSONEncoding.string(report.json) : report.text)
        }
    }
}

struct Reset: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rewind an audit_log consumer to the oldest retained audit row, to replay changes (stop `run` first).")
    @OptionGroup var options: ConfigOption

    func run() async throws {
        try await reportingErrors {
            let config = try options.load()
            guard config.source.kind == .auditLog else {
                // Clearing the checkpoint would only claim a replay: the slot has confirmed those changes and a
                // logical slot never sends confirmed changes again.
                throw ConfigError(key: "source.kind",
                                  problem: "`reset` replays from the audit table; a replication slot cannot rewind (PostgreSQL "
                                      + "never resends changes a slot confirmed), so there is nothing to replay from",
                                  fix: "rebuild what the consumer feeds from the tables themselves; nothing was changed")
            }
            let found = try await PostgresConnection.withConnection(url: config.database.url, applicationName: "spillway-reset") {
                connection in
                let lock = try await connection.query("SELECT pg_try_advisory_lock(hashtext($1))", ["spillway-consumer:\(config.consumer)"])
                guard lock.first?[0] == "t" else {
                    throw FatalError("consumer '\(config.consumer)' is running; stop it before resetting")
                }
                return try await CheckpointStore(schema: config.schema)
                    .reset(consumer: config.consumer, includingHistory: config.source.history == .include, on: connection)
            }
            guard found else {
                throw ConfigError(key: "consumer", problem: "consumer '\(config.consumer)' is not installed",
                                  fix: "run `spillway install --config FILE` first")
            }
            print("consumer '\(config.consumer)' rewound: the next `spillway run` replays every retained change")
        }
    }
}

struct Uninstall: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove Spillway's triggers and schema (its audit table and every consumer's checkpoint).")
    @OptionGroup var options: ConfigOption
    @Flag(help: "Uninstall even when other consumers are registered.")
    var force = false

    func run() async throws {
        try await reportingErrors {
            let config = try options.load()
            let logger = makeLogger(config.log)
            try await PostgresConnection.withConnection(url: config.database.url, applicationName: "spillway-uninstall") {
                connection in
                if try await PostgresCatalog.tableExists(QualifiedName(schema: config.schema, name: "checkpoints"), on: connection) {
                    let others = try await CheckpointStore(schema: config.schema).loadAll(on: connection)
                        .map(\.consumer).filter { $0 != config.consumer }
                    if !others.isEmpty, !force {
                        throw FatalError("other consumers still read from schema '\(config.schema)': \(others.joined(separator: ", ")). "
                            + "Uninstalling removes their checkpoints and the audit rows they have not read; pass --force to do it anyway")
                    }
                }
                switch config.source.kind {
                case .auditLog: try await AuditLogInstaller(config: config, logger: logger).uninstall(on: connection)
                case .replication: try await ReplicationInstaller(config: config, logger: logger).uninstall(on: connection)
                }
            }
            print("removed Spillway's triggers and schema '\(config.schema)'")
        }
    }
}

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a throwaway PostgreSQL, capture a few changes of a products table, print them, and clean up.")
    @Flag(help: "Leave the throwaway cluster running (its URL is printed).")
    var keepCluster = false
    @Option(help: "A YAML config whose sinks replace the demo's standard-output sink (its database and source are not used).")
    var config: String?

    func run() async throws {
        try await reportingErrors {
            let logger = makeLogger(LogConfig(level: .warning))
            let sinks = try config.map { try ConfigLoader.load(path: $0).sinks }
            try await SpillwayApp.Demo.run(logger: logger, keepCluster: keepCluster, sinks: sinks)
        }
    }
}
