import Testing
import SpillwayApp
@testable import SpillwayCore
import SpillwaySinks

private let baseYAML = """
    database:
      url: postgres://localhost/shop
    source:
      tables: [public.products]
    sinks:
      - name: out
        kind: file
        path: changes.jsonl
    """

private func parse(_ environment: [String: String], yaml: String = baseYAML) throws(ConfigError) -> SpillwayConfig {
    try SpillwayConfig.parse(yaml: yaml, environment: environment)
}

private func error(_ environment: [String: String], yaml: String = baseYAML) -> ConfigError? {
    do {
        _ = try parse(environment, yaml: yaml)
        return nil
    } catch {
        return error
    }
}

@Suite("environment overrides: SPILLWAY_SECTION__KEY")
struct EnvironmentOverrideTests {
    @Test("an override changes a value the YAML sets, and one it leaves to its default")
    func overridesValues() throws {
        let config = try parse(["SPILLWAY_SOURCE__BATCH_SIZE": "500", "SPILLWAY_SINKS__0__PATH": "/var/lib/spillway/out.jsonl"])
        #expect(config.source.batchSize == 500)
        guard let file = config.sinks[0].settings as? FileSinkSettings else { Issue.record("not a file sink"); return }
        #expect(file.path == "/var/lib/spillway/out.jsonl")
        #expect(try parse([:]).source.batchSize == 1000, "without the variable the default holds")
    }

    @Test("an override creates the section the YAML lacks")
    func createsSections() throws {
        let config = try parse(["SPILLWAY_HTTP__ADDRESS": "off", "SPILLWAY_LOG__LEVEL": "debug"])
        #expect(config.http.address == nil)
        #expect(config.log.level == .debug)
    }

    @Test("top-level keys: consumer and schema")
    func topLevel() throws {
        let yaml = baseYAML + "\nconsumer: a"
        #expect(try parse(["SPILLWAY_CONSUMER": "search-sync", "SPILLWAY_SCHEMA": "cdc"], yaml: yaml).consumer == "search-sync")
        #expect(try parse(["SPILLWAY_SCHEMA": "cdc"], yaml: yaml).schema == "cdc")
        #expect(try parse(["SPILLWAY_BIN": "/x", "SPILLWAY_TEST_DATABASE_URL": "y"], yaml: yaml).consumer == "a",
                "other SPILLWAY_ variables without `__` are not keys")
        #expect(try parse(["SPILLWAY_DATABASE__URL": "postgres://h/other"], yaml: yaml).database.url == "postgres://h/other")
    }

    @Test("SPILLWAY_DATABASE_URL keeps working and wins over database.url")
    func legacyDatabaseURL() throws {
        #expect(try parse(["SPILLWAY_DATABASE_URL": "postgres://h/legacy"]).database.url == "postgres://h/legacy")
    }

    @Test("a bad value names the variable and the key")
    func badValueNamesTheVariable() throws {
        let failure = try #require(error(["SPILLWAY_SOURCE__BATCH_SIZE": "lots"]))
        #expect(failure.key == "source.batch_size")
        #expect(failure.description.contains("SPILLWAY_SOURCE__BATCH_SIZE"), "\(failure)")
        #expect(failure.problem.contains("'lots' is not a whole number"), "\(failure)")
    }

    @Test("a misspelt key in a variable is an unknown key naming the variable")
    func unknownKeyNamesTheVariable() throws {
        let failure = try #require(error(["SPILLWAY_SOURCE__BATCH_SIZ": "10"]))
        #expect(failure.key == "source.batch_siz")
        #expect(failure.description.contains("SPILLWAY_SOURCE__BATCH_SIZ"), "\(failure)")
        #expect(failure.fix.contains("did you mean 'batch_size'"), "\(failure)")
    }

    @Test("a variable that cannot be a key path, that sets a section, or indexes past a list is an error naming it")
    func malformedVariables() throws {
        #expect(error(["SPILLWAY_SOURCE____BATCH": "1"])?.key == "SPILLWAY_SOURCE____BATCH")
        let section = try #require(error(["SPILLWAY_SINKS__0": "x"]))
        #expect(section.key == "sinks[0]" && section.description.contains("SPILLWAY_SINKS__0"), "\(section)")
        let past = try #require(error(["SPILLWAY_SINKS__3__PATH": "x"]))
        #expect(past.key == "sinks" && past.description.contains("SPILLWAY_SINKS__3__PATH"), "\(past)")
        let inside = try #require(error(["SPILLWAY_CONSUMER__NAME": "x"], yaml: baseYAML + "\nconsumer: a"))
        #expect(inside.key == "consumer" && inside.description.contains("SPILLWAY_CONSUMER__NAME"), "\(inside)")
    }

    @Test("key paths of overrides")
    func keyPaths() throws {
        let overrides = try EnvironmentOverrides.overrides(in: ["SPILLWAY_SINKS__0__PATH": "p", "SPILLWAY_SOURCE__BATCH_SIZE": "1", "OTHER__X": "1"])
        #expect(overrides.map(\.keyPath) == ["sinks[0].path", "source.batch_size"])
    }
}

@Suite("http: config")
struct HTTPConfigTests {
    @Test("default 127.0.0.1:9187; off; IPv6; port 0")
    func addresses() throws {
        #expect(try parse([:]).http.address == HostAndPort(host: "127.0.0.1", port: 9187))
        #expect(try parse([:], yaml: baseYAML + "\nhttp: {address: off}").http.address == nil)
        #expect(try parse([:], yaml: baseYAML + "\nhttp: {address: \"[::1]:9000\"}").http.address == HostAndPort(host: "::1", port: 9000))
        #expect(try parse([:], yaml: baseYAML + "\nhttp: {address: \"0.0.0.0:0\", stall_after: 2m}").http.stallAfter == .seconds(120))
    }

    @Test("ha.takeover: default 5s, at least 1s")
    func takeover() throws {
        #expect(try parse([:]).ha.takeover == .seconds(5))
        #expect(try parse(["SPILLWAY_HA__TAKEOVER": "2s"]).ha.takeover == .seconds(2))
        #expect(error([:], yaml: baseYAML + "\nha: {takeover: 100ms}")?.key == "ha.takeover")
    }

    @Test("a bad address or interval names its key")
    func badValues() {
        for bad in ["localhost", "1.2.3.4:99999", "::1:9000", ":9187"] {
            #expect(error([:], yaml: baseYAML + "\nhttp: {address: \"\(bad)\"}")?.key == "http.address", "\(bad)")
        }
        #expect(error([:], yaml: baseYAML + "\nhttp: {sample_interval: 10ms}")?.key == "http.sample_interval")
        #expect(error([:], yaml: baseYAML + "\nhttp: {adress: x}")?.key == "http.adress")
    }
}

@Suite("health: /healthz and /readyz decisions")
struct HealthStateTests {
    typealias Health = HealthState<ContinuousClock.Instant>
    let t0 = ContinuousClock.now

    func make() -> Health { Health(sinks: ["out", "kafka"], stallAfter: .seconds(60), livenessTimeout: .seconds(300), now: t0) }

    @Test("not ready until the session streams; ready then, naming the role and every sink")
    func readyOnceStreaming() {
        var health = make()
        #expect(!health.readiness(now: t0).isOK)
        #expect(health.readiness(now: t0).body.contains("source: connecting"))
        #expect(health.liveness(now: t0).isOK, "starting is alive")
        health.sessionStarted(now: t0)
        let answer = health.readiness(now: t0 + .seconds(1))
        #expect(answer.isOK)
        #expect(answer.body == "ready\nrole: active\nsource: connected\nsink out: ok\nsink kafka: ok\n")
    }

    @Test("a failing sink makes it not ready until that sink succeeds again; it stays alive")
    func failingSink() {
        var health = make()
        health.sessionStarted(now: t0)
        health.sinkFailed("kafka", now: t0)
        #expect(!health.readiness(now: t0).isOK)
        #expect(health.readiness(now: t0).body.contains("sink kafka: failing"))
        #expect(health.liveness(now: t0 + .seconds(10)).isOK)
        health.sinkSucceeded("kafka", now: t0 + .seconds(2))
        #expect(health.readiness(now: t0 + .seconds(2)).isOK)
    }

    @Test("stalled: a batch waiting longer than stall_after; each acknowledgement restarts the wait")
    func stall() {
        var health = make()
        health.sessionStarted(now: t0)
        health.submitted(now: t0)
        health.submitted(now: t0 + .seconds(1))
        #expect(health.readiness(now: t0 + .seconds(60)).isOK)
        #expect(!health.readiness(now: t0 + .seconds(61)).isOK)
        #expect(health.readiness(now: t0 + .seconds(61)).body.contains("stalled"))
        health.acknowledged(now: t0 + .seconds(62))
        #expect(health.readiness(now: t0 + .seconds(100)).isOK, "one still waits, but only since the last acknowledgement")
        #expect(!health.readiness(now: t0 + .seconds(123)).isOK)
        health.acknowledged(now: t0 + .seconds(124))
        #expect(health.readiness(now: t0 + .seconds(1000)).isOK, "nothing in flight: idle is not stalled")
    }

    @Test("a standby is ready and says so; taking over makes it active")
    func standby() {
        var health = make()
        health.standby(now: t0)
        let answer = health.readiness(now: t0)
        #expect(answer.isOK)
        #expect(answer.body.contains("role: standby"))
        #expect(health.liveness(now: t0 + .seconds(10)).isOK)
        health.sessionStarted(now: t0 + .seconds(11))
        #expect(health.readiness(now: t0 + .seconds(11)).body.contains("role: active"))
    }

    @Test("a failed session is not ready; the loop that stopped turning is not alive; a stopped pipeline neither")
    func livenessAndReconnects() {
        var health = make()
        health.sessionStarted(now: t0)
        health.sessionFailed(now: t0 + .seconds(1))
        #expect(!health.readiness(now: t0 + .seconds(1)).isOK)
        #expect(health.readiness(now: t0 + .seconds(1)).body.contains("source: reconnecting"))
        #expect(health.liveness(now: t0 + .seconds(301)).isOK)
        #expect(!health.liveness(now: t0 + .seconds(302)).isOK)
        health.tick(now: t0 + .seconds(302))
        #expect(health.liveness(now: t0 + .seconds(302)).isOK)
        health.stopped()
        #expect(!health.liveness(now: t0 + .seconds(302)).isOK)
    }
}
