import Synchronization

/// Matches delivery reports to the `send` calls waiting for them.
///
/// Every message gets a token (a non-zero integer carried through librdkafka as the
/// per-message opaque); a batch's continuation resumes once each of its tokens completed,
/// whether through a delivery report or a failure to enqueue.
final class DeliveryTracker: Sendable {
    typealias Outcome = Result<KafkaDeliveryResult, KafkaSinkError>
    typealias Continuation = CheckedContinuation<[Outcome], Never>

    private struct Batch {
        var outcomes: [Outcome?]
        var remaining: Int
        let continuation: Continuation
    }

    private struct State {
        var nextToken: UInt = 1  // 0 would be a null opaque pointer
        var nextBatchID = 0
        var tokens: [UInt: (batch: Int, index: Int)] = [:]
        var batches: [Int: Batch] = [:]
    }

    private let state = Mutex(State())

    /// Messages handed to `register` whose outcome is not known yet.
    var pendingCount: Int { state.withLock { $0.tokens.count } }

    /// Registers `count` (> 0) messages; `continuation` receives their outcomes in order.
    func register(count: Int, continuation: Continuation) -> Range<UInt> {
        precondition(count > 0, "an empty batch would never complete")
        return state.withLock { state in
            let batchID = state.nextBatchID
            state.nextBatchID += 1
            let tokens = state.nextToken..<state.nextToken + UInt(count)
            state.nextToken = tokens.upperBound
            for (index, token) in tokens.enumerated() { state.tokens[token] = (batchID, index) }
            state.batches[batchID] = Batch(
                outcomes: Array(repeating: nil, count: count), remaining: count, continuation: continuation)
            return tokens
        }
    }

    /// Records one message's outcome; unknown or already completed tokens are ignored.
    func complete(_ token: UInt, with outcome: Outcome) {
        let finished: (Continuation, [Outcome])? = state.withLock { state in
            guard let (batchID, index) = state.tokens.removeValue(forKey: token) else { return nil }
            state.batches[batchID]!.outcomes[index] = outcome
            state.batches[batchID]!.remaining -= 1
            guard state.batches[batchID]!.remaining == 0,
                let batch = state.batches.removeValue(forKey: batchID)
            else { return nil }
            return (batch.continuation, batch.outcomes.map { $0! })
        }
        // Resume outside the lock: the continuation may run arbitrary code.
        if let (continuation, outcomes) = finished { continuation.resume(returning: outcomes) }
    }

    /// Fails every pending message, e.g. once the handle is gone and no report can arrive.
    func failAll(with error: KafkaSinkError) {
        let tokens = state.withLock { Array($0.tokens.keys) }
        for token in tokens { complete(token, with: .failure(error)) }
    }
}
