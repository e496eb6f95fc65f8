import ArgumentParser
import Foundation
import SpillwayApp
import SpillwayCore
import SpillwayPostgres

struct Checkpoint: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show or move a consumer's checkpoint.", subcommands: [Show.self, Set.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the consumer's checkpoint row.")
        @OptionGroup var options: ConfigOption
        @Flag(help: "Print JSON instead of text.")
        var json = false

        func run() async throws {
            try await reportingErrors {
                let config = try options.load()
                let shown = try await CheckpointCommand.show(config: config)
                print(json ? JSONEncoding.string(shown) : CheckpointCommand.text(shown))
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move the consumer's checkpoint (stop `run` first): changes before it are not delivered, changes after it are.")
        @OptionGroup var options: ConfigOption
        @Option(help: "audit_log: `start` (the oldest retained change) or `now` (skip what is committed); replication: an LSN such as 0/1A2B3C4 (at or after the slot's confirmed position), or `now`.")
        var position: String
        @Flag(help: "Confirm: moving a checkpoint forward skips changes for good.")
        var yes = false

        func run() async throws {
            try await reportingErrors {
                let config = try options.load()
                guard yes else {
                    throw ConfigError(key: "--yes", problem: "is required: moving the checkpoint changes what the consumer delivers",
                                      fix: "look at `spillway checkpoint show` first, then add --yes")
                }
                print(try await CheckpointCommand.set(config: config, position: position))
            }
        }
    }
}
