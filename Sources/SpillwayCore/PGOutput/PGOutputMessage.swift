/// A PostgreSQL object id (`Oid`), e.g. a relation or type id.
public typealias OID = UInt32

/// A PostgreSQL transaction id (`TransactionId`). The wire calls it `Int32`, but the server
/// treats it as unsigned, so ids above 2^31 stay positive here.
public typealias TransactionID = UInt32

/// One message of PostgreSQL's `pgoutput` logical replication plugin, protocol versions 1
/// and 2 (see "Logical Replication Message Formats" in the PostgreSQL docs).
///
/// Messages sent inside a v2 stream block (between Stream Start and Stream Stop) carry the
/// streamed transaction's id in `streamXID`; it is `nil` everywhere else.
public enum PGOutputMessage: Hashable, Sendable {
    case begin(Begin)                    // 'B'
    case commit(Commit)                  // 'C'
    case origin(Origin)                  // 'O'
    case relation(Relation)              // 'R'
    case type(TypeDefinition)            // 'Y'
    case insert(Insert)                  // 'I'
    case update(Update)                  // 'U'
    case delete(Delete)                  // 'D'
    case truncate(Truncate)              // 'T'
    case logicalMessage(LogicalMessage)  // 'M'
    case streamStart(StreamStart)        // 'S', v2
    case streamStop                      // 'E', v2
    case streamCommit(StreamCommit)      // 'c', v2
    case streamAbort(StreamAbort)        // 'A', v2

    /// Start of a transaction.
    public struct Begin: Hashable, Sendable {
        /// The LSN of the transaction's commit record.
        public var finalLSN: LSN
        /// When the transaction committed.
        public var commitTimestamp: PGTimestamp
        /// The transaction id.
        public var xid: TransactionID
    }

    /// End of a transaction.
    public struct Commit: Hashable, Sendable {
        /// Unused by PostgreSQL so far; kept as sent.
        public var flags: UInt8
        /// The LSN of the commit record.
        public var commitLSN: LSN
        /// The LSN just past the commit record; confirm this one to the server.
        public var endLSN: LSN
        /// When the transaction committed.
        public var commitTimestamp: PGTimestamp
    }

    /// The transaction was replicated here from another node.
    public struct Origin: Hashable, Sendable {
        /// The commit LSN on the origin server.
        public var commitLSN: LSN
        /// The replication origin's name.
        public var name: String
    }

    /// A table's schema; sent before the first change to it in a session and after each
    /// schema change, so a newer one replaces the older (see ``RelationCache``).
    public struct Relation: Hashable, Sendable {
        /// The streamed (sub)transaction inside a v2 stream block; `nil` outside one.
        public var streamXID: TransactionID?
        /// The table's OID, which data messages refer to.
        public var id: OID
        /// The schema name; empty for `pg_catalog`.
        public var namespace: String
        /// The table name.
        public var name: String
        /// Which old values Update and Delete carry.
        public var replicaIdentity: ReplicaIdentity
        /// The published columns, in tuple order.
        public var columns: [Column]

        /// `REPLICA IDENTITY` of the table: which old values Update and Delete carry.
        public enum ReplicaIdentity: UInt8, Hashable, Sendable {
            case `default` = 0x64  // 'd': primary key
            case nothing = 0x6E    // 'n'
            case full = 0x66       // 'f': every column
            case index = 0x69      // 'i': a chosen unique index
        }

        /// Per-column flags; unknown bits are kept.
        public struct ColumnFlags: OptionSet, Hashable, Sendable {
            /// The flag bits as sent.
            public var rawValue: UInt8
            /// Wraps flag bits.
            public init(rawValue: UInt8) { self.rawValue = rawValue }
            /// The column is part of the replica identity key.
            public static let key = ColumnFlags(rawValue: 1)
        }

        /// One column of a Relation.
        public struct Column: Hashable, Sendable {
            /// Flags; see ``isKey``.
            public var flags: ColumnFlags
            /// The column name.
            public var name: String
            /// The data type's OID, e.g. 23 for `int4`; see the Type message for others.
            public var typeOID: OID
            /// `atttypmod`, e.g. a `varchar` length plus 4; -1 when the type has none.
            public var typeModifier: Int32
            /// Whether the column is part of the replica identity key.
            public var isKey: Bool { flags.contains(.key) }
        }
    }

    /// A non-built-in data type used by a following Relation.
    public struct TypeDefinition: Hashable, Sendable {
        /// The streamed (sub)transaction inside a v2 stream block; `nil` outside one.
        public var streamXID: TransactionID?
        /// The type's OID, as used in ``Relation/Column/typeOID``.
        public var id: OID
        /// The schema name; empty for `pg_catalog`.
        public var namespace: String
        /// The type name.
        public var name: String
    }

    /// A new row.
    public struct Insert: Hashable, Sendable {
        /// The streamed (sub)transaction inside a v2 stream block; `nil` outside one.
        public var streamXID: TransactionID?
        /// The table, described by an earlier Relation.
        public var relationID: OID
        /// The inserted row.
        public var newTuple: TupleData
    }

    /// A changed row.
    public struct Update: Hashable, Sendable {
        /// The streamed (sub)transaction inside a v2 stream block; `nil` outside one.
        public var streamXID: TransactionID?
        /// The table, described by an earlier Relation.
        public var relationID: OID
        /// Present only when the key changed ('K') or the table has `REPLICA IDENTITY FULL` ('O').
        public var oldTuple: OldTuple?
        /// Unchanged TOASTed columns appear as ``TupleValue/unchangedToast``.
        public var newTuple: TupleData
    }

    /// A removed row.
    public struct Delete: Hashable, Sendable {
        /// The streamed (sub)transaction inside a v2 stream block; `nil` outside one.
        public var streamXID: TransactionID?
        /// The table, described by an earlier Relation.
        public var relationID: OID
        /// The key ('K') or, with `REPLICA IDENTITY FULL`, the whole row ('O').
        public var oldTuple: OldTuple
    }

    /// One `TRUNCATE` of one or more tables.
    public struct Truncate: Hashable, Sendable {
        /// The streamed (sub)transaction inside a v2 stream block; `nil` outside one.
        public var streamXID: TransactionID?
        /// `CASCADE` and `RESTART IDENTITY`.
        public var options: TruncateOptions
        /// The truncated tables, each described by an earlier Relation.
        public var relationIDs: [OID]
    }

    /// `TRUNCATE` options; unknown bits are kept.
    public struct TruncateOptions: OptionSet, Hashable, Sendable {
        /// The option bits as sent.
        public var rawValue: UInt8
        /// Wraps option bits.
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// `TRUNCATE ... CASCADE`.
        public static let cascade = TruncateOptions(rawValue: 1)
        /// `TRUNCATE ... RESTART IDENTITY`.
        public static let restartIdentity = TruncateOptions(rawValue: 2)
    }

    /// A `pg_logical_emit_message` payload (sent when the `messages` option is on).
    public struct LogicalMessage: Hashable, Sendable {
        /// The streamed (sub)transaction inside a v2 stream block; `nil` outside one.
        public var streamXID: TransactionID?
        /// Whether the message belongs to the enclosing transaction (else it was emitted
        /// immediately, outside any transaction).
        public var isTransactional: Bool
        /// The message's WAL position.
        public var lsn: LSN
        /// The emitter's prefix, identifying the kind of message.
        public var prefix: String
        /// The payload, uninterpreted.
        public var content: [UInt8]
    }

    /// Opens a block of changes from a large in-progress transaction (v2).
    public struct StreamStart: Hashable, Sendable {
        /// The top-level transaction being streamed.
        public var xid: TransactionID
        /// Whether this is the transaction's first block.
        public var isFirstSegment: Bool
    }

    /// Commits a streamed transaction (v2).
    public struct StreamCommit: Hashable, Sendable {
        /// The top-level transaction that committed.
        public var xid: TransactionID
        /// Unused by PostgreSQL so far; kept as sent.
        public var flags: UInt8
        /// The LSN of the commit record.
        public var commitLSN: LSN
        /// The LSN just past the commit record; confirm this one to the server.
        public var endLSN: LSN
        /// When the transaction committed.
        public var commitTimestamp: PGTimestamp
    }

    /// Aborts a streamed transaction or one of its subtransactions (v2).
    public struct StreamAbort: Hashable, Sendable {
        /// The top-level transaction.
        public var xid: TransactionID
        /// Equals `xid` when the whole transaction aborted.
        public var subtransactionXID: TransactionID
    }
}

/// The old row of an Update or Delete.
public enum OldTuple: Hashable, Sendable {
    /// 'K': only the replica identity key columns; the others are ``TupleValue/null``.
    case key(TupleData)
    /// 'O': every column (`REPLICA IDENTITY FULL`).
    case full(TupleData)

    /// The tuple, whichever kind.
    public var tuple: TupleData {
        switch self {
        case .key(let tuple), .full(let tuple): tuple
        }
    }
}

/// A row's column values, in the order of the Relation's columns.
public struct TupleData: Hashable, Sendable {
    /// One value per column.
    public var values: [TupleValue]

    /// Wraps column values.
    public init(_ values: [TupleValue]) { self.values = values }
}

/// One column value of a row.
public enum TupleValue: Hashable, Sendable {
    /// 'n': SQL `NULL`.
    case null
    /// 'u': a TOASTed value the change did not touch; the server does not resend it.
    case unchangedToast
    /// 't': the type's text output, in the server encoding.
    case text([UInt8])
    /// 'b': the type's binary send format (only with the `binary` option).
    case binary([UInt8])

    /// The text value decoded as UTF-8, or `nil` if this is not valid UTF-8 text.
    public var string: String? {
        guard case .text(let bytes) = self else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }
}
