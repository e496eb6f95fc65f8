/// A JSON value that keeps what generic JSON libraries lose for CDC: numbers stay as their exact literal
/// (a `numeric(30,10)` must not pass through a `Double`), and object keys keep their order (a row's
/// columns read in table order).
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// A JSON number, kept as its literal text, e.g. `"12.50"` or `"-3e5"`.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public static func integer<I: BinaryInteger>(_ value: I) -> JSONValue { .number(String(value)) }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// The value as text, as a template or a key would show it: strings unquoted, everything else as JSON.
    public var plainText: String {
        switch self {
        case .string(let s): return s
        case .number(let n): return n
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .array, .object: return JSONEncoding.string(self)
        }
    }
}

/// An ordered JSON object. Lookups are linear: rows have tens of columns, not thousands, and order matters
/// more than lookup speed here.
public struct JSONObject: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    public private(set) var fields: [(name: String, value: JSONValue)]

    public init() { fields = [] }

    public init(_ fields: [(String, JSONValue)]) {
        self.fields = fields.map { (name: $0.0, value: $0.1) }
    }

    /// Takes `fields` as they are: the row builders' path, which must not copy every row's array once more.
    public init(fields: [(name: String, value: JSONValue)]) {
        self.fields = fields
    }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements)
    }

    public var isEmpty: Bool { fields.isEmpty }
    public var count: Int { fields.count }
    public var names: [String] { fields.map(\.name) }

    public subscript(name: String) -> JSONValue? {
        get { fields.first(where: { $0.name == name })?.value }
        set {
            if let index = fields.firstIndex(where: { $0.name == name }) {
                if let newValue { fields[index].value = newValue } else { fields.remove(at: index) }
            } else if let newValue {
                fields.append((name: name, value: newValue))
            }
        }
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.fields.count == rhs.fields.count
            && zip(lhs.fields, rhs.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for field in fields {
            hasher.combine(field.name)
            hasher.combine(field.value)
        }
    }

    /// Same fields and values, in any order.
    public func hasSameContent(as other: JSONObject) -> Bool {
        count == other.count && fields.allSatisfy { other[$0.name] == $0.value }
    }
}
