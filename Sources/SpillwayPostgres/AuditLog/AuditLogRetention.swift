import SpillwayCore

/// Deletes audit rows that every consumer registered on the audit table has passed, and no other.
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
    @discardableResult
    public func prune(on connection: PostgresConnection) async throws -> Int {
        let result = try await connection.query(
            """
            WITH horizon AS (
                SELECT min(pg_snapshot_xmax(snapshot)) AS xmax, bool_and(history_done) AS history_done, count(*) AS consumers
                FROM \(checkpoints) WHERE audit_table = $1
            )
            DELETE FROM \(auditTable.sql) a USING horizon h
            WHERE h.consumers > 0
              AND ((a.txid < h.xmax AND NOT EXISTS (
                      SELECT 1 FROM \(checkpoints) c
                      WHERE c.audit_table = $1 AND NOT pg_visible_in_snapshot(a.txid, c.snapshot)))
                   OR (a.txid IS NULL AND h.history_done))
            """, [auditTable.description])
        return result.affectedRows
    }
}
