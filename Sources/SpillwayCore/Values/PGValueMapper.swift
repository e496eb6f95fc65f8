/// Maps PostgreSQL values to their natural JSON, the same way for both sources: from the text output
/// format (the replication source) and from `to_jsonb(row)` (the audit_log source).
///
/// Numbers stay numbers except `numeric`, which becomes an exact string; `timestamptz` becomes ISO 8601 in
/// UTC (`2026-01-02T03:04:05.123456Z`); `timestamp` ISO 8601 without zone; json/jsonb nest; arrays become
/// JSON arrays; everything else is PostgreSQL's text form as a string.
public enum PGValueMapper {
    // MARK: Text format

    /// `text` is the value in PostgreSQL's text output format with `DateStyle=ISO` (the sources set it).
    public static func json(fromText text: String, kind: PGTypeKind) -> JSONValue {
        switch kind {
        case .boolean:
            switch text {
            case "t", "true": return .bool(true)
            case "f", "false": return .bool(false)
            default: return .string(text)
            }
        case .integer:
            return isJSONNumber(text) ? .number(text) : .string(text)
        case .float:
            return isJSONNumber(text) ? .number(text) : .string(text)
        case .numeric:
            return .string(text)
        case .json:
            return (try? JSONParser.parse(text)) ?? .string(text)
        case .timestampWithTimeZone:
            return .string(ISOTimestamp.utc(fromPostgres: text) ?? text)
        case .timestamp:
            return .string(ISOTimestamp.local(fromPostgres: text))
        case .array(let element):
            guard let items = PGArrayLiteral.parse(text) else { return .string(text) }
            return arrayJSON(items, element: element)
        case .composite(let fields):
            guard let values = PGRecordLiteral.parse(text), values.count == fields.count else { return .string(text) }
            return .object(JSONObject(zip(fields, values).map { field, value in
                (field.name, value.map { json(fromText: $0, kind: field.kind) } ?? .null)
            }))
        case .text:
            return .string(text)
        }
    }

    /// The same mapping from the value's bytes where libpq holds them (a snapshot chunk's rows): the common
    /// kinds make their one string straight from the bytes, the rest go through the text form above.
    public static func json(fromText bytes: UnsafeBufferPointer<UInt8>, kind: PGTypeKind) -> JSONValue {
        switch kind {
        case .boolean where bytes.count == 1 && bytes[0] == UInt8(ascii: "t"):
            return .bool(true)
        case .boolean where bytes.count == 1 && bytes[0] == UInt8(ascii: "f"):
            return .bool(false)
        case .integer, .float:
            let text = String(decoding: bytes, as: UTF8.self)
            return isJSONNumber(bytes) ? .number(text) : .string(text)
        case .numeric, .text:
            return .string(String(decoding: bytes, as: UTF8.self))
        case .timestampWithTimeZone:
            if let fast = ISOTimestamp.utcWithoutOffset(bytes) { return .string(fast) }
            return json(fromText: String(decoding: bytes, as: UTF8.self), kind: kind)
        case .array(let element):
            guard let items = PGArrayLiteral.parse(bytes) else { return .string(String(decoding: bytes, as: UTF8.self)) }
            return arrayJSON(items, element: element)
        default:
            return json(fromText: String(decoding: bytes, as: UTF8.self), kind: kind)
        }
    }

    private static func arrayJSON(_ items: [PGArrayLiteral.Item], element: PGTypeKind) -> JSONValue {
        .array(items.map { item in
            switch item {
            case .null: return .null
            case .value(let text): return json(fromText: text, kind: element)
            case .nested(let inner): return arrayJSON(inner, element: element)
            }
        })
    }

    // MARK: jsonb (audit_log)

    /// Normalises a value that `to_jsonb` produced for a column of `kind`, so both sources agree: numeric
    /// numbers become exact strings, timestamptz moves to UTC, composites take their declared field order.
    public static func normalize(jsonbValue value: JSONValue, kind: PGTypeKind) -> JSONValue {
        switch (kind, value) {
        case (_, .null):
            return .null
        case (.numeric, .number(let literal)):
            return .string(literal)
        case (.timestampWithTimeZone, .string(let text)):
            return .string(ISOTimestamp.utc(fromPostgres: text) ?? text)
        case (.timestamp, .string(let text)):
            return .string(ISOTimestamp.local(fromPostgres: text))
        case (.composite(let fields), .object(let object)):
            var members: [(String, JSONValue)] = []
            members.reserveCapacity(fields.count)
            for field in fields {
                if let member = object[field.name] { members.append((field.name, normalize(jsonbValue: member, kind: field.kind))) }
            }
            return .object(JSONObject(members))
        case (.array(let element), .array(let items)):
            // A multi-dimensional array nests arrays of the same kind, not of the element kind.
            return .array(items.map { item in
                if case .array = item { return normalize(jsonbValue: item, kind: kind) }
                return normalize(jsonbValue: item, kind: element)
            })
        default:
            return value
        }
    }

    /// A whole row from `to_jsonb(row)`: values normalised and columns put back in table order (jsonb sorts
    /// keys by length). Generated columns are left out, as pgoutput leaves them out. Keys the table no longer
    /// has (a dropped column, audit history) are kept at the end as they are.
    public static func normalize(jsonbRow row: JSONObject, table: TableInfo?) -> JSONObject {
        guard let table else { return row }
        var fields: [(name: String, value: JSONValue)] = []
        fields.reserveCapacity(row.count)
        for column in table.columns where !column.isGenerated {
            guard let value = row[column.name] else { continue }
            if case .string(let text) = value, table.exactJSONColumns.contains(column.name) {
                // The trigger kept this json column's exact text; parsed as the replication source parses it.
                fields.append((column.name, (try? JSONParser.parse(text)) ?? value))
            } else {
                fields.append((column.name, normalize(jsonbValue: value, kind: column.kind)))
            }
        }
        // Fields no column matched (a column dropped since the row was written): only looked for when some are
        // left, since this runs for every audit row.
        if fields.count < row.count {
            for field in row.fields where table.column(named: field.name) == nil {
                fields.append((field.name, field.value))
            }
        }
        return JSONObject(fields: fields)
    }

    /// The primary-key columns of `row`, in key order; nil when the table has no key or the row lacks one.
    public static func key(of row: JSONObject?, table: TableInfo?) -> JSONObject? {
        guard let row, let table, !table.primaryKey.isEmpty else { return nil }
        var fields: [(name: String, value: JSONValue)] = []
        fields.reserveCapacity(table.primaryKey.count)
        for name in table.primaryKey {
            guard let value = row[name] else { return nil }
            fields.append((name, value))
        }
        return JSONObject(fields: fields)
    }

    /// RFC 8259's number grammar, checked byte by byte: this runs for every numeric column of every row.
    static func isJSONNumber(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { isJSONNumber($0) }
    }

    static func isJSONNumber(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        func digits() -> Int {
            let start = i
            while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
            return i - start
        }
        func next(_ byte: UInt8) -> Bool {
            guard i < bytes.count, bytes[i] == byte else { return false }
            i += 1
            return true
        }
        _ = next(UInt8(ascii: "-"))
        if !next(UInt8(ascii: "0")), digits() == 0 { return false }
        if next(UInt8(ascii: ".")), digits() == 0 { return false }
        if next(UInt8(ascii: "e")) || next(UInt8(ascii: "E")) {
            if !next(UInt8(ascii: "+")) { _ = next(UInt8(ascii: "-")) }
            if digits() == 0 { return false }
        }
        return i == bytes.count
    }
}

/// PostgreSQL's record literal (`(EUR,1.50)`, `("a b",,"say ""hi""")`), the text form of composite values:
/// one entry per field, nil for NULL (an empty unquoted field; `""` is the empty string).
public enum PGRecordLiteral {
    public static func parse(_ text: String) -> [String?]? {
        let b = Array(text.utf8)
        guard b.count >= 2, b.first == UInt8(ascii: "("), b.last == UInt8(ascii: ")") else { return nil }
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\"), comma = UInt8(ascii: ",")
        var fields: [String?] = []
        var i = 1
        let end = b.count - 1
        while true {
            // record_out quotes a field that needs it; record_in also takes quoted and plain runs mixed.
            var out: [UInt8] = []
            var isPresent = false
            var inQuotes = false
            while i < end {
                let byte = b[i]
                if inQuotes {
                    if byte == quote {
                        if i + 1 < end, b[i + 1] == quote { out.append(quote); i += 2; continue }
                        inQuotes = false
                        i += 1
                        continue
                    }
                } else if byte == comma {
                    break
                } else if byte == quote {
                    inQuotes = true
                    isPresent = true
                    i += 1
                    continue
                }
                if byte == backslash, i + 1 < end { i += 1 }
                out.append(b[i])
                isPresent = true
                i += 1
            }
            if inQuotes { return nil }
            fields.append(isPresent ? String(decoding: out, as: UTF8.self) : nil)
            if i >= end { return fields }
            i += 1  // the comma
        }
    }
}

/// PostgreSQL's array literal (`{1,2,"a b",NULL,{3,4}}`), the text form of every array type.
public enum PGArrayLiteral {
    public enum Item: Sendable, Hashable {
        case null
        case value(String)
        case nested([Item])
    }

    /// Nil when `text` is not an array literal (e.g. one with explicit bounds, `[0:1]={1,2}`).
    public static func parse(_ text: String) -> [Item]? {
        var text = text
        return text.withUTF8 { parse($0) }
    }

    /// The same, from the bytes where libpq holds them.
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> [Item]? {
        var index = 0
        guard let items = parseArray(bytes, &index), index == bytes.count else { return nil }
        return items
    }

    private static func parseArray(_ b: UnsafeBufferPointer<UInt8>, _ i: inout Int) -> [Item]? {
        guard i < b.count, b[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        var items: [Item] = []
        if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return items }
        while i < b.count {
            if b[i] == UInt8(ascii: "{") {
                guard let nested = parseArray(b, &i) else { return nil }
                items.append(.nested(nested))
            } else if b[i] == UInt8(ascii: "\"") {
                i += 1
                var out: [UInt8] = []
                while i < b.count, b[i] != UInt8(ascii: "\"") {
                    if b[i] == UInt8(ascii: "\\"), i + 1 < b.count { i += 1 }
                    out.append(b[i])
                    i += 1
                }
                guard i < b.count else { return nil }
                i += 1
                items.append(.value(String(decoding: out, as: UTF8.self)))
            } else {
                let start = i
                while i < b.count, b[i] != UInt8(ascii: ","), b[i] != UInt8(ascii: "}") { i += 1 }
                let word = String(decoding: b[start..<i], as: UTF8.self)
                items.append(word == "NULL" ? .null : .value(word))
            }
            guard i < b.count else { return nil }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { i += 1; return items }
            return nil
        }
        return nil
    }
}
