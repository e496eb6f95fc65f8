import CHiredis
import Dispatch
import Foundation
import SpillwayCore

/// One Redis reply, copied out of hiredis's memory.
public enum RedisReply: Sendable, Hashable {
    case status(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    case array([RedisReply])
    case null

    /// A bulk or status reply as text.
    public var text: String? {
        switch self {
        case .bulk(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .status(let s): return s
        default: return nil
        }
    }
}

/// A Redis error: from the server (an error reply, e.g. `WRONGTYPE` or `NOAUTH`) or from hiredis (the
/// connection). `description` names host and port, never the password.
public struct RedisError: Error, CustomStringConvertible, Sendable {
    public var message: String
    /// The connection is gone (refused, reset, timed out); the next call reconnects.
    public var isConnectionFailure: Bool

    public init(_ message: String, isConnectionFailure: Bool) {
        self.message = message
        self.isConnectionFailure = isConnectionFailure
    }

    public var description: String { message }
}

/// One blocking hiredis connection. Every call runs on the connection's own serial queue, never on Swift's
/// cooperative pool, because hiredis blocks (bounded by `timeout`, set as the socket's send and receive
/// timeouts). It connects lazily, and after a connection error frees the context so the next call
/// connects afresh: a Redis restart costs the callers one failed call, which the sink's retry covers.
public final class RedisConnection: @unchecked Sendable {
    // @unchecked Sendable: `context` and `isClosed` are touched only on `queue` (and in deinit, when no
    // call can be pending).
    private var context: UnsafeMutablePointer<redisContext>?
    private var isClosed = false
    private let queue: DispatchQueue
    public let url: RedisURL
    public let timeout: Duration

    public init(url: RedisURL, timeout: Duration = .seconds(5), label: String = "spillway") {
        self.url = url
        self.timeout = timeout
        self.queue = DispatchQueue(label: "spillway.redis.\(label)")
    }

    deinit {
        if let context { redisFree(context) }
    }

    /// Sends `commands` in one pipeline (all written before any reply is read) and returns their replies in
    /// order. An error reply is returned, not thrown: the caller decides what each command may answer. A
    /// connection error throws; the replies of that pipeline are then unknown.
    public func pipeline(_ commands: [[String]]) async throws -> [RedisReply] {
        guard !commands.isEmpty else { return [] }
        return try await onQueue { context in
            for command in commands {
                try Self.append(command, to: context, url: self.url)
            }
            var replies: [RedisReply] = []
            replies.reserveCapacity(commands.count)
            for _ in commands {
                replies.append(try Self.readReply(context, url: self.url))
            }
            return replies
        }
    }

    /// One command and its reply; an error reply throws.
    @discardableResult
    public func command(_ arguments: String...) async throws -> RedisReply {
        let reply = try await pipeline([arguments])[0]
        if case .error(let message) = reply { throw RedisError("\(arguments.first ?? ""): \(message)", isConnectionFailure: false) }
        return reply
    }

    /// Waits for the next reply the server pushes without being asked (a pub/sub message after SUBSCRIBE),
    /// at most `timeout`.
    public func receive() async throws -> RedisReply {
        try await onQueue { context in try Self.readReply(context, url: self.url) }
    }

    /// Frees the connection; later calls throw.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                self.isClosed = true
                if let context = self.context {
                    redisFree(context)
                    self.context = nil
                }
                continuation.resume()
            }
        }
    }

    // MARK: Internals

    private func onQueue<T: Sendable>(_ body: @escaping @Sendable (UnsafeMutablePointer<redisContext>) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                guard !self.isClosed else {
                    continuation.resume(throwing: RedisError("the Redis connection is closed", isConnectionFailure: false))
                    return
                }
                continuation.resume(with: Result {
                    let context = try self.connectedContext()
                    do {
                        return try body(context)
                    } catch let error as RedisError where error.isConnectionFailure {
                        // hiredis marks the context failed for good; drop it so the next call reconnects.
                        redisFree(context)
                        self.context = nil
                        throw error
                    }
                })
            }
        }
    }

    /// The open context, connecting (and authenticating, selecting the database) first when there is none.
    private func connectedContext() throws -> UnsafeMutablePointer<redisContext> {
        if let context { return context }
        let where_ = "\(url.host):\(url.port)"
        guard let fresh = redisConnectWithTimeout(url.host, Int32(url.port), Self.timeval(timeout)) else {
            throw RedisError("cannot connect to Redis at \(where_): hiredis could not allocate a context", isConnectionFailure: true)
        }
        guard fresh.pointee.err == 0 else {
            let message = Self.errorMessage(fresh)
            redisFree(fresh)
            throw RedisError("cannot connect to Redis at \(where_): \(message)", isConnectionFailure: true)
        }
        do {
            guard redisSetTimeout(fresh, Self.timeval(timeout)) == REDIS_OK else {
                throw RedisError("cannot set the socket timeout for Redis at \(where_): \(Self.errorMessage(fresh))", isConnectionFailure: true)
            }
            _ = redisEnableKeepAlive(fresh)
            var setup: [[String]] = []
            if let password = url.password {
                setup.append(url.username.map { ["AUTH", $0, password] } ?? ["AUTH", password])
            }
            if url.database != 0 { setup.append(["SELECT", String(url.database)]) }
            for command in setup { try Self.append(command, to: fresh, url: url) }
            for command in setup {
                if case .error(let message) = try Self.readReply(fresh, url: url) {
                    // Name the command, never its arguments: AUTH's are the credentials.
                    throw RedisError("Redis at \(where_) refused \(command[0]): \(message)", isConnectionFailure: true)
                }
            }
        } catch {
            redisFree(fresh)
            throw error
        }
        context = fresh
        return fresh
    }

    private static func append(_ command: [String], to context: UnsafeMutablePointer<redisContext>, url: RedisURL) throws {
        // Binary-safe: every argument travels with its length, so no value is ever parsed as syntax.
        let arguments = command.map { Array($0.utf8) }
        let lengths = arguments.map(\.count)
        let pointers = arguments.map { bytes -> UnsafeMutablePointer<CChar> in
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, bytes.count))
            bytes.withUnsafeBufferPointer { source in
                // An empty argument (an empty key) has no base address to copy from.
                guard let base = source.baseAddress, !source.isEmpty else { return }
                base.withMemoryRebound(to: CChar.self, capacity: source.count) { buffer.update(from: $0, count: source.count) }
            }
            return buffer
        }
        defer { pointers.forEach { $0.deallocate() } }
        var argv = pointers.map { UnsafePointer<CChar>?($0) }
        let status = argv.withUnsafeMutableBufferPointer { argvBuffer in
            lengths.withUnsafeBufferPointer { lengthBuffer in
                redisAppendCommandArgv(context, Int32(command.count), argvBuffer.baseAddress, lengthBuffer.baseAddress)
            }
        }
        guard status == REDIS_OK else {
            throw RedisError("Redis at \(url.host):\(url.port): \(errorMessage(context))", isConnectionFailure: true)
        }
    }

    private static func readReply(_ context: UnsafeMutablePointer<redisContext>, url: RedisURL) throws -> RedisReply {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
            throw RedisError("Redis at \(url.host):\(url.port): \(errorMessage(context))", isConnectionFailure: true)
        }
        defer { freeReplyObject(raw) }
        return copy(raw.assumingMemoryBound(to: redisReply.self))
    }

    private static func copy(_ reply: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let r = reply.pointee
        func bytes() -> [UInt8] {
            guard let str = r.str, r.len > 0 else { return [] }
            return Array(UnsafeRawBufferPointer(start: str, count: Int(r.len)))
        }
        switch r.type {
        case REDIS_REPLY_STRING: return .bulk(bytes())
        case REDIS_REPLY_STATUS: return .status(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_ERROR: return .error(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_INTEGER: return .integer(Int64(r.integer))
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            items.reserveCapacity(Int(r.elements))
            for index in 0..<Int(r.elements) {
                if let element = r.element[index] { items.append(copy(element)) } else { items.append(.null) }
            }
            return .array(items)
        default: return .null
        }
    }

    private static func errorMessage(_ context: UnsafeMutablePointer<redisContext>) -> String {
        let message = withUnsafeBytes(of: context.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        switch context.pointee.err {
        case REDIS_ERR_EOF: return message.isEmpty ? "the server closed the connection" : message
        case REDIS_ERR_IO:
            // errstr holds strerror(errno); a socket timeout reads "Resource temporarily unavailable".
            return message.contains("temporarily unavailable") ? "no reply within the timeout (\(message))" : message
        default: return message.isEmpty ? "unknown hiredis error \(context.pointee.err)" : message
        }
    }

    private static func timeval(_ duration: Duration) -> Foundation.timeval {
        let (seconds, attoseconds) = duration.components
        return Foundation.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
