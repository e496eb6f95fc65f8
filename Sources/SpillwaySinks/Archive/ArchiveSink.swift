import Logging
import SpillwayCore
import SpillwayPostgres

/// `kind: archive`: writes each delivered event into the archive table (`ArchiveStore`), one statement per
/// batch, so a batch is archived whole or not at all; acknowledged once that statement committed. Drops the
/// partitions older than its retention, at most once an hour.
public actor ArchiveSink: ChangeSink {
    public nonisolated let name: String
    private let consumer: String
    private let store: ArchiveStore
    private let url: String
    private let retentionDays: Int
    private let logger: Logger
    private var connection: PostgresConnection?
    /// Days whose partition is known to exist.
    private var partitions: Set<String> = []
    private var lastRetention: ContinuousClock.Instant?
    /// Events per statement: each passes nine text arrays of this many elements.
    private static let chunkSize = 2000

    public struct Error: Swift.Error, CustomStringConvertible {
        public let description: String
    }

    public init(name: String, consumer: String, store: ArchiveStore, url: String, retentionDays: Int, logger: Logger) {
        self.name = name
        self.consumer = consumer
        self.store = store
        self.url = url
        self.retentionDays = retentionDays
        self.logger = logger
    }

    public func deliver(_ batch: [ChangeEvent]) async throws {
        guard !batch.isEmpty else { return }
        do {
            let connection = try await connected()
            try await dropExpiredPartitions(on: connection)
            var start = 0
            while start < batch.count {
                let chunk = batch[start..<min(start + Self.chunkSize, batch.count)]
                try await archive(chunk, on: connection)
                start += chunk.count
            }
        } catch {
            // A statement that failed on a sound connection leaves it usable for the next attempt.
            let isSound = (error as? PostgresError).map { !$0.isConnectionFailure } == true && connection?.isHealthy == true
            if !isSound {
                await connection?.close()
                connection = nil
            }
            throw Error(description: "sink '\(name)': \(error) (archive table \(store.table))")
        }
    }

    private func archive(_ events: ArraySlice<ChangeEvent>, on connection: PostgresConnection) async throws {
        var days: [String?] = [], ids: [String?] = [], lsns: [String?] = [], ordinals: [String?] = [], times: [String?] = []
        var schemas: [String?] = [], tables: [String?] = [], ops: [String?] = [], texts: [String?] = []
        for event in events {
            days.append(ArchiveStore.day(of: event))
            ids.append(event.id)
            let position = ArchiveStore.position(event.position)
            lsns.append(position?.lsn)
            ordinals.append(position?.ordinal.map(String.init))
            times.append(event.commitTime)
            schemas.append(event.schema)
            tables.append(event.table)
            ops.append(event.op.rawValue)
            texts.append(event.jsonString)
        }
        var needed = Set(days.compactMap { $0 })
        if days.contains(where: { $0 == nil }) {
            let today = try await connection.query("SELECT to_char((now() AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD')")
            if let day = today.first?[0] { needed.insert(day) }
        }
        for day in needed.subtracting(partitions).sorted() {
            do {
                try await connection.execute(store.createPartitionSQL(day))
            } catch let error as PostgresError where error.sqlState == "42P07" || error.sqlState == "23505" {
                // Another consumer's archive sink created it at the same moment.
            }
            partitions.insert(day)
        }
        try await connection.query(store.insertSQL(), [consumer] + [days, ids, lsns, ordinals, times, schemas, tables, ops, texts].map { PostgresArray.text($0) })
    }

    private func dropExpiredPartitions(on connection: PostgresConnection) async throws {
        if let lastRetention, ContinuousClock.now - lastRetention < .seconds(3600) { return }
        lastRetention = .now
        let expired = try await connection.query(store.expiredPartitionsSQL(days: retentionDays))
        for name in expired.rows.compactMap({ $0.first ?? nil }) {
            let partition = QualifiedName(schema: store.table.schema, name: name)
            try await connection.execute("DROP TABLE IF EXISTS \(partition.sql)")
            partitions = partitions.filter { store.partition($0) != partition }
            logger.notice("archive partition dropped by retention", metadata: ["partition": "\(partition)", "retention_days": "\(retentionDays)"])
        }
    }

    public func close() async throws {
        await connection?.close()
        connection = nil
    }

    private func connected() async throws -> PostgresConnection {
        if let connection, connection.isHealthy { return connection }
        await connection?.close()
        connection = nil
        let fresh = try await PostgresConnection.connect(url: url, applicationName: "spillway-archive")
        do {
            try await fresh.execute(store.createSQL())
        } catch let error as PostgresError where error.sqlState == "42P07" || error.sqlState == "23505" {
            // Created concurrently by another consumer's sink: it exists now.
        } catch {
            await fresh.close()
            throw error
        }
        connection = fresh
        return fresh
    }
}
