import SpillwayCore

/// Deletes audit rows that every consumer registered on the audit table has passed (`source.prune`; with
/// `source.retention`, once they are also older than that), and no other.
public struct AuditLogRetention: Sendable {
    let checkpoints: String
    let auditTable: QualifiedName

    public init(schema: String, auditTable: QualifiedName) {
        checkpoints = "\(SQLText.identifier(schema)).checkpoints"
        self.auditTable = auditTable
    }

    /// A row is finished for a consumer when its transaction is visible in the consumer's completed
    /// snapshot; it goes once it is finished for all of them. (Comparing against the snapshots' xmin alone
    /// would be correct too, but any long transaction anywhere in the cluster would then stall retention.)
    /// History rows (no txid) go only once every consumer has delivered its history. Returns the count.
    ///
    /// `olderThan` (`source.retention`): only rows written longer ago than that, so a window of past changes
    /// stays for `spillway replay`. Deleted in batches of `batchSize`, each its own statement, so no delete
    /// holds its locks (or bloats one transaction) for the whole backlog.
    ///
    /// `keepingBytes` (`source.retention: 10GB`): only rows older than the newest that fill about that many
    /// bytes. The newest rows' average size (`pg_column_size` of the newest 1,000, plus the tuple header and
    /// the primary key's index entry) turns the bytes into a row count, and ids (assigned in insert order)
    /// into a cutoff: `max(id)` less that count. Ids of rolled-back inserts count too, so slightly fewer
    /// rows than the bound may stay; never an undelivered one.
    @discardableResult
    public func prune(olderThan age: Duration? = nil, keepingBytes bytes: Int64? = nil, batchSize: Int = 10_000,
                      on connection: PostgresConnection) async throws -> Int {
        var belowID: Int64?
        if let bytes {
            let newest = try await connection.query(
                """
                SELECT (SELECT max(id) FROM \(auditTable.sql)),
                       (SELECT avg(pg_column_size(n.*))::int8 FROM (SELECT * FROM \(auditTable.sql) ORDER BY id DESC LIMIT 1000) n)
                """)
            guard let row = newest.first, let maxID = row[0].flatMap({ Int64($0) }), let average = row[1].flatMap({ Int64($0) }) else {
                return 0  // an empty audit table
            }
            // 24 bytes of tuple header and line pointer, about 20 of the id index's entry.
            let rowsKept = bytes / max(1, average + 44)
            guard maxID - rowsKept > 0 else { return 0 }
            belowID = maxID - rowsKept
        }
        var total = 0
        while true {
            let result = try await connection.query(
                """
                WITH horizon AS (
                    SELECT min(pg_snapshot_xmax(snapshot)) AS xmax, bool_and(history_done) AS history_done, count(*) AS consumers
                    FROM \(checkpoints) WHERE audit_table = $1
                )
                DELETE FROM \(auditTable.sql) d WHERE d.ctid = ANY (ARRAY(
                    SELECT a.ctid FROM \(auditTable.sql) a, horizon h
                    WHERE h.consumers > 0
                      AND ($2::bigint IS NULL OR a.changed_at < now() - make_interval(secs => $2::bigint))
                      AND ($3::bigint IS NULL OR a.id <= $3::bigint)
                      AND ((a.txid < h.xmax AND NOT EXISTS (
                              SELECT 1 FROM \(checkpoints) c
                              WHERE c.audit_table = $1 AND NOT pg_visible_in_snapshot(a.txid, c.snapshot)))
                           OR (a.txid IS NULL AND h.history_done))
                    LIMIT \(batchSize)))
                """, [auditTable.description, age.map { String($0.components.seconds) }, belowID.map(String.init)])
            total += result.affectedRows
            if result.affectedRows < batchSize { return total }
        }
    }
}
