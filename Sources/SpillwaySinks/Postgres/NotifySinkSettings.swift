import Logging
import SpillwayCore

/// `kind: notify`: `pg_notify(channel, payload)` on a PostgreSQL database, a batch per transaction.
public struct NotifySinkSettings: Sendable {
    /// The database to notify on. Default (nil): `database.url`.
    public var url: String?
    /// Default: `spillway_{table}`. Must render to at most 63 bytes (PostgreSQL's identifier limit).
    public var channel: EventTemplate
    public var configKey: String

    public static let defaultChannel = try! EventTemplate(parsing: "spillway_{table}")

    public init(url: String? = nil, channel: EventTemplate = defaultChannel, configKey: String = "sinks[0]") {
        self.url = url
        self.channel = channel
        self.configKey = configKey
    }
}

extension NotifySinkSettings: SinkSettings {

    /// `tenant_fallback: {default: VALUE}`: the channel writes VALUE for a missing tenant.
    public func fillingMissingTenant(with value: String) -> NotifySinkSettings {
        var settings = self
        settings.channel = channel.fillingMissingTenant(with: value)
        return settings
    }

    public static let kind = "notify"

    public static func parse(_ r: inout ConfigReader, context: SinkParseContext) throws(ConfigError) -> NotifySinkSettings {
        let environment = context.environment
        var settings = NotifySinkSettings(configKey: r.path)
        if let url = try r.optionalString("url") {
            settings.url = try EnvironmentSubstitution.substitute(url, environment: environment, key: r.keyPath("url"))
        }
        if let channel = try r.optionalString("channel") {
            settings.channel = try EventTemplate(parsing: channel, key: r.keyPath("channel"), use: .channel)
            if settings.channel.fields.isEmpty, channel.utf8.count > 63 {
                throw ConfigError(key: r.keyPath("channel"), problem: "is longer than 63 bytes, PostgreSQL's limit for a channel",
                                  fix: "use a shorter channel name")
            }
        }
        return settings
    }

    public func makeSink(_ context: SinkContext) async throws -> any ChangeSink {
        NotifySink(name: context.name, settings: self, url: url ?? context.databaseURL, logger: Logger(label: "spillway"))
    }
}
