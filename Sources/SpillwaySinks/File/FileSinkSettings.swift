import SpillwayCore

public struct FileSinkSettings: Sendable {
    /// A file path, or `-` for standard output.
    public var path: String
    /// fsync a file before acknowledging. Default: true.
    public var fsync: Bool

    public init(path: String, fsync: Bool = true) {
        self.path = path
        self.fsync = fsync
    }

    public var isStandardOutput: Bool { path == "-" }
}

extension FileSinkSettings: SinkSettings {
    public static let kind = "file"

    public static func parse(_ r: inout ConfigReader, context: SinkParseContext) throws(ConfigError) -> FileSinkSettings {
        let path = try r.string("path", fix: "set path to a file, or \"-\" for standard output")
        return FileSinkSettings(path: path, fsync: try r.bool("fsync", default: true))
    }

    public func makeSink(_ context: SinkContext) async throws -> any ChangeSink {
        try FileSink(name: context.name, settings: self, encoder: context.encoder)
    }

    public func refusal(of format: EventFormat) -> (problem: String, fix: String)? { nil }
}
