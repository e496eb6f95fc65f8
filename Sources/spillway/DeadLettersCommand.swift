import ArgumentParser
import Foundation
import SpillwayApp
import SpillwayCore

struct DeadLetters: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead-letters",
        abstract: "List, redeliver or drop the events webhook sinks dead-lettered (<schema>.dead_letters).",
        subcommands: [List.self, Retry.self, Drop.self])

    struct Selection: ParsableArguments {
        @OptionGroup var options: ConfigOption
        @Option(help: "Only this sink's dead letters.")
        var sink: String?
        @Option(help: "Only the dead letter with this id.")
        var id: Int64?
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print id, sink, event id, status, attempts, last attempt and response excerpt, oldest first.")
        @OptionGroup var selection: Selection
        @Flag(help: "Print a JSON array (with the events) instead of text.")
        var json = false

        func run() async throws {
            try await reportingErrors {
                let config = try selection.options.load()
                let letters = try await DeadLetterCommands.list(config, sink: selection.sink, id: selection.id)
                print(json ? JSONEncoding.string(.array(letters.map(\.json))) : DeadLetterCommands.text(letters))
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send the dead letters once more through their sink now; delete those acknowledged. Exits 1 if any still fail.")
        @OptionGroup var selection: Selection

        func run() async throws {
            try await reportingErrors {
                let config = try selection.options.load()
                let logger = makeLogger(config.log)
                let result = try await DeadLetterCommands.retry(config, sink: selection.sink, id: selection.id, logger: logger)
                print("redelivered \(result.delivered), still failing \(result.failed.count)")
                for failure in result.failed { print("  \(failure)") }
                if !result.failed.isEmpty { throw ExitCode(1) }
            }
        }
    }

    struct Drop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete the selected dead letters (all of them without --sink/--id).")
        @OptionGroup var selection: Selection

        func run() async throws {
            try await reportingErrors {
                let config = try selection.options.load()
                let count = try await DeadLetterCommands.drop(config, sink: selection.sink, id: selection.id)
                print("dropped \(count) dead letters")
            }
        }
    }
}
