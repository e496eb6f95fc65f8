/// A sink whose configuration depends on the captured tables' columns (key templates, channel
/// templates) or on objects at its destination (materialized views). The pipeline calls `validate` with
/// the captured tables, as the catalog describes them, before it streams the first batch, and again after
/// each reconnect of the source (a table may have changed meanwhile).
public protocol ChangeSinkValidating: ChangeSink {
    /// Throws `ConfigError` for a configuration that cannot work (the run stops with exit code 2); any
    /// other error (e.g. the destination is unreachable) is retried like a failed connection.
    /// `tables` are the captured tables this sink's filter lets through.
    func validate(tables: [TableInfo]) async throws
}
