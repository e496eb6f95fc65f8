import Testing
@testable import SpillwayCore

@Suite("pg_snapshot")
struct SnapshotTests {
    @Test func parsesTheTextForm() throws {
        let snapshot = try #require(PGSnapshot("10:20:12,15"))
        #expect(snapshot.xmin == 10)
        #expect(snapshot.xmax == 20)
        #expect(snapshot.running == [12, 15])
        #expect(snapshot.horizon == 10)
        #expect(snapshot == PGSnapshot(xmin: 10, xmax: 20, running: [15, 12]))
    }

    @Test(arguments: ["10:20:12,15", "10:20:", "1:1:", "7:7:", "100:200:100,150,199", "18446744073709551614:18446744073709551615:"])
    func descriptionRoundTrips(text: String) throws {
        #expect(try #require(PGSnapshot(text)).description == text)
    }

    @Test func runningTransactionsAreKeptSorted() throws {
        #expect(try #require(PGSnapshot("10:20:15,12")).description == "10:20:12,15")
    }

    @Test(arguments: [
        (9, true), (10, true), (11, true),
        (12, false),
        (13, true),
        (15, false),
        (19, true),
        (20, false), (21, false), (UInt64.max, false),
    ] as [(UInt64, Bool)])
    func visibility(xid: UInt64, isVisible: Bool) throws {
        let snapshot = try #require(PGSnapshot("10:20:12,15"))
        #expect(snapshot.isVisible(xid) == isVisible)
    }

    @Test(arguments: [
        "20:10:", "a:b:", "10:20:9", "10:20:20", "10:20:25", "10:20", "10:20:12:15", "", "10:20:x",
        "-1:20:", "10:-20:", " 10:20:", "10:20:12,abc", "1e3:2e3:",
    ])
    func invalidTextIsRejected(text: String) {
        #expect(PGSnapshot(text) == nil)
    }

    @Test func sameVisibilityMeansNothingCommittedInBetween() throws {
        let snapshot = try #require(PGSnapshot("10:20:12,15"))
        #expect(snapshot.hasSameVisibility(as: snapshot))
        #expect(snapshot.hasSameVisibility(as: try #require(PGSnapshot("10:20:12,15"))))
        // Transaction 12 committed.
        #expect(!snapshot.hasSameVisibility(as: try #require(PGSnapshot("10:20:15"))))
        // Transaction 20 committed.
        #expect(!snapshot.hasSameVisibility(as: try #require(PGSnapshot("12:21:12,15"))))
        // A new transaction is running, nothing committed: still a change of xmax, so not the same.
        #expect(!snapshot.hasSameVisibility(as: try #require(PGSnapshot("10:21:12,15,20"))))
    }

    @Test("same visibility but for ignored transactions: only those may have finished in between")
    func sameVisibilityIgnoringOwnTransactions() throws {
        let older = try #require(PGSnapshot("10:20:12,15"))
        // 20 (ignored) committed; 21 started and runs.
        #expect(older.hasSameVisibility(as: try #require(PGSnapshot("10:22:12,15,21")), ignoring: [20]))
        #expect(older.hasSameVisibility(as: try #require(PGSnapshot("10:21:12,15")), ignoring: [20]))
        // 20 and 21 finished, only 20 ignored.
        #expect(!older.hasSameVisibility(as: try #require(PGSnapshot("10:22:12,15")), ignoring: [20]))
        // 12, running before, finished: not ignored.
        #expect(!older.hasSameVisibility(as: try #require(PGSnapshot("10:21:15")), ignoring: [20]))
        #expect(older.hasSameVisibility(as: try #require(PGSnapshot("15:21:15")), ignoring: [12, 20]))
        // Nothing ignored: the plain rule.
        #expect(!older.hasSameVisibility(as: try #require(PGSnapshot("10:21:12,15")), ignoring: []))
        // A snapshot that hides what the older one showed is not "the same".
        #expect(!older.hasSameVisibility(as: try #require(PGSnapshot("10:21:12,15,18")), ignoring: [20]))
        // Far apart: false without looking at every id.
        #expect(!older.hasSameVisibility(as: try #require(PGSnapshot("10:1000:12,15")), ignoring: Array(20..<1000)))
        // An older snapshot given as the newer one.
        #expect(!(try #require(PGSnapshot("10:21:12,15"))).hasSameVisibility(as: older, ignoring: [20]))
    }

    @Test(arguments: [1, 2, 3, 4, 1_000, UInt64(Int64.max), UInt64.max] as [UInt64])
    func originSeesNothing(xid: UInt64) {
        #expect(!PGSnapshot.origin.isVisible(xid))
    }

    @Test func originIsOneOneEmpty() {
        #expect(PGSnapshot.origin.description == "1:1:")
        #expect(PGSnapshot("1:1:") == PGSnapshot.origin)
    }
}
