import Testing
import SpillwayApp
@testable import SpillwayCore
import SpillwaySinks

@Suite("SpillwayConfig.check: every problem at once")
struct ConfigCheckTests {
    @Test("independent sections each report their problem, in document order; parse throws the first")
    func reportsEverySection() throws {
        let yaml = """
            database: {}
            schema: Bad-Schema
            source:
              tables: [public.products]
              poll_interval: 1ms
            sinks:
              - {name: out, kind: file, path: a.jsonl}
              - {name: out, kind: file, path: b.jsonl}
              - {name: q, kind: nope}
            log: {format: xml}
            http: {address: nowhere}
            extra: 1
            """
        let (config, problems) = SpillwayConfig.check(yaml: yaml, environment: ["SPILLWAY_SOURCE__BATCH_SIZE": "0"])
        #expect(config == nil)
        #expect(problems.map(\.key) == ["extra", "database.url", "schema", "source.poll_interval", "sinks[1].name", "sinks[2].kind",
                                        "log.format", "http.address"])
        #expect(throws: problems[0]) { try SpillwayConfig.parse(yaml: yaml) }
    }

    @Test("a bad override is reported with the others, naming its variable")
    func overridesAmongTheProblems() {
        let yaml = """
            database: {url: postgres://h/db}
            source: {tables: [public.products]}
            sinks: [{name: out, kind: file, path: a.jsonl}]
            log: {level: loud}
            """
        let (_, problems) = SpillwayConfig.check(yaml: yaml, environment: ["SPILLWAY_SOURCE__BATCH_SIZE": "0"])
        #expect(problems.map(\.key) == ["source.batch_size", "log.level"])
        #expect(problems.first?.description.contains("SPILLWAY_SOURCE__BATCH_SIZE") == true)
    }

    @Test("a valid config has no problems and equals what parse returns")
    func validConfig() throws {
        let yaml = """
            database: {url: postgres://h/db}
            source: {tables: [public.products]}
            sinks: [{name: out, kind: file, path: a.jsonl}]
            """
        let (config, problems) = SpillwayConfig.check(yaml: yaml)
        #expect(problems.isEmpty)
        #expect(config?.sinks.map(\.name) == (try SpillwayConfig.parse(yaml: yaml)).sinks.map(\.name))
    }
}
