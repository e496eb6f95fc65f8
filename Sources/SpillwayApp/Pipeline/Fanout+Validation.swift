import SpillwayCore
import SpillwayPostgres

extension Fanout {
    /// Lets every sink whose configuration depends on the captured tables (`ChangeSinkValidating`) check
    /// it against them, each with the tables its filter lets through. Called before streaming starts.
    public func validate(tables: [TableInfo]) async throws {
        for route in routes {
            guard let sink = route.sink as? any ChangeSinkValidating else { continue }
            let selected = route.filter.tables.isEmpty
                ? tables : tables.filter { route.filter.tables.contains(QualifiedName(schema: $0.schema, name: $0.name)) }
            try await sink.validate(tables: selected.sorted { $0.qualifiedName < $1.qualifiedName })
        }
    }

    /// Describes `config.source.tables` on `connection` and validates the sinks against them (nothing to do,
    /// and no query, when no sink needs it).
    public func validate(capturing config: SpillwayConfig, on connection: PostgresConnection) async throws {
        guard routes.contains(where: { $0.sink is any ChangeSinkValidating }) else { return }
        var tables: [TableInfo] = []
        for (index, table) in config.source.tables.enumerated() {
            guard try await PostgresCatalog.tableExists(table, on: connection) else {
                throw ConfigError(key: "source.tables[\(index)]", problem: "table \(table) does not exist",
                                  fix: "create it, or remove it from source.tables")
            }
            tables.append(try await PostgresCatalog.describe(table, on: connection))
        }
        try await validate(tables: tables)
    }
}
