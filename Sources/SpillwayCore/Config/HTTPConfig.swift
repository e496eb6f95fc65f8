/// `http:`: the endpoint `spillway run` serves `/healthz`, `/readyz` and `/metrics` on.
public struct HTTPConfig: Sendable, Equatable {
    /// Where to listen; nil when `http.address: off`. Default: 127.0.0.1:9187 (loopback: expose it on purpose).
    public var address: HostAndPort?
    /// Whether the config (or an override) named the address. A named address that cannot be bound is a
    /// configuration error; the default one, taken already (a second consumer on the host, as before this
    /// endpoint existed), only disables the endpoint with a warning.
    public var isAddressExplicit = false
    /// `/readyz` fails when events have waited this long for their acknowledgement. Default: 60s.
    public var stallAfter: Duration
    /// `/healthz` fails when no stage of the pipeline (a read, an acknowledgement, a retry, a reconnect
    /// attempt) has run for this long. Default: 5m, far above the longest backoff (30s).
    public var livenessTimeout: Duration
    /// How often the database-side gauges (lag rows, retained WAL, wal_status, checkpoint age) are read,
    /// on a connection of their own. Default: 15s.
    public var sampleInterval: Duration

    public init(address: HostAndPort? = HostAndPort(host: "127.0.0.1", port: 9187), stallAfter: Duration = .seconds(60),
                livenessTimeout: Duration = .seconds(300), sampleInterval: Duration = .seconds(15)) {
        self.address = address
        self.stallAfter = stallAfter
        self.livenessTimeout = livenessTimeout
        self.sampleInterval = sampleInterval
    }

    static func parse(_ r: inout ConfigReader) throws(ConfigError) -> HTTPConfig {
        var config = HTTPConfig()
        if let text = try r.optionalString("address") {
            config.isAddressExplicit = true
            if ["off", "false", "no"].contains(text.lowercased()) {
                config.address = nil
            } else {
                guard let address = HostAndPort(parsing: text) else {
                    throw ConfigError(key: r.keyPath("address"), problem: "'\(text)' is not host:port",
                                      fix: "write e.g. 127.0.0.1:9187, 0.0.0.0:9187 (all interfaces), [::1]:9187, or off")
                }
                config.address = address
            }
        }
        func interval(_ key: String, default value: Duration) throws(ConfigError) -> Duration {
            let parsed = try r.duration(key, default: value)
            guard parsed >= .milliseconds(100) else {
                throw ConfigError(key: r.keyPath(key), problem: "is below 100ms", fix: "use 100ms or more")
            }
            return parsed
        }
        config.stallAfter = try interval("stall_after", default: config.stallAfter)
        config.livenessTimeout = try interval("liveness_timeout", default: config.livenessTimeout)
        config.sampleInterval = try interval("sample_interval", default: config.sampleInterval)
        return config
    }
}

/// `host:port`; an IPv6 host in brackets (`[::1]:9187`). Port 0 picks a free port (tests).
public struct HostAndPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") {
            guard host.hasSuffix("]"), host.count > 2 else { return nil }
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") {
            return nil  // an IPv6 address needs its brackets
        }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "/" }) else { return nil }
        self.init(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// `ha:`: several `spillway run` of one consumer. One is active (it holds the consumer's lock on its
/// control connection); the others wait as standbys and take over when that session ends.
public struct HAConfig: Sendable, Equatable {
    /// How long a standby waits for the lock in one go, and the bound on how long the database keeps a
    /// silent active runner's session (TCP keepalives), so a cut network frees the lock about this soon
    /// too. A lock released by a stopped or killed runner is taken at once. Default: 5s.
    public var takeover: Duration

    public init(takeover: Duration = .seconds(5)) { self.takeover = takeover }

    static func parse(_ r: inout ConfigReader) throws(ConfigError) -> HAConfig {
        var config = HAConfig()
        config.takeover = try r.duration("takeover", default: config.takeover)
        guard config.takeover >= .seconds(1) else {
            throw ConfigError(key: r.keyPath("takeover"), problem: "is below 1s", fix: "use 1s or more (TCP keepalives count whole seconds)")
        }
        return config
    }
}
