import Dispatch
import Foundation
import SpillwayCore

// What every test target that talks Kafka needs: kcat (a consumer independent of Spillway and its librdkafka
// wrapper) and the `spillway-kafka-mock` tool as a child process. Not a test target itself: a library the
// test targets share, so none of them keeps a copy.

/// One record as kcat's `-J` prints it.
public struct KafkaRecord: Decodable, Sendable {
    public let topic: String
    public let partition: Int32
    public let offset: Int64
    public let key: String?
    public let payload: String?
    public let headers: [String]?

    /// The value of header `name` (kcat prints headers as a flat name, value list).
    public func header(_ name: String) -> String? {
        guard let headers else { return nil }
        return stride(from: 0, to: headers.count - 1, by: 2).first { headers[$0] == name }.map { headers[$0 + 1] }
    }

    /// The payload as a change event, if it is one.
    public var event: ChangeEvent? { payload.flatMap { try? ChangeEvent(json: JSONParser.parse($0)) } }
}

/// Reads every record of `topic` with kcat; records come back in offset order within each partition.
public func consumeWithKcat(topic: String, bootstrap: String) async throws -> [KafkaRecord] {
    let output = try await runTool("kcat", ["-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q"])
    let decoder = JSONDecoder()
    return try output.split(separator: "\n").map { try decoder.decode(KafkaRecord.self, from: Data($0.utf8)) }
        .sorted { ($0.partition, $0.offset) < ($1.partition, $1.offset) }
}

/// Whether kcat is on PATH.
public var isKcatInstalled: Bool {
    (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
        .contains { FileManager.default.isExecutableFile(atPath: "\($0)/kcat") }
}

public struct ToolFailure: Error, CustomStringConvertible {
    public let description: String
}

/// Runs a program from PATH to completion, off the cooperative pool, and returns its stdout.
public func runTool(_ name: String, _ arguments: [String]) async throws -> String {
    try await offload {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [name] + arguments
        let stdout = Pipe()
        process.standardOutput = stdout
        // Not the test process's stderr, which `swift test` reads through a pipe until every holder closes it.
        let stderrPath = FileManager.default.temporaryDirectory.appendingPathComponent("spillway-tool-\(UUID().uuidString)").path
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: stderrPath) }
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let errors = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
            throw ToolFailure(description: "\(name) exited with \(process.terminationStatus) (scripts/install-deps.sh installs it): \(errors.suffix(2000))")
        }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Runs blocking work on a Dispatch thread, so tests never stall the 2-thread cooperative pool.
public func offload<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
    }
}

/// The `spillway-kafka-mock` tool (a librdkafka mock cluster: the Kafka protocol over loopback TCP) as a
/// child process, driven through stdin, so a test can take brokers down while a producer or `spillway run`
/// streams.
public final class KafkaMockProcess: @unchecked Sendable {
    // @unchecked Sendable: each test drives one instance from one task at a time.
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffered = Data()
    public private(set) var bootstrapServers = ""

    /// `SPILLWAY_KAFKA_MOCK`, else the tool next to the running test bundle (SwiftPM builds both into one
    /// directory).
    public static var executable: String {
        if let explicit = ProcessInfo.processInfo.environment["SPILLWAY_KAFKA_MOCK"], !explicit.isEmpty { return explicit }
        let bundle = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: bundle).deletingLastPathComponent().appendingPathComponent("spillway-kafka-mock").path
    }

    /// Starts the tool and reads the bootstrap list it prints first.
    public static func launch(_ arguments: [String] = []) async throws -> KafkaMockProcess {
        let mock = KafkaMockProcess()
        try await offload {
            mock.process.executableURL = URL(fileURLWithPath: executable)
            mock.process.arguments = arguments
            mock.process.standardInput = mock.input
            mock.process.standardOutput = mock.output
            mock.process.standardError = FileHandle.nullDevice
            try mock.process.run()
            mock.bootstrapServers = try mock.readLine()
        }
        return mock
    }

    /// Sends one command (`down-all`, `up-all`, `down N`, `topic NAME P`, ...) and returns the tool's
    /// one-line answer: `ok`, or `error: ...`.
    public func command(_ line: String) async throws -> String {
        try await offload {
            try self.input.fileHandleForWriting.write(contentsOf: Data("\(line)\n".utf8))
            return try self.readLine()
        }
    }

    /// Ends the tool and waits for it; returns its exit status. `quit` and end of input first: a tool started
    /// from a Dispatch worker inherits that thread's blocked signals and may never see a SIGTERM. SIGKILL
    /// after 10 s, so a stuck tool never holds the test run.
    @discardableResult
    public func stop() -> Int32 {
        if process.isRunning {
            try? input.fileHandleForWriting.write(contentsOf: Data("quit\n".utf8))
            try? input.fileHandleForWriting.close()
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning, Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Sends SIGTERM and waits for the exit status (SIGKILL after 10 s): for tests of the tool's signal handling.
    @discardableResult
    public func terminate() -> Int32 {
        if process.isRunning { process.terminate() }
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
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
            guard !chunk.isEmpty else { throw ToolFailure(description: "spillway-kafka-mock (\(Self.executable)) closed its stdout") }
            buffered.append(chunk)
        }
    }
}
