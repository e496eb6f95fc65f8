import Dispatch
import Foundation
import SpillwayCore
import Testing

extension TestEnvironment {
    /// The Kafka tests also need kcat (the independent consumer); under SPILLWAY_REQUIRE_INTEGRATION they
    /// run, and fail, without it.
    static var canRunKafka: Bool {
        let kcatInstalled = (environment["PATH"] ?? "/usr/bin").split(separator: ":")
            .contains { FileManager.default.isExecutableFile(atPath: "\($0)/kcat") }
        return isIntegrationRequired || (databaseURL != nil && kcatInstalled)
    }
}

/// One record as kcat's `-J` prints it.
struct KafkaRecord: Decodable, Sendable {
    let topic: String
    let partition: Int32
    let offset: Int64
    let key: String?
    let payload: String?
    let headers: [String]?

    /// The value of header `name` (kcat prints headers as a flat name, value list).
    func header(_ name: String) -> String? {
        guard let headers else { return nil }
        return stride(from: 0, to: headers.count - 1, by: 2).first { headers[$0] == name }.map { headers[$0 + 1] }
    }

    var event: ChangeEvent? { payload.flatMap { try? ChangeEvent(json: JSONParser.parse($0)) } }
}

/// Reads every record of `topic` with kcat: a consumer independent of Spillway and its librdkafka wrapper.
/// Records come back in offset order within each partition.
func consumeWithKcat(topic: String, bootstrap: String) async throws -> [KafkaRecord] {
    let output = try await runTool("kcat", ["-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q"])
    let decoder = JSONDecoder()
    return try output.split(separator: "\n").map { try decoder.decode(KafkaRecord.self, from: Data($0.utf8)) }
        .sorted { ($0.partition, $0.offset) < ($1.partition, $1.offset) }
}

struct ToolFailure: Error, CustomStringConvertible {
    let description: String
}

/// Runs a program from PATH to completion, off the cooperative pool, and returns its stdout.
func runTool(_ name: String, _ arguments: [String]) async throws -> String {
    try await offload {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [name] + arguments
        let stdout = Pipe()
        process.standardOutput = stdout
        try process.run()
        let data = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ToolFailure(description: "\(name) exited with \(process.terminationStatus) (scripts/install-deps.sh installs it)")
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

/// The `spillway-kafka-mock` tool (a librdkafka mock cluster: the Kafka protocol over loopback TCP) as a
/// child process, driven through stdin, so a test can take every broker down while `spillway run` streams.
final class KafkaMockProcess: @unchecked Sendable {
    // @unchecked Sendable: each test drives one instance from one task at a time.
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffered = Data()
    private(set) var bootstrapServers = ""

    static var executable: String {
        if let explicit = TestEnvironment.environment["SPILLWAY_KAFKA_MOCK"], !explicit.isEmpty { return explicit }
        return URL(fileURLWithPath: TestEnvironment.binary).deletingLastPathComponent().appendingPathComponent("spillway-kafka-mock").path
    }

    /// Starts the tool and reads the bootstrap list it prints first.
    static func start(_ arguments: [String] = []) async throws -> KafkaMockProcess {
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
        TestScope.current?.onExit { mock.stop() }
        return mock
    }

    /// Sends one command (`down-all`, `up-all`, `topic NAME P`, ...) and expects `ok`.
    func command(_ line: String) async throws {
        let answer = try await offload {
            try self.input.fileHandleForWriting.write(contentsOf: Data("\(line)\n".utf8))
            return try self.readLine()
        }
        #expect(answer == "ok", "spillway-kafka-mock \(line): \(answer)")
    }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
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

/// `spillway status --json` for a config file.
func statusJSON(_ configPath: String) async throws -> JSONObject {
    let status = try await SpillwayProcess.run(["status", "--json", "--config", configPath])
    try #require(status.code == 0, "status failed: \(status.stderr)")
    return try #require(JSONParser.parse(status.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).objectValue)
}

/// Polls `status` until `condition` holds (at most `timeout`); returns the last status.
@discardableResult
func waitForStatus(_ configPath: String, timeout: Duration = .seconds(30), _ what: String,
                   until condition: (JSONObject) -> Bool) async throws -> JSONObject {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while true {
        let status = try await statusJSON(configPath)
        if condition(status) { return status }
        if clock.now > deadline {
            Issue.record("timed out waiting for \(what); status: \(JSONEncoding.string(.object(status)))")
            return status
        }
        try await Task.sleep(for: .milliseconds(200))
    }
}

extension JSONObject {
    var lagRows: Int { self["lag_rows"].flatMap { Int($0.plainText) } ?? -1 }
    var lastError: String? { self["last_error"]?.stringValue }
    var position: String? { self["position"]?.stringValue }
}
