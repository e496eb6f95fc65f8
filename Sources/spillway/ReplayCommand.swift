import ArgumentParser
import Foundation
import SpillwayApp
import SpillwayCore

struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Deliver a window of retained changes again, with their original ids, beside the live consumer (audit_log: from the audit table; replication: from its archive sink).")
    @OptionGroup var options: ConfigOption
    @Option(help: "Start at this event position, inclusive (audit_log TXID/SEQ, replication LSN:INDEX).")
    var from: String?
    @Option(help: "Start at changes committed at or after this time (e.g. 2026-12-01T10:00:00Z).")
    var since: String?
    @Option(help: "End at this position (inclusive) or this time (audit_log: before it; replication: at or before it).")
    var until: String?
    @Option(help: "Deliver to this sink only (default: every sink).")
    var sink: String?
    @Option(help: "Only this table's changes (one of source.tables).")
    var table: String?

    func run() async throws {
        try await reportingErrors {
            let config = try options.load()
            let logger = makeLogger(config.log)
            let delivered = try await ReplayCommand.run(
                config: config, request: .init(from: from, since: since, until: until, sink: sink, table: table), logger: logger)
            print("replayed \(delivered) events to \(sink.map { "sink \($0)" } ?? "every sink"); the consumer's checkpoint is unchanged")
        }
    }
}
