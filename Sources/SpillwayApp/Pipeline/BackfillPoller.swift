import Logging
import SpillwayCore
import SpillwayPostgres

/// Looks for the consumer's next backfill request (`spillway backfill`) while no snapshot runs, at most once a
/// second, and starts it: the sources then read its chunks like the initial snapshot's.
struct BackfillPoller {
    private let consumer: String
    private let store: BackfillStore
    private let logger: Logger
    private var nextCheck = ContinuousClock.now
    private var hasTable: Bool?

    init(config: SpillwayConfig, logger: Logger) {
        consumer = config.consumer
        store = BackfillStore(schema: config.schema)
        self.logger = logger
    }

    /// The progress to start from, or nil. `current` is the checkpoint's (done, or nil): a request it already
    /// finished, whose own row was not updated before a crash, is marked done instead of read again.
    mutating func poll(current: SnapshotProgress?, on connection: PostgresConnection) async throws -> SnapshotProgress? {
        let now = ContinuousClock.now
        guard now >= nextCheck else { return nil }
        nextCheck = now + .seconds(1)
        if hasTable == nil {
            let readable = try await store.isReadable(on: connection)
            hasTable = readable.granted
            if readable.exists, !readable.granted {
                logger.warning("backfill requests are not taken: this role cannot read and update them", metadata: [
                    "table": "\(store.table)", "fix": "GRANT SELECT, UPDATE ON \(store.table) TO the role `spillway run` uses",
                ])
            }
        }
        guard hasTable == true, let request = try await store.next(consumer: consumer, on: connection) else { return nil }
        if let current, current.backfill == request.id, current.isDone {
            try await store.record(request.id, rows: current.tables.reduce(0) { $0 + $1.rows }, done: true, on: connection)
            return nil
        }
        try await store.markRunning(request.id, on: connection)
        logger.info("backfill started", metadata: [
            "backfill": "\(request.id)", "table": "\(request.table)", "where": "\(request.filter ?? "all rows")",
        ])
        return .backfill(id: request.id, table: request.table, filter: request.filter)
    }

    /// Records a saved checkpoint's backfill progress on its request (the checkpointer's: no poller state).
    static func record(_ progress: SnapshotProgress?, config: SpillwayConfig, logger: Logger, on connection: PostgresConnection) async throws {
        guard let progress, let id = progress.backfill else { return }
        try await BackfillStore(schema: config.schema)
            .record(id, rows: progress.tables.reduce(0) { $0 + $1.rows }, done: progress.isDone, on: connection)
        if progress.isDone { logger.info("backfill done", metadata: ["backfill": "\(id)"]) }
    }
}
