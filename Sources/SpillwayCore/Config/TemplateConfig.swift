extension EventTemplate {
    /// Where a configured template is used: what it may name and hold besides the language itself.
    public enum Use: Sendable {
        case cacheKey, channel, webhookURL, webhookBody, kafkaTopic
    }

    /// Parses a configured template; every error names `key`.
    public init(parsing text: String, key: String, use: Use) throws(ConfigError) {
        do {
            try self.init(parsing: text)
        } catch {
            throw ConfigError(key: key, problem: error.problem + " (column \(error.column))", fix: error.fix)
        }
        if use != .kafkaTopic, fields.contains(.prefix) {
            throw ConfigError(key: key, problem: "'\(text)' uses {prefix}, which only Kafka topics have",
                              fix: "write the prefix as text, or remove {prefix}")
        }
        if use == .cacheKey, fields.contains(.id) {
            // Every event has a new id, so a key built from it names nothing cached: a silent miss, not a key.
            throw ConfigError(key: key, problem: "'\(text)' uses {id}, the change event's id, which never names a cached row",
                              fix: "use {key.COLUMN} for the primary key (e.g. {key.id}) or {row.COLUMN}")
        }
        guard use == .kafkaTopic else { return }
        guard !text.isEmpty else {
            throw ConfigError(key: key, problem: "the topic template is empty", fix: "write a topic such as {prefix}.{schema}.{table}")
        }
        if let bad = literalText.first(where: { !TopicName.isAllowed($0) }) {
            throw ConfigError(key: key, problem: "'\(text)' contains '\(bad)', which Kafka does not allow in a topic name",
                              fix: "use only ASCII letters, digits, '.', '_' and '-' outside placeholders")
        }
        if placeholders.isEmpty, let problem = TopicName.problem(text) {
            throw ConfigError(key: key, problem: "'\(text)' \(problem)", fix: "choose another topic name")
        }
    }

    /// The default topic of a Kafka sink.
    public static let standardTopic = try! EventTemplate(parsing: "{prefix}.{schema}.{table}")
}

extension EventTemplate {
    /// Checks every row field against the tables the sink receives; the error names `key`.
    public func validate(against tables: [TableInfo], key: String) throws(ConfigError) {
        for table in tables {
            if let problem = problem(with: table) {
                throw ConfigError(key: key, problem: problem,
                                  fix: "correct the template, or narrow the sink's `tables` to tables that have the column")
            }
        }
    }
}
