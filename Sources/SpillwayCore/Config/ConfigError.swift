/// A configuration problem: which key, what is wrong, how to fix it. Never carries a secret.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    /// The key's path in the YAML document, e.g. `sinks[0].path`.
    public var key: String
    public var problem: String
    public var fix: String

    public init(key: String, problem: String, fix: String) {
        self.key = key
        self.problem = problem
        self.fix = fix
    }

    public var description: String { "config key '\(key)': \(problem). Fix: \(fix)" }
}

/// A qualified table name, `schema.table` (`public` when the schema is left out).
public struct QualifiedName: Sendable, Hashable, CustomStringConvertible, Comparable {
    public var schema: String
    public var name: String

    public init(schema: String, name: String) {
        self.schema = schema
        self.name = name
    }

    /// Accepts `table` or `schema.table`, each part a plain identifier or a double-quoted one.
    public init?(parsing text: String, defaultSchema: String = "public") {
        var parts: [String] = []
        var current = ""
        var inQuotes = false
        var wasQuoted = false
        var chars = Array(text)[...]
        while let c = chars.popFirst() {
            if inQuotes {
                if c == "\"" {
                    if chars.first == "\"" { current.append("\""); chars.removeFirst() } else { inQuotes = false }
                } else {
                    current.append(c)
                }
            } else if c == "\"" {
                guard current.isEmpty else { return nil }
                inQuotes = true
                wasQuoted = true
            } else if c == "." {
                guard !current.isEmpty else { return nil }
                parts.append(current)
                current = ""
                wasQuoted = false
            } else {
                guard !wasQuoted, c.isLetter || c.isNumber || c == "_" || c == "$" else { return nil }
                // PostgreSQL folds only ASCII letters in unquoted identifiers (in a multibyte encoding).
                current.append(contentsOf: c.isASCII ? c.lowercased() : String(c))
            }
        }
        guard !inQuotes, !current.isEmpty else { return nil }
        parts.append(current)
        switch parts.count {
        case 1: self.init(schema: defaultSchema, name: parts[0])
        case 2: self.init(schema: parts[0], name: parts[1])
        default: return nil
        }
    }

    public var description: String { "\(schema).\(name)" }

    /// Safe to splice into SQL: both parts double-quoted.
    public var sql: String { "\(SQLText.identifier(schema)).\(SQLText.identifier(name))" }

    public static func < (lhs: QualifiedName, rhs: QualifiedName) -> Bool { lhs.description < rhs.description }
}

/// Quoting for the few places where SQL text must name an object (DDL cannot take parameters).
public enum SQLText {
    public static func identifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    public static func literal(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "'", with: "''") + "'"
    }

    /// A text[] literal for a query parameter (`{"a","b \"c\""}`): every element quoted and escaped.
    public static func arrayLiteral(_ values: [String]) -> String {
        "{" + values.map { "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
            .joined(separator: ",") + "}"
    }
}
