import Logging
import ServiceLifecycle
import SpillwayCore
import SpillwayPostgres
import Synchronization
import Testing

@testable import SpillwayApp

// The delivery mechanics between the pipeline stages, with in-memory sinks: pure logic, no servers.

/// Records what it is handed; acknowledges a batch when the test says so (or fails it).
private final class ManualPipelinedSink: PipelinedChangeSink {
    let name = "manual"
    private let state = Mutex<(submitted: [[String]], outcomes: [Int: Result<Void, TestFailure>], waiters: [Int: [CheckedContinuation<Void, Never>]],
                               abandoned: [Int])>(([], [:], [:], []))

    var submitted: [[String]] { state.withLock { $0.submitted } }

    func submit(_ batch: [ChangeEvent]) async throws -> SinkAcknowledgement {
        let index = state.withLock { state in
            state.submitted.append(batch.map(\.id))
            return state.submitted.count - 1
        }
        return SinkAcknowledgement({ try await self.outcome(of: index).get() }, abandon: { self.abandon(index) })
    }

    /// The batches whose acknowledgement the pipeline abandoned.
    var abandoned: [Int] { state.withLock { $0.abandoned } }

    private func abandon(_ index: Int) {
        let isPending = state.withLock { state in
            state.abandoned.append(index)
            return state.outcomes[index] == nil
        }
        if isPending { settle(index, .failure(TestFailure())) }
    }

    func settle(_ index: Int, _ outcome: Result<Void, TestFailure>) {
        let waiters = state.withLock { state in
            state.outcomes[index] = outcome
            return state.waiters.removeValue(forKey: index) ?? []
        }
        for waiter in waiters { waiter.resume() }
    }

    private func outcome(of index: Int) async -> Result<Void, TestFailure> {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state in
                if state.outcomes[index] != nil { return true }
                state.waiters[index, default: []].append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
        return state.withLock { $0.outcomes[index]! }
    }

    func close() async throws {}
}

private final class RecordingSink: ChangeSink {
    let name = "recording"
    let delivered = Mutex<[[String]]>([])
    func deliver(_ batch: [ChangeEvent]) async throws { delivered.withLock { $0.append(batch.map(\.id)) } }
    func close() async throws {}
}

/// A list several tasks append to.
private final class SharedList<Element: Sendable>: Sendable {
    private let items = Mutex<[Element]>([])
    func append(_ item: Element) { items.withLock { $0.append(item) } }
    var all: [Element] { items.withLock { $0 } }
}

private struct TestFailure: Error, CustomStringConvertible {
    var description: String { "broker said no" }
}

private func events(_ ids: String...) -> [ChangeEvent] {
    ids.map { ChangeEvent(id: $0, op: .insert, schema: "public", table: "t", position: $0) }
}

private let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// Runs a closure as the one service of a ServiceGroup, so it sees the group's graceful shutdown.
private struct ClosureService: Service {
    let body: @Sendable () async throws -> Void
    func run() async throws { try await body() }
}

@Suite("pipelined delivery: submissions, acknowledgements, the in-flight window (no servers)")
struct PipelinedFanoutTests {
    @Test("pipelined sinks get every batch at submission, in order; the others get it when it is completed")
    func submissionOrder() async throws {
        let pipelined = ManualPipelinedSink()
        let plain = RecordingSink()
        let fanout = Fanout(routes: [.init(sink: pipelined, filter: .init()), .init(sink: plain, filter: .init())], logger: quiet)
        let first = try await fanout.submit(events("a", "b"))
        let second = try await fanout.submit(events("c"))
        #expect(pipelined.submitted == [["a", "b"], ["c"]], "both batches are in flight before either is acknowledged")
        #expect(plain.delivered.withLock { $0 }.isEmpty)

        pipelined.settle(1, .success(()))
        pipelined.settle(0, .success(()))
        try await fanout.complete(first)
        #expect(plain.delivered.withLock { $0 } == [["a", "b"]])
        try await fanout.complete(second)
        #expect(plain.delivered.withLock { $0 } == [["a", "b"], ["c"]])
    }

    @Test("a failed acknowledgement is reported and thrown as PipelinedDeliveryFailed, so the pipeline resumes from its checkpoint")
    func failedAcknowledgementThrows() async throws {
        let pipelined = ManualPipelinedSink()
        let fanout = Fanout(routes: [.init(sink: pipelined, filter: .init())], logger: quiet)
        let submission = try await fanout.submit(events("a"))
        pipelined.settle(0, .failure(TestFailure()))
        let reported = SharedList<String>()
        let error = await #expect(throws: PipelinedDeliveryFailed.self) {
            try await fanout.complete(submission) { message in reported.append(message) }
        }
        #expect(error?.sink == "manual")
        #expect(reported.all == ["sink 'manual': broker said no"])
    }

    @Test("filters apply to submissions: a sink that takes none of a batch's events is not handed it")
    func filteredSubmission() async throws {
        let pipelined = ManualPipelinedSink()
        let fanout = Fanout(routes: [.init(sink: pipelined, filter: EventFilter(operations: [.delete]))], logger: quiet)
        let submission = try await fanout.submit(events("a"))
        #expect(pipelined.submitted.isEmpty)
        try await fanout.complete(submission)  // nothing to wait for
    }

    @Test("the window admits events up to its limit, then waiters in arrival order as room returns; closing it fails them")
    func inFlightWindow() async throws {
        let window = InFlightWindow(limit: 10)
        try await window.acquire(4)
        try await window.acquire(6)
        let admitted = SharedList<Int>()
        var waiters: [Task<Void, any Error>] = []
        for (index, count) in [(1, 3), (2, 1)] {
            waiters.append(Task {
                try await window.acquire(count)
                admitted.append(index)
            })
            try await Task.sleep(for: .milliseconds(50))  // so the first waiter is first in line
        }
        #expect(admitted.all.isEmpty, "full: nobody gets in")
        window.release(2)
        try await Task.sleep(for: .milliseconds(50))
        #expect(admitted.all.isEmpty, "room for the second waiter but not the first: nobody overtakes")
        window.release(2)
        try await waiters[0].value
        try await waiters[1].value
        #expect(admitted.all == [1, 2])
        let third = Task { try await window.acquire(1) }
        try await Task.sleep(for: .milliseconds(50))
        window.close()
        await #expect(throws: CancellationError.self) { try await third.value }
        await #expect(throws: CancellationError.self) { try await window.acquire(1) }
    }

    @Test("stopping abandons an outstanding acknowledgement: a graceful shutdown after its grace, a cancelled session at once; one that comes within the grace is kept")
    func stoppingAbandonsOutstandingAcknowledgements() async throws {
        let pipelined = ManualPipelinedSink()
        let fanout = Fanout(routes: [.init(sink: pipelined, filter: .init())], logger: quiet, acknowledgementGrace: .seconds(1))

        func completeDuringShutdown(_ submission: FanoutSubmission, settle: (@Sendable () -> Void)? = nil) async throws -> [String] {
            let outcome = SharedList<String>()
            let service = ClosureService {
                do {
                    try await fanout.complete(submission)
                    outcome.append("acknowledged")
                } catch is DeliveryAbandoned {
                    outcome.append("abandoned")
                }
            }
            let group = ServiceGroup(services: [service], logger: quiet)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await Task.sleep(for: .milliseconds(100))
                #expect(outcome.all.isEmpty, "before the shutdown it waits")
                await group.triggerGracefulShutdown()
                settle?()
                try await tasks.waitForAll()
            }
            return outcome.all
        }

        let first = try await fanout.submit(events("a"))
        #expect(try await completeDuringShutdown(first) == ["abandoned"])
        #expect(pipelined.abandoned == [0])

        let second = try await fanout.submit(events("b"))
        #expect(try await completeDuringShutdown(second, settle: { pipelined.settle(1, .success(())) }) == ["acknowledged"])
        try await Task.sleep(for: .milliseconds(1500))
        #expect(pipelined.abandoned == [0], "acknowledged within the grace: nothing dropped, not even later")

        let third = try await fanout.submit(events("c"))
        let session = Task { try await fanout.complete(third) }
        try await Task.sleep(for: .milliseconds(100))
        session.cancel()
        await #expect(throws: PipelinedDeliveryFailed.self) { try await session.value }
        #expect(pipelined.abandoned == [0, 2])
    }
}
