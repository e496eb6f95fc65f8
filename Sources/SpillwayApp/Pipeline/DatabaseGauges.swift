import Logging
import Metrics
import ServiceLifecycle
import SpillwayCore
import SpillwayPostgres

/// Reads, every `http.sample_interval`, what only the database knows — the audit_log lag in rows, the
/// slot's retained WAL and wal_status, the checkpoint's age, the snapshot's or running backfill's progress and
/// the backfill requests per state — into gauges, on a short connection of its own
/// (so a slow sample never holds up delivery). A failed sample is logged and tried again next interval: metrics
/// never stop the pipeline.
public struct DatabaseGauges: Service {
    let config: SpillwayConfig
    let logger: Logger

    public init(config: SpillwayConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    static let walStatuses = ["reserved", "extended", "unreserved", "lost"]

    public func run() async throws {
        let consumer = [("consumer", config.consumer)]
        let checkpointAge = Gauge(label: "spillway_checkpoint_age_seconds", dimensions: consumer)
        let lagRows = config.source.kind == .auditLog ? Gauge(label: "spillway_audit_log_lag_rows", dimensions: consumer) : nil
        let slot = consumer + [("slot", config.source.replication.slot)]
        let retained = config.source.kind == .replication ? Gauge(label: "spillway_replication_retained_wal_bytes", dimensions: slot) : nil
        let walStatus = config.source.kind == .replication
            ? Self.walStatuses.map { ($0, Gauge(label: "spillway_replication_slot_wal_status", dimensions: slot + [("status", $0)])) } : []
        let checkpoints = CheckpointStore(schema: config.schema).table
        // Per captured table (a bounded set): the initial snapshot's rows and estimate, and the latest backfill's.
        func tableGauges(_ label: String) -> [QualifiedName: Gauge] {
            Dictionary(uniqueKeysWithValues: config.source.tables.map { ($0, Gauge(label: label, dimensions: consumer + [("table", $0.description)])) })
        }
        let snapshotRows = tableGauges("spillway_snapshot_rows"), snapshotEstimated = tableGauges("spillway_snapshot_rows_estimated")
        let snapshotRunning = Gauge(label: "spillway_snapshot_running", dimensions: consumer)
        let backfillRows = tableGauges("spillway_backfill_rows"), backfillEstimated = tableGauges("spillway_backfill_rows_estimated")
        let backfills = BackfillStore.State.allCases.map { ($0, Gauge(label: "spillway_backfills", dimensions: consumer + [("state", $0.rawValue)])) }

        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                // A connection per sample, not one held open: the daemon's connection count stays what it was
                // before metrics (max_connections is shared with the application), at a connect per interval.
                try await PostgresConnection.withConnection(url: config.database.url, applicationName: "spillway-metrics") { connection in
                    let report = try await StatusReport.load(config: config, on: connection)
                    let age = try await connection.query(
                        "SELECT extract(epoch FROM now() - updated_at)::float8 FROM \(checkpoints) WHERE consumer = $1", [config.consumer])
                    if let seconds = age.first?[0].flatMap(Double.init) { checkpointAge.record(max(0, seconds)) }
                    lagRows?.record(report.lagRows)
                    if let bytes = report.retainedWALBytes { retained?.record(bytes) }
                    for (status, gauge) in walStatus { gauge.record(report.slotStatus == status ? 1 : 0) }
                    let snapshot = report.snapshot.flatMap { $0.backfill == nil ? $0 : nil }
                    snapshotRunning.record(snapshot.map { $0.isDone ? 0 : 1 } ?? 0)
                    for table in config.source.tables {
                        let progress = snapshot?.tables.first { $0.name == table }
                        snapshotRows[table]?.record(progress?.rows ?? 0)
                        snapshotEstimated[table]?.record(progress.map { max(report.snapshotEstimates[table] ?? 0, $0.rows) } ?? 0)
                        // The running request of the table, else its latest (requests are oldest first).
                        let requests = report.backfills.filter { $0.table == table }
                        let latest = requests.first { $0.state == .running } ?? requests.last { $0.state != .queued }
                        backfillRows[table]?.record(latest?.rows ?? 0)
                        backfillEstimated[table]?.record(latest.map { max($0.rowsEstimated, $0.rows) } ?? 0)
                    }
                    for (state, gauge) in backfills { gauge.record(report.backfills.filter { $0.state == state }.count) }
                }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("reading the lag for the metrics failed; trying again", metadata: [
                    LogKey.error: "\(error)", LogKey.retryIn: "\(config.http.sampleInterval)",
                ])
            }
            try? await sleepUnlessStopping(config.http.sampleInterval)
        }
    }
}
