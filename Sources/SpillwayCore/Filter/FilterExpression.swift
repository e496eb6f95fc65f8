/// A sink's `where`: a condition over an event's JSON fields, parsed and type-checked once when the
/// configuration loads, then evaluated for every event without allocating a JSON tree.
///
/// Null rule (SQL's, made two-valued): a comparison (`==` `!=` `<` `<=` `>` `>=`) with a null or missing
/// side is false — `!=` too; only `is null`, `is not null` and a `null` written in an `in` list test for
/// null. Numbers compare exactly as decimals, also against strings that read as decimals (`numeric`
/// columns arrive as exact strings). Values without a common order are unequal (`==` false, `!=` true)
/// and unordered (`<` … false). See README, "Filters".
public struct FilterExpression: Sendable, Hashable, CustomStringConvertible {
    /// The text as written in the configuration.
    public let source: String
    let root: Condition

    public init(parsing text: String) throws(FilterSyntaxError) {
        source = text
        root = try FilterParser.parse(text)
    }

    public var description: String { source }

    public func matches(_ event: ChangeEvent) -> Bool { root.evaluate(event) }

    public static func == (lhs: FilterExpression, rhs: FilterExpression) -> Bool { lhs.root == rhs.root }
    public func hash(into hasher: inout Hasher) { hasher.combine(root) }
}

/// Where and why an expression does not parse or type-check. `column` counts characters from 1.
public struct FilterSyntaxError: Error, Equatable, CustomStringConvertible {
    public var column: Int
    public var problem: String
    public var fix: String

    public var description: String { "column \(column): \(problem). Fix: \(fix)" }
}

/// The event fields an expression can name: the event's JSON field names.
enum EventField: String, CaseIterable, Sendable {
    case id, op, schema, table, key, before, after, txid
    case commitTime = "commit_time"
    case position, tenant, message

    /// What a bare field holds, for type checking.
    var type: ValueType {
        switch self {
        case .op: return .operation
        case .id, .schema, .table, .commitTime, .position, .tenant: return .string
        case .txid: return .number
        case .key, .before, .after, .message: return .object
        }
    }

    /// Fields that hold rows (or the message): a path may go on into them.
    var hasMembers: Bool { type == .object }
}

/// Static types of operands. `unknown` is a column of a row: its type shows only per event.
enum ValueType: Sendable, Equatable {
    case string, number, bool, null, object, operation, unknown

    var name: String {
        switch self {
        case .string: return "text"
        case .number: return "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        case .object: return "a whole row"
        case .operation: return "an operation"
        case .unknown: return "a column"
        }
    }
}

struct FieldPath: Sendable, Hashable {
    var root: EventField
    var members: [String]

    var text: String { ([root.rawValue] + members).joined(separator: ".") }

    var type: ValueType { members.isEmpty ? root.type : .unknown }

    /// The value in `event`; `.null` when the path leads nowhere (a missing column, a null row).
    func value(in event: ChangeEvent) -> JSONValue {
        let base: JSONValue
        switch root {
        case .id: return .string(event.id)
        case .op: return .string(event.op.rawValue)
        case .schema: return .string(event.schema)
        case .table: return .string(event.table)
        case .txid: return event.txid.map { .integer($0) } ?? .null
        case .commitTime: return event.commitTime.map { .string($0) } ?? .null
        case .position: return .string(event.position)
        case .tenant: return event.tenant.map { .string($0) } ?? .null
        case .key: base = event.key.map { .object($0) } ?? .null
        case .before: base = event.before.map { .object($0) } ?? .null
        case .after: base = event.after.map { .object($0) } ?? .null
        case .message:
            base = event.message.map {
                .object(JSONObject([("prefix", .string($0.prefix)), ("content", .string($0.content)),
                                    ("transactional", .bool($0.isTransactional))]))
            } ?? .null
        }
        var current = base
        for member in members {
            guard case .object(let object) = current, let next = object[member] else { return .null }
            current = next
        }
        return current
    }
}

enum Operand: Sendable, Hashable {
    case literal(JSONValue)
    case field(FieldPath)

    func value(in event: ChangeEvent) -> JSONValue {
        switch self {
        case .literal(let value): return value
        case .field(let path): return path.value(in: event)
        }
    }
}

enum ComparisonOperator: String, Sendable, Hashable, CaseIterable {
    case equal = "==", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="

    var isOrdering: Bool { self != .equal && self != .notEqual }
}

indirect enum Condition: Sendable, Hashable {
    case constant(Bool)
    case not(Condition)
    case and(Condition, Condition)
    case or(Condition, Condition)
    case compare(Operand, ComparisonOperator, Operand)
    /// `x in [..]` / `x not in [..]`.
    case member(Operand, [JSONValue], isNegated: Bool)
    /// `x is null` / `x is not null`.
    case isNull(Operand, isNegated: Bool)

    func evaluate(_ event: ChangeEvent) -> Bool {
        switch self {
        case .constant(let value): return value
        case .not(let inner): return !inner.evaluate(event)
        case .and(let a, let b): return a.evaluate(event) && b.evaluate(event)
        case .or(let a, let b): return a.evaluate(event) || b.evaluate(event)
        case .compare(let a, let op, let b):
            let bothFields = if case .field = a, case .field = b { true } else { false }
            return Self.compare(a.value(in: event), op, b.value(in: event), stringsAsNumbers: bothFields)
        case .member(let operand, let list, let isNegated):
            let value = operand.value(in: event)
            if value == .null { return !isNegated && list.contains(.null) }
            // Each item compares as `==` would (string fields against string items as text).
            let found = list.contains { Self.compare(value, .equal, $0) }
            return isNegated ? !found : found
        case .isNull(let operand, let isNegated):
            return (operand.value(in: event) == .null) != isNegated
        }
    }

    /// `stringsAsNumbers`: two strings that both read as decimals compare as numbers (two `numeric`
    /// columns, which arrive as exact strings); set when both sides are fields. Against a string literal,
    /// strings compare as text.
    static func compare(_ a: JSONValue, _ op: ComparisonOperator, _ b: JSONValue, stringsAsNumbers: Bool = false) -> Bool {
        if a == .null || b == .null { return false }
        guard let order = order(a, b, stringsAsNumbers: stringsAsNumbers) else {
            // Different types, or values without an order (rows, arrays, booleans under `<`).
            switch op {
            case .equal: return a == b
            case .notEqual: return a != b
            default: return false
            }
        }
        switch op {
        case .equal: return order == 0
        case .notEqual: return order != 0
        case .less: return order < 0
        case .lessOrEqual: return order <= 0
        case .greater: return order > 0
        case .greaterOrEqual: return order >= 0
        }
    }

    /// -1/0/1 for two numbers (exactly, as decimals), a number and a string that reads as a decimal
    /// (`numeric` arrives as an exact string, `"39.90"`), or two strings (by UTF-8 bytes, like
    /// `COLLATE "C"`). nil when the two have no common order.
    private static func order(_ a: JSONValue, _ b: JSONValue, stringsAsNumbers: Bool) -> Int? {
        switch (a, b) {
        case (.number(let x), .number(let y)), (.number(let x), .string(let y)), (.string(let x), .number(let y)):
            return DecimalText.compare(x, y)
        case (.string(let x), .string(let y)):
            if stringsAsNumbers, let order = DecimalText.compare(x, y) { return order }
            if x.utf8.elementsEqual(y.utf8) { return 0 }
            return x.utf8.lexicographicallyPrecedes(y.utf8) ? -1 : 1
        default: return nil
        }
    }
}
