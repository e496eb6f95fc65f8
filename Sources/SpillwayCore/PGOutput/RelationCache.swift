/// The latest Relation message per relation id, needed to interpret the tuples of Insert,
/// Update and Delete, which refer to their table by id only.
///
/// The server sends a Relation before a table's first change in a session and again after
/// its schema changes, so a newer message simply replaces the older. Clear the cache on
/// reconnect: the new session resends what it needs.
public struct RelationCache: Sendable {
    /// The cached relations by id.
    public private(set) var relations: [OID: PGOutputMessage.Relation] = [:]

    /// An empty cache.
    public init() {}

    /// Stores `relation`, replacing any older one with the same id.
    ///
    /// - Returns: the replaced relation, so callers can tell a schema change from a first sight.
    @discardableResult
    public mutating func store(_ relation: PGOutputMessage.Relation) -> PGOutputMessage.Relation? {
        relations.updateValue(relation, forKey: relation.id)
    }

    /// Stores the message if it is a Relation; ignores every other message.
    ///
    /// - Returns: the replaced relation, if any.
    @discardableResult
    public mutating func observe(_ message: PGOutputMessage) -> PGOutputMessage.Relation? {
        guard case .relation(let relation) = message else { return nil }
        return store(relation)
    }

    /// The cached relation with `id`.
    ///
    /// - Throws: ``RelationCacheError/unknownRelation(id:)`` if no Relation message for it
    ///   was seen.
    public func relation(id: OID) throws(RelationCacheError) -> PGOutputMessage.Relation {
        guard let relation = relations[id] else { throw .unknownRelation(id: id) }
        return relation
    }

    /// The relations a data message refers to, checked against its tuples: one for Insert,
    /// Update and Delete, each truncated one for Truncate, none for other messages.
    ///
    /// - Throws: ``RelationCacheError`` if a relation is unknown or a tuple's column count
    ///   differs from its Relation's.
    public func relations(
        referencedBy message: PGOutputMessage
    ) throws(RelationCacheError) -> [PGOutputMessage.Relation] {
        let (relationID, tuples): (OID, [TupleData])
        switch message {
        case .insert(let insert): (relationID, tuples) = (insert.relationID, [insert.newTuple])
        case .update(let update):
            (relationID, tuples) = (update.relationID, [update.oldTuple?.tuple, update.newTuple].compactMap { $0 })
        case .delete(let delete): (relationID, tuples) = (delete.relationID, [delete.oldTuple.tuple])
        case .truncate(let truncate):
            var truncated: [PGOutputMessage.Relation] = []
            for id in truncate.relationIDs { truncated.append(try relation(id: id)) }
            return truncated
        default: return []
        }
        let relation = try relation(id: relationID)
        for tuple in tuples where tuple.values.count != relation.columns.count {
            throw .columnCountMismatch(relationID: relationID, relationName: relation.qualifiedName,
                                       expected: relation.columns.count, actual: tuple.values.count)
        }
        return [relation]
    }

    /// Forgets every relation, e.g. on reconnect.
    public mutating func removeAll() { relations.removeAll() }
}

/// Why ``RelationCache`` could not resolve a data message.
public enum RelationCacheError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A data message named a relation id with no preceding Relation message.
    case unknownRelation(id: OID)
    /// A tuple's column count differs from the cached Relation's.
    case columnCountMismatch(relationID: OID, relationName: String, expected: Int, actual: Int)

    /// One line naming the relation and the problem.
    public var description: String {
        switch self {
        case .unknownRelation(let id):
            "unknown relation id \(id): no Relation message for it was received in this session"
        case let .columnCountMismatch(id, name, expected, actual):
            "column count mismatch for relation \(id) (\(name)): the tuple has \(actual) columns "
                + "but the Relation message declared \(expected)"
        }
    }
}

extension PGOutputMessage.Relation {
    /// `namespace.name`, or just `name` for `pg_catalog` (sent as an empty namespace).
    public var qualifiedName: String { namespace.isEmpty ? name : "\(namespace).\(name)" }
}
