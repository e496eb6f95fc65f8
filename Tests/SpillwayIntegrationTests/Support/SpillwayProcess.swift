import Foundation

/// The real `spillway` binary as a child process, for what only a process can show: signals, kill -9,
/// exit codes and what reaches the terminal.
final class SpillwayProcess: @unchecked Sendable {
    // @unchecked Sendable: `process` is used from one test at a time.
    let process = Process()
    let stdoutPath: String
    let stderrPath: String

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: TestEnvironment.binary)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "SPILLWAY_DATABASE_URL")
        // Many tests run `spillway run` at once: each status endpoint on a port of its own (the log names it).
        env["SPILLWAY_HTTP__ADDRESS"] = "127.0.0.1:0"
        for (key, value) in environment { env[key] = value }
        process.environment = env
        stdoutPath = tempPath("stdout")
        stderrPath = tempPath("stderr")
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Killed at the end of the test's scope if the test never got to stop it (a failed `#require`).
        TestScope.current?.adopt(self)
    }

    var pid: Int32 { process.processIdentifier }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for the exit (at most `timeout`), then returns the exit code; kills the process on timeout.
    func wait(timeout: Duration = .seconds(60)) async throws -> Int32 {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while process.isRunning {
            if clock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                Issue.record("spillway \(process.arguments ?? []) did not exit within \(timeout); stderr: \(stderr)")
                return -1
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        return process.terminationStatus
    }

    /// Waits until standard error contains `text` (e.g. the "reading" log line: signal handlers are then
    /// installed), at most `timeout`.
    func waitForLog(_ text: String, timeout: Duration = .seconds(30)) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while !stderr.contains(text) {
            guard clock.now < deadline, process.isRunning else {
                Issue.record("spillway never logged '\(text)'; stderr: \(stderr)")
                return
            }
            try await Task.sleep(for: .milliseconds(25))
        }
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Runs a command to completion. The bound only guards against a hang: a loaded CI run saw an `install`
    /// take over 60 s while the whole suite ran at once.
    static func run(_ arguments: [String], environment: [String: String] = [:],
                    timeout: Duration = .seconds(120)) async throws -> (code: Int32, stdout: String, stderr: String) {
        let child = try SpillwayProcess(arguments, environment: environment)
        let code = try await child.wait(timeout: timeout)
        return (code, child.stdout, child.stderr)
    }
}

import Testing
