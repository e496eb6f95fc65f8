/// A PostgreSQL MVCC snapshot (`pg_snapshot`, text form `xmin:xmax:xip1,xip2`): which transactions had
/// committed when it was taken. The audit_log poller reads between two snapshots, PgQ-style: a batch is
/// every transaction visible in the newer snapshot and not in the older one, so a transaction that was still
/// running at the older snapshot lands in a later batch whatever its id, and is never skipped.
public struct PGSnapshot: Sendable, Hashable, CustomStringConvertible {
    /// Every transaction below xmin is finished (committed or aborted).
    public var xmin: UInt64
    /// Every transaction at or above xmax had not started (or had no id yet).
    public var xmax: UInt64
    /// Transactions in [xmin, xmax) still running when the snapshot was taken.
    public var running: [UInt64]

    public init(xmin: UInt64, xmax: UInt64, running: [UInt64]) {
        self.xmin = xmin
        self.xmax = xmax
        self.running = running.sorted()
    }

    /// The snapshot before any transaction: nothing is visible in it, so a new consumer reads everything.
    public static let origin = PGSnapshot(xmin: 1, xmax: 1, running: [])

    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, let xmin = UInt64(parts[0]), let xmax = UInt64(parts[1]), xmin <= xmax else {
            return nil
        }
        var running: [UInt64] = []
        if !parts[2].isEmpty {
            for item in parts[2].split(separator: ",") {
                guard let xid = UInt64(item), xid >= xmin, xid < xmax else { return nil }
                running.append(xid)
            }
        }
        self.init(xmin: xmin, xmax: xmax, running: running)
    }

    public var description: String {
        "\(xmin):\(xmax):" + running.map(String.init).joined(separator: ",")
    }

    /// `pg_visible_in_snapshot`: the transaction had finished when the snapshot was taken.
    public func isVisible(_ xid: UInt64) -> Bool {
        if xid < xmin { return true }
        if xid >= xmax { return false }
        return !running.contains(xid)
    }

    /// Every transaction at or past which nothing is yet known to be finished: audit rows with a txid below
    /// this are done for a consumer whose snapshot this is (retention may delete them).
    public var horizon: UInt64 { xmin }

    /// True when `newer` can contain no transaction this one lacks (nothing committed in between).
    public func hasSameVisibility(as newer: PGSnapshot) -> Bool {
        xmax == newer.xmax && running == newer.running
    }

    /// The same, except that transactions in `ignored` may have finished in between: ones known to have
    /// written nothing a batch reads (Spillway's own checkpoint saves and WAL flushes write no audit row).
    /// Only a few transactions apart: past 64 new ids, false (a batch is read, as without this).
    public func hasSameVisibility(as newer: PGSnapshot, ignoring ignored: [UInt64]) -> Bool {
        if hasSameVisibility(as: newer) { return true }
        guard !ignored.isEmpty, newer.xmax >= xmax, newer.xmax - xmax <= 64 else { return false }
        // Visible in `newer` and not here: each must be ignored.
        for xid in running where newer.isVisible(xid) && !ignored.contains(xid) { return false }
        for xid in xmax..<newer.xmax where newer.isVisible(xid) && !ignored.contains(xid) { return false }
        // Visible here and not in `newer`: never, for a snapshot taken later.
        for xid in newer.running where isVisible(xid) { return false }
        return true
    }
}
