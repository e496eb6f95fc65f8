@testable import SpillwayCore

// A products table, its rows and change events over them: shared by the template and cache-invalidation tests.

func template(_ text: String) throws -> EventTemplate { try EventTemplate(parsing: text) }

func product(id: Int, category: Int?, name: String = "Kettle") -> JSONObject {
    ["id": .integer(id), "category_id": category.map { .integer($0) } ?? .null, "name": .string(name)]
}

/// An event of public.products keyed by the row's `id`, with id `txid-sequence`.
func event(_ op: ChangeEvent.Operation, before: JSONObject? = nil, after: JSONObject? = nil,
           tenant: String? = "acme", txid: UInt64 = 1, sequence: Int = 1) -> ChangeEvent {
    let row = after ?? before
    return ChangeEvent(id: "\(txid)-\(sequence)", op: op, schema: "public", table: "products",
                       key: row.flatMap { $0["id"] }.map { ["id": $0] }, before: before, after: after,
                       txid: txid, position: "\(txid)/\(sequence)", tenant: tenant)
}

let productsTable = TableInfo(schema: "public", name: "products", columns: [
    ColumnInfo(name: "id", kind: .integer, typeName: "integer"),
    ColumnInfo(name: "category_id", kind: .integer, typeName: "integer"),
    ColumnInfo(name: "name", kind: .text, typeName: "text"),
], primaryKey: ["id"])
