// A correctly locked counter: two threads, every access inside Synchronization.Mutex.withLock. Under
// ThreadSanitizer on Linux this still reports a "Swift access race", because Mutex waits on a futex that TSan
// does not intercept, so it never sees the lock's happens-before. scripts/sanitize-integration.sh builds and
// runs this first: while it reports a race, reports whose accesses all sit inside Mutex-guarded state are of
// this kind, and are suppressed there by name.
import Foundation
import Synchronization

final class Counter: Sendable { let value = Mutex(0) }
let counter = Counter()
let threads = (0..<2).map { _ in Thread { for _ in 0..<10_000 { counter.value.withLock { $0 += 1 } } } }
threads.forEach { $0.start() }
while counter.value.withLock({ $0 }) < 20_000 { usleep(1000) }
print("count \(counter.value.withLock { $0 })")
