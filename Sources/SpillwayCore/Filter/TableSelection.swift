/// A table name in a sink's `tables` that may hold glob wildcards: `*` (any run of characters, also none)
/// and `?` (one character), in the schema or the table part: `public.order_*`, `audit_?.events`.
public struct TablePattern: Sendable, Hashable, CustomStringConvertible {
    public var schema: String
    public var name: String

    /// nil when `text` has no wildcard (then it is a plain name) or is not `schema.table` / `table`.
    /// Unquoted like a SQL identifier: ASCII letters fold to lower case.
    public init?(parsing text: String, defaultSchema: String = "public") {
        guard text.contains(where: { $0 == "*" || $0 == "?" }) else { return nil }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, parts.allSatisfy({ part in
            !part.isEmpty && part.allSatisfy { $0.isLetter || $0.isNumber || "_$*?".contains($0) }
        }) else { return nil }
        let folded = parts.map { String($0).lowercased() }
        schema = folded.count == 2 ? folded[0] : defaultSchema
        name = folded.last!
    }

    public func matches(_ table: QualifiedName) -> Bool {
        Self.glob(Array(schema), Array(table.schema)) && Self.glob(Array(name), Array(table.name))
    }

    public var description: String { "\(schema).\(name)" }

    /// Iterative wildcard match with one backtracking point, linear in practice.
    static func glob(_ pattern: [Character], _ text: [Character]) -> Bool {
        var p = 0, t = 0
        var star: Int?, resume = 0
        while t < text.count {
            if p < pattern.count, pattern[p] == "?" || (pattern[p] != "*" && pattern[p] == text[t]) {
                p += 1; t += 1
            } else if p < pattern.count, pattern[p] == "*" {
                star = p; resume = t; p += 1
            } else if let s = star {
                p = s + 1; resume += 1; t = resume
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == "*" { p += 1 }
        return p == pattern.count
    }
}

/// The tables a sink takes: exact names and glob patterns. Empty means all.
public struct TableSelection: Sendable, Hashable, ExpressibleByArrayLiteral {
    public var names: Set<QualifiedName>
    public var patterns: [TablePattern]

    public init(names: Set<QualifiedName> = [], patterns: [TablePattern] = []) {
        self.names = names
        self.patterns = patterns
    }

    public init(arrayLiteral elements: QualifiedName...) {
        self.init(names: Set(elements))
    }

    public var isEmpty: Bool { names.isEmpty && patterns.isEmpty }

    /// Whether the selection names `table` or one of its patterns matches it. (Not "all" when empty:
    /// callers check `isEmpty` first, as they did when this was a set.)
    public func contains(_ table: QualifiedName) -> Bool {
        names.contains(table) || patterns.contains { $0.matches(table) }
    }

    public mutating func insert(_ name: QualifiedName) { names.insert(name) }

    public mutating func insert(_ pattern: TablePattern) {
        if !patterns.contains(pattern) { patterns.append(pattern) }
    }
}
