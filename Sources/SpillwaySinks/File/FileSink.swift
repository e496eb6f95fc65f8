import Foundation
import SpillwayCore

/// Writes events as JSON Lines to a file (appending) or to standard output. A batch is acknowledged only
/// after it is written in full and, for a file, fsync'd: a crash right after `deliver` returns loses nothing.
public final class FileSink: ChangeSink, @unchecked Sendable {
    // @unchecked Sendable: `descriptor` is written only under `lock`.
    public let name: String
    private let settings: FileSinkSettings
    private let lock = NSLock()
    private var descriptor: Int32

    public struct Error: Swift.Error, CustomStringConvertible {
        public let description: String
    }

    public init(name: String, settings: FileSinkSettings) throws {
        self.name = name
        self.settings = settings
        if settings.isStandardOutput {
            descriptor = STDOUT_FILENO
        } else {
            let fd = open(settings.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw Error(description: "sink '\(name)': cannot open \(settings.path) for appending: \(String(cString: strerror(errno))). "
                    + "Fix: check the directory exists and is writable, or change sinks[].path")
            }
            descriptor = fd
        }
    }

    deinit {
        if descriptor != STDOUT_FILENO, descriptor >= 0 { Foundation.close(descriptor) }
    }

    public func deliver(_ batch: [ChangeEvent]) async throws {
        guard !batch.isEmpty else { return }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(batch.count * 256)
        for event in batch {
            event.writeJSON(into: &buffer)
            buffer.append(0x0A)
        }
        try lock.withLock {
            try writeAll(buffer)
            if settings.fsync, !settings.isStandardOutput, fsync(descriptor) != 0 {
                throw Error(description: "sink '\(name)': fsync of \(settings.path) failed: \(String(cString: strerror(errno)))")
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
