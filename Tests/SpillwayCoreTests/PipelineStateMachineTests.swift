@testable import SpillwayCore
import Testing

/// A clock's instant that tests move by hand.
struct TestInstant: InstantProtocol {
    var offset: Duration
    func advanced(by duration: Duration) -> TestInstant { TestInstant(offset: offset + duration) }
    func duration(to other: TestInstant) -> Duration { other.offset - offset }
    static func < (lhs: TestInstant, rhs: TestInstant) -> Bool { lhs.offset < rhs.offset }
    static let zero = TestInstant(offset: .zero)
}

@Suite("pipeline state machine: acknowledgement order, coalesced saves, confirmation, backoff")
struct PipelineStateMachineTests {
    typealias Machine = PipelineStateMachine<ReplicationPosition, TestInstant>

    func events(_ positions: String...) -> [ChangeEvent] {
        positions.map { ChangeEvent(id: $0, op: .insert, schema: "public", table: "t", position: $0) }
    }

    func position(_ lsn: UInt64, _ index: Int? = nil) -> ReplicationPosition { ReplicationPosition(commitLSN: LSN(lsn), index: index) }

    @Test("batches are acknowledged only in the order they were read")
    func acknowledgementOrder() throws {
        var machine = Machine(start: position(100), now: .zero)
        let first = machine.read(), second = machine.read()
        #expect(machine.batchesInFlight == 2)
        #expect(throws: Machine.AcknowledgementError.outOfOrder(expected: first, got: second)) {
            try machine.acknowledge(second, SourceBatch(events: events("b"), end: position(300)))
        }
        try machine.acknowledge(first, SourceBatch(events: events("a"), end: position(200)))
        try machine.acknowledge(second, SourceBatch(events: events("b"), end: position(300)))
        #expect(machine.batchesInFlight == 0)
        #expect(machine.checkpointDue(now: .zero, isFinal: false)?.position == position(300))
    }

    @Test("a save covers every batch acknowledged since the last one; acknowledgements during a save stay pending")
    func coalescedSaves() throws {
        var machine = Machine(start: position(100), now: .zero)
        #expect(machine.checkpointDue(now: .zero, isFinal: true) == nil, "nothing moved: nothing to save, even at the end")
        for (lsn, event) in [(200, "a"), (300, "b"), (400, "c")] {
            try machine.acknowledge(machine.read(), SourceBatch(events: events(event), end: position(UInt64(lsn))))
        }
        let due = try #require(machine.checkpointDue(now: .zero, isFinal: false))
        #expect(due == .init(position: position(400), lastEventPosition: "c", events: 3))
        try machine.acknowledge(machine.read(), SourceBatch(events: events("d"), end: position(500, 0)))
        _ = machine.saved(due, now: .zero)
        #expect(machine.saved == position(400))
        let next = try #require(machine.checkpointDue(now: .zero, isFinal: false), "the batch acknowledged during the save")
        #expect(next == .init(position: position(500, 0), lastEventPosition: "d", events: 1))
        _ = machine.saved(next, now: .zero)
        #expect(machine.checkpointDue(now: .zero, isFinal: true) == nil)
    }

    @Test("empty moves are saved every idle interval, or at the end; progress without events is saved at once")
    func idleSaves() throws {
        var machine = Machine(start: position(100), now: .zero)
        try machine.acknowledge(machine.read(), SourceBatch(events: [], end: position(200)))  // a heartbeat
        #expect(machine.checkpointDue(now: TestInstant(offset: .seconds(4)), isFinal: false) == nil)
        #expect(machine.checkpointDue(now: TestInstant(offset: .seconds(4)), isFinal: true)?.events == 0)
        let due = try #require(machine.checkpointDue(now: TestInstant(offset: .seconds(5)), isFinal: false))
        _ = machine.saved(due, now: TestInstant(offset: .seconds(5)))
        // Rows that no sink takes (another consumer's table) still move the audit cursor: saved at once.
        try machine.acknowledge(machine.read(), SourceBatch(events: [], end: position(300), isProgress: true))
        #expect(machine.checkpointDue(now: TestInstant(offset: .seconds(5)), isFinal: false)?.position == position(300))
    }

    @Test("the server is told to forget WAL only up to what a saved checkpoint covers")
    func confirmation() throws {
        var machine = Machine(start: position(100), now: .zero)
        try machine.acknowledge(machine.read(), SourceBatch(events: events("a"), end: position(200), confirmable: LSN(200)))
        // A transaction only partly delivered: its commit LSN must not be confirmed yet.
        try machine.acknowledge(machine.read(), SourceBatch(events: events("b"), end: position(300, 0), confirmable: nil))
        #expect(machine.confirmationDue(now: .zero) == nil, "nothing saved yet")
        let due = try #require(machine.checkpointDue(now: .zero, isFinal: false))
        let confirm = machine.saved(due, now: .zero)
        #expect(confirm == LSN(200))
        machine.confirmed(LSN(200), now: .zero)
        #expect(machine.confirmationDue(now: .zero) == nil)
        try machine.acknowledge(machine.read(), SourceBatch(events: [], end: position(400), confirmable: LSN(400)))
        try machine.acknowledge(machine.read(), SourceBatch(events: [], end: position(500), confirmable: LSN(500)))
        #expect(machine.confirmationDue(now: .zero) == nil, "not before the save")
        let later = try #require(machine.checkpointDue(now: .zero, isFinal: true))
        let confirmLater = machine.saved(later, now: .zero)
        #expect(confirmLater == LSN(500), "the latest confirmable, once covered")
        // The audit_log cursor never confirms anything.
        #expect(!AuditLogCursor().allowsConfirming(LSN(1)))
    }

    @Test("a status goes out every status interval when nothing is confirmable")
    func statusInterval() {
        var machine = Machine(start: position(100), now: .zero)
        #expect(!machine.statusDue(now: TestInstant(offset: .seconds(9))))
        #expect(machine.statusDue(now: TestInstant(offset: .seconds(10))))
        machine.statusSent(now: TestInstant(offset: .seconds(10)))
        #expect(!machine.statusDue(now: TestInstant(offset: .seconds(19))))
        machine.confirmed(LSN(1), now: TestInstant(offset: .seconds(19)))
        #expect(!machine.statusDue(now: TestInstant(offset: .seconds(28))), "a confirmation is a status too")
    }

    @Test("reconnect backoff grows per failure and starts over after a quiet period")
    func backoff() {
        var backoff = ReconnectBackoff<TestInstant>(policy: RetryPolicy(initialDelay: .milliseconds(200), maximumDelay: .seconds(10)))
        var delays: [Duration] = []
        for second in [0, 1, 2] as [Int64] { delays.append(backoff.failed(at: TestInstant(offset: .seconds(second)), jitter: 1)) }
        #expect(delays == [.milliseconds(200), .milliseconds(400), .milliseconds(800)])
        #expect(backoff.attempts == 3)
        let afterQuiet = backoff.failed(at: TestInstant(offset: .seconds(302)), jitter: 1)
        #expect(afterQuiet == .milliseconds(200), "quiet for 5 minutes")
        #expect(backoff.attempts == 1)
        for second in 0..<20 { _ = backoff.failed(at: TestInstant(offset: .seconds(310 + Int64(second))), jitter: 1) }
        let capped = backoff.failed(at: TestInstant(offset: .seconds(331)), jitter: 1)
        #expect(capped == .seconds(10), "capped")
    }

    @Test("periodic tasks: due at once or after their interval, never when turned off")
    func periodic() {
        var immediate = PeriodicTask<TestInstant>(every: .seconds(10), startingAt: .zero, runsImmediately: true)
        let immediateRuns = [0, 9, 10].map { immediate.isDue(at: TestInstant(offset: .seconds($0))) }
        #expect(immediateRuns == [true, false, true])
        var later = PeriodicTask<TestInstant>(every: .seconds(10), startingAt: .zero)
        let laterRuns = [0, 10].map { later.isDue(at: TestInstant(offset: .seconds($0))) }
        #expect(laterRuns == [false, true])
        var off = PeriodicTask<TestInstant>(every: .zero, startingAt: .zero, runsImmediately: true)
        let offRuns = [0, 1000].map { off.isDue(at: TestInstant(offset: .seconds($0))) }
        #expect(offRuns == [false, false])
    }
}
