import Testing
import SpillwayApp
@testable import SpillwayCore

@Suite("sinks[].format in the configuration")
struct FormatConfigTests {
    @Test func formatInTheConfiguration() throws {
        func parse(_ sink: String) throws(ConfigError) -> SpillwayConfig {
            try SpillwayConfig.parse(yaml: "database: {url: postgres://h/db}\nsource: {tables: [t]}\nsinks:\n  - \(sink)\n")
        }
        #expect(try parse("{name: a, kind: file, path: x}").sinks[0].format == .spillway)
        #expect(try parse("{name: a, kind: file, path: x, format: debezium}").sinks[0].format == .debezium)
        #expect(try parse("{name: a, kind: webhook, url: 'http://h/x', format: debezium}").sinks[0].format == .debezium)
        #expect(try parse("{name: a, kind: kafka, brokers: 'h:9092', format: debezium}").sinks[0].format == .debezium)
        do {
            _ = try parse("{name: a, kind: file, path: x, format: avro}")
            Issue.record("parsed")
        } catch {
            #expect(error.key == "sinks[0].format")
            #expect(error.problem == "'avro' is not one of spillway, debezium, cloudevents")
        }
        #expect(try parse("{name: a, kind: webhook, url: 'http://h/x', format: cloudevents}").sinks[0].format == .cloudevents)
        #expect(try parse("{name: a, kind: file, path: x, format: cloudevents}").sinks[0].format == .cloudevents)
        do {
            _ = try parse("{name: a, kind: kafka, brokers: 'h:9092', format: cloudevents}")
            Issue.record("parsed")
        } catch {
            #expect(error.key == "sinks[0].format")
            #expect(error.problem.contains("webhook and file sinks") && error.fix.contains("format: debezium"), "\(error)")
        }
        do {
            _ = try parse("{name: a, kind: notify, channel: c, format: debezium}")
            Issue.record("parsed")
        } catch {
            #expect(error.key == "sinks[0].format")
            #expect(error.problem.hasPrefix("a notify sink writes keys or notifications"))
        }
    }
}
