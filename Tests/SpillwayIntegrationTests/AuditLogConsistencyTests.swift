import Foundation
import SpillwayApp
import SpillwayCore
import SpillwayPostgres
import Testing

@Suite("audit_log source: nothing committed is lost or reordered", .enabled(if: TestEnvironment.canRun))
struct AuditLogConsistencyTests {
    @Test("a transaction that inserts first and commits last is delivered after the one that committed first, across a restart")
    func outOfOrderCommit() async throws {
        try await withTestDatabase { db in
            let app = try await db.connect()
            let late = try await db.connect()
            let early = try await db.connect()
            try await app.execute("CREATE TABLE products (id int PRIMARY KEY, name text)")
            let sink = tempPath("events.jsonl")
            let config = try db.config(sinkPath: sink)
            _ = try await install(config, on: db)

            try await late.execute("BEGIN; INSERT INTO products VALUES (1, 'A: first in, last to commit')")
            try await early.execute("BEGIN; INSERT INTO products VALUES (2, 'B: second in, first to commit'); COMMIT")
            // A's id and sequence number are lower than B's: an `id > last` poller would move past A here.
            try await drainOnce(config)
            var events = try readEvents(sink)
            #expect(events.map(\.key) == [["id": .number("2")]])

            // A restart in between: a new pipeline starts from the saved checkpoint.
            try await late.execute("COMMIT")
            try await drainOnce(config)
            events = try readEvents(sink)
            #expect(events.map(\.key) == [["id": .number("2")], ["id": .number("1")]])
            #expect(events.map(\.op) == [.insert, .insert])
            let txids = events.compactMap(\.txid)
            #expect(txids.count == 2 && txids[1] < txids[0], "A has the lower transaction id yet comes second")

            // Nothing more, and nothing twice, on a third pass.
            try await drainOnce(config)
            #expect(try readEvents(sink).count == 2)
        }
    }

    @Test("a later transaction that updates the same row is delivered after the earlier one, even with a lower txid")
    func sameRowCommitOrderBeatsTxidOrder() async throws {
        try await withTestDatabase { db in
            let first = try await db.connect()
            let second = try await db.connect()
            try await first.execute("CREATE TABLE products (id int PRIMARY KEY, price int NOT NULL); INSERT INTO products VALUES (1, 0), (2, 0)")
            let sink = tempPath("events.jsonl")
            let config = try db.config(sinkPath: sink)
            _ = try await install(config, on: db)

            // `second` takes its transaction id first (by writing row 2), then waits for row 1's lock, which
            // `first` (a higher txid) holds: `first` commits its update of row 1 before `second`'s.
            try await second.execute("BEGIN; UPDATE products SET price = 5 WHERE id = 2")
            try await first.execute("BEGIN; UPDATE products SET price = 10 WHERE id = 1")
            async let blocked: Void = second.execute("UPDATE products SET price = 20 WHERE id = 1; COMMIT")
            // `first` commits only once `second` is seen waiting for the row lock, not after a guessed pause.
            let observer = try await db.connect()
            try await waitUntil("`second` waits for row 1's lock") {
                try await observer.query(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                ).first?[0] == "1"
            }
            try await first.execute("COMMIT")
            try await blocked

            try await drainOnce(config)
            let events = try readEvents(sink).filter { $0.key == ["id": .number("1")] }
            try #require(events.count == 2, "\(events.map(\.id))")
            #expect(events.map { $0.after?["price"] } == [.number("10"), .number("20")])
            let final = try await first.query("SELECT price FROM products WHERE id = 1")
            #expect(final.first?[0] == "20")
            #expect(events.last?.after?["price"] == .number("20"), "the last event for a key matches the row")
            #expect((events[1].txid ?? 0) < (events[0].txid ?? 0), "the later commit has the lower txid")
        }
    }

    @Test("rows of one transaction stay together and in statement order; truncate, tenant and commit_time are captured")
    func transactionsStayTogether() async throws {
        try await withTestDatabase { db in
            let a = try await db.connect()
            let b = try await db.connect()
            try await a.execute("CREATE TABLE products (id int PRIMARY KEY, name text, price numeric(12,4), added timestamptz)")
            let sink = tempPath("events.jsonl")
            let config = try db.config(sinkPath: sink)
            _ = try await install(config, on: db)

            try await a.execute("BEGIN; SET LOCAL app.current_org_id = 'org-7'; INSERT INTO products VALUES (1, 'x', 10.1000, '2026-01-02 03:04:05+02')")
            try await b.execute("BEGIN; INSERT INTO products VALUES (2, 'y', 1, now())")
            try await a.execute("UPDATE products SET name = 'x2' WHERE id = 1")
            try await b.execute("INSERT INTO products VALUES (3, 'z', 2, now())")
            try await a.execute("DELETE FROM products WHERE id = 1; COMMIT")
            try await b.execute("COMMIT")
            try await a.execute("TRUNCATE products")
            try await drainOnce(config)

            let events = try readEvents(sink)
            try #require(events.count == 6, "\(events.map(\.id))")
            let txids = events.map(\.txid)
            // Each transaction's events are one contiguous run.
            var runs: [UInt64?] = []
            for txid in txids where runs.last != txid { runs.append(txid) }
            #expect(runs.count == 3, "three transactions, three runs: \(txids)")
            let tenantTx = events.filter { $0.tenant == "org-7" }
            try #require(tenantTx.count == 3)
            #expect(tenantTx.map(\.op) == [.insert, .update, .delete])
            #expect(tenantTx.first?.after?["price"] == .string("10.1000"), "numeric stays exact, as a string")
            #expect(tenantTx.first?.after?["added"] == .string("2026-01-02T01:04:05Z"), "timestamptz in UTC")
            #expect(tenantTx[2].before?["name"] == .string("x2") && tenantTx[2].after == nil && tenantTx[2].key == ["id": .number("1")])
            #expect(events.last?.op == .truncate && events.last?.key == nil && events.last?.before == nil)
            #expect(events.allSatisfy { $0.commitTime?.hasSuffix("Z") == true })
            // Exactly what PostgreSQL's own to_char makes of each row's commit time, six fraction digits included.
            let expected = try await a.query("""
                SELECT txid::text || '-' || seq, to_char(CASE WHEN current_setting('track_commit_timestamp') = 'on'
                    THEN coalesce(pg_xact_commit_timestamp(txid::xid), changed_at) ELSE changed_at END AT TIME ZONE 'UTC',
                    'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') FROM spillway.audit_log
                """).rows
            let commitTimes = Dictionary(uniqueKeysWithValues: expected.map { ($0[0] ?? "", $0[1]) })
            #expect(events.allSatisfy { commitTimes[$0.id] == $0.commitTime }, "\(events.map { ($0.id, $0.commitTime) }) vs \(commitTimes)")
            #expect(Set(events.map(\.id)).count == events.count, "ids are unique")
        }
    }
}
