import ArgumentParser
import Foundation
import SpillwayApp
import SpillwayCore
import SpillwayPostgres

struct Backfill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the running consumer to re-emit a table's rows (all, or those matching --where) as read events while it streams.")
    @OptionGroup var options: ConfigOption
    @Option(help: "The table, one of source.tables (schema.table).")
    var table: String
    @Option(name: .customLong("where"), help: "Only rows matching this SQL condition, e.g. \"updated_at > now() - interval '1 day'\".")
    var filter: String?
    @Flag(inversion: .prefixedNo, help: "Follow the progress until the backfill ends (default: when standard output is a terminal).")
    var follow: Bool?

    func run() async throws {
        try await reportingErrors {
            let config = try options.load()
            let request = try await BackfillRequest.queue(config: config, table: table, filter: filter)
            print("backfill \(request.id) queued: \(request.table)\(filter.map { " where \($0)" } ?? ""), about \(request.rowsEstimated) rows; "
                + "the running `spillway run` of consumer '\(config.consumer)' takes it (`spillway status` shows its progress)")
            if follow ?? (isatty(STDOUT_FILENO) == 1) {
                try await BackfillRequest.follow(id: request.id, config: config)
            }
        }
    }
}
