import Logging
import SpillwayCore
import SpillwayPostgres
import SpillwaySinks

/// Where a replay from the archive stands: after this archive row (0: at the window's start).
public struct ArchiveReplayPosition: SourcePosition {
    public var after: Int64 = 0
    public func allowsConfirming(_ lsn: LSN) -> Bool { false }
    public var description: String { "archive seq \(after)" }
}

/// `spillway replay` for the replication source: the window's events from the archive sink's table, in the
/// order they were first delivered and with the same JSON, through the one engine, detached from the consumer.
final class ArchiveReplaySource: ChangeSource, @unchecked Sendable {
    // @unchecked Sendable: `next` runs on the reader stage only and owns `isDone`; `save` touches only
    // `progress`, which locks; the connection serialises its own calls.
    let start: ArchiveReplayPosition
    private let connection: PostgresConnection
    private let store: ArchiveStore
    private let consumer: String
    private let window: ArchiveStore.Window
    private let progress: ReplayProgress<ArchiveReplayPosition>
    private var isDone = false

    init(url: String, store: ArchiveStore, consumer: String, window: ArchiveStore.Window, progress: ReplayProgress<ArchiveReplayPosition>) async throws {
        connection = try await PostgresConnection.connect(url: url, applicationName: "spillway-replay")
        self.store = store
        self.consumer = consumer
        self.window = window
        self.progress = progress
        start = progress.position
    }

    func next(after position: ArchiveReplayPosition, maximum: Int, wait: Duration) async throws -> SourceBatch<ArchiveReplayPosition>? {
        if isDone { return nil }
        let rows = try await store.read(window, consumer: consumer, after: position.after, limit: maximum, on: connection)
        isDone = rows.count < maximum
        var events: [ChangeEvent] = []
        events.reserveCapacity(rows.count)
        for row in rows {
            do {
                events.append(try ChangeEvent(json: JSONParser.parse(row.event)))
            } catch {
                throw FatalSourceError("archive row seq \(row.seq) of consumer '\(consumer)' in \(store.table) is not a Spillway event: \(error)")
            }
        }
        return SourceBatch(events: events, end: ArchiveReplayPosition(after: rows.last?.seq ?? position.after), isProgress: true)
    }

    func save(_ position: ArchiveReplayPosition, lastEventPosition: String?, events: Int) async throws {
        progress.acknowledged(position, events: events)
    }

    func confirm(_ lsn: LSN?) async throws {}
    func maintain(isFinal: Bool) async throws {}
    func recordError(_ message: String) async {}

    func close() async {
        await connection.close()
    }
}
