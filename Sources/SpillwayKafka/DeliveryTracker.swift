import Synchronization

/// Matches delivery reports to the batches waiting for them.
///
/// Each message carries a token through librdkafka as its per-message opaque: the batch's number in the
/// high 32 bits and the message's index in the low 32 (never 0, which would be a null pointer). A report
/// then finds its batch with one lookup among the batches in flight, not a per-message table.
final class DeliveryTracker: Sendable {
    private struct State {
        var nextBatch: UInt = 1
        var batches: [UInt: PendingBatch] = [:]
    }

    private let state = Mutex(State())

    /// Batches registered whose messages are not all settled.
    var pendingCount: Int { state.withLock { $0.batches.count } }

    /// Registers a batch of `count` (> 0) messages; its tokens are `batch.token(at:)`.
    func register(count: Int) -> PendingBatch {
        precondition(count > 0 && count < Int(UInt32.max), "a batch holds 1 to 2^32-2 messages")
        return state.withLock { state in
            let batch = PendingBatch(number: state.nextBatch, count: count)
            state.batches[state.nextBatch] = batch
            state.nextBatch += 1
            return batch
        }
    }

    /// Records one message's outcome; unknown or already settled tokens are ignored.
    func complete(_ token: UInt, with outcome: PendingBatch.Outcome) {
        let number = token >> 32
        let index = Int(token & 0xFFFF_FFFF) - 1
        guard let batch = state.withLock({ $0.batches[number] }) else { return }
        if batch.settle(index, with: outcome) {
            _ = state.withLock { $0.batches.removeValue(forKey: number) }
            batch.finish()
        }
    }

    /// Fails every unsettled message, e.g. once the handle is gone and no report can arrive.
    func failAll(with error: KafkaSinkError) {
        let batches = state.withLock { state in
            defer { state.batches.removeAll() }
            return Array(state.batches.values)
        }
        for batch in batches {
            batch.failUnsettled(with: error)
            batch.finish()
        }
    }
}

/// The delivery reports of one enqueued batch, filled in as they arrive.
final class PendingBatch: Sendable {
    enum Outcome: Sendable {
        case stored(partition: Int32, offset: Int64)
        case failed(KafkaSinkError)
    }

    /// Where each message was stored (for successes) and why the others failed, by index.
    struct Outcomes: Sendable {
        var partitions: [Int32]
        var offsets: [Int64]
        var failures: [Int: KafkaSinkError] = [:]
    }

    private struct State {
        var outcomes: Outcomes
        var settled: [Bool]
        var remaining: Int
        var finished = false
        var waiters: [CheckedContinuation<Outcomes, Never>] = []
    }

    let number: UInt
    let count: Int
    private let state: Mutex<State>

    fileprivate init(number: UInt, count: Int) {
        self.number = number
        self.count = count
        state = Mutex(State(
            outcomes: Outcomes(partitions: Array(repeating: -1, count: count), offsets: Array(repeating: -1, count: count)),
            settled: Array(repeating: false, count: count), remaining: count))
    }

    func token(at index: Int) -> UInt { number << 32 | UInt(index + 1) }

    /// Records message `index`'s outcome; true when it was the last one outstanding.
    fileprivate func settle(_ index: Int, with outcome: Outcome) -> Bool {
        state.withLock { state in
            guard state.outcomes.partitions.indices.contains(index), !state.settled[index] else { return false }
            state.settled[index] = true
            switch outcome {
            case .stored(let partition, let offset):
                state.outcomes.partitions[index] = partition
                state.outcomes.offsets[index] = offset
            case .failed(let error):
                state.outcomes.failures[index] = error
            }
            state.remaining -= 1
            return state.remaining == 0
        }
    }

    fileprivate func failUnsettled(with error: KafkaSinkError) {
        state.withLock { state in
            for index in state.settled.indices where !state.settled[index] {
                state.settled[index] = true
                state.outcomes.failures[index] = error
            }
            state.remaining = 0
        }
    }

    /// Marks the batch settled and wakes whoever waits for it.
    fileprivate func finish() {
        let (waiters, outcomes) = state.withLock { state in
            state.finished = true
            defer { state.waiters = [] }
            return (state.waiters, state.outcomes)
        }
        for waiter in waiters { waiter.resume(returning: outcomes) }
    }

    /// Waits until every message of the batch is settled.
    func outcomes() async -> Outcomes {
        await withCheckedContinuation { continuation in
            let ready: Outcomes? = state.withLock { state in
                if state.finished { return state.outcomes }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
