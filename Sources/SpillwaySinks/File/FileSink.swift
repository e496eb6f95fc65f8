import Foundation
import SpillwayCore

/// Writes events as JSON Lines to a file (appending) or to standard output. A batch is acknowledged only
/// after it is written in full and, for a file, fsync'd: a crash right after `deliver` returns loses nothing.
public final class FileSink: ChangeSink, @unchecked Sendable {
    // @unchecked Sendable: `descriptor` is written only under `lock`; writes run on `queue`.
    public let name: String
    private let settings: FileSinkSettings
    /// The line for each event: Spillway's event, or another `format`.
    private let encoder: EventEncoder
    private let lock = NSLock()
    private let queue = DispatchQueue(label: "spillway.file")
    private var descriptor: Int32

    public struct Error: Swift.Error, CustomStringConvertible {
        public let description: String
    }

    public init(name: String, settings: FileSinkSettings, encoder: EventEncoder = .spillway) throws {
        self.name = name
        self.settings = settings
        self.encoder = encoder
        if settings.isStandardOutput {
            descriptor = STDOUT_FILENO
        } else {
            let fd = open(settings.path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)  // read: to find a torn last line
            guard fd >= 0 else {
                throw Error(description: "sink '\(name)': cannot open \(settings.path) for appending: \(String(cString: strerror(errno))). "
                    + "Fix: check the directory exists and is writable, or change sinks[].path")
            }
            descriptor = fd
            do {
                try dropTornTail()
            } catch {
                Foundation.close(fd)
                throw error
            }
        }
    }

    /// A kill -9 (or a full disk) in the middle of a write leaves a last line without its newline. That event
    /// was not acknowledged, so it is delivered again; appending after the fragment would glue it to the next
    /// line and make both unreadable. The fragment is cut off, back to the last complete line.
    private func dropTornTail() throws {
        var info = stat()
        guard fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_size > 0 else { return }
        var end = Int64(info.st_size)
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while end > 0 {
            let start = max(0, end - Int64(chunk.count))
            let count = Int(end - start)
            let read = chunk.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress!, count, off_t(start)) }
            guard read == count else {
                throw Error(description: "sink '\(name)': cannot read \(settings.path) back: \(String(cString: strerror(errno)))")
            }
            if let newline = chunk[..<count].lastIndex(of: 0x0A) {
                let keep = start + Int64(newline) + 1
                if keep == Int64(info.st_size) { return }
                try truncate(to: keep)
                return
            }
            end = start
        }
        try truncate(to: 0)
    }

    private func truncate(to length: Int64) throws {
        guard ftruncate(descriptor, off_t(length)) == 0 else {
            throw Error(description: "sink '\(name)': cannot cut the torn last line of \(settings.path): \(String(cString: strerror(errno)))")
        }
    }

    deinit {
        if descriptor != STDOUT_FILENO, descriptor >= 0 { Foundation.close(descriptor) }
    }

    public func deliver(_ batch: [ChangeEvent]) async throws {
        guard !batch.isEmpty else { return }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(batch.count * 512)  // a typical event's line is 300-400 bytes: no regrowth
        for index in batch.indices {  // not `for event in`: that copies each event (a retain per string)
            encoder.write(batch[index], into: &buffer)
            buffer.append(0x0A)
        }
        // write and fsync block: they run on the sink's own queue, never on the cooperative pool.
        let bytes = buffer
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Swift.Error>) in
            queue.async {
                continuation.resume(with: Result { try self.append(bytes) })
            }
        }
    }

    private func append(_ buffer: [UInt8]) throws {
        try lock.withLock {
            // Where this batch starts: a write that fails half-way (a full disk) is cut back to it, so the retry
            // does not append to a fragment.
            let start = settings.isStandardOutput ? -1 : Int64(lseek(descriptor, 0, SEEK_END))
            do {
                try writeAll(buffer)
                if settings.fsync, !settings.isStandardOutput, fsync(descriptor) != 0 {
                    throw Error(description: "sink '\(name)': fsync of \(settings.path) failed: \(String(cString: strerror(errno)))")
                }
            } catch {
                if start >= 0 { _ = ftruncate(descriptor, off_t(start)) }
                throw error
            }
        }
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    throw Error(description: "sink '\(name)': write to \(settings.isStandardOutput ? "stdout" : settings.path) failed: "
                        + String(cString: strerror(errno)))
                }
                offset += written
            }
        }
    }

    public func close() async throws {
        lock.withLock {
            if descriptor != STDOUT_FILENO, descriptor >= 0 {
                Foundation.close(descriptor)
                descriptor = -1
            }
        }
    }
}
