import Foundation
import SpillwayCore
import SpillwayPostgres
import Testing

/// What one test started — `spillway` processes, connections, servers, its database — released when the
/// test ends, however it ends: a failed `#require` throws past the test's last lines, and a daemon left
/// running would keep its replication slot and its database alive for the rest of the run.
final class TestScope: @unchecked Sendable {
    // @unchecked Sendable: the lists are only touched under `lock`.
    @TaskLocal static var current: TestScope?

    private let lock = NSLock()
    private var processes: [SpillwayProcess] = []
    private var cleanups: [@Sendable () async -> Void] = []

    /// Called by `SpillwayProcess.init`: the process is SIGKILLed at the end of the scope if still running.
    func adopt(_ process: SpillwayProcess) {
        lock.withLock { processes.append(process) }
    }

    /// Runs `cleanup` when the scope ends, after the processes are gone; the last registered runs first.
    func onExit(_ cleanup: @escaping @Sendable () async -> Void) {
        lock.withLock { cleanups.append(cleanup) }
    }

    /// Kills what is still running, then runs the cleanups in reverse order of registration.
    func release() async {
        let (running, actions) = lock.withLock {
            defer { processes = []; cleanups = [] }
            return (processes, cleanups)
        }
        for process in running where process.process.isRunning {
            process.signal(SIGKILL)
            process.process.waitUntilExit()
        }
        for action in actions.reversed() { await action() }
    }
}

/// Runs `body` in a `TestScope` and always releases it, also when `body` throws.
func withTestScope<T>(_ body: (TestScope) async throws -> T) async throws -> T {
    let scope = TestScope()
    return try await TestScope.$current.withValue(scope) {
        do {
            let result = try await body(scope)
            await scope.release()
            return result
        } catch {
            await scope.release()
            throw error
        }
    }
}

/// A test database of its own for `body`: every `spillway` process started inside is killed, and the
/// database (with its replication slots and connections) dropped, when `body` returns or throws.
func withTestDatabase<T>(_ label: String = #function, _ body: (TestDatabase) async throws -> T) async throws -> T {
    try await withTestScope { scope in
        let db = try await TestDatabase.create(label)
        scope.onExit { await db.drop() }
        return try await body(db)
    }
}

/// Which source a parameterized test reads from.
enum SourceKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case auditLog = "audit_log"
    case replication

    var testDescription: String { rawValue }

    /// What `run` logs once it streams (signal handlers are installed by then).
    var streamingLog: String { self == .replication ? "replication started" : "reading" }

    /// The separator in an event's `position`: audit_log `<txid>/<seq>`, replication `<commit LSN>:<index>`.
    var positionSeparator: Character { self == .replication ? ":" : "/" }
}

/// A consumer's row in `spillway.checkpoints`, read straight from the table.
struct CheckpointRow: Sendable, CustomStringConvertible {
    var position: String?
    var eventsTotal: Int
    var lsn: String?
    var batchSeq: String?

    var description: String {
        "position \(position ?? "null"), events_total \(eventsTotal), lsn \(lsn ?? "null"), batch_seq \(batchSeq ?? "null")"
    }

    static func read(consumer: String, on connection: PostgresConnection, schema: String = "spillway") async throws -> CheckpointRow {
        let result = try await connection.query(
            "SELECT position, events_total::text, lsn::text, batch_seq::text FROM \(SQLText.identifier(schema)).checkpoints WHERE consumer = $1",
            [consumer])
        let row = try #require(result.first, "consumer '\(consumer)' has no checkpoint row")
        return CheckpointRow(position: row[0], eventsTotal: Int(row[1] ?? "") ?? -1, lsn: row[2], batchSeq: row[3])
    }
}

/// Polls the JSONL sink at `path` until `condition` holds for its events (at most `timeout`); records a
/// failure on timeout. Returns the events it last read.
@discardableResult
func waitForEvents(_ path: String, timeout: Duration = .seconds(30), _ what: String,
                   until condition: ([ChangeEvent]) -> Bool) async throws -> [ChangeEvent] {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while true {
        let events = try readEvents(path, isStillWriting: true)
        if condition(events) { return events }
        if clock.now > deadline {
            Issue.record("timed out after \(timeout) waiting for \(what); the sink holds \(events.count) events")
            return events
        }
        try await Task.sleep(for: .milliseconds(20))
    }
}

/// The size of the file at `path` (0 when it does not exist): a cheap way to see a first delivery land.
func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
}

/// Waits until the file at `path` is larger than `size` bytes (a sink wrote to it), at most `timeout`.
func waitForGrowth(_ path: String, beyond size: Int, timeout: Duration = .seconds(30)) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while fileSize(path) <= size {
        guard clock.now < deadline else {
            Issue.record("\(path) did not grow beyond \(size) bytes within \(timeout)")
            return
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}

/// `ids` with every repeat of an id already seen dropped: what a consumer that de-duplicates by id keeps.
func firstDeliveries(_ events: [ChangeEvent]) -> [ChangeEvent] {
    var seen = Set<String>()
    return events.filter { seen.insert($0.id).inserted }
}

/// What a kill -9 left behind and what the restart did with it, checked against a file sink's content.
///
/// `atKill` is the file right after the kill (it may hold redeliveries of an earlier kill), `checkpoint`
/// the consumer's row then, `all` the file once the restart delivered everything. The file sink
/// acknowledges after fsync and the checkpoint moves only after every sink acknowledged, so the checkpoint
/// covers the first `events_total` distinct changes of `atKill`. The restart must redeliver every change
/// written but not checkpointed, never one the checkpoint covers, and after that each change once.
///
/// `isOrderFixed`: the replication source replays the WAL, so the redelivery is the same sequence. The
/// audit_log source resumes a checkpointed batch exactly, but a batch the killed runner had begun and not
/// yet checkpointed is read afresh from a newer snapshot, which may order its transactions differently.
func expectResumedFromCheckpoint(atKill: [ChangeEvent], checkpoint: CheckpointRow, all: [ChangeEvent], isOrderFixed: Bool,
                                 sourceLocation: SourceLocation = #_sourceLocation) throws {
    let distinct = firstDeliveries(atKill)
    let acknowledged = checkpoint.eventsTotal
    try #require(acknowledged >= 0 && acknowledged <= distinct.count,
                 "the checkpoint (\(checkpoint)) covers at most what reached the sink (\(distinct.count) changes)",
                 sourceLocation: sourceLocation)
    if acknowledged > 0 {
        #expect(checkpoint.position == distinct[acknowledged - 1].position,
                "the checkpoint's position is its last acknowledged change's: \(checkpoint)", sourceLocation: sourceLocation)
    }
    #expect(all.prefix(atKill.count).map(\.id) == atKill.map(\.id), "the sink kept what it had", sourceLocation: sourceLocation)
    let afterRestart = all.dropFirst(atKill.count).map(\.id)
    let covered = Set(distinct.prefix(acknowledged).map(\.id))
    let unacknowledged = distinct.dropFirst(acknowledged).map(\.id)
    #expect(Set(afterRestart).isSuperset(of: unacknowledged),
            "the restart redelivered all \(unacknowledged.count) changes written after the checkpoint", sourceLocation: sourceLocation)
    #expect(covered.isDisjoint(with: afterRestart), "nothing the checkpoint covers came again", sourceLocation: sourceLocation)
    #expect(Set(afterRestart).count == afterRestart.count, "after the restart, each change once", sourceLocation: sourceLocation)
    if isOrderFixed {
        #expect(Array(afterRestart.prefix(unacknowledged.count)) == unacknowledged,
                "the redelivery is the same sequence, from right after the checkpoint", sourceLocation: sourceLocation)
    }
}
