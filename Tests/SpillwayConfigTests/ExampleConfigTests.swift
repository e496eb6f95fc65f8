import Foundation
import Testing
import SpillwayApp
@testable import SpillwayCore
import SpillwayKafka
import SpillwayRedis
import SpillwaySinks
import SpillwayWebhook

@Suite("the example configs in Config/")
struct ExampleConfigTests {
    static let configDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Config")

    static var files: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: configDirectory.path)) ?? [])
            .filter { $0.hasSuffix(".yaml") }.sorted()
    }

    @Test("there are examples to check")
    func examplesExist() {
        #expect(Self.files.contains("spillway.example.yaml"))
    }

    @Test("every example parses and validates", arguments: files)
    func exampleParses(_ name: String) throws {
        let text = try String(contentsOf: Self.configDirectory.appendingPathComponent(name), encoding: .utf8)
        let config = try SpillwayConfig.parse(yaml: text)
        #expect(!config.source.tables.isEmpty)
        #expect(!config.sinks.isEmpty)
    }
}
