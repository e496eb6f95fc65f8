import Dispatch
import Foundation
import Testing

/// What the tests against a mock cluster need besides this package: kcat, an independent consumer.
enum KafkaTestEnvironment {
    /// Set by the test command: a missing tool is then a failure, never a silent skip.
    static var isIntegrationRequired: Bool { ProcessInfo.processInfo.environment["SPILLWAY_REQUIRE_INTEGRATION"] == "1" }

    static var isKcatInstalled: Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
            .contains { FileManager.default.isExecutableFile(atPath: "\($0)/kcat") }
    }

    static var canRun: Bool { isKcatInstalled || isIntegrationRequired }
}

/// Kafka's default partitioner for keyed records (the Java client's, and librdkafka's
/// `murmur2_random`): `toPositive(murmur2(key)) % partitions`.
func expectedPartition(forKey key: [UInt8], partitions: Int) -> Int32 {
    Int32((UInt32(bitPattern: murmur2(key)) & 0x7fff_ffff) % UInt32(partitions))
}

/// Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2).
func murmur2(_ key: [UInt8]) -> Int32 {
    let m: UInt32 = 0x5bd1_e995
    var h: UInt32 = 0x9747_b28c ^ UInt32(key.count)
    let whole = key.count & ~3
    for i in stride(from: 0, to: whole, by: 4) {
        var k = UInt32(key[i]) | UInt32(key[i + 1]) << 8 | UInt32(key[i + 2]) << 16 | UInt32(key[i + 3]) << 24
        k &*= m
        k ^= k >> 24
        k &*= m
        h &*= m
        h ^= k
    }
    let tail = key.count & 3
    if tail == 3 { h ^= UInt32(key[whole + 2]) << 16 }
    if tail >= 2 { h ^= UInt32(key[whole + 1]) << 8 }
    if tail >= 1 {
        h ^= UInt32(key[whole])
        h &*= m
    }
    h ^= h >> 13
    h &*= m
    h ^= h >> 15
    return Int32(bitPattern: h)
}

/// One record as kcat's `-J` prints it.
struct ConsumedRecord: Decodable, Sendable {
    let topic: String
    let partition: Int32
    let offset: Int64
    let key: String?
    let payload: String?
    let headers: [String]?
}

/// Reads every record of `topic` with kcat, a consumer independent of the code under test.
func consumeWithKcat(topic: String, bootstrap: String) async throws -> [ConsumedRecord] {
    let output = try await run(
        "/usr/bin/env", ["kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q"])
    let decoder = JSONDecoder()
    return try output.split(separator: "\n").map { try decoder.decode(ConsumedRecord.self, from: Data($0.utf8)) }
}

struct ProcessFailure: Error, CustomStringConvertible {
    let description: String
}

/// Runs a program to completion off the cooperative pool and returns its stdout.
func run(_ executable: String, _ arguments: [String]) async throws -> String {
    try await offload {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdout = Pipe()
        process.standardOutput = stdout
        try process.run()
        let data = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ProcessFailure(description: "\(arguments.first ?? executable) exited with \(process.terminationStatus)"
                + " (kcat comes from `apt-get install -y kcat`)")
        }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Runs blocking work on a Dispatch thread, so tests never stall the 2-thread cooperative pool.
func offload<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
    }
}

/// The `spillway-kafka-mock` executable run as a child process, driven through stdin.
final class MockBrokerProcess: @unchecked Sendable {
    // @unchecked Sendable: each test drives one instance from one task at a time.
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffered = Data()
    private(set) var bootstrapServers = ""

    /// Starts the tool (built next to the test bundle) and reads its bootstrap line.
    static func start(_ arguments: [String]) async throws -> MockBrokerProcess {
        let mock = MockBrokerProcess()
        try await offload {
            mock.process.executableURL = try mockExecutable()
            mock.process.arguments = arguments
            mock.process.standardInput = mock.input
            mock.process.standardOutput = mock.output
            try mock.process.run()
            mock.bootstrapServers = try mock.readLine()
        }
        return mock
    }

    /// Sends one stdin command and returns the tool's one-line answer.
    func command(_ line: String) async throws -> String {
        try await offload {
            try self.input.fileHandleForWriting.write(contentsOf: Data("\(line)\n".utf8))
            return try self.readLine()
        }
    }

    /// Ends the tool with SIGTERM and waits for it; returns its exit status.
    @discardableResult
    func stop() -> Int32 {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        return process.terminationStatus
    }

    private func readLine() throws -> String {
        while true {
            if let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffered[..<newline], as: UTF8.self)
                buffered = Data(buffered[(newline + 1)...])
                return line
            }
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { throw ProcessFailure(description: "spillway-kafka-mock closed its stdout") }
            buffered.append(chunk)
        }
    }

    private static func mockExecutable() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["SPILLWAY_KAFKA_MOCK"] { return URL(fileURLWithPath: path) }
        // The test bundle and the tool are built into the same directory.
        let bundle = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        return URL(fileURLWithPath: bundle).deletingLastPathComponent().appendingPathComponent("spillway-kafka-mock")
    }
}

extension String {
    var bytes: [UInt8] { Array(utf8) }
}
