import Testing
import SpillwayApp
@testable import SpillwayCore
@testable import SpillwaySinks

private func yaml(kind: String = "replication", sink: String) -> String {
    """
    database:
      url: postgres://localhost/shop
    source:
      kind: \(kind)
      tables: [public.products]
    sinks:
      - name: out
        kind: file
        path: /tmp/out.jsonl
      - \(sink)
    """
}

private func archiveSettings(_ sink: String) throws -> ArchiveSinkSettings {
    let config = try SpillwayConfig.parse(yaml: yaml(sink: sink))
    return try #require(config.sinks.last?.settings as? ArchiveSinkSettings)
}

private func configError(kind: String = "replication", _ sink: String) -> ConfigError? {
    do {
        _ = try SpillwayConfig.parse(yaml: yaml(kind: kind, sink: sink))
        return nil
    } catch {
        return error
    }
}

@Suite("Archive sink configuration and its pure parts (no servers)")
struct ArchiveSinkConfigTests {
    @Test func defaultsAndEveryKey() throws {
        let defaults = try archiveSettings("{name: archive, kind: archive}")
        #expect(defaults.table == QualifiedName(schema: "spillway", name: "archive"))
        #expect(defaults.retentionDays == 7 && defaults.url == nil)
        let set = try archiveSettings("{name: archive, kind: archive, url: 'postgres://other/db', table: history, retention: 30d}")
        #expect(set.table == QualifiedName(schema: "spillway", name: "history"), "an unqualified table is in the spillway schema")
        #expect(set.retentionDays == 30 && set.url == "postgres://other/db")
    }

    @Test func badInputNamesTheKey() {
        let audit = configError(kind: "audit_log", "{name: archive, kind: archive}")
        #expect(audit?.key == "sinks[1].kind" && audit?.fix.contains("source.retention") == true, "\(String(describing: audit))")
        for (sink, key, text) in [
            ("{name: a, kind: archive, retention: 12h}", "sinks[1].retention", "number of days"),
            ("{name: a, kind: archive, retention: 0d}", "sinks[1].retention", "number of days"),
            ("{name: a, kind: archive, table: '\(String(repeating: "t", count: 51))'}", "sinks[1].table", "at most 50 bytes"),
            ("{name: a, kind: archive, format: debezium}", "sinks[1].format", "keeps Spillway's events"),
            ("{name: a, kind: archive, retension: 7d}", "sinks[1].retension", ""),
        ] {
            let error = configError(sink)
            #expect(error?.key == key && (text.isEmpty || error?.description.contains(text) == true), "\(sink): \(String(describing: error))")
        }
    }

    @Test func replicationPositionsAndDays() {
        #expect(ArchiveStore.position("0/19B3E10:3")! == ("0/19B3E10", 3))
        #expect(ArchiveStore.position("16/B374D848")! == ("16/B374D848", nil))
        #expect(ArchiveStore.position("x/y") == nil && ArchiveStore.position("0/1:-1") == nil && ArchiveStore.position("0/1:a") == nil)
        var event = ChangeEvent(id: "0/1-0", op: .insert, schema: "public", table: "t", commitTime: "2026-12-02T07:01:02.5Z", position: "0/1:0")
        #expect(ArchiveStore.day(of: event) == "2026-12-02")
        event.commitTime = nil
        #expect(ArchiveStore.day(of: event) == nil, "no commit time: the server's date")
        event.commitTime = "garbage time"
        #expect(ArchiveStore.day(of: event) == nil)
        let store = ArchiveStore(table: QualifiedName(schema: "spillway", name: "archive"))
        #expect(store.partition("2026-12-02") == QualifiedName(schema: "spillway", name: "archive_p20261202"))
    }
}
