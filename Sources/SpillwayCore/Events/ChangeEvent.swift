/// One committed change, the same shape for every source and every sink.
///
/// JSON fields (a contract: consumers parse them): `id`, `op`, `schema`, `table`, `key`, `before`, `after`,
/// `txid`, `commit_time`, `position`, `tenant`; and, only when not empty, `unchanged`, `masked`, `message`,
/// `outbox`.
public struct ChangeEvent: Sendable, Hashable {
    public enum Operation: String, Sendable, Hashable, CaseIterable {
        case insert, update, delete, truncate
        /// A logical decoding message (`pg_logical_emit_message`), from the replication source.
        case message
        /// A row as a table snapshot read it (`source.snapshot: initial`): `after` is the row, `before` null.
        case read
    }

    /// Stable across restarts and replays: the same change always has the same id, so consumers de-duplicate.
    public var id: String {
        get { box.fields.id }
        _modify { yield &fields.id }
        set { fields.id = newValue }
    }
    public var op: Operation {
        get { box.fields.op }
        _modify { yield &fields.op }
        set { fields.op = newValue }
    }
    public var schema: String {
        get { box.fields.schema }
        _modify { yield &fields.schema }
        set { fields.schema = newValue }
    }
    public var table: String {
        get { box.fields.table }
        _modify { yield &fields.table }
        set { fields.table = newValue }
    }
    /// The primary-key columns of the row (of `after`, or of `before` for a delete); nil when the table has
    /// no primary key or for a truncate.
    public var key: JSONObject? {
        get { box.fields.key }
        _modify { yield &fields.key }
        set { fields.key = newValue }
    }
    /// The row before the change: nil for inserts and truncates.
    public var before: JSONObject? {
        get { box.fields.before }
        _modify { yield &fields.before }
        set { fields.before = newValue }
    }
    /// The row after the change: nil for deletes and truncates.
    public var after: JSONObject? {
        get { box.fields.after }
        _modify { yield &fields.after }
        set { fields.after = newValue }
    }
    /// The 64-bit transaction id (epoch-extended, as `pg_current_xact_id()` returns it).
    public var txid: UInt64? {
        get { box.fields.txid }
        _modify { yield &fields.txid }
        set { fields.txid = newValue }
    }
    /// ISO 8601 UTC, e.g. `2026-11-25T10:00:00.123456Z`.
    public var commitTime: String? {
        get { box.fields.commitTime }
        _modify { yield &fields.commitTime }
        set { fields.commitTime = newValue }
    }
    /// Where in the source this change sits; its form depends on the source (see README).
    public var position: String {
        get { box.fields.position }
        _modify { yield &fields.position }
        set { fields.position = newValue }
    }
    /// `app.current_org_id` of the writing session (audit_log), or the configured tenant column
    /// (replication).
    public var tenant: String? {
        get { box.fields.tenant }
        _modify { yield &fields.tenant }
        set { fields.tenant = newValue }
    }
    /// Columns left out of `after` because PostgreSQL did not send them: TOASTed values an update did not
    /// change (replication source). A sink must keep what it has for these, never treat them as null.
    public var unchangedColumns: [String] {
        get { box.fields.unchangedColumns }
        _modify { yield &fields.unchangedColumns }
        set { fields.unchangedColumns = newValue }
    }
    /// For `op: message`: the logical decoding message (`pg_logical_emit_message`).
    public var message: LogicalMessage? {
        get { box.fields.message }
        _modify { yield &fields.message }
        set { fields.message = newValue }
    }
    /// Columns whose value was redacted (`source.tables[].mask: {col: redact}`): null in `before`/`after`
    /// because of the mask, not because the row holds null. JSON field `masked`, present when not empty.
    public var maskedColumns: [String] {
        get { box.fields.maskedColumns }
        _modify { yield &fields.maskedColumns }
        set { fields.maskedColumns = newValue }
    }
    /// For an insert into a `source.outbox` table: what the outbox router routes. JSON field `outbox`,
    /// present only then.
    public var outbox: OutboxMessage? {
        get { box.fields.outbox }
        _modify { yield &fields.outbox }
        set { fields.outbox = newValue }
    }

    /// The stored properties, boxed: an event is copied at every stage it passes (batches, fan-out, sinks) and a
    /// copy of the box is one retain where a copy of the fields was a dozen. Copied on write.
    struct Fields: Sendable, Hashable {
        var id: String
        var op: Operation
        var schema: String
        var table: String
        var key: JSONObject?
        var before: JSONObject?
        var after: JSONObject?
        var txid: UInt64?
        var commitTime: String?
        var position: String
        var tenant: String?
        var unchangedColumns: [String] = []
        var message: LogicalMessage?
        var maskedColumns: [String] = []
        var outbox: OutboxMessage?
    }

    // @unchecked Sendable: `fields` is only mutated through `ChangeEvent.fields`, which copies a shared box first.
    // Unchecked exclusivity: a box is mutated only while uniquely referenced, so no two accesses can overlap,
    // and the runtime check cost more than the copies the box saves (every sink reads every event's fields).
    private final class Box: @unchecked Sendable {
        @exclusivity(unchecked) var fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    private var box: Box

    private var fields: Fields {
        get { box.fields }
        _modify {
            if !isKnownUniquelyReferenced(&box) { box = Box(box.fields) }
            yield &box.fields
        }
    }

    public static func == (lhs: ChangeEvent, rhs: ChangeEvent) -> Bool {
        lhs.box === rhs.box || lhs.box.fields == rhs.box.fields
    }

    public func hash(into hasher: inout Hasher) { box.fields.hash(into: &hasher) }

    /// The routed part of an outbox row.
    public struct OutboxMessage: Sendable, Hashable {
        /// The text of the `route_by` column (`{route}`); nil when it is NULL.
        public var route: String?
        /// The text of the `key` column (the Kafka record key); nil when it is NULL.
        public var key: String?
        /// The `payload` column's value: parsed JSON for json/jsonb, a string for text.
        public var payload: JSONValue

        public init(route: String?, key: String?, payload: JSONValue) {
            self.route = route
            self.key = key
            self.payload = payload
        }

        var json: JSONValue {
            .object(JSONObject([
                ("route", route.map { .string($0) } ?? .null), ("key", key.map { .string($0) } ?? .null), ("payload", payload),
            ]))
        }
    }

    public struct LogicalMessage: Sendable, Hashable {
        public var prefix: String
        /// The payload as UTF-8 text (invalid bytes replaced).
        public var content: String
        public var isTransactional: Bool

        public init(prefix: String, content: String, isTransactional: Bool) {
            self.prefix = prefix
            self.content = content
            self.isTransactional = isTransactional
        }
    }

    public init(
        id: String, op: Operation, schema: String, table: String,
        key: JSONObject? = nil, before: JSONObject? = nil, after: JSONObject? = nil,
        txid: UInt64? = nil, commitTime: String? = nil, position: String, tenant: String? = nil
    ) {
        box = Box(Fields(id: id, op: op, schema: schema, table: table, key: key, before: before, after: after,
                         txid: txid, commitTime: commitTime, position: position, tenant: tenant))
    }

    /// Same operation on the same table: how a batch's runs are found (the metrics count per run). Compared
    /// here, where the fields are read in place: through the public accessors, from another module, each
    /// comparison was three calls and as many retains, for every event.
    public func hasSameTableAndOperation(as other: ChangeEvent) -> Bool {
        if box === other.box { return true }
        let lhs = box, rhs = other.box
        return lhs.fields.op == rhs.fields.op && lhs.fields.table == rhs.fields.table && lhs.fields.schema == rhs.fields.schema
    }

    /// `schema.table`, the name routing and filters use.
    public var qualifiedTable: String { "\(schema).\(table)" }

    /// The row as it is now: `after`, or `before` for a delete.
    public var currentRow: JSONObject? { after ?? before }

    public var json: JSONValue {
        .object(JSONObject([
            ("id", .string(id)),
            ("op", .string(op.rawValue)),
            ("schema", .string(schema)),
            ("table", .string(table)),
            ("key", key.map { .object($0) } ?? .null),
            ("before", before.map { .object($0) } ?? .null),
            ("after", after.map { .object($0) } ?? .null),
            ("txid", txid.map { .integer($0) } ?? .null),
            ("commit_time", commitTime.map { .string($0) } ?? .null),
            ("position", .string(position)),
            ("tenant", tenant.map { .string($0) } ?? .null),
        ] + extraFields))
    }

    /// Present only when they carry something, so audit_log events keep exactly the documented shape.
    private var extraFields: [(String, JSONValue)] {
        var fields: [(String, JSONValue)] = []
        if !unchangedColumns.isEmpty { fields.append(("unchanged", .array(unchangedColumns.map { .string($0) }))) }
        if !maskedColumns.isEmpty { fields.append(("masked", .array(maskedColumns.map { .string($0) }))) }
        if let message {
            fields.append(("message", .object(JSONObject([
                ("prefix", .string(message.prefix)), ("content", .string(message.content)),
                ("transactional", .bool(message.isTransactional)),
            ]))))
        }
        if let outbox { fields.append(("outbox", outbox.json)) }
        return fields
    }

    /// The event as one line of compact JSON, without the newline.
    public var jsonBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        writeJSON(into: &out)
        return out
    }

    /// Appends exactly what encoding `json` would, without building that tree first: sinks encode every
    /// event, so this is the hot path.
    public func writeJSON(into out: inout [UInt8]) {
        // Each name with its quotes, colon and leading comma as one literal: one append, not five.
        func field(_ literal: StaticString) {
            literal.withUTF8Buffer { out.append(contentsOf: $0) }
        }
        func object(_ value: JSONObject?) {
            if let value { JSONEncoding.write(value, into: &out) } else { JSONEncoding.writeLiteral("null", into: &out) }
        }
        func string(_ value: String?) {
            if let value { JSONEncoding.writeString(value, into: &out) } else { JSONEncoding.writeLiteral("null", into: &out) }
        }
        field(#"{"id":"#); JSONEncoding.writeString(id, into: &out)
        field(#","op":"#); JSONEncoding.writeString(op.rawValue, into: &out)
        field(#","schema":"#); JSONEncoding.writeString(schema, into: &out)
        field(#","table":"#); JSONEncoding.writeString(table, into: &out)
        field(#","key":"#); object(key)
        field(#","before":"#); object(before)
        field(#","after":"#); object(after)
        field(#","txid":"#)
        if let txid { JSONEncoding.write(.integer(txid), into: &out) } else { JSONEncoding.writeLiteral("null", into: &out) }
        field(#","commit_time":"#); string(commitTime)
        field(#","position":"#); JSONEncoding.writeString(position, into: &out)
        field(#","tenant":"#); string(tenant)
        for (name, value) in extraFields {
            out.append(UInt8(ascii: ","))
            JSONEncoding.writeString(name, into: &out)
            out.append(UInt8(ascii: ":"))
            JSONEncoding.write(value, into: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    public var jsonString: String { JSONEncoding.string(json) }
}

extension ChangeEvent {
    public struct DecodingError: Error, CustomStringConvertible {
        public let problem: String
        public var description: String { "not a Spillway change event: \(problem)" }
    }

    /// Reads an event back from its JSON form (for replay tools and tests).
    public init(json value: JSONValue) throws {
        guard case .object(let o) = value else { throw DecodingError(problem: "expected an object") }
        func string(_ name: String) throws -> String {
            guard let s = o[name]?.stringValue else { throw DecodingError(problem: "missing string field '\(name)'") }
            return s
        }
        func object(_ name: String) throws -> JSONObject? {
            switch o[name] {
            case .none, .null: return nil
            case .object(let inner): return inner
            default: throw DecodingError(problem: "field '\(name)' must be an object or null")
            }
        }
        guard let op = Operation(rawValue: try string("op")) else { throw DecodingError(problem: "unknown op") }
        var txid: UInt64?
        if case .number(let n) = o["txid"] { txid = UInt64(n) }
        self.init(
            id: try string("id"), op: op, schema: try string("schema"), table: try string("table"),
            key: try object("key"), before: try object("before"), after: try object("after"),
            txid: txid, commitTime: o["commit_time"]?.stringValue, position: try string("position"),
            tenant: o["tenant"]?.stringValue
        )
        if case .array(let names) = o["unchanged"] { unchangedColumns = names.compactMap(\.stringValue) }
        if case .array(let names) = o["masked"] { maskedColumns = names.compactMap(\.stringValue) }
        if let m = try object("message") {
            message = LogicalMessage(prefix: m["prefix"]?.stringValue ?? "", content: m["content"]?.stringValue ?? "",
                                     isTransactional: m["transactional"] == .bool(true))
        }
        if let o = try object("outbox") {
            outbox = OutboxMessage(route: o["route"]?.stringValue, key: o["key"]?.stringValue, payload: o["payload"] ?? .null)
        }
    }
}
