import SpillwayCore

/// Deletes audit rows that every consumer registered on the audit table has passed, and no other.
public struct AuditLogRetention: Sendable {
    let checkpoints: String
    let auditTable: QualifiedName

    public init(schema: String, auditTable: QualifiedName) {
        checkpoints = "\(SQLText.identifier(schema)).checkpoints"
        self.auditTable = auditTable
    }

    /// Rows whose transaction is below every consumer's completed snapshot's xmin are finished for all of
    /// them. History rows (no txid) go only once every consumer has delivered its history. Returns the count.
    @discardableResult
    public func prune(on connection: PostgresConnection) async throws -> Int {
        let result = try await connection.query(
            """
            WITH horizon AS (
                SELECT min(pg_snapshot_xmin(snapshot)) AS xmin, bool_and(history_done) AS history_done, count(*) AS consumers
                FROM \(checkpoints) WHERE audit_table = $1
            )
            DELETE FROM \(auditTable.sql) a USING horizon h
            WHERE h.consumers > 0 AND (a.txid < h.xmin OR (a.txid IS NULL AND h.history_done))
            """, [auditTable.description])
        return result.affectedRows
    }
}
