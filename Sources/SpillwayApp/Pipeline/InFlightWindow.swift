import Synchronization

/// Bounds how many batches a pipeline has read but not yet checkpointed: the reader takes a slot before
/// each batch and the checkpointer gives it back, so memory stays at `limit` batches however far the sinks
/// fall behind.
final class InFlightWindow: Sendable {
    private struct State {
        var available: Int
        var waiters: [CheckedContinuation<Void, any Error>] = []
        var isClosed = false
    }

    private let state: Mutex<State>

    init(limit: Int) {
        precondition(limit > 0)
        state = Mutex(State(available: limit))
    }

    /// Takes a slot, waiting for one to be returned if none is free. Throws `CancellationError` once the
    /// window is closed.
    func acquire() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let result: Result<Void, any Error>? = state.withLock { state in
                if state.isClosed { return .failure(CancellationError()) }
                guard state.available > 0 else {
                    state.waiters.append(continuation)
                    return nil
                }
                state.available -= 1
                return .success(())
            }
            if let result { continuation.resume(with: result) }
        }
    }

    /// Returns a slot, handing it to the longest waiting `acquire` if there is one.
    func release() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            guard !state.waiters.isEmpty else {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        waiter?.resume()
    }

    /// Fails every waiting and future `acquire`, so a reader blocked on the window stops when the
    /// checkpointer gave up.
    func close() {
        let waiters = state.withLock { state in
            state.isClosed = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(throwing: CancellationError()) }
    }
}
