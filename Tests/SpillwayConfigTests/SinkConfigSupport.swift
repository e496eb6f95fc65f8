@testable import SpillwayCore

/// A config with `source` and the YAML list items `sinks`, every sink kind registered.
func parseConfig(source: String = "{tables: [public.products]}", sinks: String) throws(ConfigError) -> SpillwayConfig {
    try SpillwayConfig.parse(yaml: """
        database: {url: postgres://h/db}
        source: \(source)
        sinks:
        \(sinks)
        """)
}

/// The ConfigError `body` throws, or nil when it parses.
func thrownConfigError(_ body: () throws -> SpillwayConfig) -> ConfigError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error as? ConfigError
    }
}
