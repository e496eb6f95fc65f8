/// How a PostgreSQL type maps to JSON. Decided once per column, from the catalog, so the per-value work is
/// a switch, not a lookup.
public indirect enum PGTypeKind: Sendable, Hashable {
    case boolean
    /// int2, int4, int8, oid: JSON numbers.
    case integer
    /// float4, float8: JSON numbers, except NaN and ±Infinity, which JSON cannot hold (strings then).
    case float
    /// numeric: a string, so no digit is lost to a binary float on the consumer's side.
    case numeric
    case json
    case timestampWithTimeZone
    case timestamp
    case array(element: PGTypeKind)
    /// A composite (row) type: a JSON object of its fields, in declared order, each mapped by its own kind.
    /// The replication source parses the record's text form (`(EUR,1.50)`), the audit_log source gets an
    /// object from `to_jsonb`; both end as `{"currency":"EUR","amount":"1.50"}`.
    case composite(fields: [CompositeField])
    /// Everything else (text, varchar, uuid, date, time, interval, bytea as `\x..` hex, enums, money...):
    /// PostgreSQL's text form, as a string.
    case text

    /// Built-in type OIDs (pg_type.dat); `nil` for a type that needs the catalog (domains, user arrays).
    public init?(builtinOID oid: UInt32) {
        switch oid {
        case 16: self = .boolean
        case 20, 21, 23, 26: self = .integer
        case 700, 701: self = .float
        case 1700: self = .numeric
        case 114, 3802: self = .json
        case 1184: self = .timestampWithTimeZone
        case 1114: self = .timestamp
        case 1000: self = .array(element: .boolean)
        case 1005, 1007, 1016, 1028: self = .array(element: .integer)
        case 1021, 1022: self = .array(element: .float)
        case 1231: self = .array(element: .numeric)
        case 199, 3807: self = .array(element: .json)
        case 1185: self = .array(element: .timestampWithTimeZone)
        case 1115: self = .array(element: .timestamp)
        case 1001, 1009, 1015, 1014, 1182, 1183, 2951, 1187, 791, 1270: self = .array(element: .text)
        case 17, 25, 1042, 1043, 18, 19, 1082, 1083, 1266, 1186, 2950, 790, 869, 650, 829: self = .text
        default: return nil
        }
    }

    /// From the catalog: `typcategory` and, for arrays, the element's kind. Domains should be resolved to
    /// their base type before calling this.
    public init(oid: UInt32, category: Character, element: PGTypeKind?) {
        if let builtin = PGTypeKind(builtinOID: oid) {
            self = builtin
        } else if category == "A", let element {
            self = .array(element: element)
        } else if category == "B" {
            self = .boolean
        } else {
            // User enums, composites, ranges, geometric and network types all read best as text.
            self = .text
        }
    }
}

/// A field of a composite type.
public struct CompositeField: Sendable, Hashable {
    public var name: String
    public var kind: PGTypeKind

    public init(name: String, kind: PGTypeKind) {
        self.name = name
        self.kind = kind
    }
}

/// A column of a captured table, as the catalog describes it.
public struct ColumnInfo: Sendable, Hashable {
    public var name: String
    public var kind: PGTypeKind
    public var typeName: String
    /// A stored generated column (`GENERATED ALWAYS AS (...) STORED`). pgoutput never sends these (before
    /// PostgreSQL 18), so neither source emits them: a consumer recomputes them from the other columns.
    public var isGenerated: Bool

    public init(name: String, kind: PGTypeKind, typeName: String, isGenerated: Bool = false) {
        self.name = name
        self.kind = kind
        self.typeName = typeName
        self.isGenerated = isGenerated
    }
}

/// A captured table: its columns in table order and its primary key.
public struct TableInfo: Sendable, Hashable {
    public var schema: String
    public var name: String
    public var columns: [ColumnInfo]
    public var primaryKey: [String]
    /// `json` columns whose audit rows hold their exact text as a JSON string (the capture trigger's
    /// arguments name them): parsed back when read, since `to_jsonb` would merge duplicate keys.
    public var exactJSONColumns: Set<String>

    public init(schema: String, name: String, columns: [ColumnInfo], primaryKey: [String], exactJSONColumns: Set<String> = []) {
        self.schema = schema
        self.name = name
        self.columns = columns
        self.primaryKey = primaryKey
        self.exactJSONColumns = exactJSONColumns
    }

    public var qualifiedName: String { "\(schema).\(name)" }

    public func column(named name: String) -> ColumnInfo? { columns.first { $0.name == name } }
}
