import SpillwayCore
import SpillwayKafka
import SpillwayRedis
import SpillwaySinks
import SpillwayWebhook

/// Every sink kind `kind:` may name: one line per sink module's settings type.
public enum SinkKinds {
    public static let all: [any SinkSettings.Type] = [
        FileSinkSettings.self,
        KafkaSinkSettings.self,
        WebhookSinkSettings.self,
        RedisSinkSettings.self,
        NotifySinkSettings.self,
        RefreshSinkSettings.self,
        ArchiveSinkSettings.self,
    ]
}

extension SpillwayConfig {
    /// Parses and validates YAML with every built-in sink kind.
    public static func parse(yaml: String, environment: [String: String] = [:]) throws(ConfigError) -> SpillwayConfig {
        try parse(yaml: yaml, environment: environment, sinkKinds: SinkKinds.all)
    }
}

extension SpillwayConfig {
    /// Every problem of the YAML (`spillway check`), with every built-in sink kind.
    public static func check(yaml: String, environment: [String: String] = [:]) -> (SpillwayConfig?, [ConfigError]) {
        check(yaml: yaml, environment: environment, sinkKinds: SinkKinds.all)
    }
}
