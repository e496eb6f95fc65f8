/// What a captured table sends of its columns: `source.tables[].columns` and `.mask`. Applied to every
/// event before any sink sees it (`ColumnMasker`), and, for the audit_log source, by the capture trigger,
/// so an excluded column never reaches the audit table either.
public struct ColumnPolicy: Sendable, Hashable {
    public enum Selection: Sendable, Hashable {
        case all
        /// Only these columns (`columns: {include: [...]}`).
        case include([String])
        /// Every column but these (`columns: {exclude: [...]}`).
        case exclude([String])
    }

    public enum Mask: String, Sendable, Hashable, CaseIterable {
        /// HMAC-SHA256 of the value's text under `source.mask_key`, as 64 lower-case hex digits: equal values
        /// stay equal (joinable) without being readable.
        case hash
        /// null, and the column named in the event's `masked` list.
        case redact
    }

    public var columns: Selection
    public var masks: [String: Mask]

    public init(columns: Selection = .all, masks: [String: Mask] = [:]) {
        self.columns = columns
        self.masks = masks
    }

    public var isEmpty: Bool { columns == .all && masks.isEmpty }

    public func keeps(_ column: String) -> Bool {
        switch columns {
        case .all: return true
        case .include(let names): return names.contains(column)
        case .exclude(let names): return !names.contains(column)
        }
    }

    /// The capture trigger's column arguments: `include`/`exclude` and the names, or none.
    public var triggerArguments: [String] {
        switch columns {
        case .all: return []
        case .include(let names): return ["include"] + names
        case .exclude(let names): return ["exclude"] + names
        }
    }
}

/// Applies the tables' `ColumnPolicy` to events. Pure: the keyed hash comes in as a function, so the core
/// needs no cryptography library (SpillwayApp passes HMAC-SHA256 from swift-crypto).
public struct ColumnMasker: Sendable {
    public typealias Hasher = @Sendable (_ value: [UInt8]) -> String

    let policies: [QualifiedName: ColumnPolicy]
    let hash: Hasher?

    /// `hash` is required when a policy hashes a column (the config loader checks `source.mask_key`).
    public init(policies: [QualifiedName: ColumnPolicy], hash: Hasher?) {
        self.policies = policies.filter { !$0.value.isEmpty }
        self.hash = hash
    }

    public var isEmpty: Bool { policies.isEmpty }

    public func apply(_ events: [ChangeEvent]) -> [ChangeEvent] {
        isEmpty ? events : events.map(apply)
    }

    public func apply(_ event: ChangeEvent) -> ChangeEvent {
        guard let policy = policies[QualifiedName(schema: event.schema, name: event.table)] else { return event }
        var masked = event
        var redacted: [String] = []
        masked.before = event.before.map { apply(policy, to: $0, redacted: &redacted) }
        masked.after = event.after.map { apply(policy, to: $0, redacted: &redacted) }
        // A key column that is excluded or redacted leaves the key; a hashed one stays, hashed, so the
        // row's changes keep one stable key (and their order per key). A key left empty is no key.
        if let key = event.key {
            var ignored: [String] = []
            let kept = apply(policy, to: key, redacted: &ignored, dropRedacted: true)
            masked.key = kept.isEmpty ? nil : kept
        }
        masked.unchangedColumns = event.unchangedColumns.filter(policy.keeps)
        var names = event.maskedColumns
        for name in redacted where !names.contains(name) { names.append(name) }
        masked.maskedColumns = names
        return masked
    }

    private func apply(_ policy: ColumnPolicy, to row: JSONObject, redacted: inout [String],
                       dropRedacted: Bool = false) -> JSONObject {
        var fields: [(String, JSONValue)] = []
        fields.reserveCapacity(row.count)
        for (name, value) in row.fields where policy.keeps(name) {
            switch policy.masks[name] {
            case nil:
                fields.append((name, value))
            case .redact:
                if dropRedacted { continue }
                fields.append((name, .null))
                if !redacted.contains(name) { redacted.append(name) }
            case .hash:
                // null stays null: there is nothing to hide, and a hash of "null" would read as a value.
                guard value != .null else { fields.append((name, .null)); continue }
                guard let hash else { fields.append((name, .null)); continue }  // unreachable: the config requires the key
                fields.append((name, .string(hash(Array(value.plainText.utf8)))))
            }
        }
        return JSONObject(fields)
    }
}
