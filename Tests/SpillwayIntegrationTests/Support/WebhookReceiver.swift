import Foundation
import SpillwayCore
import Testing

/// Support/webhook_receiver.py as a child process: a real HTTP server on loopback that verifies Standard
/// Webhooks signatures on its own, records what it got and answers as scripted (see the script).
final class WebhookReceiver: @unchecked Sendable {
    // @unchecked Sendable: `process` is replaced only by `restart`, called from one test at a time.
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    struct Received: Sendable {
        var path: String
        var headers: [String: String]
        var body: String
        var isVerified: Bool
        var status: Int
    }

    private(set) var process: Process?
    private(set) var port = 0
    let directory: String
    var logPath: String { directory + "/requests.jsonl" }
    var controlPath: String { directory + "/control.json" }
    var url: String { "http://127.0.0.1:\(port)" }

    init() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("spillway-webhook-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try await start()
        TestScope.current?.onExit { [self] in stop() }
    }

    /// Starts the server (on the same port after a `stop`).
    func start() async throws {
        let portFile = directory + "/port"
        try? FileManager.default.removeItem(atPath: portFile)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("webhook_receiver.py").path
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        child.arguments = ["python3", script, "--port", String(port), "--port-file", portFile, "--log", logPath,
                           "--control", controlPath, "--secret", Self.secret,
                           "--parent-pid", String(ProcessInfo.processInfo.processIdentifier)]
        child.standardInput = FileHandle.nullDevice
        // Never the test process's own stdout or stderr: `swift test` reads those through a pipe until every
        // holder closes it, so a receiver outliving a crashed test process would hang the run.
        let output = directory + "/receiver.out"
        if !FileManager.default.fileExists(atPath: output) { _ = FileManager.default.createFile(atPath: output, contents: nil) }
        let outputHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        outputHandle.seekToEndOfFile()
        child.standardOutput = outputHandle
        child.standardError = outputHandle
        try child.run()
        process = child
        let clock = ContinuousClock()
        // Generous: a Python start on a loaded 2-core machine has taken over 10 s.
        let deadline = clock.now + .seconds(45)
        while clock.now < deadline {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8), let number = Int(text) {
                port = number
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        // Thrown, not only recorded: a test going on without its receiver would retry its webhook forever.
        struct NotStarted: Error, CustomStringConvertible { var description: String { "the webhook receiver did not start within 45 s" } }
        throw NotStarted()
    }

    /// Kills the server: connections are refused until `start`.
    func stop() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func control(_ json: String) throws {
        try json.write(toFile: controlPath, atomically: true, encoding: .utf8)
    }

    var requests: [Received] {
        guard let data = FileManager.default.contents(atPath: logPath) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            guard case .object(let o)? = try? JSONParser.parse(String(line)) else { return nil }
            var headers: [String: String] = [:]
            for field in o["headers"]?.objectValue?.fields ?? [] { headers[field.name] = field.value.stringValue }
            return Received(path: o["path"]?.stringValue ?? "", headers: headers, body: o["body"]?.stringValue ?? "",
                            isVerified: o["verified"] == .bool(true), status: Int(o["status"]?.plainText ?? "") ?? 0)
        }
    }

    /// The events of the requests answered 200, in arrival order.
    var acceptedEvents: [ChangeEvent] {
        requests.filter { $0.status == 200 }.compactMap { try? ChangeEvent(json: JSONParser.parse($0.body)) }
    }

    deinit { stop() }
}
