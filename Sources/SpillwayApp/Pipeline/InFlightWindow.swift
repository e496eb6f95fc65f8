import Synchronization

/// Bounds how many events a pipeline has read but not yet acknowledged: the reader takes room for each batch
/// it read and the acknowledger gives it back, so memory stays bounded however far the sinks fall behind,
/// while a stream of small batches (one commit each) can still have many of them in flight.
final class InFlightWindow: Sendable {
    private struct Waiter {
        var count: Int
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var available: Int
        var waiters: [Waiter] = []
        var isClosed = false
    }

    let limit: Int
    private let state: Mutex<State>

    init(limit: Int) {
        precondition(limit > 0)
        self.limit = limit
        state = Mutex(State(available: limit))
    }

    /// Takes room for `count` events (at most `limit`), waiting, behind earlier waiters, until it is free.
    /// Throws `CancellationError` once the window is closed.
    func acquire(_ count: Int) async throws {
        let count = min(max(count, 0), limit)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let result: Result<Void, any Error>? = state.withLock { state in
                if state.isClosed { return .failure(CancellationError()) }
                guard state.waiters.isEmpty, state.available >= count else {
                    state.waiters.append(Waiter(count: count, continuation: continuation))
                    return nil
                }
                state.available -= count
                return .success(())
            }
            if let result { continuation.resume(with: result) }
        }
    }

    /// Gives back room for `count` events, admitting waiters in order while there is room for them.
    func release(_ count: Int) {
        let count = min(max(count, 0), limit)
        let admitted = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.available += count
            var admitted: [CheckedContinuation<Void, any Error>] = []
            while let first = state.waiters.first, first.count <= state.available {
                state.available -= first.count
                admitted.append(state.waiters.removeFirst().continuation)
            }
            return admitted
        }
        for continuation in admitted { continuation.resume() }
    }

    /// Fails every waiting and future `acquire`, so a reader blocked on the window stops when the
    /// acknowledger gave up.
    func close() {
        let waiters = state.withLock { state in
            state.isClosed = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.continuation.resume(throwing: CancellationError()) }
    }
}
