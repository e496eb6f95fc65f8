import Logging
import SpillwayCore
import SpillwayPostgres
import Synchronization

/// Where a replay stands: after this row of the window (nil: at its start).
public struct ReplayPosition: SourcePosition {
    public var after: AuditLogOrdering?
    public func allowsConfirming(_ lsn: LSN) -> Bool { false }
    public var description: String { after.map { "\($0.transactionRank)/\($0.sequence)" } ?? "start" }
}

/// What a replay (of the audit table or of the archive) has acknowledged, kept across its sessions: a
/// reconnect goes on from there.
final class ReplayProgress<Position: SourcePosition>: Sendable {
    private let state: Mutex<(position: Position, events: Int)>
    init(start: Position) { state = Mutex((start, 0)) }
    var position: Position { state.withLock { $0.position } }
    var events: Int { state.withLock { $0.events } }
    func acknowledged(_ position: Position, events: Int) { state.withLock { $0 = (position, $0.events + events) } }
}

/// `spillway replay` for the audit_log source: the window's retained audit rows, in delivery order and with
/// their original ids, through the one engine, detached from the consumer (no lock, no checkpoint).
final class AuditLogReplaySource: ChangeSource, @unchecked Sendable {
    // @unchecked Sendable: `next` runs on the reader stage only and owns `reader` and `isDone`; `save` touches
    // only `progress`, which locks.
    let start: ReplayPosition
    private let reader: AuditLogReader
    private let window: AuditLogReader.ReplayWindow
    private let table: QualifiedName?
    private let progress: ReplayProgress<ReplayPosition>
    private var isDone = false

    init(config: SpillwayConfig, window: AuditLogReader.ReplayWindow, table: QualifiedName?, progress: ReplayProgress<ReplayPosition>,
         logger: Logger) async throws {
        reader = try await AuditLogReader.open(config: config, logger: logger)
        self.window = window
        self.table = table
        self.progress = progress
        start = progress.position
    }

    func next(after position: ReplayPosition, maximum: Int, wait: Duration) async throws -> SourceBatch<ReplayPosition>? {
        if isDone { return nil }
        let batch = try await reader.replay(window, after: position.after, limit: maximum)
        isDone = batch.isDone
        let events = table.map { table in batch.events.filter { $0.schema == table.schema && $0.table == table.name } } ?? batch.events
        return SourceBatch(events: events, end: ReplayPosition(after: batch.last), isProgress: true)
    }

    func save(_ position: ReplayPosition, lastEventPosition: String?, events: Int) async throws {
        progress.acknowledged(position, events: events)
    }

    func confirm(_ lsn: LSN?) async throws {}
    func maintain(isFinal: Bool) async throws {}
    func recordError(_ message: String) async {}

    func close() async {
        await reader.close()
    }
}
