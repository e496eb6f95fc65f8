import SpillwayCore

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
}
