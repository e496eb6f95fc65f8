import Foundation
import SpillwayCore
import SpillwayRedis
import Testing

extension TestEnvironment {
    /// `SPILLWAY_TEST_REDIS_URL`: a Redis the tests may write to (each test under its own key prefix).
    static var redisURL: String? { environment["SPILLWAY_TEST_REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 } }

    static var canRunRedis: Bool { (databaseURL != nil && redisURL != nil) || isIntegrationRequired }

    /// The shared test Redis, or a failure that says how to get one.
    static func redis() throws -> RedisURL {
        let text = try #require(redisURL, "SPILLWAY_TEST_REDIS_URL is not set: run the tests through scripts/test.sh")
        return try RedisURL(parsing: text, key: "SPILLWAY_TEST_REDIS_URL")
    }
}

/// A key prefix of one test's own, so tests share one Redis without seeing each other's keys.
func redisPrefix(_ label: String = #function) -> String {
    "t" + label.filter { $0.isLetter }.prefix(20) + "\(UInt32.random(in: 0...UInt32.max)):"
}

extension RedisConnection {
    /// Sets every key to "cached".
    func seed(_ keys: [String]) async throws {
        let replies = try await pipeline(keys.map { ["SET", $0, "cached"] })
        #expect(replies.allSatisfy { $0 == .status("OK") })
    }

    /// The keys matching `pattern` (KEYS: fine for a test's few keys, never in production).
    func keys(_ pattern: String) async throws -> Set<String> {
        guard case .array(let items) = try await command("KEYS", pattern) else { return [] }
        return Set(items.compactMap(\.text))
    }
}

/// A redis-server of one test's own, which the test may stop and start again. It keeps an append-only
/// file (fsync'd on every write), so the keys a test seeded are still there after a restart, as a
/// production cache's would be. Its pidfile sits where scripts/test.sh's cleanup looks.
final class OwnRedisServer: @unchecked Sendable {
    // @unchecked Sendable: used by one test at a time.
    let port: Int
    let directory: String
    var pidfile: String { directory + ".pid" }
    var url: RedisURL { RedisURL(host: "127.0.0.1", port: port) }

    init() throws {
        port = try freeTCPPort()
        let base = TestEnvironment.environment["SPILLWAY_TEST_REDIS_DIR"].flatMap { $0.isEmpty ? nil : $0 }
            ?? FileManager.default.temporaryDirectory.path
        directory = "\(base)/own-\(port)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        TestScope.current?.onExit { [self] in try? await stop() }
    }

    func start() async throws {
        let status = try await spawnAndWait("redis-server", [
            "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "always",
            "--daemonize", "yes", "--pidfile", pidfile, "--dir", directory, "--logfile", "\(directory)/redis.log",
        ])
        try #require(status == 0, "redis-server did not start (is it installed? scripts/install-deps.sh)")
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while clock.now < deadline {
            let probe = RedisConnection(url: url, timeout: .seconds(1))
            if (try? await probe.command("PING")) == .status("PONG") {
                await probe.close()
                return
            }
            await probe.close()
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("redis-server on port \(port) did not answer PING within 10s")
    }

    /// SIGTERM (Redis flushes its append-only file and exits), then waits until the process is gone.
    func stop() async throws {
        guard let text = try? String(contentsOfFile: pidfile, encoding: .utf8),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return }
        kill(pid, SIGTERM)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while kill(pid, 0) == 0 {
            if clock.now > deadline { kill(pid, SIGKILL) }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// Runs `program` (found on PATH) to its exit and returns its exit status. Not Foundation's Process: a child
/// started from a Dispatch worker thread inherits that thread's blocked signals, and a redis-server that
/// blocks SIGTERM would outlive scripts/test.sh's cleanup; posix_spawn resets the mask and the handlers.
func spawnAndWait(_ program: String, _ arguments: [String]) async throws -> Int32 {
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    var all = sigset_t()
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setsigdefault(&attributes, &all)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    let argv = ([program] + arguments).map { strdup($0) }
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawnp(&pid, program, nil, &attributes, argv + [nil], environ)
    try #require(spawned == 0, "cannot start \(program): \(String(cString: strerror(spawned)))")
    var status: Int32 = 0
    while true {
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid { break }
        if result < 0 { return -1 }
        try await Task.sleep(for: .milliseconds(20))
    }
    // WIFEXITED / WEXITSTATUS are macros Swift does not import.
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1
}

/// A TCP port nothing listens on right now.
func freeTCPPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    try #require(fd >= 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    try #require(bound == 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

extension TestDatabase {
    /// A config file capturing `tables` with the given sinks (YAML list items), in a fresh temp dir.
    func writeConfig(consumer: String, kind: String = "audit_log", tables: [String], sinks: String) throws -> String {
        let path = tempPath("\(consumer).yaml")
        try cacheConfigYAML(consumer: consumer, kind: kind, tables: tables, sinks: sinks).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func cacheConfig(consumer: String = "tests", kind: String = "audit_log", tables: [String], sinks: String) throws -> SpillwayConfig {
        try SpillwayConfig.parse(yaml: cacheConfigYAML(consumer: consumer, kind: kind, tables: tables, sinks: sinks))
    }

    private func cacheConfigYAML(consumer: String, kind: String = "audit_log", tables: [String], sinks: String) -> String {
        """
        database:
          url: \(url)
        consumer: \(consumer)
        source:
          kind: \(kind)
          tables: [\(tables.joined(separator: ", "))]
          poll_interval: 100ms
          slot: \(slotName(consumer: consumer))
        sinks:
        \(sinks)
        log:
          level: info
        """
    }
}
