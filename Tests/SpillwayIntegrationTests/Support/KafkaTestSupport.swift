import Foundation
import SpillwayCore
import SpillwayTestSupport
import Testing

extension TestEnvironment {
    /// The Kafka tests also need kcat (the independent consumer); under SPILLWAY_REQUIRE_INTEGRATION they
    /// run, and fail, without it.
    static var canRunKafka: Bool {
        isIntegrationRequired || (databaseURL != nil && isKcatInstalled)
    }
}

extension KafkaMockProcess {
    /// Launches the tool for the current test; it is stopped when the test's scope ends.
    static func start(_ arguments: [String] = []) async throws -> KafkaMockProcess {
        let mock = try await launch(arguments)
        TestScope.current?.onExit { mock.stop() }
        return mock
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
